// How the msgpack encoder reports a value it cannot encode: the
// throwables it uses inside, and the TypeError its callers see. Private: see
// encode.ts.

import { KEY_BYTES_LIMIT, MAX_DEPTH } from "./_codec_common.ts";

/**
 * Thrown inside the encoder for a value it cannot encode; every array and
 * object on the way up adds its index or key, and the entry points turn it
 * into a `TypeError`. Not an `Error`: no stack is captured.
 */
export class Unencodable {
  /** Keys and indices from the failing value up to the root. */
  readonly path: (string | number)[] = [];
  /** The arrays and objects from the failing value up to the root. */
  readonly containers: object[] = [];
  constructor(
    /** What was found, such as "a function (cb)"; "" for too deep. */
    readonly what: string,
    /** What to do instead. */
    readonly hint: string,
  ) {}
}

/** Thrown inside the encoder once the output exceeds its limit. */
export class TooBig {
  constructor(
    /** Output bytes so far (header included). */
    readonly bytes: number,
    /** Whether `bytes` is the whole output or only as far as it got. */
    readonly exact = false,
  ) {}
}

export function protoKey(): Unencodable {
  return new Unencodable(
    'an object with an own "__proto__" key',
    "the other side rejects it; rename the key",
  );
}

export function longKey(bytes: number): Unencodable {
  return new Unencodable(
    `a map key of ${bytes} bytes`,
    `the other side rejects keys longer than ${KEY_BYTES_LIMIT} bytes (V8 hashes longer strings by their length alone); use a shorter key, or put it in a value`,
  );
}

export function tooDeep(container: object): Unencodable {
  const error = new Unencodable("", "");
  error.containers.push(container);
  return error;
}

/** The name of an object's class, or "" when it has none. */
export function typeName(v: object): string {
  try {
    const proto = Object.getPrototypeOf(v);
    if (!proto || !Object.hasOwn(proto, "constructor")) return "";
    const name = typeof proto.constructor === "function"
      ? proto.constructor.name
      : "";
    return typeof name === "string" ? name : "";
  } catch {
    return "";
  }
}

export function article(name: string): string {
  return `${/^[AEIO]/.test(name) ? "an" : "a"} ${name}`;
}

export function unencodableObject(v: object): Unencodable {
  const name = typeName(v);
  if (v instanceof Error) {
    return new Unencodable(
      `an Error (${name || "Error"})`,
      "send its name and message as a plain object; a thrown error is sent to the caller as RemoteError",
    );
  }
  if (v instanceof ArrayBuffer || v instanceof SharedArrayBuffer) {
    return new Unencodable(
      article(name || "ArrayBuffer"),
      "pass a Uint8Array: new Uint8Array(buffer)",
    );
  }
  if (v instanceof Map) {
    return new Unencodable(
      "a Map",
      "send a plain object or an array of [key, value] pairs",
    );
  }
  if (v instanceof Set) {
    return new Unencodable("a Set", "send an array");
  }
  const builtin = name !== "" &&
    (globalThis as Record<string, unknown>)[name] ===
      Object.getPrototypeOf(v)?.constructor;
  return new Unencodable(
    builtin
      ? article(name)
      : name
      ? `an instance of class ${name}`
      : "an object with a custom prototype",
    "only plain objects, arrays, strings, numbers, bigints, booleans, null, undefined, Uint8Array and Date are sent; convert it to a plain object",
  );
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** Renders a path such as `args[1].options.cb`. */
function formatPath(
  path: readonly (string | number)[],
  end: number,
  fields: string | undefined,
): string {
  let out = "value";
  let k = 0;
  if (fields !== undefined && end > 0 && typeof path[0] === "number") {
    const name = fields.split(" ")[path[0]];
    if (name) {
      out = name;
      k = 1;
    }
  }
  for (; k < end; k++) {
    if (k === 12 && end > 16) {
      out += `…(${end - 16} more)…`;
      k = end - 4;
    }
    const key = path[k];
    if (typeof key === "number") {
      out += `[${key}]`;
    } else if (IDENTIFIER.test(key)) {
      out += `.${key}`;
    } else {
      out += `[${
        JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key)
      }]`;
    }
  }
  return out;
}

export function toTypeError(error: Unencodable, fields?: string): TypeError {
  const path = error.path.reverse();
  const containers = error.containers.reverse();
  if (error.what !== "") {
    return new TypeError(
      `cannot encode ${error.what} at ${
        formatPath(path, path.length, fields)
      }: ${error.hint}`,
    );
  }
  // Too deep: a cycle, or data that is simply nested too far.
  const seen = new Map<object, number>();
  for (let j = 0; j < containers.length; j++) {
    const first = seen.get(containers[j]);
    if (first !== undefined) {
      return new TypeError(
        `cannot encode a cyclic structure: ${
          formatPath(path, j, fields)
        } refers back to ${formatPath(path, first, fields)}`,
      );
    }
    seen.set(containers[j], j);
  }
  return new TypeError(
    `cannot encode ${
      formatPath(path, path.length, fields)
    }: arrays and objects are nested deeper than ${MAX_DEPTH} levels`,
  );
}
