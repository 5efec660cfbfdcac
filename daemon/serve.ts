/**
 * The daemon's serving stage: it runs with exactly its context's
 * credentials (the first stage made sure of that before `execve`), loads the
 * context's entrypoint modules, says hello, and serves calls from stdin to
 * stdout until stdin closes.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { configure, type LogRecord, type Sink } from "@logtape/logtape";
import { ProtocolError, QUEUE_FULL_CODE } from "../errors.ts";
import { runWithSignal } from "../contexts/call_scope.ts";
import { validateArgs, validateResult } from "../contexts/schema.ts";
import { killRunningCommands } from "./run_command.ts";
import { connectKeeper, reapLeftovers } from "./_children.ts";
import {
  type EntrypointRecord,
  entrypointsOf,
  registry,
} from "../contexts/_registry.ts";
import { setDaemonMode } from "../contexts/priv_context.ts";
import type { PrivContext } from "../contexts/priv_context.ts";
import { encodeValue } from "../protocol/codec.ts";
import {
  concatFrames,
  DEFAULT_MAX_FRAME_BYTES,
  FrameDecoder,
  padFrames,
} from "../protocol/frame.ts";
import {
  decodeMessage,
  describeError,
  encodeMessage,
  Kind,
  PROTOCOL_VERSION,
} from "../protocol/messages.ts";
import { type HintContext, permissionHint } from "./_permission_hint.ts";
import { moduleFiles } from "../contexts/_modules.ts";
import { releaseFrame } from "../protocol/_release.ts";
import { lastDecoded } from "../protocol/_decoded_cost.ts";
import { channelReader, parseIdleRead } from "./_idle_read.ts";

/** A message this large leaves large buffers behind. */
const LARGE_MESSAGE = 256 * 1024;
/**
 * Large buffers held longer than this have likely been moved to the old
 * generation (the young one is 1 MiB), which only a full collection frees.
 */
const LONG_CALL_MS = 50;
let collectScheduled: "minor" | "major" | undefined;

/**
 * Large messages leave large ArrayBuffers behind, which V8 only frees at its
 * next collection: a collection soon after keeps the daemon's memory near its
 * idle size (the daemon runs with --expose-gc). A cheap young-generation one
 * after a short call; a full one after a long call, whose buffers have had
 * time to be promoted. `now` when the daemon has nothing else to do (no call,
 * no timer, so none is scheduled either): it collects while the caller reads
 * the reply, instead of in a timer that would keep the next read asynchronous.
 */
function collectSoon(type: "minor" | "major", now = false): void {
  const gc = (globalThis as { gc?: (o: { type: string }) => void }).gc;
  if (!gc) return;
  if (now) {
    gc({ type });
    return;
  }
  if (collectScheduled === "major" || collectScheduled === type) return;
  const pending = collectScheduled !== undefined;
  collectScheduled = type;
  if (pending) return; // the pending one becomes a full collection
  setTimeout(() => {
    const what = collectScheduled;
    collectScheduled = undefined;
    if (what) gc({ type: what });
  }, 0);
}

/**
 * Counts the timers pending in this process (the entrypoints' and ours), by
 * wrapping the timer functions before any entrypoint module loads: the idle
 * blocking read must not delay one.
 */
function trackTimers(): Set<number> {
  const live = new Set<number>();
  const g = globalThis as unknown as Record<
    string,
    (...a: unknown[]) => number
  >;
  const {
    setTimeout: st,
    setInterval: si,
    clearTimeout: ct,
    clearInterval: ci,
  } = g;
  g.setTimeout = (fn: unknown, ms?: unknown, ...args: unknown[]) => {
    const id: number = st(
      typeof fn === "function"
        ? (...a: unknown[]) => {
          live.delete(id);
          return (fn as (...a: unknown[]) => unknown)(...a);
        }
        : fn,
      ms,
      ...args,
    );
    live.add(id);
    return id;
  };
  g.setInterval = (...a: unknown[]) => {
    const id = si(...a);
    live.add(id);
    return id;
  };
  g.clearTimeout = (id: unknown) => {
    live.delete(id as number);
    return ct(id);
  };
  g.clearInterval = (id: unknown) => {
    live.delete(id as number);
    return ci(id);
  };
  return live;
}

/** Frames up to this size are written synchronously when nothing is queued. */
const SYNC_WRITE_MAX = 16 * 1024;

/** Writes frames to stdout, batching whatever piles up during a write. */
class Outbox {
  #queue: Uint8Array[] = [];
  #queued = 0;
  #writing = false;
  #drained: (() => void)[] = [];
  /** Called when the caller is gone (a write failed). */
  onGone: () => void = () => Deno.exit(0);

  /** Bytes accepted but not yet written. */
  get pending(): number {
    return this.#queued;
  }

  /** Whether nothing waits to be written. */
  get idle(): boolean {
    return !this.#writing && this.#queue.length === 0;
  }

  /**
   * Sends a frame. A small frame with nothing ahead of it goes out at once,
   * without a trip through the event loop (a pipe takes 64 KiB without
   * blocking). So does a large one when `alone` (the daemon has nothing else
   * to do: no other call running or read, nothing of the next message
   * received, no pending timer), because blocking in the write then delays
   * nothing, and an asynchronous write would go through one of Deno's
   * blocking threads and leave the next read asynchronous too: two more
   * wake-ups across threads per large call. While it blocks, the daemon
   * reads nothing: a caller must read replies while it writes (PROTOCOL.md,
   * Flow control); one that closes its end makes the write fail at once.
   */
  send(frame: Uint8Array, alone = false): void {
    const large = frame.length > SYNC_WRITE_MAX;
    if (this.idle && (alone || !large)) {
      // A small frame is padded when it holds a newline byte, so that Deno's
      // line-buffered stdout sends it in one write instead of two (see
      // PADDING_FRAME); a large one is not copied for that.
      const data = large ? frame : padFrames(frame);
      try {
        let off = 0;
        while (off < data.length) {
          off += Deno.stdout.writeSync(data.subarray(off));
        }
      } catch {
        this.onGone();
        return;
      }
      if (large) releaseFrame(data);
      return;
    }
    this.#queue.push(frame);
    this.#queued += frame.length;
    if (!this.#writing) this.#flush();
  }

  /** Resolves once fewer than `limit` bytes wait to be written. */
  below(limit: number): Promise<void> | undefined {
    if (this.#queued < limit) return undefined;
    return new Promise((resolve) => this.#drained.push(resolve));
  }

  async #flush(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length) {
        // Small frames that piled up go out in one write; a large one goes
        // out alone, without a copy, and its memory is released as soon as
        // it is written instead of at some later collection.
        const large = this.#queue[0].length > SYNC_WRITE_MAX;
        let n = 1;
        if (!large) {
          while (
            n < this.#queue.length && this.#queue[n].length <= SYNC_WRITE_MAX
          ) n++;
        }
        const batch = this.#queue.splice(0, n);
        const joined = n === 1 ? batch[0] : concatFrames(batch);
        // A large frame is not copied to be padded: one more write is
        // little next to its size.
        const data = large ? joined : padFrames(joined);
        let off = 0;
        while (off < data.length) {
          off += await Deno.stdout.write(data.subarray(off));
        }
        this.#queued -= joined.length;
        if (large) releaseFrame(data);
        for (const resolve of this.#drained.splice(0)) resolve();
      }
    } catch {
      // The caller is gone.
      this.onGone();
    } finally {
      this.#writing = false;
    }
  }
}

/**
 * An error reply that always fits: when the envelope is too large for a
 * frame (a message quoting a huge argument, large data, a long stack), it is
 * sent again with the message cut and without data and stack.
 */
function errorFrame(
  id: number,
  error: unknown,
  withStack: boolean,
  max: number,
  ctx: HintContext,
): Uint8Array {
  const info = permissionHint(describeError(error, withStack), ctx);
  try {
    return encodeMessage([Kind.Error, id, info], max);
  } catch {
    if (max < 8192) {
      // Not even a cut message fits: say only that.
      return encodeMessage([Kind.Error, id, {
        name: "ReplyTooLarge",
        message: "error reply too large",
      }], max);
    }
    return encodeMessage([Kind.Error, id, {
      name: info.name.slice(0, 200),
      message: `${
        info.message.slice(0, 4096)
      }… (error reply cut: it was larger than maxFrameBytes ${max})`,
      ...(info.code ? { code: info.code.slice(0, 200) } : {}),
    }], max);
  }
}

/** A counting semaphore with a bounded FIFO queue. */
class Slots {
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
  release(): void {
    const next = this.#waiting.shift();
    if (next) {
      this.#waitingBytes -= next.bytes;
      next.resolve();
    } else this.#free++;
  }
}

/** A call the daemon has accepted and not yet answered. */
interface Running {
  key: string;
  controller: AbortController;
  graceTimer?: ReturnType<typeof setTimeout>;
  stuck?: boolean;
  /** What the call's message costs in memory, decoded (an estimate). */
  bytes: number;
}

/**
 * Runs the serving stage until stdin closes.
 *
 * @example
 * ```ts ignore
 * await serveDaemon(["--context=file:///opt/app/privsep/mod.ts#sysAdmin", "--concurrency=4"]);
 * ```
 */
export async function serveDaemon(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      context: { type: "string" },
      concurrency: { type: "string" },
      uid: { type: "string" },
      gid: { type: "string" },
      capabilities: { type: "string" },
      "queue-limit": { type: "string" },
      "caller-pid": { type: "string" },
      "caller-uid": { type: "string" },
      "caller-pid-unknown": { type: "string" },
      "cancel-grace-ms": { type: "string" },
      "idle-read": { type: "string" },
      "log-daemon-traceback": { type: "boolean" },
      keeper: { type: "string" },
      cgroup: { type: "string" },
      "cgroup-missing": { type: "string" },
      unconfined: { type: "string", multiple: true },
    },
    strict: true,
  });
  const contextId = values.context ?? "";
  const concurrency = Number(values.concurrency ?? "1");
  const withStack = values["log-daemon-traceback"] ?? false;
  const channel = await channelReader(parseIdleRead(values["idle-read"]));
  // Before any entrypoint can start a process (see _keeper.ts).
  if (values.keeper) connectKeeper(values.keeper, values.cgroup);
  const out = new Outbox();
  setDaemonMode();

  // Everything the daemon (and its entrypoints) log goes to the caller.
  const wireSink: Sink = (record: LogRecord) => {
    let properties: Record<string, unknown> | undefined;
    try {
      encodeValue(record.properties);
      properties = record.properties;
    } catch { /* properties that do not encode are left out */ }
    out.send(encodeMessage([Kind.Log, {
      category: [...record.category],
      level: record.level,
      message: record.message.map((p: unknown) =>
        typeof p === "string" ? p : safeString(p)
      ).join(""),
      timestamp: record.timestamp,
      properties,
    }]));
  };
  await configure({
    sinks: { wire: wireSink },
    loggers: [
      { category: [], sinks: ["wire"], lowestLevel: "debug" },
      {
        category: ["logtape", "meta"],
        sinks: ["wire"],
        lowestLevel: "warning",
      },
    ],
  });
  // stdout is the channel: console output becomes log records instead.
  const consoleLog = (level: LogRecord["level"]) => (...parts: unknown[]) =>
    wireSink({
      category: ["console"],
      level,
      message: [
        parts.map((p) => typeof p === "string" ? p : safeString(p)).join(" "),
      ],
      rawMessage: "",
      timestamp: Date.now(),
      properties: {},
    });
  console.log = console.info = consoleLog("info");
  console.debug = console.trace = consoleLog("debug");
  console.warn = consoleLog("warning");
  console.error = consoleLog("error");

  const timers = trackTimers();
  const [moduleUrl] = contextId.split("#");
  await import(moduleUrl);
  const ctx = registry().contexts.get(contextId) as PrivContext | undefined;
  if (!ctx) throw new Error(`no PrivContext ${contextId}`);
  for (const file of moduleFiles(fileURLToPath(ctx.prefix))) await import(file);
  const entrypoints = entrypointsOf(ctx);
  const maxFrameBytes = ctx.options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  // Queued calls hold their decoded arguments: bound them by what those
  // cost in memory too (estimated while decoding, protocol/_decoded_cost.ts).
  const slots = new Slots(
    concurrency,
    Number(values["queue-limit"] ?? "1000"),
    Math.max(64 << 20, 2 * maxFrameBytes),
  );
  const graceMs = Number(values["cancel-grace-ms"] ?? "2000");
  const calls = new Map<number, Running>();
  /** Calls read in the current batch but not started yet. */
  let undispatched = 0;
  const counters = { completed: 0, cancelled: 0, stuck: 0, stuckNow: 0 };
  /**
   * Estimated decoded bytes of the calls refused since the last full
   * collection forced for them. A refused call's arguments were live while
   * they were decoded, so most were promoted to the old generation: garbage
   * that V8 lets grow to a few times the live heap (the queue's) before it
   * collects on its own.
   */
  let refusedBytes = 0;
  const log = (level: LogRecord["level"], message: string) =>
    wireSink({
      category: ["privsep", "daemon"],
      level,
      message: [message],
      rawMessage: "",
      timestamp: Date.now(),
      properties: {},
    });

  out.send(encodeMessage([Kind.Hello, {
    v: PROTOCOL_VERSION,
    pid: Deno.pid,
    context: contextId,
    maxFrameBytes,
    concurrency,
    deno: Deno.version.deno,
    // What the kernel says now, after the exec (the caller also reads
    // /proc/<pid>/task/*/status when it can).
    uid: Deno.uid(),
    gid: Deno.gid(),
    capabilities: (values.capabilities ?? "").split(",").filter(Boolean).map(
      Number,
    ),
  }]));
  if (values["cgroup-missing"]) {
    log(
      "warning",
      `the daemon runs without a cgroup of its own: ${
        values["cgroup-missing"]
      }; a process that its commands start and that leaves its process group (setsid, a daemonizing program) outlives its call and the daemon`,
    );
  }

  // What of the context's kernel sandbox this kernel could not enforce.
  for (const what of values.unconfined ?? []) {
    log("warning", `kernel sandbox not enforced: ${what}`);
  }

  const callerPid = Number(values["caller-pid"] ?? "0") || null;
  const callerUid = values["caller-uid"] === undefined
    ? null
    : Number(values["caller-uid"]);
  // Why callerPid is null although the caller is known (through sudo).
  const callerPidUnknown = values["caller-pid-unknown"];
  // The caller says in its hello whether anyone listens to audit records.
  let auditOn = true;
  const audit = (
    key: string,
    started: number,
    outcome: "ok" | "error" | "cancelled" | "refused",
    errorName?: string,
    args?: unknown[],
  ) => {
    if (!auditOn) return;
    const now = performance.now();
    const durationMs = Math.round((now - started) * 1000) / 1000;
    // A refused name comes from the caller: no control characters in logs.
    // deno-lint-ignore no-control-regex
    key = key.replace(/[\x00-\x1f\x7f]/g, "?");
    const properties: Record<string, unknown> = {
      context: contextId,
      entrypoint: key,
      callerUid,
      callerPid,
      ...(callerPidUnknown ? { callerPidUnknown } : {}),
      daemonPid: Deno.pid,
      start: new Date(Date.now() - (now - started)).toISOString(),
      durationMs,
      outcome,
    };
    if (errorName !== undefined) properties.errorName = errorName;
    if (args !== undefined) properties.args = args;
    out.send(encodeMessage([Kind.Log, {
      category: ["privsep", "audit"],
      level: outcome === "ok" ? "info" : "warning",
      message: `${key} ${outcome} in ${durationMs} ms`,
      timestamp: Date.now(),
      properties,
    }]));
  };

  const status = () => ({
    pid: Deno.pid,
    concurrency,
    queueLimit: slots.queueLimit,
    running: calls.size - slots.queued,
    queued: slots.queued,
    completed: counters.completed,
    cancelled: counters.cancelled,
    stuck: counters.stuck,
    stuckNow: counters.stuckNow,
  });

  const cancel = (id: number) => {
    const call = calls.get(id);
    if (!call || call.controller.signal.aborted) return;
    counters.cancelled++;
    call.controller.abort(
      new DOMException(
        `privileged call ${call.key} was cancelled`,
        "AbortError",
      ),
    );
    call.graceTimer = setTimeout(() => {
      if (!calls.has(id)) return;
      call.stuck = true;
      counters.stuck++;
      counters.stuckNow++;
      log(
        "warning",
        `${call.key} ignored its cancellation for ${graceMs} ms and still holds a slot (stuck calls: ${counters.stuckNow} now, ${counters.stuck} in all)`,
      );
    }, graceMs);
  };

  /** Builds the reply of a finished call, audits it, frees its slot, sends it. */
  const finish = (
    id: number,
    call: Running,
    ep: EntrypointRecord,
    callArgs: unknown[],
    started: number,
    outcome: { value: unknown } | { error: unknown },
  ) => {
    const key = call.key;
    const logged = ep.options?.auditArgs ? callArgs : undefined;
    let frame: Uint8Array;
    if ("value" in outcome) {
      try {
        frame = encodeMessage([Kind.Result, id, outcome.value], maxFrameBytes);
        audit(key, started, "ok", undefined, logged);
      } catch (error) {
        frame = errorFrame(id, error, withStack, maxFrameBytes, ctx);
        audit(key, started, "error", (error as Error).name, logged);
      }
    } else {
      const error = outcome.error;
      audit(
        key,
        started,
        call.controller.signal.aborted ? "cancelled" : "error",
        error instanceof Error ? error.name : "NonError",
        logged,
      );
      if (withStack) {
        log(
          "error",
          `${key} failed: ${(error as Error)?.stack ?? String(error)}`,
        );
      }
      frame = errorFrame(id, error, withStack, maxFrameBytes, ctx);
    }
    calls.delete(id);
    // No call runs: what its commands left in the daemon's cgroup goes.
    if (calls.size === 0) reapLeftovers();
    clearTimeout(call.graceTimer);
    if (call.stuck) counters.stuckNow--;
    counters.completed++;
    slots.release();
    // Nothing else to do: no call running or read and waiting to start, no
    // part of the next message received, no timer pending.
    const alone = calls.size === 0 && undispatched === 0 &&
      decoder.buffered === 0 && timers.size === 0;
    // Taken before sending: a written frame's memory is released.
    const replyBytes = frame.length;
    out.send(frame, alone);
    // The call's large arguments and result are garbage now, unless it kept
    // them: collected at once when nothing else waits, while the caller reads
    // the reply.
    if (call.bytes >= LARGE_MESSAGE || replyBytes >= LARGE_MESSAGE) {
      collectSoon(
        performance.now() - started > LONG_CALL_MS ? "major" : "minor",
        alone && out.idle,
      );
    }
  };

  /**
   * Runs one call. A synchronous function without schemas that gets a slot at
   * once is answered synchronously (no promise at all on the hot path);
   * everything else returns the promise of its completion.
   */
  const run = (
    id: number,
    key: string,
    callArgs: unknown[],
    bytes: number,
  ): Promise<void> | undefined => {
    // A message that runs nothing is garbage at once (see collectSoon).
    if (key === "$status") {
      out.send(encodeMessage([Kind.Result, id, status()]));
      if (bytes >= LARGE_MESSAGE) collectSoon("minor");
      return;
    }
    const started = performance.now();
    const ep = entrypoints.get(key);
    if (!ep) {
      audit(key.slice(0, 200), started, "refused", "NotAnEntrypoint");
      out.send(encodeMessage([Kind.Error, id, {
        name: "NotAnEntrypoint",
        message: `"${
          key.slice(0, 200)
        }" is not an entrypoint of context ${ctx.name}`,
      }]));
      if (bytes >= LARGE_MESSAGE) collectSoon("minor");
      return;
    }
    const wait = slots.acquire(bytes);
    if (wait === false) {
      audit(key, started, "refused", "PrivsepQueueFull");
      out.send(encodeMessage([Kind.Error, id, {
        name: "PrivsepQueueFull",
        code: QUEUE_FULL_CODE,
        message:
          `${concurrency} calls run and the queue is full (${slots.queueLimit} calls or ${slots.queueBytes} bytes of decoded arguments, estimated); raise concurrency or queue_limit, or call less at once`,
      }]));
      // Once the refused calls add up to the queue's budget, a full
      // collection (at most one per budget's worth of refused calls).
      if ((refusedBytes += bytes) >= slots.queueBytes) {
        refusedBytes = 0;
        collectSoon("major");
      } else if (bytes >= LARGE_MESSAGE) collectSoon("minor");
      return;
    }
    const call: Running = { key, controller: new AbortController(), bytes };
    calls.set(id, call);
    if (wait === undefined && !ep.options?.args && !ep.options?.result) {
      let result: unknown;
      try {
        result = runWithSignal(
          call.controller.signal,
          () => ep.fn(...callArgs),
        );
      } catch (error) {
        finish(id, call, ep, callArgs, started, { error });
        return;
      }
      if (typeof (result as PromiseLike<unknown>)?.then !== "function") {
        finish(id, call, ep, callArgs, started, { value: result });
        return;
      }
      return Promise.resolve(result).then(
        (value) => finish(id, call, ep, callArgs, started, { value }),
        (error) => finish(id, call, ep, callArgs, started, { error }),
      );
    }
    return (async () => {
      let outcome: { value: unknown } | { error: unknown };
      try {
        if (wait) await wait;
        call.controller.signal.throwIfAborted();
        const checked = await validateArgs(key, ep.fn, ep.options, callArgs);
        outcome = {
          value: await validateResult(
            key,
            ep.options,
            await runWithSignal(
              call.controller.signal,
              () => ep.fn(...checked),
            ),
          ),
        };
      } catch (error) {
        outcome = { error };
      }
      finish(id, call, ep, callArgs, started, outcome);
    })();
  };

  // Leaving: cancel what still runs (runCommand kills its children on the
  // signal) and give it a moment, so that no child outlives the daemon.
  const active = new Set<Promise<void>>();
  let leaving = false;
  const leave = async (code: number): Promise<never> => {
    if (!leaving) {
      leaving = true;
      for (const id of calls.keys()) cancel(id);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.allSettled([...active]),
        new Promise((r) => timer = setTimeout(r, 200)),
      ]);
      clearTimeout(timer);
      killRunningCommands();
      Deno.exit(code);
    }
    return await new Promise<never>(() => {});
  };
  out.onGone = () => void leave(0);
  // sudo relays these from the caller (who may signal its own sudo): leave
  // the same way, children first. A blocked daemon runs no handler; its
  // SIGKILL leaves the rest to the kernel (see _keeper.ts).
  for (
    const [name, number] of [["SIGTERM", 15], ["SIGHUP", 1], [
      "SIGINT",
      2,
    ]] as const
  ) {
    Deno.addSignalListener(name, () => void leave(128 + number));
  }
  const fatal = async (error: unknown): Promise<never> => {
    out.send(encodeMessage([Kind.Fatal, describeError(error, false)]));
    await new Promise((r) => setTimeout(r, 50));
    return await leave(3);
  };

  const decoder = new FrameDecoder(maxFrameBytes);
  // Small frames arrive through this buffer; a large body is read straight
  // into place (bodyTail), without a copy.
  const buf = new Uint8Array(64 * 1024);
  // Backpressure: while this much waits to be written (the caller does not
  // read), stop reading new calls.
  const highWater = Math.max(8 << 20, maxFrameBytes);
  let greeted = false;
  for (;;) {
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
      const read = channel.read(
        into,
        calls.size === 0 && active.size === 0 && out.idle &&
          timers.size === 0,
      );
      n = read instanceof Promise ? await read : read;
    } catch {
      n = null;
    }
    if (n === null) return await leave(0);
    try {
      const bodies = tail
        ? decoder.commit(n)
        : decoder.push(buf.subarray(0, n));
      for (let i = 0; i < bodies.length; i++) {
        const body = bodies[i];
        undispatched = bodies.length - 1 - i;
        const m = decodeMessage(body);
        if (!greeted) {
          if (m.kind === Kind.Hello) auditOn = m.hello.audit !== false;
          if (m.kind !== Kind.Hello || m.hello.v !== PROTOCOL_VERSION) {
            throw new ProtocolError(
              m.kind === Kind.Hello
                ? `caller speaks protocol version ${m.hello.v}, daemon ${PROTOCOL_VERSION}`
                : "the caller's first message must be a hello",
            );
          }
          greeted = true;
        } else if (m.kind === Kind.Call) {
          if (calls.has(m.id)) {
            throw new ProtocolError(`call id ${m.id} is already in flight`);
          }
          // lastDecoded: the message just decoded (at least its bytes).
          const p = run(m.id, m.entrypoint, m.args, lastDecoded.cost)?.catch(
            fatal,
          );
          if (p) {
            active.add(p);
            p.finally(() => active.delete(p));
          }
        } else if (m.kind === Kind.Cancel) {
          cancel(m.id);
        } else {
          throw new ProtocolError(
            `received a message of kind ${m.kind}, which only daemons send`,
          );
        }
      }
    } catch (error) {
      await fatal(error);
    } finally {
      undispatched = 0;
    }
  }
}

function safeString(value: unknown): string {
  try {
    return typeof value === "object" ? JSON.stringify(value) : String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}
