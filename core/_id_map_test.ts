import assert from "node:assert/strict";
import { getHeapStatistics } from "node:v8";
import { IdMap } from "./_id_map.ts";

Deno.test("IdMap keeps values by id, in insertion order, and counts only them", () => {
  const m = new IdMap<string>();
  assert.equal(m.size, 0);
  assert.equal(m.has(-1), false);
  m.set(3, "c");
  m.set(1, "a");
  assert.equal(m.size, 2);
  assert.equal(m.get(3), "c");
  assert.deepEqual(m.ids(), [3, 1]);
  assert.deepEqual(m.entries(), [[3, "c"], [1, "a"]]);
  assert.equal(m.delete(3), true);
  assert.equal(m.delete(3), false);
  assert.equal(m.delete(-1), false);
  assert.equal(m.has(3), false);
  assert.deepEqual(m.ids(), [1]);
  assert.throws(() => m.set(-1, "x"), RangeError);
});

Deno.test("IdMap: iterating a copy, deleting meanwhile is safe", () => {
  const m = new IdMap<number>();
  for (let i = 0; i < 5; i++) m.set(i, i);
  for (const [id] of m.entries()) m.delete(id);
  assert.equal(m.size, 0);
});

/** Bytes V8 has allocated in this process so far. */
const allocated = () =>
  (getHeapStatistics() as unknown as { total_allocated_bytes: number })
    .total_allocated_bytes;

Deno.test("IdMap allocates less than a Map emptied at every delete", () => {
  // A sequential caller: one entry in, one out, every call.
  const perOp = (set: (i: number) => void, del: (i: number) => void) => {
    for (let i = 0; i < 10_000; i++) set(i), del(i);
    const before = allocated();
    for (let i = 0; i < 100_000; i++) set(i), del(i);
    return (allocated() - before) / 100_000;
  };
  const map = new Map<number, number>();
  const ids = new IdMap<number>();
  const plain = perOp((i) => map.set(i, i), (i) => map.delete(i));
  const kept = perOp((i) => ids.set(i, i), (i) => ids.delete(i));
  assert.ok(kept < plain, `${kept} >= ${plain} bytes per call`);
});
