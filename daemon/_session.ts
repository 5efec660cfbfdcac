// One serving session: the daemon's side of the channel, from the caller's
// hello to the end of stdin. The read loop parses and dispatches; each call
// runs by the rules of core/invoke.ts, and its reply is audited, frees its
// slot and goes out through the Outbox.

import { ProtocolError, QUEUE_FULL_CODE } from "../errors.ts";
import {
  invoke,
  type Outcome,
  replyFrame,
  type ReplyLimits,
} from "../core/invoke.ts";
import type { EntrypointRecord } from "../core/_registry.ts";
import { FrameDecoder } from "../protocol/frame.ts";
import { encodeMessageParts, FrameParts } from "../protocol/_parts.ts";
import {
  type DaemonStatus,
  decodeMessage,
  describeError,
  encodeMessage,
  Kind,
  MAX_ENTRYPOINT_NAME,
  type Message,
  PROTOCOL_VERSION,
} from "../protocol/messages.ts";
import {
  DecodeCapExceeded,
  lastDecoded,
  nextDecodeCap,
} from "../protocol/_decoded_cost.ts";
import { killRunningCommands } from "./run_command.ts";
import { reapLeftovers } from "./_children.ts";
import { type Audit, tracebackMessage } from "./_audit.ts";
import { CallTable, type Running } from "./_calls.ts";
import type { DaemonLog } from "./_log_bridge.ts";
import {
  collectionAfterCall,
  Collector,
  LARGE_MESSAGE,
  LargeGarbage,
} from "./_memory.ts";
import type { ChannelReader } from "./_idle_read.ts";
import type { Outbox } from "./_outbox.ts";
import { type Refusal, Slots } from "./_slots.ts";
import { isWarmUp, WARM_UP } from "../core/_warm_up.ts";
import { leaveGraceMs } from "../core/_leave_grace.ts";

/** What a session serves, and how. */
export interface SessionOptions {
  /** The context's name, for messages. */
  contextName: string;
  /** The context's entrypoints, by key. */
  entrypoints: Map<string, EntrypointRecord>;
  /** Calls run at once. */
  concurrency: number;
  /** Calls that may wait for a slot. */
  queueLimit: number;
  /** How long a cancelled call may go on before it counts as stuck (ms). */
  graceMs: number;
  /** How replies are encoded (maxFrameBytes, stacks, advice). */
  limits: ReplyLimits;
  /** Where frames go. */
  out: Outbox;
  /** The daemon's own log. */
  log: DaemonLog;
  /** The audit trail. */
  audit: Audit;
  /** The timers pending in this process (see _timers.ts). */
  timers: Set<number>;
  /** How the channel (stdin) is read (see _idle_read.ts). */
  channel: ChannelReader;
  /** When replies are held for the calls read with them (tests). */
  hold?: Partial<HoldRules>;
}

/**
 * When the replies of calls read together are held, to go out in one write
 * (see Session#dispatchTogether).
 */
export interface HoldRules {
  /** A synchronous run shorter than this (ms) counts as fast. */
  fastMs: number;
  /** Consecutive fast runs after which an entrypoint is held for. */
  fastRuns: number;
  /** The longest a reply is held for the calls read with it (ms). */
  maxMs: number;
  /** The clock (performance.now()). */
  now: () => number;
}

/** The daemon's hold rules (see Session#dispatchTogether). */
export const HOLD_RULES: Readonly<HoldRules> = {
  fastMs: 0.5,
  fastRuns: 64,
  maxMs: 1,
  now: () => performance.now(),
};

const gc = (globalThis as { gc?: (o: { type: string }) => void }).gc;

/** The daemon's side of one channel. */
export class Session {
  readonly #o: SessionOptions;
  readonly #out: Outbox;
  readonly #maxFrameBytes: number;
  readonly #slots: Slots;
  readonly #calls: CallTable;
  readonly #decoder: FrameDecoder;
  readonly #collector = new Collector(gc);
  /** Large calls' garbage since the last full collection for it. */
  readonly #garbage: LargeGarbage;
  /** The promises of calls that did not finish synchronously. */
  readonly #active = new Set<Promise<void>>();
  /** Per entrypoint, its consecutive fast synchronous runs, up to fastRuns. */
  readonly #fastRuns = new WeakMap<EntrypointRecord, number>();
  readonly #hold: HoldRules;
  /** Messages read, parked until an audit record is written (#dispatchRead). */
  #parked: Uint8Array[] = [];
  /**
   * The Outbox position (Outbox.queuedTo) just past the first byte of the
   * last audit record queued behind a write in progress: once written
   * there, the record is out (a frame is written whole, in one batch).
   */
  #recordAt = 0;
  /** Calls read in the current batch but not started yet. */
  #undispatched = 0;
  #greeted = false;
  #leaving = false;
  /**
   * Set by leave() and fatal() (before its pause): no message is read or
   * call started any more, not even the rest of a batch already read.
   */
  #stopped = false;
  /** Where invoke() hands each call's outcome: one function for all calls. */
  readonly #done = (outcome: Outcome, call: Running): void =>
    this.#finish(call, outcome);
  /** Warm-up calls are answered until a call of another name (_warm_up.ts). */
  #warming = true;

  constructor(options: SessionOptions) {
    this.#o = options;
    this.#out = options.out;
    this.#maxFrameBytes = options.limits.maxFrameBytes;
    this.#hold = { ...HOLD_RULES, ...options.hold };
    // Running and queued calls hold their decoded arguments: bound them by
    // what those cost in memory too (estimated while decoding,
    // protocol/_decoded_cost.ts).
    this.#slots = new Slots(
      options.concurrency,
      options.queueLimit,
      Math.max(64 << 20, 2 * this.#maxFrameBytes),
    );
    // Half the budget: with the calls admitted (up to the budget) and the one
    // being decoded, large calls' garbage keeps the heap within ~3 budgets.
    this.#garbage = new LargeGarbage(
      this.#slots.budget / 2,
      () => this.#collector.grown(),
    );
    this.#calls = new CallTable(
      options.graceMs,
      (message) => options.log("warning", message),
    );
    this.#decoder = new FrameDecoder(this.#maxFrameBytes);
    this.#out.onGone = () => void this.leave(0, false);
  }

  /** The daemon's counters. */
  status(): DaemonStatus {
    const counters = this.#calls.counters;
    return {
      pid: Deno.pid,
      concurrency: this.#o.concurrency,
      queueLimit: this.#slots.queueLimit,
      running: this.#calls.size - this.#slots.queued,
      queued: this.#slots.queued,
      completed: counters.completed,
      cancelled: counters.cancelled,
      stuck: counters.stuck,
      stuckNow: counters.stuckNow,
    };
  }

  /**
   * Reads and dispatches messages until stdin closes, then leaves. Small
   * frames arrive through one buffer; a large body is read straight into
   * place (bodyTail), without a copy.
   */
  async serve(): Promise<never> {
    const decoder = this.#decoder;
    const out = this.#out;
    const calls = this.#calls;
    const active = this.#active;
    const timers = this.#o.timers;
    const buf = new Uint8Array(64 * 1024);
    // Backpressure: while this much waits to be written (the caller does not
    // read), stop reading new calls.
    const highWater = Math.max(8 << 20, this.#maxFrameBytes);
    for (;;) {
      // A daemon that leaves (a failed write, a fatal error, SIGTERM) starts
      // nothing more; whoever stopped it exits the process.
      if (this.#stopped) return await new Promise<never>(() => {});
      // Messages parked behind an audit record that waited for a write in
      // progress (#dispatchRead): once it is written, before anything new
      // is read.
      while (this.#parked.length > 0) {
        const written = out.writtenTo(this.#recordAt);
        if (written) await written;
        const parked = this.#parked;
        this.#parked = [];
        try {
          this.#dispatchRead(parked);
        } catch (error) {
          await this.fatal(error);
        }
      }
      const full = out.below(highWater);
      if (full) await full;
      const tail = decoder.bodyTail();
      const into = tail ?? buf;
      let n: number | null;
      try {
        // See _idle_read.ts. With idle_read "blocking", a blocking read when
        // there is nothing to do (no call running, nothing to write, no timer
        // pending: an entrypoint's delayed work keeps the read async, so that
        // it fires on time).
        const read = this.#o.channel.read(
          into,
          calls.size === 0 && active.size === 0 && out.idle &&
            timers.size === 0,
        );
        n = read instanceof Promise ? await read : read;
      } catch {
        n = null;
      }
      if (n === null) return await this.leave(0);
      if (this.#stopped) return await new Promise<never>(() => {});
      try {
        this.#received(tail ? undefined : buf, n);
      } catch (error) {
        await this.fatal(error);
      }
    }
  }

  /**
   * Takes `n` bytes read (into `buf`, or into the decoder's body tail when
   * `buf` is undefined) and dispatches the messages they complete.
   */
  #received(buf: Uint8Array | undefined, n: number): void {
    const decoder = this.#decoder;
    const bodies = buf ? decoder.push(buf, n) : decoder.commit(n);
    this.#dispatchRead(bodies);
  }

  /**
   * Dispatches the messages of one read. While audit records are made, a
   * call's record goes out before the next message runs anything: with its
   * reply in one write (#finish), at once when nothing is being written;
   * when it had to queue behind a write still in progress (a large reply, a
   * pipe the caller has not emptied), the rest of the read is parked
   * (copied: the read buffer is reused) until that record is written, not
   * what was queued after it (serve()). So application code that blocks until the daemon
   * is recycled cannot hold a record of a call answered before it, while a
   * large reply still does not hold back the calls read with it when no
   * record waits behind it. Without audit records, calls read together are
   * answered in one write (#dispatchTogether).
   */
  #dispatchRead(bodies: Uint8Array[]): void {
    try {
      if (!this.#o.audit.on) {
        if (bodies.length === 1) this.#handle(bodies[0]);
        else if (bodies.length > 1) this.#dispatchTogether(bodies);
        return;
      }
      for (let i = 0; i < bodies.length; i++) {
        // Wait for the record only, not for output queued after it
        // (which could keep coming and starve these messages).
        if (!this.#out.hasWritten(this.#recordAt)) {
          this.#parked = bodies.slice(i).map((body) => body.slice());
          return;
        }
        this.#undispatched = bodies.length - 1 - i;
        this.#handle(bodies[i]);
      }
    } finally {
      this.#undispatched = 0;
    }
  }

  /**
   * Dispatches messages read together, their replies held (Outbox.cork) so
   * that they go out in one write and wake the caller once, not once each.
   * What is held goes out before anything of the application runs that is
   * not known to be fast: before a call of an entrypoint whose last
   * `fastRuns` synchronous runs (#learn) did not all take less than
   * `fastMs`, and before a cancellation (its signal's listeners run at
   * once). It goes out before any call once the oldest held reply is `maxMs`
   * old. A call of an unknown name runs nothing (it is refused), nor does a
   * status request. What remains: an entrypoint fast `fastRuns` times in a
   * row whose next run is slow holds the replies read before it in the same
   * read until that run ends (docs/concepts.md, "Calling").
   */
  #dispatchTogether(bodies: Uint8Array[]): void {
    const out = this.#out;
    out.cork();
    try {
      let heldSince = this.#hold.now();
      for (let i = 0; i < bodies.length; i++) {
        this.#undispatched = bodies.length - 1 - i;
        heldSince = this.#handleHeld(bodies[i], heldSince);
      }
    } finally {
      out.uncork();
    }
  }

  /**
   * Decodes and dispatches one message. In a method of its own: once it
   * returns, no frame references the message, and a full collection pending
   * before the next one (#decode) can free it.
   */
  #handle(body: Uint8Array): void {
    const m = this.#decode(body);
    if (m) this.#dispatch(m);
  }

  /**
   * #handle for #dispatchTogether: sends the replies held first where the
   * message calls for it; returns since when replies are held.
   */
  #handleHeld(body: Uint8Array, heldSince: number): number {
    const m = this.#decode(body);
    if (!m) return heldSince;
    const out = this.#out;
    if (m.kind === Kind.Call) {
      const ep = this.#o.entrypoints.get(m.entrypoint);
      const { fastRuns: known, maxMs, now } = this.#hold;
      const t = now();
      if (
        (ep && (this.#fastRuns.get(ep) ?? 0) < known) ||
        t - heldSince >= maxMs
      ) {
        out.sendHeld();
        heldSince = t;
      }
    } else if (m.kind === Kind.Cancel) {
      out.sendHeld();
      heldSince = this.#hold.now();
    }
    this.#dispatch(m);
    return heldSince;
  }

  /**
   * Counts the consecutive fast synchronous runs of `ep` (from the call's
   * dispatch to its function's return or first await, `took` ms): the time
   * the session could send nothing. A slow one starts the count again.
   */
  #learn(ep: EntrypointRecord, took: number): void {
    const { fastMs, fastRuns } = this.#hold;
    if (took >= fastMs) this.#fastRuns.set(ep, 0);
    else {
      const runs = this.#fastRuns.get(ep) ?? 0;
      if (runs < fastRuns) this.#fastRuns.set(ep, runs + 1);
    }
  }

  /**
   * Answers calls of `key` made in memory, one after the other, each read
   * as serve() reads: a call with `args` `calls` times, then one call with
   * each of `large` as its argument, its body read into place; stops early
   * once performance.now() passes `deadline`. V8 compiles this session's
   * code for real calls before the first one. Returns how many calls were
   * answered. Only for a session of its own (see _warm_session.ts), which
   * it greets itself: throws on one that has been greeted or has answered
   * calls, and when a call is left running (the function must be
   * synchronous: an asynchronous failure would end the process).
   */
  rehearse(
    key: string,
    args: unknown[],
    calls: number,
    large: Uint8Array[],
    deadline: number,
  ): number {
    if (this.#greeted || this.#calls.counters.completed > 0) {
      throw new Error("rehearse() takes a session of its own");
    }
    this.#greeted = true;
    const buf = new Uint8Array(64 * 1024);
    const small = encodeMessage([Kind.Call, 1, key, args]);
    for (let i = 0; i < calls; i++) {
      if (i % 100 === 99 && performance.now() > deadline) break;
      buf.set(small);
      this.#received(buf, small.length);
    }
    for (const value of large) {
      if (performance.now() > deadline) break;
      // The argument goes uncopied (its frame's parts): a body copied from
      // its zero pages takes no memory until it is written.
      const encoded = encodeMessageParts(
        [Kind.Call, 1, key, [value]],
        this.#maxFrameBytes,
      );
      for (
        const part of encoded instanceof FrameParts ? encoded.parts : [encoded]
      ) {
        for (let at = 0; at < part.length;) {
          const tail = this.#decoder.bodyTail();
          const into = tail ?? buf;
          const n = Math.min(into.length, part.length - at);
          into.set(part.subarray(at, at + n));
          at += n;
          this.#received(tail ? undefined : buf, n);
        }
      }
    }
    if (this.#calls.size > 0 || this.#active.size > 0) {
      throw new Error(
        `a rehearsed call of ${key} did not finish at once: rehearse() needs a synchronous function`,
      );
    }
    return this.#calls.counters.completed;
  }

  /**
   * Decodes one message. While calls hold memory, a call whose arguments
   * would take them past the budget is refused as soon as its estimate
   * passes what is left, without decoding the rest (`undefined`).
   */
  #decode(body: Uint8Array): Message | undefined {
    // The messages before this one are garbage now (#handle).
    this.#collector.major();
    const slots = this.#slots;
    // The cap is checked from a call's arguments on (nextDecodeCap): a
    // status or cancel has none; other messages are refused by their kind.
    if (slots.held > 0) nextDecodeCap.cost = slots.budget - slots.held;
    try {
      return decodeMessage(body);
    } catch (error) {
      if (!(error instanceof DecodeCapExceeded)) throw error;
      const head = error.head;
      const [kind, id, key] = head ?? [];
      if (
        kind !== Kind.Call || head!.length !== 4 || !Number.isSafeInteger(id) ||
        (id as number) < 0 || typeof key !== "string" ||
        key.length > MAX_ENTRYPOINT_NAME
      ) {
        throw new ProtocolError(
          `received a message estimated at more than ${error.cost} bytes once decoded that is not a call`,
        );
      }
      if (this.#calls.has(id as number)) {
        throw new ProtocolError(`call id ${id} is already in flight`);
      }
      const started = performance.now();
      const known = this.#o.entrypoints.has(key) ||
        (this.#warming && WARM_UP.has(key));
      if (!known) this.#notAnEntrypoint(id as number, key, started, error.cost);
      else this.#refuse(id as number, key, started, error.cost, "partly");
      return undefined;
    } finally {
      nextDecodeCap.cost = Infinity;
    }
  }

  /** Acts on one message from the caller. */
  #dispatch(m: Message): void {
    if (!this.#greeted) {
      this.#greet(m);
    } else if (m.kind === Kind.Call) {
      if (this.#stopped) return; // leaving: it would never be cancelled
      if (this.#calls.has(m.id)) {
        throw new ProtocolError(`call id ${m.id} is already in flight`);
      }
      // lastDecoded: the message just decoded (at least its bytes).
      // The fatal leaves the process; this promise settles at once, so that
      // leave() does not wait for it.
      const p = this.#run(m.id, m.entrypoint, m.args, lastDecoded.cost)
        ?.catch((error) => void this.fatal(error));
      if (p) {
        this.#active.add(p);
        p.finally(() => this.#active.delete(p));
      }
    } else if (m.kind === Kind.Cancel) {
      this.#calls.cancel(m.id);
    } else if (m.kind === Kind.Status) {
      if (this.#calls.has(m.id)) {
        throw new ProtocolError(`status id ${m.id} is a call in flight`);
      }
      this.#out.send(encodeMessage([Kind.Result, m.id, this.status()]));
    } else {
      throw new ProtocolError(
        `received a message of kind ${m.kind}, which only daemons send`,
      );
    }
  }

  /** The caller's first message must be its hello, in our version. */
  #greet(m: Message): void {
    if (m.kind === Kind.Hello) this.#o.audit.on = m.hello.audit !== false;
    if (m.kind !== Kind.Hello || m.hello.v !== PROTOCOL_VERSION) {
      throw new ProtocolError(
        m.kind === Kind.Hello
          ? `caller speaks protocol version ${m.hello.v}, daemon ${PROTOCOL_VERSION}`
          : "the caller's first message must be a hello",
      );
    }
    this.#greeted = true;
  }

  /**
   * Runs one call. A synchronous function without schemas that gets a slot at
   * once is answered synchronously (no promise at all on the hot path);
   * everything else returns the promise of its completion.
   */
  #run(
    id: number,
    key: string,
    args: unknown[],
    bytes: number,
  ): Promise<void> | undefined {
    const started = performance.now();
    let ep = this.#o.entrypoints.get(key);
    if (this.#warming) {
      // Looked up as a real call's name is, and the flag written on every
      // warm-up call: V8 then compiles this for the first real call too.
      const warm = WARM_UP.get(key);
      this.#warming = warm !== undefined;
      ep ??= warm;
    }
    if (!ep) {
      this.#notAnEntrypoint(id, key, started, bytes);
      return;
    }
    const wait = this.#slots.acquire(bytes);
    if (wait === false) {
      this.#refuse(id, key, started, bytes, this.#slots.refusal);
      return;
    }
    const call = this.#calls.start(id, key, bytes, ep, args, started);
    // With a slot at once, the function (or its schemas) runs until it
    // returns or awaits: how long the session cannot send. Only batches
    // (no audit records, #dispatchTogether) need it.
    const learning = wait === undefined && !this.#o.audit.on;
    const now = this.#hold.now;
    const t = learning ? now() : 0;
    const p = invoke(ep, args, call.abort, this.#done, wait, call);
    if (learning) this.#learn(ep, now() - t);
    return p;
  }

  /** Answers a call of a name that is not an entrypoint; audits it. */
  #notAnEntrypoint(
    id: number,
    key: string,
    started: number,
    bytes: number,
  ): void {
    this.#recordComing();
    this.#o.audit.record(
      key.slice(0, 200),
      started,
      "refused",
      "NotAnEntrypoint",
    );
    this.#out.send(encodeMessage([Kind.Error, id, {
      name: "NotAnEntrypoint",
      message: `"${
        key.slice(0, 200)
      }" is not an entrypoint of context ${this.#o.contextName}`,
    }]));
    // A message that runs nothing is garbage at once (see _memory.ts).
    this.#collectLater(bytes);
  }

  /** A call's arguments of `bytes` are garbage: collects them later. */
  #collectLater(bytes: number): void {
    const collection = this.#garbage.add(bytes);
    if (collection) this.#collector.soon(collection);
  }

  /**
   * An audit record is about to be sent: if it will wait behind a write in
   * progress, the next messages wait for it (#dispatchRead).
   */
  #recordComing(): void {
    const out = this.#out;
    // Behind a write in progress, the record will be queued.
    if (this.#o.audit.on && out.busy) this.#recordAt = out.queuedTo + 1;
  }

  /**
   * Refuses a call: every slot is taken and the queue is full, or its
   * arguments would take what the calls admitted hold past the budget
   * (`"partly"`: decoding them stopped there, at `bytes`).
   */
  #refuse(
    id: number,
    key: string,
    started: number,
    bytes: number,
    why: Refusal | "partly",
  ): void {
    const slots = this.#slots;
    this.#recordComing();
    this.#o.audit.record(key, started, "refused", "PrivsepQueueFull");
    this.#out.send(encodeMessage([Kind.Error, id, {
      name: "PrivsepQueueFull",
      code: QUEUE_FULL_CODE,
      message: why === "queue"
        ? `${this.#o.concurrency} calls run and the queue is full (${slots.queueLimit} calls wait); raise concurrency or queue_limit, or call less at once`
        : `the calls running and queued hold ${slots.held} bytes of decoded arguments and this call ${
          why === "partly" ? "more than " : ""
        }${bytes} (estimated), past the daemon's budget of ${slots.budget} bytes (2 x maxFrameBytes, at least 64 MiB); call less at once, pass less per call, or raise the context's maxFrameBytes`,
    }]));
    this.#collectLater(bytes);
  }

  /** Builds the reply of a finished call, audits it, frees its slot, sends it. */
  #finish(call: Running, outcome: Outcome): void {
    const { id, key, started } = call;
    const ep = call.ep!;
    const args = call.args!;
    const audit = this.#o.audit;
    const logged = ep.options?.auditArgs ? args : undefined;
    const reply = replyFrame(id, outcome, this.#o.limits, true);
    // The audit record and the reply go out in one write (nothing of the
    // application runs between them). A warm-up call has none.
    const out = this.#out;
    const warm = isWarmUp(ep);
    if (!warm) this.#recordComing();
    const together = audit.on && !warm && !out.corked;
    if (together) out.cork();
    if (warm) {
      // Nothing of the application ran.
    } else if (reply.ok) {
      audit.record(key, started, "ok", undefined, logged);
    } else if ("value" in outcome) {
      // The value did not encode or fit.
      audit.record(key, started, "error", (reply.error as Error).name, logged);
    } else {
      const error = outcome.error;
      audit.record(
        key,
        started,
        call.cancelled ? "cancelled" : "error",
        error instanceof Error ? error.name : "NonError",
        logged,
      );
      // The error's name and stack frames, never its message: it often
      // quotes an argument (the reply still carries it to the caller).
      if (this.#o.limits.withStack) {
        this.#o.log("error", tracebackMessage(key, error));
      }
    }
    const calls = this.#calls;
    calls.end(call, !warm);
    // No call runs: what its commands left in the daemon's cgroup goes.
    if (calls.size === 0) reapLeftovers();
    this.#slots.release(call.bytes);
    // Nothing else to do: no call running or read and waiting to start, no
    // part of the next message received, no timer pending.
    const alone = calls.size === 0 && this.#undispatched === 0 &&
      this.#parked.length === 0 &&
      this.#decoder.buffered === 0 && this.#o.timers.size === 0;
    // Taken before sending: a written frame's memory is released.
    const replyBytes = reply.frame.length;
    out.send(reply.frame, alone);
    if (together) out.uncork();
    // The call's large arguments and result are garbage now, unless it kept
    // them: collected at once when nothing else waits, while the caller reads
    // the reply.
    let collection = collectionAfterCall(call.bytes, replyBytes, started);
    // Large arguments add up to a full collection (LargeGarbage).
    if (
      call.bytes >= LARGE_MESSAGE && this.#garbage.add(call.bytes) === "major"
    ) collection = "major";
    if (collection) this.#collector.soon(collection, alone && out.idle);
  }

  /**
   * Leaves: cancels what still runs (runCommand kills its children on the
   * signal) and gives it the grace of a cancelled call (`cancel_grace_ms`, at
   * most 2 s) to return, its `finally` blocks included, and the replies of
   * those that did to be written (unless a write failed: `flush` false),
   * then kills the commands left, so that no child outlives the daemon.
   */
  async leave(code: number, flush = true): Promise<never> {
    this.#stopped = true;
    if (!this.#leaving) {
      this.#leaving = true;
      for (const id of this.#calls.ids()) this.#calls.cancel(id);
      const deadline = performance.now() + leaveGraceMs(this.#o.graceMs);
      const until = async (work: Promise<unknown>) => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          work,
          new Promise((r) =>
            timer = setTimeout(r, Math.max(0, deadline - performance.now()))
          ),
        ]);
        clearTimeout(timer);
      };
      await until(Promise.allSettled([...this.#active]));
      if (flush) {
        this.#out.uncork();
        const written = this.#out.writtenTo(this.#out.queuedTo);
        if (written) await until(written);
      }
      killRunningCommands();
      Deno.exit(code);
    }
    return await new Promise<never>(() => {});
  }

  /** The channel is broken: says why, and leaves. */
  async fatal(error: unknown): Promise<never> {
    this.#stopped = true;
    // Whatever is held goes first; the Fatal is never held.
    this.#out.uncork();
    this.#out.send(encodeMessage([Kind.Fatal, describeError(error, false)]));
    this.#out.seal();
    await new Promise((r) => setTimeout(r, 50));
    return await this.leave(3);
  }
}
