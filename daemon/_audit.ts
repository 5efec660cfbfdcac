// The audit trail: one record per call the daemon answered or refused, sent
// to the caller on the category privsep.audit. Argument values only for
// entrypoints that ask for them (auditArgs).

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

/**
 * The audit record of one call: `key` (control characters replaced: a
 * refused name comes from the caller), when it started (`started` and `now`
 * from performance.now(), `wallNow` from Date.now()) and how long it took.
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
  // deno-lint-ignore no-control-regex
  key = key.replace(/[\x00-\x1f\x7f]/g, "?");
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
