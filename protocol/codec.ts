/**
 * The msgpack codec, kept behind this one module so that it can be swapped
 * by measurement. It encodes plain msgpack (no records, no extensions other
 * than msgpack's timestamp), decodes binary data as `Uint8Array` that never
 * aliases the input, and refuses to rebuild prototypes from the wire.
 *
 * @module
 */

import { Packr } from "msgpackr/pack";
import { Unpackr } from "msgpackr/unpack";
import { ProtocolError } from "../errors.ts";

const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  structuredClone: false,
  bundleStrings: false,
  useBigIntExtension: false,
  largeBigIntToFloat: false,
  largeBigIntToString: false,
  // deno-lint-ignore no-explicit-any
} as any);

const unpackr = new Unpackr({
  useRecords: false,
  mapsAsObjects: true,
  copyBuffers: true,
  int64AsType: "bigint",
  // deno-lint-ignore no-explicit-any
} as any);

/**
 * Encodes one value as msgpack.
 *
 * @example
 * ```ts
 * import { encodeValue } from "@privsep/privsep/protocol";
 * encodeValue([1, "a"]); // Uint8Array [0x92, 0x01, 0xa1, 0x61]
 * ```
 */
export function encodeValue(value: unknown): Uint8Array {
  try {
    return packr.pack(value);
  } catch (error) {
    throw new TypeError(
      `cannot encode a value of type ${describeType(value)} as msgpack: ${
        (error as Error).message
      }`,
      { cause: error },
    );
  }
}

/**
 * Decodes one msgpack value. Malformed or trailing bytes throw
 * {@linkcode ProtocolError}.
 *
 * @example
 * ```ts
 * import { decodeValue, encodeValue } from "@privsep/privsep/protocol";
 * decodeValue(encodeValue({ a: 1 })); // { a: 1 }
 * ```
 */
export function decodeValue(bytes: Uint8Array): unknown {
  let value: unknown;
  try {
    const values = unpackr.unpackMultiple(bytes) as unknown[];
    if (values.length !== 1) {
      throw new Error(`expected one msgpack value, found ${values.length}`);
    }
    value = values[0];
  } catch (error) {
    throw new ProtocolError(
      `received a frame that is not valid msgpack: ${(error as Error).message}`,
      { cause: error },
    );
  }
  return sanitize(value, 0);
}

const MAX_DEPTH = 512;

/**
 * Turns Node `Buffer`s into plain `Uint8Array` views and checks that no
 * object carries an own `__proto__` key or is deeper than {@link MAX_DEPTH}.
 */
function sanitize(value: unknown, depth: number): unknown {
  if (value === null || typeof value !== "object") return value;
  if (depth > MAX_DEPTH) {
    throw new ProtocolError(`received a value nested deeper than ${MAX_DEPTH}`);
  }
  if (value instanceof Uint8Array) {
    return value.constructor === Uint8Array
      ? value
      : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const v = value[i];
      if (v !== null && typeof v === "object") {
        value[i] = sanitize(v, depth + 1);
      }
    }
    return value;
  }
  if (value instanceof Date) return value;
  if (Object.getPrototypeOf(value) !== Object.prototype) {
    throw new ProtocolError(
      `received an unexpected ${describeType(value)} value`,
    );
  }
  if (Object.hasOwn(value, "__proto__")) {
    throw new ProtocolError('received an object with a "__proto__" key');
  }
  const record = value as Record<string, unknown>;
  for (const key in record) {
    const v = record[key];
    if (v !== null && typeof v === "object") {
      record[key] = sanitize(v, depth + 1);
    }
  }
  return value;
}

function describeType(value: unknown): string {
  if (value === null) return "null";
  if (typeof value !== "object") return typeof value;
  return (value as object).constructor?.name ?? "Object";
}
