// How many calls run at once, and how many may wait: a counting semaphore
// with a FIFO queue bounded by count and by the memory its calls hold.

/** A counting semaphore with a bounded FIFO queue. */
export class Slots {
  #free: number;
  #waiting: { resolve: () => void; bytes: number }[] = [];
  #waitingBytes = 0;
  constructor(
    n: number,
    readonly queueLimit: number,
    readonly queueBytes: number,
  ) {
    this.#free = n;
  }
  /** Calls waiting for a slot. */
  get queued(): number {
    return this.#waiting.length;
  }
  /**
   * `undefined`: got a slot; a promise: queued; `false`: the queue is full,
   * by count or by the memory its calls hold (`bytes`: a call's estimated
   * decoded size, see protocol/_decoded_cost.ts). An empty queue takes any
   * one call, so that a call larger than the budget can still wait.
   */
  acquire(bytes: number): Promise<void> | undefined | false {
    if (this.#free > 0) {
      this.#free--;
      return undefined;
    }
    if (
      this.#waiting.length >= this.queueLimit ||
      (this.#waiting.length > 0 &&
        this.#waitingBytes + bytes > this.queueBytes)
    ) return false;
    this.#waitingBytes += bytes;
    return new Promise((resolve) => this.#waiting.push({ resolve, bytes }));
  }
  /** Frees a slot: the longest-waiting call gets it. */
  release(): void {
    const next = this.#waiting.shift();
    if (next) {
      this.#waitingBytes -= next.bytes;
      next.resolve();
    } else this.#free++;
  }
}
