// The daemon's memory policy. Large messages leave large ArrayBuffers
// behind, which V8 only frees at its next collection: a collection soon
// after keeps the daemon's memory near its idle size (the daemon runs with
// --expose-gc).

/** A message this large leaves large buffers behind. */
export const LARGE_MESSAGE = 256 * 1024;
/**
 * Large buffers held longer than this have likely been moved to the old
 * generation (the young one is 1 MiB), which only a full collection frees.
 */
export const LONG_CALL_MS = 50;

/** A garbage collection: young generation only, or full. */
export type Collection = "minor" | "major";

/** V8's heap in use and the memory of its ArrayBuffers, in bytes. */
function heapBytes(): number {
  const m = Deno.memoryUsage();
  return m.heapUsed + m.external;
}

/** Runs collections soon, at most one pending at a time. */
export class Collector {
  #scheduled: Collection | undefined;
  readonly #gc: ((o: { type: string }) => void) | undefined;
  readonly #defer: (fn: () => void) => void;
  readonly #heap: () => number;
  /** The heap after the last full collection run here (or at the start). */
  #base: number;

  constructor(
    gc: ((o: { type: string }) => void) | undefined,
    defer: (fn: () => void) => void = (fn) => setTimeout(fn, 0),
    heap: () => number = heapBytes,
  ) {
    this.#gc = gc;
    this.#defer = defer;
    this.#heap = heap;
    this.#base = gc ? heap() : 0;
  }

  /**
   * What the heap (with ArrayBuffers) grew by since the last full
   * collection run here, or since it was lowest when asked (V8 collects on
   * its own too).
   */
  grown(): number {
    const now = this.#heap();
    if (now < this.#base) this.#base = now;
    return now - this.#base;
  }

  #run(type: Collection): void {
    this.#gc!({ type });
    if (type === "major") this.#base = this.#heap();
  }

  /**
   * Asks for a collection of `type`: at once when `now` (the daemon has
   * nothing else to do: no call, no timer, so none is scheduled either; it
   * collects while the caller reads the reply, instead of in a timer that
   * would keep the next read asynchronous), else in a timer. A pending minor
   * collection asked to be major becomes a full one.
   */
  soon(type: Collection, now = false): void {
    const gc = this.#gc;
    if (!gc) return;
    if (now) {
      this.#run(type);
      return;
    }
    if (this.#scheduled === "major" || this.#scheduled === type) return;
    const pending = this.#scheduled !== undefined;
    this.#scheduled = type;
    if (pending) return; // the pending one becomes a full collection
    this.#defer(() => {
      const what = this.#scheduled;
      this.#scheduled = undefined;
      if (what) this.#run(what);
    });
  }

  /**
   * Runs a full collection that is pending, now (the timer then finds
   * nothing to do): the daemon calls it before decoding the next message,
   * when no earlier message is referenced any more.
   */
  major(): void {
    if (this.#scheduled === "major") {
      this.#scheduled = undefined;
      this.#run("major");
    }
  }
}

/**
 * What a finished call leaves behind: its large arguments and result are
 * garbage now, unless it kept them. A cheap young-generation collection
 * after a short call; a full one after a long call (`started`: when it
 * started, by performance.now()), whose buffers have had time to be
 * promoted; none after small messages (and no clock read either).
 */
export function collectionAfterCall(
  callBytes: number,
  replyBytes: number,
  started: number,
): Collection | undefined {
  if (callBytes < LARGE_MESSAGE && replyBytes < LARGE_MESSAGE) return undefined;
  return performance.now() - started > LONG_CALL_MS ? "major" : "minor";
}

/**
 * The garbage of large calls' arguments. Arguments decoded for long enough
 * (large ones) were mostly promoted to the old generation while they were
 * decoded, so a young collection does not free them, and V8 lets the old
 * generation grow to a few times its live size before it collects on its
 * own. Once the calls counted add up to `budget` (the session passes half of
 * what admitted calls may hold), a full collection, at most one per budget's
 * worth, if the heap grew by `budget` since the last (`grown`, from
 * Collector.grown()); a young one after any other large call:
 * estimates run high (array-index keys V8 stores as a dictionary; binary
 * arguments, which young collections free), and a full collection for
 * nothing cost ~10 ms per 17 kB sent (a twenty-first review) and every 32nd
 * 1 MiB echo ~9 ms.
 */
export class LargeGarbage {
  /** Estimated decoded bytes left since the last full collection for them. */
  #bytes = 0;
  constructor(
    readonly budget: number,
    /** What the heap grew by since the last full collection (Collector). */
    readonly grown: () => number = () => Infinity,
  ) {}

  /**
   * A call of `bytes` was refused or ended: the collection it calls for.
   * The session counts every refused call and call of an unknown name, and
   * the finished calls of at least {@linkcode LARGE_MESSAGE}.
   */
  add(bytes: number): Collection | undefined {
    if ((this.#bytes += bytes) >= this.budget) {
      this.#bytes = 0;
      if (this.grown() >= this.budget) return "major";
    }
    return bytes >= LARGE_MESSAGE ? "minor" : undefined;
  }
}
