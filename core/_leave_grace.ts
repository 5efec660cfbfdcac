// How long a daemon whose channel ends (the caller's stop(), or a caller that
// closes it) lets its cancelled calls run on before it exits: their
// cancel_grace_ms, at most LEAVE_GRACE_MAX_MS, so that a context with a long
// grace still stops within seconds. The caller waits that long (and a little)
// before it signals the daemon. Private: shared by contexts/ and daemon/.

/** The longest a daemon lets cancelled calls run on after its channel ends (ms). */
export const LEAVE_GRACE_MAX_MS = 2000;

/** How long calls may run on after the channel ends, for `cancel_grace_ms`. */
export function leaveGraceMs(cancelGraceMs: number): number {
  return Math.min(cancelGraceMs, LEAVE_GRACE_MAX_MS);
}
