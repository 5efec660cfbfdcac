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
  slots.release(0);
  await Promise.resolve();
  assert.deepEqual(order, ["a"]);
  assert.equal(slots.queued, 1);
  slots.release(0);
  await Promise.resolve();
  assert.deepEqual(order, ["a", "b"]);
  // The slots come back: one is free again.
  slots.release(0);
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

Deno.test("Slots.acquire() refuses a call whose bytes would take the calls admitted past the budget", () => {
  const slots = new Slots(1, 100, 1000);
  assert.equal(slots.acquire(100), undefined);
  assert.ok(slots.acquire(500));
  assert.equal(slots.acquire(500), false, "100 + 500 + 500 > 1000");
  assert.equal(slots.refusal, "memory");
  assert.ok(slots.acquire(400), "100 + 500 + 400 fits");
  assert.equal(slots.held, 1000);
});

Deno.test("Slots.acquire() counts running calls against the budget, not only queued ones", () => {
  const slots = new Slots(8, 100, 1000);
  assert.equal(slots.acquire(600), undefined);
  assert.equal(slots.acquire(600), false, "a free slot, but 600 + 600 > 1000");
  assert.equal(slots.refusal, "memory");
  assert.equal(slots.acquire(400), undefined);
  slots.release(600);
  assert.equal(slots.held, 400);
  assert.equal(slots.acquire(600), undefined);
});

Deno.test("Slots.acquire() says the queue is full by count", () => {
  const slots = new Slots(1, 1, 1000);
  slots.acquire(0);
  assert.ok(slots.acquire(1));
  assert.equal(slots.acquire(1), false);
  assert.equal(slots.refusal, "queue");
});

Deno.test("Slots.acquire() lets a daemon that holds nothing take one call larger than the budget", () => {
  const slots = new Slots(2, 100, 1000);
  assert.equal(slots.acquire(5000), undefined);
  assert.equal(slots.acquire(1), false, "nothing more while it runs");
  slots.release(5000);
  assert.equal(slots.held, 0);
  assert.equal(slots.acquire(900), undefined);
  assert.ok(slots.acquire(100) === undefined, "900 + 100 fits");
});

Deno.test("Slots.release() leaves a waiting call's bytes held until it ends", () => {
  const slots = new Slots(1, 100, 1000);
  slots.acquire(300);
  assert.ok(slots.acquire(600));
  slots.release(300); // the waiting call starts, still holding its 600
  assert.equal(slots.held, 600);
  assert.equal(slots.acquire(500), false);
  slots.release(600);
  assert.equal(slots.held, 0);
});
