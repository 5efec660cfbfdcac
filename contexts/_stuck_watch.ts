// The caller's watch over cancelled calls: a call that timed out or was
// aborted must still stop in the daemon. One whose reply has not come within
// the grace period plus a margin is stuck, and the policy says what then:
// recycle the daemon (the default) so that the service never silently loses
// a slot, or only report it.

/** Time the daemon may take beyond the grace period to answer a cancelled call. */
export const STUCK_MARGIN_MS = 500;

/** What a {@linkcode StuckWatch} needs. */
export interface StuckWatchOptions {
  /** How long a cancelled call may go on before it counts as stuck (ms). */
  graceMs: number;
  /** What a stuck call does: recycle the daemon, or only report it. */
  onStuck: "recycle" | "report";
  /** Stops the daemon, saying why (the policy is "recycle"). */
  recycle: (reason: string) => void;
  /** Reports a stuck call, saying why; `recycling` tells which policy applies. */
  report: (reason: string, recycling: boolean) => void;
  /** Timer functions (tests pass their own). */
  setTimer?: (fn: () => void, ms: number) => number;
  /** Clears a timer from `setTimer`. */
  clearTimer?: (id: number) => void;
}

/** Watches that the calls a caller cancelled really stop. */
export class StuckWatch {
  readonly #opts: StuckWatchOptions;
  readonly #timers = new Map<number, number>();
  readonly #set: (fn: () => void, ms: number) => number;
  readonly #clear: (id: number) => void;

  constructor(opts: StuckWatchOptions) {
    this.#opts = opts;
    this.#set = opts.setTimer ??
      ((fn, ms) => setTimeout(fn, ms) as unknown as number);
    this.#clear = opts.clearTimer ?? ((id) => clearTimeout(id));
  }

  /** Cancelled calls whose reply has not come yet. */
  get size(): number {
    return this.#timers.size;
  }

  /** Call `id` (of `entrypoint`) was cancelled: its reply must come in time. */
  watch(id: number, entrypoint: string): void {
    const grace = this.#opts.graceMs;
    this.#timers.set(
      id,
      this.#set(() => {
        this.#timers.delete(id);
        const reason =
          `${entrypoint} did not stop within ${grace} ms of its cancellation`;
        const recycling = this.#opts.onStuck === "recycle";
        this.#opts.report(reason, recycling);
        if (recycling) this.#opts.recycle(reason);
      }, grace + STUCK_MARGIN_MS),
    );
  }

  /**
   * A reply came for `id`, which the caller no longer waits for: if it was
   * cancelled, it has stopped, so it is not stuck. Whether it was watched.
   */
  settled(id: number): boolean {
    const timer = this.#timers.get(id);
    if (timer === undefined) return false;
    this.#clear(timer);
    this.#timers.delete(id);
    return true;
  }

  /** The daemon is gone: nothing is watched any more. */
  clear(): void {
    for (const timer of this.#timers.values()) this.#clear(timer);
    this.#timers.clear();
  }
}
