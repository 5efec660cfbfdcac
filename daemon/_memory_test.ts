import assert from "node:assert/strict";
import {
  collectionAfterCall,
  Collector,
  LARGE_MESSAGE,
  LargeGarbage,
  LONG_CALL_MS,
} from "./_memory.ts";

function collector() {
  const ran: string[] = [];
  const deferred: (() => void)[] = [];
  const c = new Collector(
    (o) => ran.push(o.type),
    (fn) => deferred.push(fn),
  );
  const tick = () => deferred.splice(0).forEach((fn) => fn());
  return { c, ran, deferred, tick };
}

Deno.test("Collector.soon() collects at once when the daemon has nothing else to do", () => {
  const { c, ran, deferred } = collector();
  c.soon("major", true);
  assert.deepEqual(ran, ["major"]);
  assert.equal(deferred.length, 0);
});

Deno.test("Collector.soon() schedules one collection for many requests", () => {
  const { c, ran, deferred, tick } = collector();
  c.soon("minor");
  c.soon("minor");
  assert.equal(deferred.length, 1);
  tick();
  assert.deepEqual(ran, ["minor"]);
});

Deno.test("Collector.soon() makes a pending minor collection a full one", () => {
  const { c, ran, deferred, tick } = collector();
  c.soon("minor");
  c.soon("major");
  c.soon("minor");
  assert.equal(deferred.length, 1);
  tick();
  assert.deepEqual(ran, ["major"]);
  c.soon("minor");
  tick();
  assert.deepEqual(ran, ["major", "minor"], "a new one after the last ran");
});

Deno.test("Collector.soon() does nothing without --expose-gc", () => {
  const deferred: (() => void)[] = [];
  const c = new Collector(undefined, (fn) => deferred.push(fn));
  c.soon("major");
  c.soon("minor", true);
  assert.equal(deferred.length, 0);
});

Deno.test("collectionAfterCall() collects after large messages only, fully after a long call", () => {
  const now = performance.now();
  const long = now - LONG_CALL_MS - 1;
  assert.equal(collectionAfterCall(100, 100, long), undefined);
  assert.equal(collectionAfterCall(LARGE_MESSAGE, 0, now + 1000), "minor");
  assert.equal(collectionAfterCall(0, LARGE_MESSAGE, now + 1000), "minor");
  assert.equal(collectionAfterCall(LARGE_MESSAGE, 0, long), "major");
});

Deno.test("LargeGarbage.add() asks for a full collection once per budget of bytes", () => {
  const garbage = new LargeGarbage(3 * LARGE_MESSAGE);
  assert.equal(garbage.add(10), undefined);
  assert.equal(garbage.add(LARGE_MESSAGE), "minor");
  assert.equal(garbage.add(LARGE_MESSAGE), "minor");
  assert.equal(garbage.add(LARGE_MESSAGE), "major", "the budget is reached");
  assert.equal(garbage.add(10), undefined, "counting starts again");
});

Deno.test("LargeGarbage.add() asks for a young collection instead when the heap did not grow by its budget", () => {
  let grown = 0;
  const garbage = new LargeGarbage(2 * LARGE_MESSAGE, () => grown);
  assert.equal(garbage.add(LARGE_MESSAGE), "minor");
  assert.equal(garbage.add(LARGE_MESSAGE), "minor", "estimated, not grown");
  grown = 2 * LARGE_MESSAGE;
  assert.equal(garbage.add(LARGE_MESSAGE), "minor", "counting started again");
  assert.equal(garbage.add(LARGE_MESSAGE), "major");
});

Deno.test("Collector.major() runs a pending full collection now, and the timer then does nothing", () => {
  const runs: string[] = [];
  const deferred: (() => void)[] = [];
  const collector = new Collector(
    ({ type }) => runs.push(type),
    (fn) => deferred.push(fn),
  );
  collector.major();
  assert.deepEqual(runs, [], "nothing pending");
  collector.soon("minor");
  collector.major();
  assert.deepEqual(runs, [], "a young collection waits for its timer");
  collector.soon("major");
  collector.major();
  assert.deepEqual(runs, ["major"]);
  for (const fn of deferred) fn();
  assert.deepEqual(runs, ["major"]);
});

Deno.test("Collector.grown() measures the heap from the last full collection run, or from its lowest", () => {
  let heap = 100;
  const collector = new Collector(
    () => {
      heap = 40; // what a collection leaves
    },
    (fn) => fn(),
    () => heap,
  );
  assert.equal(collector.grown(), 0);
  heap = 160;
  assert.equal(collector.grown(), 60);
  heap = 160;
  collector.soon("major", true);
  assert.equal(collector.grown(), 0, "measured from after the full one");
  heap = 100;
  assert.equal(collector.grown(), 60);
  heap = 10; // V8 collected on its own
  assert.equal(collector.grown(), 0);
  heap = 50;
  assert.equal(collector.grown(), 40);
});
