// The caller's warm-up of a new daemon: calls of the warm-up names
// (WARM_UP_NAMES in protocol/messages.ts) through the real channel, after the
// hello and before the application's first call may use the daemon. Private:
// PrivContext's start of a daemon (#spawn) runs it, through wrappers of the
// warm-up's entrypoints made as the application's are.
//
// Why (bench/HISTORY.md, 2026-12-05 "warm-up through the channel"): V8
// compiles a process's code as it runs, and throws compiled code away when it
// meets a path it was not compiled for. A fresh pair compiled ~35 functions
// of the caller and ~20 of the daemon during its first couple of thousand
// calls, each compilation a slow call; the daemon's own rehearsal in memory
// (daemon/_warm_session.ts) had compiled its code for a writer and a read
// path that are not the channel's, and the first real calls threw it away.
// Calls through the channel take the real paths on both ends, small and
// large: calls made together (many calls for little time), with a large
// argument after the first few rounds (its uncopied parts, and the first
// large reply's memory), then one at a time (the idle path a sequential
// caller takes).

import { PARTS_MIN_BYTES } from "../protocol/_parts.ts";
import { WARM_UP_NAMES } from "../protocol/messages.ts";

/** What the warm-up does. */
export interface WarmUpPlan {
  /** Rounds of calls made together. */
  rounds: number;
  /** Calls in flight in each round (fewer when the daemon queues fewer). */
  together: number;
  /** Calls made one after the other, after the rounds. */
  sequential: number;
  /** The sizes of the large arguments, one call each. */
  largeBytes: readonly number[];
  /** The rounds made before the large calls. */
  largeAfterRounds: number;
  /** The warm-up stops once it has run this long (ms). */
  budgetMs: number;
}

/**
 * The warm-up of every daemon: 2401 calls, about 0.1 s of its start on an
 * idle 2-vCPU machine (docs/performance.md, "The warm-up").
 */
export const WARM_UP_PLAN: Readonly<WarmUpPlan> = {
  rounds: 100,
  together: 16,
  sequential: 800,
  largeBytes: [1 << 20],
  largeAfterRounds: 4,
  budgetMs: 250,
};

/**
 * What every other small warm-up call carries (and gets back): values of the
 * kinds an entrypoint's arguments and results most often hold, so that the
 * codec's functions for them (a path's 8-bit string length, a uid's 16-bit
 * and a larger id's 32-bit integer, small maps and arrays, `undefined`) run
 * as often as the call path and are compiled during the warm-up, not at the
 * hundredth call of the application that first sends one (bench/HISTORY.md,
 * 2026-12-05 last). The rest carry `null`, as a call without arguments does.
 */
export const WARM_UP_ARGUMENT: readonly unknown[] = Object.freeze([
  "/var/lib/privsep/warm-up/a-typical-path",
  65_534,
  100_000,
  0,
  -1,
  1.5,
  true,
  "eth0",
  Object.freeze({ name: "value", n: 1 }),
  Object.freeze([1, "two"]),
  // What a function that returns nothing answers (a chown, a link change):
  // the codec's fixext path, which was the first such call's (bench/HISTORY.md,
  // 2026-12-05 "warm-up through the wrapper").
  undefined,
]);
// Frozen: the same arrays go to every call.
const NULL_ARGS = Object.freeze([null]) as unknown[];
const TYPICAL_ARGS = Object.freeze([WARM_UP_ARGUMENT]) as unknown[];

/** Room in a frame for the call around a large argument. */
const ENVELOPE_BYTES = 256;

/**
 * Runs `plan` through `call` (a call of a warm-up name with
 * arguments): at most `maxInFlight` calls at once, large arguments cut to
 * `maxFrameBytes` and left out when that is too small for the large path.
 * Stops early once `plan.budgetMs` have passed (a starved CPU). Returns how
 * many calls were answered; a call that fails rejects (the daemon is not
 * one that can serve).
 */
export async function warmUp(
  call: (name: string, args: unknown[]) => Promise<unknown>,
  limits: { maxInFlight: number; maxFrameBytes: number },
  plan: Readonly<WarmUpPlan> = WARM_UP_PLAN,
  now: () => number = () => performance.now(),
): Promise<number> {
  const deadline = now() + plan.budgetMs;
  const [a, b] = WARM_UP_NAMES;
  const together = Math.max(1, Math.min(plan.together, limits.maxInFlight));
  let answered = 0;
  const batch: Promise<unknown>[] = [];
  const room = limits.maxFrameBytes - ENVELOPE_BYTES;
  for (let round = 0; round < plan.rounds; round++) {
    if (round === plan.largeAfterRounds) {
      // Early, but not first: V8 gives a function its feedback only after
      // its first few calls, and what a large call takes before that is not
      // recorded (the first large call of the application then threw away
      // code compiled without it). Early: the small calls after it are
      // compiled with the large path's feedback, not thrown away by it.
      for (const bytes of plan.largeBytes) {
        const n = Math.min(bytes, room);
        if (n < PARTS_MIN_BYTES) break;
        await call(a, [new Uint8Array(n)]);
        answered++;
      }
    }
    if (now() > deadline) return answered;
    for (let i = 0; i < together; i++) {
      batch.push(i & 1 ? call(b, TYPICAL_ARGS) : call(a, NULL_ARGS));
    }
    await Promise.all(batch);
    answered += batch.length;
    batch.length = 0;
  }
  for (let i = 0; i < plan.sequential; i++) {
    if (i % 50 === 0 && now() > deadline) return answered;
    await (i & 1 ? call(b, TYPICAL_ARGS) : call(a, NULL_ARGS));
    answered++;
  }
  return answered;
}
