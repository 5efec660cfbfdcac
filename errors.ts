/**
 * The error classes that callers of privileged functions catch.
 *
 * Bad arguments throw the built-in `TypeError` or `RangeError`; the classes
 * here are for conditions a service handles: the daemon could not start or
 * drop privileges, the channel broke, a call timed out, or the privileged
 * function itself threw.
 *
 * @module
 */

/**
 * The daemon could not be started, or could not reduce itself to the
 * context's capabilities and user. The message carries what sudo or the
 * daemon printed and what to check.
 *
 * @example
 * ```ts
 * import { FailedToDropPrivileges } from "@privsep/privsep";
 * try {
 *   // await motd.updateMotd("hello");
 * } catch (error) {
 *   if (error instanceof FailedToDropPrivileges) console.error(error.stderr);
 * }
 * ```
 */
export class FailedToDropPrivileges extends Error {
  /** Always `"FailedToDropPrivileges"`. */
  override name = "FailedToDropPrivileges";
  /** The context that failed to start, as `module#export`. */
  readonly context: string;
  /** What sudo or the daemon wrote on stderr (trimmed, may be empty). */
  readonly stderr: string;
  /** The helper's exit code, when it exited. */
  readonly exitCode?: number;

  /** Creates the error; `message` should say what to check. */
  constructor(
    message: string,
    options: {
      context: string;
      stderr?: string;
      exitCode?: number;
      cause?: unknown;
    },
  ) {
    super(message, { cause: options.cause });
    this.context = options.context;
    this.stderr = options.stderr ?? "";
    this.exitCode = options.exitCode;
  }
}

/**
 * The channel to the daemon received something that is not the protocol: a
 * frame above the size limit, bytes that are not msgpack, a message of the
 * wrong shape or version. The channel is closed when this is raised.
 *
 * @example
 * ```ts
 * import { ProtocolError } from "@privsep/privsep";
 * const error = new ProtocolError("received an empty frame");
 * error.name; // "ProtocolError"
 * ```
 */
export class ProtocolError extends Error {
  /** Always `"ProtocolError"`. */
  override name = "ProtocolError";
}

/**
 * The daemon went away (it exited, was killed, or was stopped) while a call
 * was in flight. The next call starts a new daemon.
 *
 * @example
 * ```ts
 * import { DaemonExitedError } from "@privsep/privsep";
 * const error = new DaemonExitedError("the daemon exited", { context: "app#ctx" });
 * error.context; // "app#ctx"
 * ```
 */
export class DaemonExitedError extends Error {
  /** Always `"DaemonExitedError"`. */
  override name = "DaemonExitedError";
  /** The context whose daemon went away, as `module#export`. */
  readonly context: string;
  /** Creates the error. */
  constructor(message: string, options: { context: string; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.context = options.context;
  }
}

/**
 * A call did not complete in time. `elapsedMs` is measured on the caller.
 *
 * @example
 * ```ts
 * import { PrivsepTimeout } from "@privsep/privsep";
 * try {
 *   // await privileged.getLinkDevices("ns1");
 * } catch (error) {
 *   if (error instanceof PrivsepTimeout) console.warn(error.entrypoint, error.elapsedMs);
 * }
 * ```
 */
export class PrivsepTimeout extends Error {
  /** Always `"PrivsepTimeout"`. */
  override name = "PrivsepTimeout";
  /** The context, as `module#export`. */
  readonly context: string;
  /** The entrypoint, as `path#function` below the context's prefix. */
  readonly entrypoint: string;
  /** Milliseconds between the call and the timeout. */
  readonly elapsedMs: number;
  /** Creates the error. */
  constructor(
    message: string,
    options: { context: string; entrypoint: string; elapsedMs: number },
  ) {
    super(message);
    this.context = options.context;
    this.entrypoint = options.entrypoint;
    this.elapsedMs = options.elapsedMs;
  }
}

/**
 * The daemon already runs as many calls as its context's `concurrency` and
 * as many more wait as its `queue_limit` allows, or the calls running and
 * waiting hold as much memory in decoded arguments as the daemon gives them
 * (`max(64 MiB, 2 × maxFrameBytes)`, estimated): this call was refused at
 * once instead of waiting without end. The message says which.
 *
 * @example
 * ```ts
 * import { PrivsepQueueFull } from "@privsep/privsep";
 * const error = new PrivsepQueueFull("full", { context: "app#ctx", entrypoint: "motd.ts#updateMotd" });
 * error.entrypoint; // "motd.ts#updateMotd"
 * ```
 */
export class PrivsepQueueFull extends Error {
  /** Always `"PrivsepQueueFull"`. */
  override name = "PrivsepQueueFull";
  /** The context, as `module#export`. */
  readonly context: string;
  /** The entrypoint that was refused. */
  readonly entrypoint: string;
  /** Creates the error. */
  constructor(
    message: string,
    options: { context: string; entrypoint: string },
  ) {
    super(message);
    this.context = options.context;
    this.entrypoint = options.entrypoint;
  }
}

/** The code of the error envelope a daemon sends for a full queue. */
export const QUEUE_FULL_CODE = "PRIVSEP_QUEUE_FULL";

/**
 * What the daemon reported about an error thrown by a privileged function:
 * the `cause` of a {@linkcode RemoteError}, and the envelope of the protocol's
 * error and fatal messages.
 *
 * @example
 * ```ts
 * import { RemoteError, type RemoteErrorInfo } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * const info: RemoteErrorInfo = {
 *   name: "NotFound",
 *   message: "No such file or directory (os error 2)",
 *   code: "ENOENT",
 * };
 * const error = new RemoteError(info, "motd.ts#updateMotd");
 * assert.equal(error.remoteName, "NotFound");
 * assert.equal(error.code, "ENOENT");
 * assert.equal(error.cause, info);
 * ```
 */
export interface RemoteErrorInfo {
  /** The remote error's `name` (for example `"NotFound"` or `"TypeError"`). */
  readonly name: string;
  /** The remote error's message. */
  readonly message: string;
  /** The remote error's `code` (for example `"ENOENT"`), when it had one. */
  readonly code?: string;
  /** Plain data the remote error carried in a `data` property. */
  readonly data?: unknown;
  /** The remote stack trace, when the daemon sends them. */
  readonly stack?: string;
}

/**
 * A privileged function threw in the daemon (or, with `setClientMode(false)`,
 * in-process). The remote error is described by data only: no class is ever
 * looked up or constructed by a name taken off the wire. `remoteName` and
 * `code` are what callers branch on.
 *
 * The error's parts each have their own field:
 *
 * - `message` is the remote error's message, unchanged;
 * - `remoteName` is the remote error's `name`, or its class's name when the
 *   class did not set one (`class NotFoundError extends Error {}` arrives as
 *   `"NotFoundError"`);
 * - `entrypoint` is where it was thrown, as `path#function` below the
 *   context's prefix;
 * - `code` and `data` are the remote error's `code` (a string such as
 *   `"ENOENT"`) and plain `data`, when it had them;
 * - `cause` is the whole {@linkcode RemoteErrorInfo}, with the remote stack
 *   when the context's `log_daemon_traceback` is on.
 *
 * Names the library itself sends: `"NotAnEntrypoint"` (the name called is
 * not an entrypoint of the daemon's context; nothing ran),
 * `"InvalidArgument"` (an entrypoint's schema refused an argument; nothing
 * ran) and `"ReplyTooLarge"` (the error did not fit in a frame even with its
 * message cut). Deno's own
 * errors keep their names (`"NotFound"`, `"PermissionDenied"`, `"NotCapable"`).
 *
 * @example Branch on the remote name
 * ```ts
 * import { RemoteError } from "@privsep/privsep";
 * try {
 *   // await motd.updateMotd("hello");
 * } catch (error) {
 *   if (error instanceof RemoteError && error.remoteName === "NotFound") {
 *     // the file is not there
 *   }
 * }
 * ```
 *
 * @example The parts of a remote error
 * ```ts
 * import { RemoteError } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * const error = new RemoteError(
 *   { name: "NotFoundError", message: "no user bob" },
 *   "users.ts#lookup",
 * );
 * assert.equal(error.message, "no user bob");
 * assert.equal(error.remoteName, "NotFoundError");
 * assert.equal(error.entrypoint, "users.ts#lookup");
 * assert.equal(
 *   `${error.remoteName} in ${error.entrypoint}: ${error.message}`,
 *   "NotFoundError in users.ts#lookup: no user bob",
 * );
 * ```
 */
export class RemoteError extends Error {
  /** Always `"RemoteError"`. */
  override name = "RemoteError";
  /**
   * The remote error's name: its `name`, or its class's name when the class
   * did not set one.
   */
  readonly remoteName: string;
  /** The remote error's code, if any. */
  readonly code?: string;
  /** The remote error's plain data, if any. */
  readonly data?: unknown;
  /** The entrypoint that threw, as `path#function`. */
  readonly entrypoint: string;
  /** The remote name, message and stack. */
  declare readonly cause: RemoteErrorInfo;

  /** Creates the error from the daemon's report; `message` is the remote message. */
  constructor(info: RemoteErrorInfo, entrypoint: string) {
    super(info.message, { cause: info });
    this.remoteName = info.name;
    this.code = info.code;
    this.data = info.data;
    this.entrypoint = entrypoint;
  }
}
