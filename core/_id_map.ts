// A Map of calls in flight by id (a non-negative integer) that a delete never
// leaves empty. Private: the caller's table of pending calls
// (contexts/_client.ts) and the daemon's of running ones (daemon/_calls.ts).
//
// Why: V8 shrinks a Map's table when a delete leaves it (nearly) empty, and
// grows it again at the next insert. A sequential caller empties its map at
// every reply, and the daemon its own at every call: a new table each time,
// ~100 bytes of garbage per call on each side (bench/HISTORY.md, 2026-12-05,
// "allocation per call"). An entry under -1, which no call has, keeps it from
// shrinking below one entry.

const NONE = -1;

/** Values by id (a non-negative integer), without a shrink per delete. */
export class IdMap<V> {
  readonly #map = new Map<number, V | undefined>([[NONE, undefined]]);

  /** How many ids have a value. */
  get size(): number {
    return this.#map.size - 1;
  }

  has(id: number): boolean {
    return id !== NONE && this.#map.has(id);
  }

  get(id: number): V | undefined {
    return this.#map.get(id);
  }

  set(id: number, value: V): void {
    if (id === NONE) throw new RangeError(`IdMap takes no id ${NONE}`);
    this.#map.set(id, value);
  }

  delete(id: number): boolean {
    return id !== NONE && this.#map.delete(id);
  }

  /** The ids, in insertion order (a copy: deleting meanwhile is safe). */
  ids(): number[] {
    const ids: number[] = [];
    for (const id of this.#map.keys()) if (id !== NONE) ids.push(id);
    return ids;
  }

  /** The entries, in insertion order (a copy). */
  entries(): [number, V][] {
    const entries: [number, V][] = [];
    for (const [id, value] of this.#map) {
      if (id !== NONE) entries.push([id, value as V]);
    }
    return entries;
  }
}
