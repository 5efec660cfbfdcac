// Copyright the privsep authors. Apache-2.0 license.
// "Did you mean …?" for mistyped names: the one edit distance that the
// capability parser (caps/parse.ts) and the config parser (core/config.ts)
// share. Below every other folder, so both can import it.

/**
 * The Levenshtein distance between `a` and `b`: how many single characters
 * must be inserted, deleted or replaced to turn one into the other.
 *
 * @example
 * ```ts
 * import { editDistance } from "./_suggest.ts"; // not exported by the package
 * import assert from "node:assert/strict";
 *
 * assert.equal(editDistance("CAP_KIL", "CAP_KILL"), 1);
 * assert.equal(editDistance("timeout", "timeout"), 0);
 * ```
 */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length]!;
}
