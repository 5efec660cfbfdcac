import assert from "node:assert/strict";
import { STUCK_MARGIN_MS, StuckWatch } from "./_stuck_watch.ts";

/** Timers that fire only when the test says so. */
function fakeTimers() {
  let next = 1;
  const pending = new Map<number, { fn: () => void; ms: number }>();
  return {
    pending,
    setTimer: (fn: () => void, ms: number) => {
      pending.set(next, { fn, ms });
      return next++;
    },
    clearTimer: (id: number) => void pending.delete(id),
    fireAll: () => {
      const due = [...pending.values()];
      pending.clear();
      for (const t of due) t.fn();
    },
  };
}

function watchWith(onStuck: "recycle" | "report") {
  const timers = fakeTimers();
  const recycled: string[] = [];
  const reported: [string, boolean][] = [];
  const watch = new StuckWatch({
    graceMs: 2000,
    onStuck,
    recycle: (reason) => recycled.push(reason),
    report: (reason, recycling) => reported.push([reason, recycling]),
    setTimer: timers.setTimer,
    clearTimer: timers.clearTimer,
  });
  return { watch, timers, recycled, reported };
}

Deno.test("StuckWatch.watch() gives a cancelled call the grace period plus a margin", () => {
  const { watch, timers } = watchWith("recycle");
  watch.watch(7, "ops.ts#slow");
  assert.equal(watch.size, 1);
  assert.deepEqual([...timers.pending.values()].map((t) => t.ms), [
    2000 + STUCK_MARGIN_MS,
  ]);
});

Deno.test("StuckWatch recycles the daemon when a cancelled call does not stop (recycle)", () => {
  const { watch, timers, recycled, reported } = watchWith("recycle");
  watch.watch(7, "ops.ts#slow");
  timers.fireAll();
  const reason = "ops.ts#slow did not stop within 2000 ms of its cancellation";
  assert.deepEqual(reported, [[reason, true]]);
  assert.deepEqual(recycled, [reason]);
  assert.equal(watch.size, 0);
});

Deno.test("StuckWatch only reports a stuck call (report)", () => {
  const { watch, timers, recycled, reported } = watchWith("report");
  watch.watch(7, "ops.ts#slow");
  timers.fireAll();
  assert.equal(reported.length, 1);
  assert.equal(reported[0][1], false);
  assert.deepEqual(recycled, []);
});

Deno.test("StuckWatch.settled() clears the watch of a call whose reply came", () => {
  const { watch, timers, recycled, reported } = watchWith("recycle");
  watch.watch(7, "ops.ts#slow");
  assert.equal(watch.settled(8), false, "never cancelled");
  assert.equal(watch.settled(7), true);
  assert.equal(watch.settled(7), false, "only once");
  timers.fireAll();
  assert.deepEqual(recycled, []);
  assert.deepEqual(reported, []);
});

Deno.test("StuckWatch.clear() forgets every watched call", () => {
  const { watch, timers, recycled } = watchWith("recycle");
  watch.watch(1, "a.ts#a");
  watch.watch(2, "b.ts#b");
  watch.clear();
  assert.equal(watch.size, 0);
  assert.equal(timers.pending.size, 0);
  timers.fireAll();
  assert.deepEqual(recycled, []);
});
