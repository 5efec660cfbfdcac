// How many calls run at once, and how many may wait: a counting semaphore
// with a FIFO queue, bounded by count and by the memory its calls hold.

/** Why {@linkcode Slots.acquire} refused a call. */
export type Refusal = "queue" | "memory";

/**
 * A counting semaphore with a bounded FIFO queue. Every call admitted,
 * running or waiting, holds its decoded arguments until it ends: their
 * estimated cost (protocol/_decoded_cost.ts) is bounded by one budget.
 */
export class Slots {
  #free: number;
  #waiting: (() => void)[] = [];
  #held = 0;
  #refusal: Refusal = "queue";
  constructor(
    n: number,
    readonly queueLimit: number,
    readonly budget: number,
  ) {
    this.#free = n;
  }
  /** Calls waiting for a slot. */
  get queued(): number {
    return this.#waiting.length;
  }
  /** The estimated bytes that admitted calls (running and waiting) hold. */
  get held(): number {
    return this.#held;
  }
  /** Why the last call refused was refused. */
  get refusal(): Refusal {
    return this.#refusal;
  }
  /**
   * `undefined`: got a slot; a promise: queued; `false`: refused, because the
   * queue holds `queueLimit` calls or because the call's `bytes` (its
   * estimated decoded size) would take what admitted calls hold past the
   * budget (see {@linkcode refusal}). A daemon that holds nothing takes any
   * one call, so that a call larger than the budget can still run.
   */
  acquire(bytes: number): Promise<void> | undefined | false {
    if (this.#held > 0 && this.#held + bytes > this.budget) {
      this.#refusal = "memory";
      return false;
    }
    if (this.#free > 0 && this.#waiting.length === 0) {
      this.#free--;
      this.#held += bytes;
      return undefined;
    }
    if (this.#waiting.length >= this.queueLimit) {
      this.#refusal = "queue";
      return false;
    }
    this.#held += bytes;
    return new Promise((resolve) => this.#waiting.push(resolve));
  }
  /**
   * A call admitted with `bytes` ended: its slot goes to the longest-waiting
   * call, and its bytes are no longer held.
   */
  release(bytes: number): void {
    this.#held -= bytes;
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }
}
