/**
 * Argument and result validation at the daemon's boundary through the
 * Standard Schema interface (https://standardschema.dev), so Zod, Valibot,
 * ArkType or a hand-written validator all work without privsep depending on
 * any of them.
 *
 * @module
 */

/**
 * The Standard Schema v1 interface, as far as privsep uses it. Schemas of
 * Zod, Valibot or ArkType implement it; so can a hand-written validator.
 *
 * @example
 * ```ts
 * import type { StandardSchemaV1 } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * const hostName: StandardSchemaV1<unknown, string> = {
 *   "~standard": {
 *     version: 1,
 *     vendor: "app",
 *     validate: (value) =>
 *       typeof value === "string" && /^[a-z0-9-]{1,63}$/.test(value)
 *         ? { value }
 *         : { issues: [{ message: "not a host name" }] },
 *   },
 * };
 * assert.deepEqual(hostName["~standard"].validate("node-1"), { value: "node-1" });
 * ```
 */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  /** The Standard Schema properties. */
  readonly "~standard": {
    /** Always 1. */
    readonly version: 1;
    /** The library that made the schema. */
    readonly vendor: string;
    /** Validates a value. */
    readonly validate: (
      value: unknown,
    ) => StandardResult<Output> | Promise<StandardResult<Output>>;
    /** Inferred types (unused at run time). */
    readonly types?:
      | { readonly input: Input; readonly output: Output }
      | undefined;
  };
}

/**
 * A Standard Schema validation result: the (possibly transformed) value, or
 * the issues found.
 *
 * @example
 * ```ts
 * import type { StandardResult } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * function unwrap<T>(result: StandardResult<T>): T {
 *   if (result.issues) {
 *     throw new TypeError(result.issues.map((i) => i.message).join("; "));
 *   }
 *   return result.value;
 * }
 * assert.equal(unwrap({ value: 1500 }), 1500);
 * assert.throws(() => unwrap({ issues: [{ message: "too small" }] }), TypeError);
 * ```
 */
export type StandardResult<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | { readonly issues: readonly StandardIssue[] };

/**
 * One problem found by a schema.
 *
 * @example
 * ```ts
 * import type { StandardIssue } from "@privsep/privsep";
 *
 * const issue: StandardIssue = {
 *   message: "must be from 68 to 65535",
 *   path: ["link", { key: "mtu" }],
 * };
 * ```
 */
export interface StandardIssue {
  /** What is wrong. */
  readonly message: string;
  /** Where, inside the value. */
  readonly path?:
    | readonly (PropertyKey | { readonly key: PropertyKey })[]
    | undefined;
}

/**
 * Validation options of an entrypoint, the third argument of
 * {@linkcode PrivContext.entrypoint}.
 *
 * @example
 * ```ts
 * import { type EntrypointOptions, PrivContext, type StandardSchemaV1 } from "@privsep/privsep";
 * import { inProcess } from "@privsep/privsep/testing";
 * import assert from "node:assert/strict";
 *
 * const mtu: StandardSchemaV1<unknown, number> = {
 *   "~standard": {
 *     version: 1,
 *     vendor: "app",
 *     validate: (value) =>
 *       Number.isInteger(value) && (value as number) >= 68
 *         ? { value: value as number }
 *         : { issues: [{ message: "must be an integer of at least 68" }] },
 *   },
 * };
 * const options: EntrypointOptions = { args: [undefined, mtu], auditArgs: true };
 *
 * const net = new PrivContext({
 *   module: "file:///virtual/entrypoint-options/privsep/mod.ts", // import.meta in real code
 *   name: "net",
 *   capabilities: ["CAP_NET_ADMIN"],
 * });
 * const setMtu = net.entrypoint(
 *   "file:///virtual/entrypoint-options/privsep/links.ts",
 *   function setMtu(device: string, mtu: number): string {
 *     return `${device} mtu ${mtu}`; // a stand-in for the real change
 *   },
 *   options,
 * );
 *
 * using _ = inProcess(); // schemas are checked in-process too
 * assert.equal(await setMtu("eth0", 9000), "eth0 mtu 9000");
 * await assert.rejects(setMtu("eth0", 1), /argument 2 \(mtu\)/);
 * ```
 */
export interface EntrypointOptions {
  /**
   * One schema per parameter, in order (`undefined` for a parameter that is
   * not checked). The daemon validates the arguments before it calls the
   * function and passes the schemas' output values to it.
   */
  args?: readonly (StandardSchemaV1 | undefined)[];
  /** A schema the result must satisfy before it leaves the daemon. */
  result?: StandardSchemaV1;
  /**
   * Put the argument values into the audit record. Off by default: they can
   * be secrets. Only for entrypoints whose arguments are safe to log.
   */
  auditArgs?: boolean;
}

function isSchema(value: unknown): value is StandardSchemaV1 {
  const s = (value as StandardSchemaV1 | undefined)?.["~standard"];
  return typeof s === "object" && s !== null && s.version === 1 &&
    typeof s.validate === "function";
}

/** Checks entrypoint options when the entrypoint is defined. */
export function checkEntrypointOptions(
  name: string,
  options: EntrypointOptions | undefined,
): void {
  if (options === undefined) return;
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`the options of entrypoint ${name} must be an object`);
  }
  if (options.args !== undefined) {
    if (!Array.isArray(options.args)) {
      throw new TypeError(
        `options.args of entrypoint ${name} must be an array of Standard Schemas`,
      );
    }
    options.args.forEach((s, i) => {
      if (s !== undefined && !isSchema(s)) {
        throw new TypeError(
          `options.args[${i}] of entrypoint ${name} is not a Standard Schema (an object with "~standard".validate)`,
        );
      }
    });
  }
  if (options.result !== undefined && !isSchema(options.result)) {
    throw new TypeError(
      `options.result of entrypoint ${name} is not a Standard Schema`,
    );
  }
}

/** The parameter names of a function, from its source (best effort). */
export function parameterNames(fn: (...args: never[]) => unknown): string[] {
  const src = Function.prototype.toString.call(fn);
  const open = src.indexOf("(");
  if (open < 0) return [];
  let depth = 0;
  let end = open;
  for (; end < src.length; end++) {
    if (src[end] === "(") depth++;
    else if (src[end] === ")" && --depth === 0) break;
  }
  return src.slice(open + 1, end).split(",").map((p) =>
    p.replace(/\/\*.*?\*\//g, "").trim().replace(/^\.\.\./, "").split(
      /[\s=:]/,
    )[0]
  ).filter((p) => /^[A-Za-z_$][\w$]*$/.test(p));
}

function describeIssues(issues: readonly StandardIssue[]): string {
  return issues.slice(0, 5).map((i) => {
    const path = (i.path ?? []).map((p) =>
      typeof p === "object" && p !== null && "key" in p
        ? String(p.key)
        : String(p)
    );
    return path.length ? `${path.join(".")}: ${i.message}` : i.message;
  }).join("; ");
}

/**
 * An argument or result that its schema refused. It reaches the caller (also
 * in-process) as a `RemoteError` whose `remoteName` is `"InvalidArgument"`,
 * with this error's `code` and `data`.
 *
 * @example
 * ```ts
 * import { PrivContext, RemoteError, type StandardSchemaV1 } from "@privsep/privsep";
 * import { inProcess } from "@privsep/privsep/testing";
 * import assert from "node:assert/strict";
 *
 * const userName: StandardSchemaV1<unknown, string> = {
 *   "~standard": {
 *     version: 1,
 *     vendor: "app",
 *     validate: (value) =>
 *       typeof value === "string" && /^[a-z_][a-z0-9_-]*$/.test(value)
 *         ? { value }
 *         : { issues: [{ message: "not a user name" }] },
 *   },
 * };
 * const users = new PrivContext({
 *   module: "file:///virtual/invalid-argument/privsep/mod.ts", // import.meta in real code
 *   name: "users",
 *   capabilities: [],
 * });
 * const lockUser = users.entrypoint(
 *   "file:///virtual/invalid-argument/privsep/users.ts",
 *   function lockUser(name: string): string {
 *     return name; // a stand-in for the real change
 *   },
 *   { args: [userName] },
 * );
 *
 * using _ = inProcess(); // errors arrive as they would over the wire
 * const error = await lockUser("root; rm -rf /").catch((e) => e);
 * assert(error instanceof RemoteError);
 * assert.equal(error.remoteName, "InvalidArgument");
 * assert.equal(error.code, "EINVAL");
 * assert.deepEqual(error.data, { index: 0, parameter: "name", issues: ["not a user name"] });
 * ```
 */
export class InvalidArgument extends TypeError {
  /** Always `"InvalidArgument"`. */
  override name = "InvalidArgument";
  /** Error code on the wire. */
  readonly code = "EINVAL";
  /** Which argument (or the result) and what the schema said. */
  readonly data: { index: number | null; parameter: string; issues: string[] };
  /** Creates the error. */
  constructor(
    message: string,
    data: { index: number | null; parameter: string; issues: string[] },
  ) {
    super(message);
    this.data = data;
  }
}

/**
 * Validates `args` with the entrypoint's schemas; returns the values to call
 * the function with (the schemas' outputs).
 */
export async function validateArgs(
  key: string,
  fn: (...args: never[]) => unknown,
  options: EntrypointOptions | undefined,
  args: unknown[],
): Promise<unknown[]> {
  const schemas = options?.args;
  if (!schemas) return args;
  const names = parameterNames(fn);
  // Arguments beyond both the schemas and the function's declared
  // parameters would reach the function unchecked (through `arguments`).
  const arity = Math.max(schemas.length, names.length);
  if (args.length > arity) {
    throw new InvalidArgument(
      `${key} takes at most ${arity} argument(s), got ${args.length}`,
      {
        index: arity,
        parameter: `#${arity + 1}`,
        issues: ["too many arguments"],
      },
    );
  }
  const out = [...args];
  for (let i = 0; i < schemas.length; i++) {
    const schema = schemas[i];
    if (!schema) continue;
    const result = await schema["~standard"].validate(args[i]);
    if (result.issues) {
      const parameter = names[i] ?? `#${i + 1}`;
      throw new InvalidArgument(
        `argument ${i + 1} (${parameter}) of ${key} is invalid: ${
          describeIssues(result.issues)
        }`,
        { index: i, parameter, issues: result.issues.map((x) => x.message) },
      );
    }
    out[i] = result.value;
  }
  return out;
}

/** Validates a result with the entrypoint's result schema. */
export async function validateResult(
  key: string,
  options: EntrypointOptions | undefined,
  value: unknown,
): Promise<unknown> {
  const schema = options?.result;
  if (!schema) return value;
  const result = await schema["~standard"].validate(value);
  if (result.issues) {
    // The schema's messages may quote the refused value, which is privileged
    // data: the caller only learns that the result was refused.
    throw new InvalidArgument(
      `the result of ${key} is invalid (the schema's messages are withheld: they may quote the value)`,
      { index: null, parameter: "result", issues: [] },
    );
  }
  return result.value;
}
