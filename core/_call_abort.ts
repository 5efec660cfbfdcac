// A running call's cancellation, for invoke() and callSignal(). Private:
// the daemon's call table and the testing mode (contexts/priv_context.ts)
// make one per call.

/**
 * A call's cancellation. Its AbortSignal (what `callSignal()` returns) is
 * made the first time it is asked for: a call that never asks costs no
 * AbortController. That is most calls, and it matters beyond the allocation:
 * an AbortSignal reachable from the call's async context (the scope
 * runWithSignal() sets) outlived the call by a young-generation collection or
 * more, so V8 promoted it to the old generation, where it stayed as garbage
 * until the next full collection (64 000 calls 64 in flight promoted 5.2 MB,
 * 0.3 MB without a signal per call; bench/HISTORY.md, 2026-12-05).
 */
export class CallAbort {
  #controller: AbortController | undefined;
  #aborted = false;
  #reason: unknown;

  /** Whether the call was cancelled. */
  get aborted(): boolean {
    return this.#aborted;
  }

  /** The call's signal, made now if nothing asked for it before. */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /**
   * Cancels the call with `reason` (an AbortError when undefined, as
   * AbortController's); only the first cancellation counts.
   */
  abort(reason?: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason ??
      new DOMException("This operation was aborted", "AbortError");
    this.#controller?.abort(this.#reason);
  }

  /** Throws the cancellation's reason once the call was cancelled. */
  throwIfAborted(): void {
    if (this.#aborted) throw this.#reason;
  }
}
