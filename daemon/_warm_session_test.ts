import assert from "node:assert/strict";
import { WARM_CALLS, warmSession } from "./_warm_session.ts";

const shape = {
  concurrency: 1,
  queueLimit: 0,
  graceMs: 2000,
  limits: { maxFrameBytes: 64, withStack: false },
};

Deno.test("warmSession() answers every rehearsed call", () => {
  assert.equal(warmSession(shape, 50), 50);
  assert.equal(warmSession({ ...shape, concurrency: 4 }, 3), 3);
});

Deno.test("warmSession() rehearses WARM_CALLS calls by default", () => {
  assert.equal(warmSession(shape), WARM_CALLS);
});
