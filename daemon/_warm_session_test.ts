import assert from "node:assert/strict";
import { WARM_CALLS, WARM_LARGE_CALLS, warmSession } from "./_warm_session.ts";

const shape = {
  concurrency: 1,
  queueLimit: 0,
  graceMs: 2000,
  limits: { maxFrameBytes: 16 << 20, withStack: false },
};

Deno.test("warmSession() answers every rehearsed call, small and large", () => {
  assert.equal(warmSession(shape, 50), 50 + WARM_LARGE_CALLS);
  assert.equal(
    warmSession({ ...shape, concurrency: 4 }, 3),
    3 + WARM_LARGE_CALLS,
  );
});

Deno.test("warmSession() rehearses WARM_CALLS small calls by default", () => {
  assert.equal(warmSession(shape), WARM_CALLS + WARM_LARGE_CALLS);
});

Deno.test("warmSession() keeps its large calls within a small maxFrameBytes", () => {
  for (const maxFrameBytes of [100_000, 1024, 300]) {
    const limits = { maxFrameBytes, withStack: false };
    assert.equal(
      warmSession({ ...shape, limits }, 5),
      5 + WARM_LARGE_CALLS,
      `maxFrameBytes ${maxFrameBytes}`,
    );
  }
  const tiny = { ...shape, limits: { maxFrameBytes: 64, withStack: false } };
  assert.equal(warmSession(tiny, 5), 5);
});
