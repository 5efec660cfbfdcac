// The entrypoints of a caller's warm-up calls (WARM_UP_NAMES in
// protocol/messages.ts), which answer with their first argument. Private:
// the daemon's Session serves them until the first call of any other name,
// without an audit record and without counting them (daemon/_session.ts);
// the caller makes them through its own call path (contexts/_warm_up.ts).

import type { EntrypointRecord } from "./_registry.ts";
import { WARM_UP_NAMES } from "../protocol/messages.ts";

// Two functions, not one: the call of an entrypoint's function in
// core/invoke.ts then has seen two targets, and V8's code for it is not
// thrown away ("wrong call target") at the first call of the application's.
// Records of the same shape as the application's (PrivContext#entrypoint),
// for the same reason ("wrong map").
const record = (
  key: string,
  fn: (value?: unknown) => unknown,
): EntrypointRecord => ({ key, fn, timeoutMs: undefined, options: undefined });
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
