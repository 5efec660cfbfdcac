// Warms the daemon's serving code before the first real call: a session of
// its own answers calls made in memory to a function of its own, and writes
// its replies nowhere. Private: serve.ts calls it after the hello, while the
// caller reads the hello and checks this process.
//
// Why: a fresh daemon ran its first couple of thousand calls in V8's
// interpreter and baseline code, compiling and collecting as it went. With
// a warm caller and a fresh daemon, the daemon spent over 100 µs on 35-140
// of 2000 sequential calls, a warm one on a handful, and the caller's p99
// was about twice a warm daemon's (bench/HISTORY.md, 2026-12-04 night).
// Type feedback and compiled code belong to the functions, not to a
// session, so the real session starts with them. No entrypoint of the
// application runs, no audit record is made, nothing is read or written.

import { Audit } from "./_audit.ts";
import { Outbox } from "./_outbox.ts";
import { Session, type SessionOptions } from "./_session.ts";

/**
 * The rehearsal's function, under a key no module can have (the caller's
 * key is `path#function`). The daemon's own session does not have it.
 */
export const WARM_KEY = "#privsep-warm-up";

/** Calls rehearsed: about as many as a fresh daemon needed to get warm. */
export const WARM_CALLS = 2000;

/**
 * Runs `calls` in-memory calls through a session shaped like the daemon's
 * (the same concurrency, queue and reply limits); returns how many it
 * answered. Takes 30-50 ms.
 */
export function warmSession(
  shape: Pick<
    SessionOptions,
    "concurrency" | "queueLimit" | "graceMs" | "limits"
  >,
  calls: number = WARM_CALLS,
): number {
  const out = new Outbox({
    writeSync: (data) => data.length,
    write: (data) => Promise.resolve(data.length),
  });
  const audit = new Audit({
    context: WARM_KEY,
    callerUid: null,
    callerPid: null,
    daemonPid: Deno.pid,
  }, (frame) => out.send(frame));
  audit.on = false;
  const session = new Session({
    contextName: WARM_KEY,
    entrypoints: new Map([[WARM_KEY, {
      key: WARM_KEY,
      fn: (value: unknown) => value,
      timeoutMs: undefined,
      options: undefined,
    }]]),
    ...shape,
    out,
    log: () => {},
    audit,
    timers: new Set(),
    channel: { read: () => null },
  });
  session.rehearse(WARM_KEY, [null], calls);
  return session.status().completed;
}
