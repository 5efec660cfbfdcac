/**
 * The messages exchanged between a caller and its daemon, and their strict
 * validation. Every message is a msgpack array whose first element is the
 * message kind; see `protocol/PROTOCOL.md` for the byte layout.
 *
 * @module
 */

import { ownsBuffer } from "./_slab.ts";
import { ProtocolError, type RemoteErrorInfo } from "../errors.ts";
import { decodeValue, encodeFramed, encodeValue } from "./codec.ts";
import { DEFAULT_MAX_FRAME_BYTES } from "./frame.ts";
import { fieldsOf } from "./_fields.ts";

/**
 * The protocol version both sides must speak; each sends it as `v` in its
 * hello, and a side that reads another version closes the channel with an
 * error naming both. Version 3 added the status message; version 2 the
 * padding frame.
 *
 * @example
 * ```ts
 * import { decodeMessage, encodeMessage, Kind, PROTOCOL_VERSION } from "@privsep/privsep/protocol";
 * import assert from "node:assert/strict";
 *
 * const frame = encodeMessage([Kind.Hello, { v: PROTOCOL_VERSION, pid: Deno.pid }]);
 * assert.deepEqual(decodeMessage(frame.subarray(4)), {
 *   kind: Kind.Hello,
 *   hello: { v: 3, pid: Deno.pid },
 * });
 * ```
 */
export const PROTOCOL_VERSION = 3;

/**
 * Message kinds (the first element of every message array).
 *
 * @example
 * ```ts
 * import { decodeMessage, encodeMessage, FRAME_HEADER_BYTES, Kind } from "@privsep/privsep/protocol";
 * import assert from "node:assert/strict";
 *
 * const call = encodeMessage([Kind.Call, 1, "motd.ts#updateMotd", ["idle"]]);
 * assert.deepEqual(decodeMessage(call.subarray(FRAME_HEADER_BYTES)), {
 *   kind: Kind.Call,
 *   id: 1,
 *   entrypoint: "motd.ts#updateMotd",
 *   args: ["idle"],
 * });
 * ```
 */
export const Kind = {
  /** Both directions, first message: `[0, HelloInfo]`. */
  Hello: 0,
  /** Caller to daemon: `[1, id, entrypoint, args]`. */
  Call: 1,
  /** Daemon to caller: `[2, id, value]`. */
  Result: 2,
  /** Daemon to caller: `[3, id, RemoteErrorInfo]`. */
  Error: 3,
  /** Caller to daemon: `[4, id]`. */
  Cancel: 4,
  /** Daemon to caller: `[5, LogRecordInfo]`. */
  Log: 5,
  /** Either side, last message before closing: `[6, RemoteErrorInfo]`. */
  Fatal: 6,
  /**
   * Caller to daemon: `[7, id]`, asks for the daemon's counters; answered
   * by a result `[2, id, counters]`.
   */
  Status: 7,
} as const;

/**
 * What each side says about itself in its hello.
 *
 * @example
 * ```ts
 * import {
 *   decodeMessage,
 *   DEFAULT_MAX_FRAME_BYTES,
 *   encodeMessage,
 *   type HelloInfo,
 *   Kind,
 *   PROTOCOL_VERSION,
 * } from "@privsep/privsep/protocol";
 * import assert from "node:assert/strict";
 *
 * const hello: HelloInfo = {
 *   v: PROTOCOL_VERSION,
 *   pid: 4242,
 *   context: "file:///opt/app/privsep/mod.ts#sysAdmin",
 *   maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
 *   concurrency: 4,
 *   uid: 0,
 *   gid: 0,
 *   capabilities: [0, 12],
 * };
 * const decoded = decodeMessage(encodeMessage([Kind.Hello, hello]).subarray(4));
 * assert.deepEqual(decoded, { kind: Kind.Hello, hello });
 * ```
 */
export interface HelloInfo {
  /** Protocol version spoken. */
  v: number;
  /** Process id of the sender. */
  pid: number;
  /** The daemon's context, as `module#export` (daemon only). */
  context?: string;
  /** Largest frame the sender accepts. */
  maxFrameBytes?: number;
  /** Calls the daemon runs at once (daemon only). */
  concurrency?: number;
  /** Deno version of the sender. */
  deno?: string;
  /** The uid the daemon dropped to (daemon only). */
  uid?: number;
  /** The gid the daemon dropped to (daemon only). */
  gid?: number;
  /** The capabilities the daemon kept (daemon only). */
  capabilities?: number[];
  /** Whether the caller wants audit records (caller only; default true). */
  audit?: boolean;
}

/**
 * A log record forwarded from the daemon.
 *
 * @example
 * ```ts
 * import { decodeMessage, encodeMessage, Kind, type LogRecordInfo } from "@privsep/privsep/protocol";
 * import assert from "node:assert/strict";
 *
 * const record: LogRecordInfo = {
 *   category: ["privsep", "daemon"],
 *   level: "info",
 *   message: "called motd.ts#updateMotd",
 *   timestamp: Date.now(),
 *   properties: { entrypoint: "motd.ts#updateMotd" },
 * };
 * const decoded = decodeMessage(encodeMessage([Kind.Log, record]).subarray(4));
 * assert.deepEqual(decoded, { kind: Kind.Log, record });
 * ```
 */
export interface LogRecordInfo {
  /** The daemon-side category. */
  category: string[];
  /** LogTape level name. */
  level: string;
  /** Rendered message. */
  message: string;
  /** Milliseconds since the epoch. */
  timestamp: number;
  /** Structured properties (only those that encode as msgpack). */
  properties?: Record<string, unknown>;
}

/**
 * A decoded message, as {@linkcode decodeMessage} returns it; `kind`
 * tells which fields it has.
 *
 * @example
 * ```ts
 * import { decodeMessage, encodeMessage, Kind, type Message } from "@privsep/privsep/protocol";
 * import assert from "node:assert/strict";
 *
 * function describe(message: Message): string {
 *   switch (message.kind) {
 *     case Kind.Result:
 *       return `call ${message.id} returned ${JSON.stringify(message.value)}`;
 *     case Kind.Error:
 *       return `call ${message.id} threw ${message.error.name}`;
 *     default:
 *       return `message of kind ${message.kind}`;
 *   }
 * }
 * const body = encodeMessage([Kind.Result, 3, [1, 2]]).subarray(4);
 * assert.equal(describe(decodeMessage(body)), "call 3 returned [1,2]");
 * ```
 */
export type Message =
  | { kind: typeof Kind.Hello; hello: HelloInfo }
  | { kind: typeof Kind.Call; id: number; entrypoint: string; args: unknown[] }
  | { kind: typeof Kind.Result; id: number; value: unknown }
  | { kind: typeof Kind.Error; id: number; error: RemoteErrorInfo }
  | { kind: typeof Kind.Cancel; id: number }
  | { kind: typeof Kind.Status; id: number }
  | { kind: typeof Kind.Log; record: LogRecordInfo }
  | { kind: typeof Kind.Fatal; error: RemoteErrorInfo };

/**
 * Longest entrypoint name accepted on the wire.
 *
 * @example
 * ```ts
 * import { decodeMessage, encodeMessage, Kind, MAX_ENTRYPOINT_NAME } from "@privsep/privsep/protocol";
 * import { ProtocolError } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * const name = "x".repeat(MAX_ENTRYPOINT_NAME + 1);
 * const body = encodeMessage([Kind.Call, 1, name, []]).subarray(4);
 * assert.throws(() => decodeMessage(body), ProtocolError);
 * ```
 */
export const MAX_ENTRYPOINT_NAME = 1024;

/**
 * The entrypoint names of a caller's warm-up calls. Until it has received a
 * call of any other name, the daemon answers a call of one of these with the
 * call's first argument: nothing of the application runs, no audit record is
 * made, and the status does not count it. After that, they are not
 * entrypoints. privsep's caller makes such calls while a daemon starts, so
 * that the code of both ends is compiled for real calls before the first
 * one (docs/performance.md, "The warm-up"). No module path has their form.
 *
 * @example
 * ```ts
 * import { decodeMessage, encodeMessage, Kind, WARM_UP_NAMES } from "@privsep/privsep/protocol";
 * import assert from "node:assert/strict";
 *
 * const call = encodeMessage([Kind.Call, 1, WARM_UP_NAMES[0], [null]]);
 * assert.equal(decodeMessage(call.subarray(4)).kind, Kind.Call);
 * ```
 */
export const WARM_UP_NAMES: readonly string[] = Object.freeze([
  "#privsep-warm-up-1",
  "#privsep-warm-up-2",
]);

/**
 * Encodes a message into a complete frame (length prefix included). A body
 * above `maxFrameBytes` throws {@linkcode ProtocolError}; a value msgpack
 * cannot carry throws `TypeError` naming it, such as `args[1].cb`.
 *
 * @example
 * ```ts
 * import { encodeMessage, Kind } from "@privsep/privsep/protocol";
 * encodeMessage([Kind.Cancel, 7]);
 * ```
 */
export function encodeMessage(
  message: readonly unknown[],
  maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES,
): Uint8Array {
  return encodeFramed(message, maxFrameBytes, fieldsOf(message[0]));
}

function isId(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) &&
    value >= 0;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value) &&
    !(value instanceof Uint8Array);
}

function bad(what: string): never {
  throw new ProtocolError(`received a malformed ${what} message`);
}

/**
 * Validates a remote error envelope; unknown fields are dropped. Anything
 * that is not an object with a string `name` and `message` throws
 * {@linkcode ProtocolError}.
 *
 * @example
 * ```ts
 * import { toRemoteErrorInfo } from "@privsep/privsep/protocol";
 * import { ProtocolError } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(
 *   toRemoteErrorInfo({ name: "NotFound", message: "gone", code: "ENOENT", extra: 1 }),
 *   { name: "NotFound", message: "gone", code: "ENOENT" },
 * );
 * assert.throws(() => toRemoteErrorInfo("boom"), ProtocolError);
 * ```
 */
export function toRemoteErrorInfo(value: unknown): RemoteErrorInfo {
  if (!isPlainObject(value)) bad("error");
  const { name, message, code, data, stack } = value;
  if (typeof name !== "string" || typeof message !== "string") bad("error");
  const info: {
    name: string;
    message: string;
    code?: string;
    data?: unknown;
    stack?: string;
  } = { name: name.slice(0, 200), message };
  if (typeof code === "string") info.code = code;
  if (data !== undefined) info.data = data;
  if (typeof stack === "string") info.stack = stack;
  return info;
}

/**
 * Decodes and validates one frame body. Anything that is not exactly a
 * message of this protocol throws {@linkcode ProtocolError}.
 *
 * @example
 * ```ts
 * import { decodeMessage, encodeMessage, Kind } from "@privsep/privsep/protocol";
 * decodeMessage(encodeMessage([Kind.Cancel, 7]).subarray(4)); // { kind: 4, id: 7 }
 * ```
 */
export function decodeMessage(body: Uint8Array): Message {
  // A body that owns its buffer is fresh and nobody reuses it: binary
  // values may be views into it (one copy less of a large Uint8Array). A
  // small one is carved out of a buffer shared with other messages
  // (_slab.ts): its binary values are copied, so that none gives access to
  // the bytes of another message.
  const m = decodeValue(body, { aliasBinary: ownsBuffer(body) });
  if (!Array.isArray(m) || m.length < 2) bad("top-level");
  switch (m[0]) {
    case Kind.Call:
      if (
        m.length !== 4 || !isId(m[1]) || typeof m[2] !== "string" ||
        m[2].length > MAX_ENTRYPOINT_NAME || !Array.isArray(m[3])
      ) bad("call");
      return { kind: Kind.Call, id: m[1], entrypoint: m[2], args: m[3] };
    case Kind.Result:
      if (m.length !== 3 || !isId(m[1])) bad("result");
      return { kind: Kind.Result, id: m[1], value: m[2] };
    case Kind.Error:
      if (m.length !== 3 || !isId(m[1])) bad("error");
      return { kind: Kind.Error, id: m[1], error: toRemoteErrorInfo(m[2]) };
    case Kind.Cancel:
      if (m.length !== 2 || !isId(m[1])) bad("cancel");
      return { kind: Kind.Cancel, id: m[1] };
    case Kind.Status:
      if (m.length !== 2 || !isId(m[1])) bad("status");
      return { kind: Kind.Status, id: m[1] };
    case Kind.Hello: {
      const h = m[1];
      if (
        m.length !== 2 || !isPlainObject(h) || typeof h.v !== "number" ||
        !isId(h.pid)
      ) bad("hello");
      const hello: HelloInfo = { v: h.v, pid: h.pid };
      if (typeof h.context === "string") hello.context = h.context;
      if (isId(h.maxFrameBytes)) hello.maxFrameBytes = h.maxFrameBytes;
      if (isId(h.concurrency)) hello.concurrency = h.concurrency;
      if (typeof h.deno === "string") hello.deno = h.deno;
      if (isId(h.uid)) hello.uid = h.uid;
      if (isId(h.gid)) hello.gid = h.gid;
      if (typeof h.audit === "boolean") hello.audit = h.audit;
      if (Array.isArray(h.capabilities) && h.capabilities.every(isId)) {
        hello.capabilities = h.capabilities as number[];
      }
      return { kind: Kind.Hello, hello };
    }
    case Kind.Log: {
      const r = m[1];
      if (
        m.length !== 2 || !isPlainObject(r) || !Array.isArray(r.category) ||
        !r.category.every((c) => typeof c === "string") ||
        typeof r.level !== "string" || typeof r.message !== "string" ||
        typeof r.timestamp !== "number"
      ) bad("log");
      const record: LogRecordInfo = {
        category: r.category as string[],
        level: r.level,
        message: r.message,
        timestamp: r.timestamp,
      };
      if (isPlainObject(r.properties)) record.properties = r.properties;
      return { kind: Kind.Log, record };
    }
    case Kind.Fatal:
      if (m.length !== 2) bad("fatal");
      return { kind: Kind.Fatal, error: toRemoteErrorInfo(m[1]) };
    default:
      // Only a number is echoed: JSON.stringify throws on a bigint (an
      // int64 on the wire) and would copy a peer's huge string or array.
      throw new ProtocolError(
        `received a message of unknown kind ${
          typeof m[0] === "number" ? m[0] : typeof m[0]
        }`,
      );
  }
}

/** The prototypes whose `name` says only "some built-in error class". */
const BUILTIN_ERROR_PROTOTYPES: ReadonlySet<object> = new Set([
  Error.prototype,
  TypeError.prototype,
  RangeError.prototype,
  SyntaxError.prototype,
  ReferenceError.prototype,
  EvalError.prototype,
  URIError.prototype,
  AggregateError.prototype,
]);

/**
 * The name a thrown error is reported under: its `name` when the error or its
 * class set one, else its class's name (`class NotFoundError extends Error {}`
 * is reported as `"NotFoundError"`, not `"Error"`).
 */
function errorName(error: Error): string {
  const name = String(error.name);
  try {
    // Where does `name` come from? The first object on the chain owning it.
    let holder: object | null = error;
    while (holder !== null && !Object.hasOwn(holder, "name")) {
      holder = Object.getPrototypeOf(holder);
    }
    if (holder === null || !BUILTIN_ERROR_PROTOTYPES.has(holder)) return name;
    const ctor = (error as { constructor?: unknown }).constructor;
    if (typeof ctor === "function" && typeof ctor.name === "string") {
      if (ctor.name !== "") return ctor.name;
    }
  } catch { /* a proxy or a throwing getter: keep `name` */ }
  return name;
}

/**
 * Describes a thrown value as a remote error envelope: name, message, code,
 * plain `data`, and the stack only when `withStack` is set.
 *
 * The name is the error's `name` when the error or its class sets one, and
 * otherwise its class's name: `class NotFoundError extends Error {}` is
 * described as `"NotFoundError"`. The name is data; the caller never
 * constructs a class from it.
 *
 * @example
 * ```ts
 * import { describeError } from "@privsep/privsep/protocol";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(describeError(new TypeError("bad"), false), {
 *   name: "TypeError",
 *   message: "bad",
 * });
 * class NotFoundError extends Error {} // does not set `name`
 * assert.equal(describeError(new NotFoundError("gone"), false).name, "NotFoundError");
 * ```
 */
export function describeError(
  error: unknown,
  withStack: boolean,
): RemoteErrorInfo {
  if (error instanceof Error) {
    const info: {
      name: string;
      message: string;
      code?: string;
      data?: unknown;
      stack?: string;
    } = { name: errorName(error), message: String(error.message) };
    const { code, data } = error as Error & { code?: unknown; data?: unknown };
    if (typeof code === "string") info.code = code;
    if (data !== undefined) {
      try {
        encodeValue(data);
        info.data = data;
      } catch { /* data that does not encode is left out */ }
    }
    if (withStack && typeof error.stack === "string") info.stack = error.stack;
    return info;
  }
  return { name: "Error", message: `non-Error value thrown: ${typeof error}` };
}

/**
 * A daemon's counters, as a status message reports them (`PrivContext.status()` on the caller's side).
 *
 * @example
 * ```ts
 * import type { DaemonStatus, PrivContext } from "@privsep/privsep";
 *
 * // Starts the daemon if needed, so it is not run here.
 * async function reportStuck(ctx: PrivContext): Promise<void> {
 *   const status: DaemonStatus = await ctx.status();
 *   if (status.stuckNow > 0) {
 *     console.warn(`${status.stuckNow} stuck calls in daemon ${status.pid}`);
 *   }
 * }
 * ```
 */
export interface DaemonStatus {
  /** The daemon's pid. */
  pid: number;
  /** Calls it runs at once. */
  concurrency: number;
  /** Calls that may wait for a slot. */
  queueLimit: number;
  /** Calls running now. */
  running: number;
  /** Calls waiting for a slot. */
  queued: number;
  /** Calls finished since start. */
  completed: number;
  /** Calls cancelled since start (timeout or abort). */
  cancelled: number;
  /** Cancelled calls that ran past the grace period, since start. */
  stuck: number;
  /** Of those, how many still run. */
  stuckNow: number;
}
