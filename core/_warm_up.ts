// The entrypoints of a caller's warm-up calls (WARM_UP_NAMES in
// protocol/messages.ts), which answer with their first argument. Private:
// the daemon's Session serves them until the first call of any other name,
// without an audit record and without counting them (daemon/_session.ts);
// the caller makes them through its own call path (contexts/_warm_up.ts).

import type { EntrypointRecord } from "./_registry.ts";
import { WARM_UP_NAMES } from "../protocol/messages.ts";

/**
 * The caller's timeout of each warm-up call (ms; the daemon has none): its
 * own, not the context's (a context's short timeout is for its calls; the
 * first warm-up call waits for the daemon's own rehearsal), and a timeout all
 * the same, so that a daemon that stops answering fails its start instead of
 * hanging it.
 */
export const WARM_UP_TIMEOUT_MS = 10_000;

// Two functions, not one: the call of an entrypoint's function in
// core/invoke.ts then has seen two targets, and V8's code for it is not
// thrown away ("wrong call target") at the first call of the application's.
// Records of the same shape as the application's (PrivContext#entrypoint),
// for the same reason ("wrong map").
const record = (
  key: string,
  fn: (value?: unknown) => unknown,
): EntrypointRecord => ({
  key,
  fn,
  timeoutMs: WARM_UP_TIMEOUT_MS,
  options: undefined,
});
const first = record(WARM_UP_NAMES[0], function warmUpFirst(value) {
  return value;
});
const second = record(WARM_UP_NAMES[1], function warmUpSecond(value) {
  return value;
});

/** The warm-up entrypoints, by name. */
export const WARM_UP: ReadonlyMap<string, EntrypointRecord> = new Map([
  [first.key, first],
  [second.key, second],
]);

/** Whether `ep` is one of the warm-up entrypoints. */
export function isWarmUp(ep: EntrypointRecord): boolean {
  return ep === first || ep === second;
}
