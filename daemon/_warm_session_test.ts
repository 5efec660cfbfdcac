import assert from "node:assert/strict";
import { FrameDecoder } from "../protocol/frame.ts";
import { decodeMessage, Kind } from "../protocol/messages.ts";
import type { FrameWriter } from "./_outbox.ts";
import { WARM_CALLS, WARM_LARGE_BYTES, warmSession } from "./_warm_session.ts";

const shape = {
  concurrency: 1,
  queueLimit: 1,
  graceMs: 2000,
  limits: { maxFrameBytes: 16 << 20, withStack: false },
};
const LARGE = WARM_LARGE_BYTES.length;

/** A writer that decodes what the rehearsal sends: the kinds, in order. */
function reader(): { out: FrameWriter; kinds: number[]; sizes: number[] } {
  const decoder = new FrameDecoder(32 << 20);
  const kinds: number[] = [];
  const sizes: number[] = [];
  const take = (data: Uint8Array) => {
    for (const body of decoder.push(data)) {
      const m = decodeMessage(body);
      kinds.push(m.kind);
      if (m.kind === Kind.Result) {
        sizes.push(m.value instanceof Uint8Array ? m.value.length : 0);
      }
    }
    return data.length;
  };
  return {
    out: { writeSync: take, write: (data) => Promise.resolve(take(data)) },
    kinds,
    sizes,
  };
}

Deno.test("warmSession() answers every rehearsed call with a result, small and large", () => {
  const r = reader();
  assert.equal(warmSession(shape, 50, r.out, Infinity), 50 + LARGE);
  assert.deepEqual(r.kinds, Array(50 + LARGE).fill(Kind.Result));
  assert.deepEqual(r.sizes, [...Array(50).fill(0), ...WARM_LARGE_BYTES]);
  const many = reader();
  assert.equal(
    warmSession({ ...shape, concurrency: 4 }, 3, many.out, Infinity),
    3 + LARGE,
  );
  assert.deepEqual(many.kinds, Array(3 + LARGE).fill(Kind.Result));
});

Deno.test("warmSession() rehearses WARM_CALLS small calls by default", () => {
  const r = reader();
  assert.equal(
    warmSession(shape, undefined, r.out, Infinity),
    WARM_CALLS + LARGE,
  );
  assert.ok(r.kinds.every((kind) => kind === Kind.Result));
});

Deno.test("warmSession() keeps its large calls within maxFrameBytes, or leaves them out", () => {
  const limits = (maxFrameBytes: number) => ({
    ...shape,
    limits: { maxFrameBytes, withStack: false },
  });
  // Cut to fit.
  const cut = reader();
  assert.equal(warmSession(limits(100_000), 5, cut.out, Infinity), 5 + LARGE);
  assert.ok(cut.kinds.every((kind) => kind === Kind.Result));
  assert.ok(cut.sizes.slice(5).every((n) => n > 64 * 1024 && n < 100_000));
  // Too small for the large path: small calls only.
  for (const maxFrameBytes of [65_000, 1024, 64]) {
    assert.equal(
      warmSession(limits(maxFrameBytes), 5, undefined, Infinity),
      5,
      `${maxFrameBytes}`,
    );
  }
});

Deno.test("warmSession() stops once its budget has passed", () => {
  // A spent budget: the first check (before the 100th small call) stops it,
  // and no large call is made.
  const r = reader();
  const answered = warmSession(shape, 1000, r.out, -1);
  assert.equal(answered, 99);
  assert.equal(r.kinds.length, 99);
});
