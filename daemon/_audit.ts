// The audit trail: one record per call the daemon answered or refused, sent
// to the caller on the category privsep.audit. Argument values only for
// entrypoints that ask for them (auditArgs).

import { safeText } from "../core/_safe_text.ts";
import {
  encodeMessage,
  Kind,
  type LogRecordInfo,
} from "../protocol/messages.ts";

/** How a call ended, as audited. */
export type AuditOutcome = "ok" | "error" | "cancelled" | "refused";

/** Who called and who answered: the same in every record of a daemon. */
export interface AuditIdentity {
  /** The daemon's context, `module#export`. */
  context: string;
  /** The caller's uid, when known. */
  callerUid: number | null;
  /** The caller's pid, when known. */
  callerPid: number | null;
  /** Why `callerPid` is null although the caller is known (through sudo). */
  callerPidUnknown?: string;
  /** The daemon's pid. */
  daemonPid: number;
}

/** The longest entrypoint name a record carries, in UTF-16 code units. */
export const MAX_AUDITED_NAME = 200;

/**
 * `name` as a log record may carry it: unsafe characters replaced by `?`
 * (`safeText()`, core/_safe_text.ts), cut to {@linkcode MAX_AUDITED_NAME} code
 * units, not inside a surrogate pair.
 */
function safeName(name: string): string {
  if (name.length > MAX_AUDITED_NAME) {
    const cut = name.charCodeAt(MAX_AUDITED_NAME - 1);
    // The high half of a pair whose low half is cut off goes too.
    name = name.slice(
      0,
      cut >= 0xd800 && cut <= 0xdbff ? MAX_AUDITED_NAME - 1 : MAX_AUDITED_NAME,
    );
  }
  return safeText(name);
}

/**
 * The audit record of one call: `key` (a refused name comes from the caller:
 * controls, line separators and bidi controls replaced by `?`, cut to
 * {@linkcode MAX_AUDITED_NAME} code units), when it started (`started` and
 * `now` from performance.now(), `wallNow` from Date.now()) and how long it
 * took.
 */
export function auditRecord(
  identity: AuditIdentity,
  key: string,
  started: number,
  outcome: AuditOutcome,
  errorName: string | undefined,
  args: unknown[] | undefined,
  now: number = performance.now(),
  wallNow: number = Date.now(),
): LogRecordInfo {
  const durationMs = Math.round((now - started) * 1000) / 1000;
  key = safeName(key);
  const properties: Record<string, unknown> = {
    context: identity.context,
    entrypoint: key,
    callerUid: identity.callerUid,
    callerPid: identity.callerPid,
    ...(identity.callerPidUnknown
      ? { callerPidUnknown: identity.callerPidUnknown }
      : {}),
    daemonPid: identity.daemonPid,
    start: new Date(wallNow - (now - started)).toISOString(),
    durationMs,
    outcome,
  };
  if (errorName !== undefined) properties.errorName = errorName;
  if (args !== undefined) properties.args = args;
  return {
    category: ["privsep", "audit"],
    level: outcome === "ok" ? "info" : "warning",
    message: `${key} ${outcome} in ${durationMs} ms`,
    timestamp: wallNow,
    properties,
  };
}

/** A frame of a V8 stack trace, as V8 writes it. */
const FRAME = /^ {4}at \S/;

/**
 * The daemon's log message for a call that failed, under
 * `log_daemon_traceback`: the entrypoint, the error's name and the frames of
 * its stack, never its message (which often quotes an argument), nor the
 * messages of its `cause`, nor a thrown value that is not an Error. The
 * stack's first lines, V8's `name: message` header, are left out; when the
 * stack does not start with the error's header (its message changed after
 * the stack was made, or it was replaced), its frames cannot be told from a
 * message that looks like them, and none is given.
 *
 * @example
 * ```ts ignore
 * try {
 *   throw new RangeError("out of range: hunter2");
 * } catch (error) {
 *   tracebackMessage("ops.ts#set", error);
 *   // "ops.ts#set failed: RangeError\n    at file:///app/ops.ts:2:9"
 * }
 * ```
 */
export function tracebackMessage(key: string, error: unknown): string {
  const head = `${key} failed: `;
  if (!(error instanceof Error)) {
    return `${head}a value that is not an Error (${
      error === null ? "null" : typeof error
    }), without a stack`;
  }
  let name: string;
  let frames: string[] | undefined;
  try {
    name = safeName(String(error.name));
    const stack: unknown = error.stack;
    if (typeof stack !== "string") return `${head}${name}, without a stack`;
    frames = stackFrames(stack, String(error.name), String(error.message));
  } catch {
    // A getter that throws, a name or message that does not convert.
    return `${head}an Error that could not be read`;
  }
  if (frames === undefined) {
    return `${head}${name} (its stack no longer starts with its message: frames left out)`;
  }
  return [`${head}${name}`, ...frames].join("\n");
}

/**
 * The frames of `stack`, after its header (`name: message`, as
 * Error.prototype.toString() writes it); undefined when it does not start
 * with that header.
 */
function stackFrames(
  stack: string,
  name: string,
  message: string,
): string[] | undefined {
  const header = name === ""
    ? message
    : message === ""
    ? name
    : `${name}: ${message}`;
  if (!stack.startsWith(header)) return undefined;
  return stack.slice(header.length).split("\n").filter((line) =>
    FRAME.test(line)
  );
}

/** Sends audit records, while the caller listens to them. */
export class Audit {
  /** The caller says in its hello whether anyone listens to audit records. */
  on = true;
  constructor(
    readonly identity: AuditIdentity,
    readonly send: (frame: Uint8Array) => void,
  ) {}

  /** Audits one call (see {@linkcode auditRecord}). */
  record(
    key: string,
    started: number,
    outcome: AuditOutcome,
    errorName?: string,
    args?: unknown[],
  ): void {
    if (!this.on) return;
    const record = auditRecord(
      this.identity,
      key,
      started,
      outcome,
      errorName,
      args,
    );
    let frame: Uint8Array;
    try {
      frame = encodeMessage([Kind.Log, record]);
    } catch {
      // Arguments that do not encode (auditArgs, and the function put
      // something into them): the record goes without them.
      delete record.properties!.args;
      record.properties!.argsOmitted = "not encodable";
      frame = encodeMessage([Kind.Log, record]);
    }
    this.send(frame);
  }
}
