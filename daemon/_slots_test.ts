import assert from "node:assert/strict";
import { Slots } from "./_slots.ts";

Deno.test("Slots.acquire() gives a free slot at once, without a promise", () => {
  const slots = new Slots(2, 10, 1000);
  assert.equal(slots.acquire(1), undefined);
  assert.equal(slots.acquire(1), undefined);
  assert.ok(slots.acquire(1) instanceof Promise);
  assert.equal(slots.queued, 1);
});

Deno.test("Slots.release() hands the slot to the longest-waiting call first", async () => {
  const slots = new Slots(1, 10, 1000);
  slots.acquire(0);
  const order: string[] = [];
  (slots.acquire(1) as Promise<void>).then(() => order.push("a"));
  (slots.acquire(1) as Promise<void>).then(() => order.push("b"));
  slots.release();
  await Promise.resolve();
  assert.deepEqual(order, ["a"]);
  assert.equal(slots.queued, 1);
  slots.release();
  await Promise.resolve();
  assert.deepEqual(order, ["a", "b"]);
  // The slots come back: one is free again.
  slots.release();
  assert.equal(slots.acquire(0), undefined);
});

Deno.test("Slots.acquire() refuses a call once the queue holds queueLimit calls", () => {
  const slots = new Slots(1, 2, 1 << 30);
  slots.acquire(0);
  assert.ok(slots.acquire(1));
  assert.ok(slots.acquire(1));
  assert.equal(slots.acquire(1), false);
  assert.equal(slots.queued, 2);
});

Deno.test("Slots.acquire() refuses a call whose bytes would pass the queue's budget", () => {
  const slots = new Slots(1, 100, 1000);
  slots.acquire(0);
  assert.ok(slots.acquire(600));
  assert.equal(slots.acquire(500), false, "600 + 500 > 1000");
  assert.ok(slots.acquire(400), "600 + 400 fits");
});

Deno.test("Slots.acquire() lets an empty queue take one call larger than the budget", () => {
  const slots = new Slots(1, 100, 1000);
  slots.acquire(0);
  assert.ok(slots.acquire(5000));
  assert.equal(slots.acquire(1), false);
  slots.release(); // the large call starts; its bytes leave the queue
  assert.ok(slots.acquire(900));
});
