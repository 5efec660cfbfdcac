import assert from "node:assert/strict";
import { PARTS_MIN_BYTES } from "../protocol/_parts.ts";
import { WARM_UP_NAMES } from "../protocol/messages.ts";
import { WARM_UP_ARGUMENT, warmUp, type WarmUpPlan } from "./_warm_up.ts";
import { encodeValue } from "../protocol/encode.ts";

const PLAN: WarmUpPlan = {
  rounds: 3,
  together: 4,
  sequential: 5,
  largeBytes: [1 << 20, 1 << 16],
  largeAfterRounds: 1,
  budgetMs: 1000,
};

/** A daemon that answers each call a microtask later, and what it saw. */
function recorder() {
  const seen: { name: string; arg: unknown; inFlight: number }[] = [];
  let inFlight = 0;
  const call = async (name: string, args: unknown[]) => {
    inFlight++;
    seen.push({ name, arg: args[0], inFlight });
    await Promise.resolve();
    inFlight--;
    return args[0];
  };
  return { seen, call };
}

Deno.test("warmUp() makes rounds together, the large calls after the first rounds, then calls one at a time", async () => {
  const { seen, call } = recorder();
  const n = await warmUp(
    call,
    { maxInFlight: 100, maxFrameBytes: 2 << 20 },
    PLAN,
  );
  assert.equal(n, 2 + 3 * 4 + 5);
  assert.equal(seen.length, n);
  const large = (s: (typeof seen)[number]) =>
    s.arg instanceof Uint8Array ? s.arg.length : 0;
  // One round of 4 in flight, the two large calls, two more rounds, then
  // one at a time.
  assert.deepEqual(
    seen.map((s) => [s.inFlight, large(s)]),
    [
      [1, 0],
      [2, 0],
      [3, 0],
      [4, 0],
      [1, 1 << 20],
      [1, 1 << 16],
      [1, 0],
      [2, 0],
      [3, 0],
      [4, 0],
      [1, 0],
      [2, 0],
      [3, 0],
      [4, 0],
      [1, 0],
      [1, 0],
      [1, 0],
      [1, 0],
      [1, 0],
    ],
  );
  // Both names: the daemon's call of the function sees two targets.
  assert.deepEqual(new Set(seen.map((s) => s.name)), new Set(WARM_UP_NAMES));
});

Deno.test("warmUp() keeps within the calls the daemon can take at once", async () => {
  const { seen, call } = recorder();
  await warmUp(call, { maxInFlight: 2, maxFrameBytes: 2 << 20 }, PLAN);
  assert.equal(Math.max(...seen.map((s) => s.inFlight)), 2);
});

Deno.test("warmUp() cuts large arguments to the frame limit and leaves out what cannot take the large path", async () => {
  let { seen, call } = recorder();
  await warmUp(call, { maxInFlight: 8, maxFrameBytes: 100_000 }, PLAN);
  const large = (s: typeof seen) =>
    s.filter((c) => c.arg instanceof Uint8Array).map((c) =>
      (c.arg as Uint8Array).length
    );
  assert.deepEqual(large(seen), [100_000 - 256, 1 << 16]);
  ({ seen, call } = recorder());
  await warmUp(call, {
    maxInFlight: 8,
    maxFrameBytes: PARTS_MIN_BYTES,
  }, PLAN);
  assert.deepEqual(large(seen), []);
  assert.equal(seen.length, 3 * 4 + 5);
});

Deno.test("warmUp() stops once its budget has passed", async () => {
  const { seen, call } = recorder();
  let clock = 0;
  const timed = (name: string, args: unknown[]) => {
    clock += 10;
    return call(name, args);
  };
  const n = await warmUp(
    timed,
    { maxInFlight: 8, maxFrameBytes: 2 << 20 },
    { ...PLAN, budgetMs: 35 },
    () => clock,
  );
  // One round of four (40 ms), the two large calls (60 ms), then the
  // budget is spent: no more rounds, no calls one at a time.
  assert.equal(n, 6);
  assert.equal(seen.length, 6);
});

Deno.test("warmUp() rejects when a call fails", async () => {
  await assert.rejects(
    warmUp(
      (name) =>
        name === WARM_UP_NAMES[1]
          ? Promise.reject(new Error("refused"))
          : Promise.resolve(null),
      { maxInFlight: 8, maxFrameBytes: 2 << 20 },
      PLAN,
    ),
    /refused/,
  );
});

Deno.test("warmUp() sends the typical argument in every other small call, null in the rest", async () => {
  const { seen, call } = recorder();
  await warmUp(call, { maxInFlight: 100, maxFrameBytes: 2 << 20 }, PLAN);
  const small = seen.filter((s) => !(s.arg instanceof Uint8Array));
  const typical = small.filter((s) => s.arg === WARM_UP_ARGUMENT);
  assert.equal(
    typical.length + small.filter((s) => s.arg === null).length,
    small.length,
  );
  assert.ok(
    Math.abs(typical.length - small.length / 2) <= 2,
    `${typical.length} of ${small.length}`,
  );
  // Always the same name: the other one always carries null.
  assert.equal(new Set(typical.map((s) => s.name)).size, 1);
});

Deno.test("WARM_UP_ARGUMENT takes the codec's 8-bit string, 16-bit and 32-bit integer headers", () => {
  const bytes = encodeValue(WARM_UP_ARGUMENT);
  for (const header of [0xd9, 0xcd, 0xce]) {
    assert.ok(bytes.includes(header), `no 0x${header.toString(16)} header`);
  }
});
