import assert from "node:assert/strict";
import { WARM_CALLS, WARM_LARGE_BYTES, warmSession } from "./_warm_session.ts";

const shape = {
  concurrency: 1,
  queueLimit: 0,
  graceMs: 2000,
  limits: { maxFrameBytes: 16 << 20, withStack: false },
};
const LARGE = WARM_LARGE_BYTES.length;

Deno.test("warmSession() answers every rehearsed call, small and large", () => {
  assert.equal(warmSession(shape, 50), 50 + LARGE);
  assert.equal(warmSession({ ...shape, concurrency: 4 }, 3), 3 + LARGE);
});

Deno.test("warmSession() rehearses WARM_CALLS small calls by default", () => {
  assert.equal(warmSession(shape), WARM_CALLS + LARGE);
});

Deno.test("warmSession() keeps its large calls within maxFrameBytes, or leaves them out", () => {
  const limits = (maxFrameBytes: number) => ({
    ...shape,
    limits: { maxFrameBytes, withStack: false },
  });
  // Cut to fit.
  assert.equal(warmSession(limits(100_000), 5), 5 + LARGE);
  // Too small for the large path: small calls only.
  for (const maxFrameBytes of [65_000, 1024, 64]) {
    assert.equal(warmSession(limits(maxFrameBytes), 5), 5, `${maxFrameBytes}`);
  }
});
