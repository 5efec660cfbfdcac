// Warms the daemon's serving code before the first real call: a session of
// its own answers calls made in memory to a function of its own, and writes
// its replies nowhere. Private: serve.ts calls it after the hello, while the
// caller reads the hello and checks this process.
//
// Why (bench/HISTORY.md, "2026-12-04 last"; docs/performance.md, "The
// daemon's warm-up"):
// - A fresh daemon ran its first couple of thousand calls in V8's
//   interpreter and baseline code, compiling and collecting as it went.
//   With a warm caller and a fresh daemon, the daemon spent over 100 µs on
//   35-140 of 2000 sequential calls (17-33 after the rehearsal), and the
//   caller's p99 was 167-387 µs (139-284 after). Type feedback and compiled
//   code belong to the functions, not to a session, so the real session
//   starts with them.
// - Small calls alone made the first large calls slower: the session's code
//   was then optimized without the large path, and each 1 MiB echo took
//   230-430 fresh pages in the daemon (140-200 without any rehearsal), a page
//   fault each. After three rehearsed 1 MiB calls a real one takes 5-10: the
//   daemon's malloc keeps bodies up to 4 MiB in its heap and up to 8 MiB free
//   at its top (MALLOC_ENV in start.ts), and the rehearsal's bodies leave
//   that room in place before the application's first large call.
// No entrypoint of the application runs, no audit record is made, nothing is
// read or written, and the rehearsal stops early when it runs long (a
// starved CPU): the first real call waits for it in the pipe.

import { Audit } from "./_audit.ts";
import { type FrameWriter, Outbox } from "./_outbox.ts";
import { PARTS_MIN_BYTES } from "../protocol/_parts.ts";
import { Session, type SessionOptions } from "./_session.ts";

/**
 * The rehearsal's function, under a key no module can have (the caller's
 * key is `path#function`, the function's name an identifier). The daemon's
 * own session does not have it.
 */
export const WARM_KEY = "#privsep-warm-up";

/** Small calls rehearsed: about as many as a fresh daemon needed to get warm. */
export const WARM_CALLS = 2000;

/**
 * The sizes of the large arguments rehearsed after them: three of 1 MiB.
 * One of 1 MiB and two of 64 KiB (the smallest that takes the large path)
 * left the first real 1 MiB calls with ~156 page faults each, against 5-10.
 */
export const WARM_LARGE_BYTES: readonly number[] = [1 << 20, 1 << 20, 1 << 20];

/** The rehearsal stops once it has run this long (ms): it takes 30-60. */
export const WARM_BUDGET_MS = 150;

/** Room in a frame for the call around the large argument. */
const ENVELOPE_BYTES = 256;

/** Where the rehearsal's replies go: nowhere. */
const NOWHERE: FrameWriter = {
  writeSync: (data) => data.length,
  write: (data) => Promise.resolve(data.length),
};

/**
 * Runs in-memory calls through a session shaped like the daemon's (the same
 * concurrency, queue and reply limits): `calls` small ones, then one of each
 * size of {@linkcode WARM_LARGE_BYTES}, cut to what the frame limit lets
 * through and left out when that is too small for the large path, until
 * `budgetMs` ({@linkcode WARM_BUDGET_MS}) have passed. Replies go to `out`
 * (tests read them; the daemon's go nowhere). Returns how many calls were answered.
 * Throws when a call is left running: the rehearsal's function is
 * synchronous and every call has a slot at once, so one that is not
 * answered at once means the session's code changed under it.
 */
export function warmSession(
  shape: Pick<
    SessionOptions,
    "concurrency" | "queueLimit" | "graceMs" | "limits"
  >,
  calls: number = WARM_CALLS,
  out: FrameWriter = NOWHERE,
  budgetMs: number = WARM_BUDGET_MS,
): number {
  const outbox = new Outbox(out);
  const audit = new Audit({
    context: WARM_KEY,
    callerUid: null,
    callerPid: null,
    daemonPid: Deno.pid,
  }, (frame) => outbox.send(frame));
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
    out: outbox,
    log: () => {},
    audit,
    timers: new Set(),
    channel: { read: () => null },
  });
  const room = shape.limits.maxFrameBytes - ENVELOPE_BYTES;
  return session.rehearse(
    WARM_KEY,
    [null],
    calls,
    WARM_LARGE_BYTES.map((n) => Math.min(n, room))
      .filter((n) => n >= PARTS_MIN_BYTES).map((n) => new Uint8Array(n)),
    performance.now() + budgetMs,
  );
}
