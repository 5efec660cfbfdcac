// Warms the daemon's serving code before the first real call: a session of
// its own answers calls made in memory to a function of its own, and writes
// its replies nowhere. Private: serve.ts calls it after the hello, while the
// caller reads the hello and checks this process.
//
// Why (bench/HISTORY.md, 2026-12-04 night):
// - A fresh daemon ran its first couple of thousand calls in V8's
//   interpreter and baseline code, compiling and collecting as it went.
//   With a warm caller and a fresh daemon, the daemon spent over 100 µs on
//   35-140 of 2000 sequential calls, a warm one on a handful, and the
//   caller's p99 was about twice a warm daemon's. Type feedback and
//   compiled code belong to the functions, not to a session, so the real
//   session starts with them.
// - Small calls alone made the first large calls slower: their code was
//   now optimized without the large path, and each 1 MiB call took 300
//   fresh pages (a page fault each, ~12 µs on a VM) instead of 100. A few
//   large calls at the end fix both: after them a 1 MiB call takes under
//   ten. glibc's malloc serves a block above its mmap threshold with fresh
//   pages and raises the threshold to the size of such a block once one
//   is freed (mallopt(3)); the rehearsal's large bodies are those blocks.
// No entrypoint of the application runs, no audit record is made, nothing
// is read or written.

import { Audit } from "./_audit.ts";
import { Outbox } from "./_outbox.ts";
import { PARTS_MIN_BYTES } from "../protocol/_parts.ts";
import { Session, type SessionOptions } from "./_session.ts";

/**
 * The rehearsal's function, under a key no module can have (the caller's
 * key is `path#function`). The daemon's own session does not have it.
 */
export const WARM_KEY = "#privsep-warm-up";

/** Small calls rehearsed: about as many as a fresh daemon needed to get warm. */
export const WARM_CALLS = 2000;

/**
 * The sizes of the large arguments rehearsed after them: three of 1 MiB.
 * One of 1 MiB and two of 64 KiB (the smallest that takes the large path)
 * left the first real 1 MiB calls with ~156 page faults each, against 6-9.
 */
export const WARM_LARGE_BYTES: readonly number[] = [1 << 20, 1 << 20, 1 << 20];

/** Room in a frame for the call around the large argument. */
const ENVELOPE_BYTES = 256;

/**
 * Runs in-memory calls through a session shaped like the daemon's (the same
 * concurrency, queue and reply limits): `calls` small ones, then one of each
 * size of {@linkcode WARM_LARGE_BYTES}, cut to what the frame limit lets
 * through and left out when that is too small for the large path. Returns
 * how many calls it answered. Takes 30-60 ms.
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
  const room = shape.limits.maxFrameBytes - ENVELOPE_BYTES;
  session.rehearse(
    WARM_KEY,
    [null],
    calls,
    WARM_LARGE_BYTES.map((n) => Math.min(n, room))
      .filter((n) => n >= PARTS_MIN_BYTES).map((n) => new Uint8Array(n)),
  );
  return session.status().completed;
}
