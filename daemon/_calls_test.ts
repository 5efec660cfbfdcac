import assert from "node:assert/strict";
import { CallTable, type Timers } from "./_calls.ts";

function fakeTimers(): Timers & { fire(): void; pending: Map<number, number> } {
  let next = 1;
  const fns = new Map<number, () => void>();
  const pending = new Map<number, number>();
  return {
    pending,
    set(fn, ms) {
      fns.set(next, fn);
      pending.set(next, ms);
      return next++;
    },
    clear(id) {
      if (id === undefined) return;
      fns.delete(id);
      pending.delete(id);
    },
    fire() {
      const due = [...fns.values()];
      fns.clear();
      pending.clear();
      for (const fn of due) fn();
    },
  };
}

Deno.test("CallTable.cancel() aborts the call's signal with an AbortError naming it", () => {
  const table = new CallTable(2000, () => {}, fakeTimers());
  const call = table.start(1, "ops.ts#slow", 10);
  table.cancel(1);
  assert.equal(call.abort.aborted, true);
  assert.equal(call.abort.signal.aborted, true);
  const reason = call.abort.signal.reason as DOMException;
  assert.equal(reason.name, "AbortError");
  assert.equal(reason.message, "privileged call ops.ts#slow was cancelled");
  assert.equal(table.counters.cancelled, 1);
  table.cancel(1);
  table.cancel(99);
  assert.equal(table.counters.cancelled, 1, "once, and only calls in flight");
});

Deno.test("CallTable reports a cancelled call still running after the grace period as stuck", () => {
  const warnings: string[] = [];
  const timers = fakeTimers();
  const table = new CallTable(2000, (m) => warnings.push(m), timers);
  const call = table.start(1, "ops.ts#slow", 10);
  table.cancel(1);
  assert.deepEqual([...timers.pending.values()], [2000]);
  timers.fire();
  assert.equal(call.stuck, true);
  assert.deepEqual(table.counters, {
    completed: 0,
    cancelled: 1,
    stuck: 1,
    stuckNow: 1,
  });
  assert.deepEqual(warnings, [
    "ops.ts#slow ignored its cancellation for 2000 ms and still holds a slot (stuck calls: 1 now, 1 in all)",
  ]);
  table.end(call);
  assert.deepEqual(table.counters, {
    completed: 1,
    cancelled: 1,
    stuck: 1,
    stuckNow: 0,
  });
  assert.equal(table.size, 0);
});

Deno.test("CallTable.end() of a cancelled call within the grace period is not stuck", () => {
  const warnings: string[] = [];
  const timers = fakeTimers();
  const table = new CallTable(2000, (m) => warnings.push(m), timers);
  const call = table.start(1, "ops.ts#slow", 10);
  table.cancel(1);
  table.end(call);
  assert.equal(timers.pending.size, 0, "its grace timer is cleared");
  timers.fire();
  assert.deepEqual(warnings, []);
  assert.equal(table.counters.stuck, 0);
});

Deno.test("CallTable tracks the calls in flight by id", () => {
  const table = new CallTable(2000, () => {}, fakeTimers());
  const a = table.start(1, "a.ts#a", 1);
  table.start(2, "b.ts#b", 2);
  assert.equal(table.size, 2);
  assert.equal(table.has(1), true);
  assert.deepEqual([...table.ids()], [1, 2]);
  table.end(a);
  assert.equal(table.has(1), false);
  assert.equal(table.counters.completed, 1);
});

Deno.test("CallTable.cancel() cancels a call whose function aborted its own CallAbort", () => {
  const timers: (() => void)[] = [];
  const warnings: string[] = [];
  const table = new CallTable(100, (m) => warnings.push(m), {
    set: (fn) => timers.push(fn),
    clear: () => {},
  });
  const call = table.start(1, "m#f", 0);
  call.abort.abort(new Error("the function's own"));
  table.cancel(1);
  assert.equal(call.cancelled, true);
  assert.equal(table.counters.cancelled, 1);
  assert.equal(timers.length, 1, "the grace period still runs");
  timers[0]();
  assert.equal(table.counters.stuck, 1);
});
