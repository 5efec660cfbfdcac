// The calls a daemon has accepted and not yet answered: their cancellation,
// and the detection of stuck calls (cancelled, yet still running after the
// grace period, holding a slot).

import { CallAbort } from "../core/_call_abort.ts";
import type { EntrypointRecord } from "../core/_registry.ts";
import { IdMap } from "../core/_id_map.ts";

/** A call the daemon has accepted and not yet answered. */
export interface Running {
  /** The caller's id of the call. */
  id: number;
  /** The entrypoint's name, as called. */
  key: string;
  /** The entrypoint, its arguments, and when the call was read (the session's). */
  ep: EntrypointRecord | undefined;
  args: unknown[] | undefined;
  started: number;
  /** Its cancellation, and its signal (`callSignal()`) when asked for. */
  abort: CallAbort;
  /**
   * Whether the caller cancelled it (its own flag: the function can reach
   * its CallAbort through its scope and abort it, which is no cancellation).
   */
  cancelled?: boolean;
  /** Fires when the cancelled call has not stopped within the grace period. */
  graceTimer?: number;
  /** Whether it ignored its cancellation past the grace period. */
  stuck?: boolean;
  /** What the call's message costs in memory, decoded (an estimate). */
  bytes: number;
}

/** The counters a status reports. */
export interface CallCounters {
  /** Calls answered since start. */
  completed: number;
  /** Calls cancelled since start. */
  cancelled: number;
  /** Cancelled calls that ran past the grace period, since start. */
  stuck: number;
  /** Of those, how many still run. */
  stuckNow: number;
}

/** Timer functions (tests pass their own). */
export interface Timers {
  set(fn: () => void, ms: number): number;
  clear(id: number | undefined): void;
}

const REAL_TIMERS: Timers = {
  set: (fn, ms) => setTimeout(fn, ms) as unknown as number,
  clear: (id) => clearTimeout(id),
};

/** The calls in flight, by id. */
export class CallTable {
  readonly #calls = new IdMap<Running>();
  readonly counters: CallCounters = {
    completed: 0,
    cancelled: 0,
    stuck: 0,
    stuckNow: 0,
  };

  /**
   * `graceMs`: how long a cancelled call may go on before it counts as
   * stuck; `warn` reports a stuck call.
   */
  constructor(
    readonly graceMs: number,
    readonly warn: (message: string) => void,
    readonly timers: Timers = REAL_TIMERS,
  ) {}

  /** Calls accepted and not yet answered (running or waiting for a slot). */
  get size(): number {
    return this.#calls.size;
  }

  /** Whether call `id` is in flight. */
  has(id: number): boolean {
    return this.#calls.has(id);
  }

  /** The ids in flight (a copy). */
  ids(): number[] {
    return this.#calls.ids();
  }

  /** Accepts call `id` (of `ep` with `args`, read at `started`). */
  start(
    id: number,
    key: string,
    bytes: number,
    ep?: EntrypointRecord,
    args?: unknown[],
    started = 0,
  ): Running {
    const call: Running = {
      id,
      key,
      ep,
      args,
      started,
      abort: new CallAbort(),
      bytes,
    };
    this.#calls.set(id, call);
    return call;
  }

  /**
   * Cancels call `id`: aborts its signal and gives it the grace period to
   * stop; one that does not is stuck, and reported. Unknown or already
   * cancelled calls are left alone.
   */
  cancel(id: number): void {
    const call = this.#calls.get(id);
    if (!call || call.cancelled) return;
    call.cancelled = true;
    this.counters.cancelled++;
    call.abort.abort(
      new DOMException(
        `privileged call ${call.key} was cancelled`,
        "AbortError",
      ),
    );
    call.graceTimer = this.timers.set(() => {
      if (!this.#calls.has(id)) return;
      call.stuck = true;
      this.counters.stuck++;
      this.counters.stuckNow++;
      this.warn(
        `${call.key} ignored its cancellation for ${this.graceMs} ms and still holds a slot (stuck calls: ${this.counters.stuckNow} now, ${this.counters.stuck} in all)`,
      );
    }, this.graceMs);
  }

  /** `call` was answered; `counted`: in `completed` (not a warm-up call). */
  end(call: Running, counted = true): void {
    this.#calls.delete(call.id);
    if (call.graceTimer !== undefined) this.timers.clear(call.graceTimer);
    if (call.stuck) this.counters.stuckNow--;
    if (counted) this.counters.completed++;
  }
}
