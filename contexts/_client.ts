// The caller's side of one daemon: spawning it, the hello, calls in flight,
// replies in any order, forwarded logs, and what happens when it dies.
// Private: PrivContext is the public face.

import { safeText } from "../core/_safe_text.ts";
import { getLogger, type Logger, type LogLevel } from "@logtape/logtape";
import {
  DaemonExitedError,
  FailedToDropPrivileges,
  ProtocolError,
} from "../errors.ts";
import { concatFrames, FrameDecoder } from "../protocol/frame.ts";
import { releaseFrame } from "../protocol/_release.ts";
import {
  assembleParts,
  encodeMessageParts,
  FrameParts,
} from "../protocol/_parts.ts";
import { warmCodec } from "../protocol/_warm.ts";
import { leaveGraceMs } from "../core/_leave_grace.ts";
import {
  decodeMessage,
  encodeMessage,
  type HelloInfo,
  Kind,
  type LogRecordInfo,
  PROTOCOL_VERSION,
} from "../protocol/messages.ts";
import { callTimeout, replyError } from "./_call_errors.ts";
import { StuckWatch } from "./_stuck_watch.ts";
import { IdMap } from "../core/_id_map.ts";
// Only types: the module is loaded when a daemon starts (see start()).
import type { DaemonProcess, ExitStatus } from "./_child.ts";

const log = getLogger(["privsep", "client"]);
const auditLog = getLogger(["privsep", "audit"]);
const LEVELS = new Set(["trace", "debug", "info", "warning", "error", "fatal"]);
const STDERR_KEEP = 16 * 1024;
/** The keep-alive timer's period: the longest a timer waits (it never fires). */
const KEEP_ALIVE_MS = 2 ** 31 - 1;

/** What a started daemon is, as the caller knows it. */
export interface DaemonInfo {
  /** The serving daemon's process id. */
  pid: number;
  /** The daemon's hello. */
  hello: HelloInfo;
  /** The helper process id (sudo, or the daemon itself when direct). */
  helperPid: number;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  entrypoint: string;
  timer: ReturnType<typeof setTimeout> | undefined;
  cleanup: (() => void) | undefined;
}

/**
 * A call waiting for its reply, with every field from the start: one shape
 * (V8 map) for calls with and without a timeout or signal, so that code
 * compiled for the one (the warm-up's calls have a timeout) is not thrown
 * away at the other ("wrong map").
 */
function pending(
  resolve: (value: unknown) => void,
  reject: (error: Error) => void,
  entrypoint: string,
): Pending {
  return { resolve, reject, entrypoint, timer: undefined, cleanup: undefined };
}

export interface ClientOptions {
  context: string;
  argv: readonly string[];
  maxFrameBytes: number;
  daemonLogger: readonly string[];
  /** Called once when the daemon is gone (exited, killed, or closed). */
  onGone: (client: DaemonClient) => void;
  /** Hint appended when the daemon fails before its hello. */
  startHint: (stderr: string) => string;
  /** How long a cancelled call may go on before it counts as stuck (ms). */
  cancelGraceMs?: number;
  /** What a stuck call does: recycle the daemon, or only report it. */
  onStuck?: "recycle" | "report";
}

/**
 * A daemon record's properties, each key and string value (at the top
 * level) without control, line-separator or bidi characters (but line feeds
 * and tabs, with `lines`).
 */
function safeProperties(
  properties: Record<string, unknown> | undefined,
  lines: boolean,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(properties ?? {})) {
    out[safeText(key)] = typeof value === "string"
      ? safeText(value, lines)
      : value;
  }
  return out;
}

/**
 * Whether `work` settles within `ms` (a timer, ref'd, keeps the event loop
 * waiting meanwhile, and is cleared when it is done).
 */
export async function settlesWithin(
  work: Promise<unknown>,
  ms: number,
): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      work.then(() => true, () => true),
      new Promise<boolean>((r) => timer = setTimeout(() => r(false), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export class DaemonClient {
  readonly #opts: ClientOptions;
  readonly #child: DaemonProcess;
  readonly #decoder: FrameDecoder;
  readonly #pending = new IdMap<Pending>();
  /** Cancelled calls whose reply has not come yet. */
  readonly #cancelled: StuckWatch;
  readonly #daemonLog: Logger;
  #nextId = 1;
  #outbox: Uint8Array[] = [];
  #writing = false;
  #stderr = "";
  #closed: Error | undefined;
  /**
   * Set by close() while the daemon finishes the calls in flight: no new
   * call or cancel is sent, their replies are still read.
   */
  #closing: Error | undefined;
  #outputEndedNow!: () => void;
  /** Resolves when the daemon's stdout has ended (#outputEnded). */
  readonly #outputDone = new Promise<void>((resolve) =>
    this.#outputEndedNow = resolve
  );
  /** The timer that keeps the event loop alive while calls are in flight. */
  #keepAlive: ReturnType<typeof setInterval> | undefined;
  #stopping = false;
  #hello!: (info: HelloInfo) => void;
  #helloFailed!: (error: Error) => void;
  #stderrDecoder = new TextDecoder();
  info: DaemonInfo | undefined;

  private constructor(
    opts: ClientOptions,
    Process: typeof DaemonProcess,
  ) {
    this.#opts = opts;
    this.#decoder = new FrameDecoder(opts.maxFrameBytes);
    this.#daemonLog = getLogger([...opts.daemonLogger]);
    this.#cancelled = new StuckWatch({
      graceMs: opts.cancelGraceMs ?? 2000,
      onStuck: opts.onStuck ?? "recycle",
      report: (reason, recycling) => {
        if (recycling) {
          log.warn("recycling the privsep daemon of {context}: {reason}", {
            context: opts.context,
            reason,
          });
        } else {
          log.warn("privsep daemon of {context}: {reason}", {
            context: opts.context,
            reason,
          });
        }
      },
      recycle: (reason) =>
        void this.close(`the daemon was recycled because ${reason}`, true),
    });
    const [program, ...args] = opts.argv;
    const startError = (error: Error) =>
      new FailedToDropPrivileges(
        (error as { code?: string }).code === "ENOENT" ||
          error instanceof Deno.errors.NotFound
          ? `cannot start the privsep daemon for ${opts.context}: "${program}" was not found. ${
            program.endsWith("sudo")
              ? 'Install sudo (Debian/Ubuntu: "apt-get install sudo") or use startMethod "direct" when already root.'
              : "Check the helper command."
          }`
          : `cannot start the privsep daemon for ${opts.context}: ${error.message}`,
        { context: opts.context, cause: error },
      );
    try {
      this.#child = new Process(program, args, childEnv(), {
        data: (chunk, n) => this.#received(chunk, n),
        end: (error) => void this.#outputEnded(error),
        stderr: (chunk) => {
          this.#stderr = (this.#stderr +
            this.#stderrDecoder.decode(chunk, { stream: true }))
            .slice(-STDERR_KEEP);
        },
        spawnFailed: (error) => this.#fail(startError(error)),
      });
    } catch (error) {
      throw startError(error as Error);
    }
    this.#child.unref();
    const keepAlive = setInterval(() => {}, KEEP_ALIVE_MS);
    Deno.unrefTimer(keepAlive);
    this.#keepAlive = keepAlive;
  }

  /** Spawns the daemon and waits for its hello. */
  static async start(opts: ClientOptions): Promise<DaemonClient> {
    // Loaded here, not imported: the daemon imports the application's
    // context modules, hence this file, and must not load node:child_process.
    const { DaemonProcess } = await import("./_child.ts");
    const client = new DaemonClient(opts, DaemonProcess);
    const hello = new Promise<HelloInfo>((resolve, reject) => {
      client.#hello = resolve;
      client.#helloFailed = reject;
    });
    client.#ref();
    try {
      client.#send(
        encodeMessage([Kind.Hello, {
          v: PROTOCOL_VERSION,
          pid: Deno.pid,
          // Audit records are only produced when someone listens.
          audit: auditLog.isEnabledFor("info"),
        }]),
      );
      // While the daemon starts: the first calls must not pay for the
      // codec's compilation (see protocol/_warm.ts).
      warmCodec();
      const info = await hello;
      if (info.v !== PROTOCOL_VERSION) {
        throw new ProtocolError(
          `the daemon speaks protocol version ${info.v}, this caller ${PROTOCOL_VERSION}; run the same privsep version on both sides`,
        );
      }
      client.info = {
        pid: info.pid,
        hello: info,
        helperPid: client.#child.pid,
      };
      return client;
    } catch (error) {
      client.#fail(error as Error);
      client.kill();
      throw client.#closed ?? error;
    } finally {
      client.#unref();
    }
  }

  get pid(): number {
    return this.#child.pid;
  }

  get alive(): boolean {
    return this.#closed === undefined && this.#closing === undefined;
  }

  /** Resolves when the daemon's process (its sudo, if any) has exited. */
  get exited(): Promise<unknown> {
    return this.#child.exited;
  }

  get inFlight(): number {
    return this.#pending.size;
  }

  call(
    entrypoint: string,
    args: unknown[],
    timeoutMs: number | undefined,
    signal?: AbortSignal,
  ): Promise<unknown> {
    if (this.#closed ?? this.#closing) {
      return Promise.reject(this.#closed ?? this.#closing);
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    const id = this.#nextId++;
    const frame = encodeMessageParts(
      [Kind.Call, id, entrypoint, args],
      this.#opts.maxFrameBytes,
    );
    return new Promise((resolve, reject) => {
      const waiting = pending(resolve, reject, entrypoint);
      if (this.#pending.size === 0) this.#ref();
      this.#pending.set(id, waiting);
      try {
        this.#send(frame);
      } catch (error) {
        // Nothing was sent: the call must not stay pending.
        this.#take(id);
        throw error;
      }
      // The common call has neither a timeout nor a signal: nothing more.
      if (timeoutMs === undefined && !signal) return;
      const started = performance.now();
      const giveUp = (error: Error) => {
        if (!this.#pending.has(id)) return;
        this.#take(id);
        reject(error);
        this.#cancel(id, entrypoint);
      };
      if (timeoutMs !== undefined) {
        waiting.timer = setTimeout(() => {
          giveUp(
            callTimeout(this.#opts.context, entrypoint, timeoutMs, started),
          );
        }, timeoutMs);
      }
      if (signal) {
        const onAbort = () => giveUp(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        waiting.cleanup = () => signal.removeEventListener("abort", onAbort);
        // Encoding the arguments runs their getters, which may have aborted.
        if (signal.aborted) onAbort();
      }
    });
  }

  /** Asks the daemon for its counters (a status message). */
  status(): Promise<unknown> {
    if (this.#closed ?? this.#closing) {
      return Promise.reject(this.#closed ?? this.#closing);
    }
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      if (this.#pending.size === 0) this.#ref();
      this.#pending.set(id, pending(resolve, reject, "status"));
      this.#send(encodeMessage([Kind.Status, id]));
    });
  }

  /** Tells the daemon to cancel `id`, and watches that it really stops. */
  #cancel(id: number, entrypoint: string): void {
    // A closing daemon cancels what still runs by itself.
    if (this.#closed ?? this.#closing) return;
    this.#send(encodeMessage([Kind.Cancel, id]));
    this.#cancelled.watch(id, entrypoint);
  }

  /**
   * Closes stdin and waits for the daemon to exit; a daemon that does not
   * (it is blocked) gets SIGTERM, which sudo relays, then SIGKILL. On EOF the
   * daemon cancels the calls in flight and lets them return for their grace
   * (at most 2 s, core/_leave_grace.ts): their replies still come, and what
   * has none when it is gone rejects with `DaemonExitedError`, so that no
   * call is reported cut short while it goes on. `unexpected` (a recycle)
   * rejects them at once, as a failure.
   */
  async close(
    reason = "the daemon was stopped",
    unexpected = false,
  ): Promise<void> {
    if (this.#closing && !unexpected) {
      // A second stop() while the first waits for the daemon.
      await this.#child.exited;
      return;
    }
    this.#stopping = !unexpected;
    const error = new DaemonExitedError(`${reason} (${this.#opts.context})`, {
      context: this.#opts.context,
    });
    // What a daemon that still reads takes to leave: the grace of the calls
    // it still runs (cancelled ones included, which this side no longer
    // waits for).
    const leaving = unexpected
      ? 300
      : Math.max(1000, leaveGraceMs(this.#opts.cancelGraceMs ?? 2000) + 200);
    if (unexpected || this.#pending.size === 0 || this.#closed) {
      this.#fail(error);
      // EOF first even when recycling: a daemon that still reads leaves by
      // itself and takes its runCommand children along; a blocked one gets
      // SIGTERM.
      await this.#terminate(leaving);
      return;
    }
    this.#closing = error;
    this.#outbox = []; // calls not yet written never reach the daemon
    // The daemon cancels and bounds what it runs by itself; a recycle for a
    // call cancelled before would cut the others' grace short.
    this.#cancelled.clear();
    this.#child.endInput();
    await this.#terminate(leaving);
    // The last replies may still be in the pipe: #outputEnded fails what
    // is left once it is read (or the daemon's crash, with its reason).
    await settlesWithin(this.#outputDone, 300);
    this.#fail(error);
  }

  /**
   * Stops the daemon at once: closes its stdin, then SIGTERM, which sudo
   * relays, then SIGKILL. The daemon's stdin goes first: a daemon of another
   * user started through sudo is out of this process's reach once sudo is
   * killed, and the end of its input is what makes it leave.
   */
  kill(): void {
    this.#child.abortInput();
    this.#terminate(0);
  }

  async #terminate(eofWaitMs: number): Promise<void> {
    let done = false;
    const exited = this.#child.exited.then(() => done = true);
    const wait = (ms: number) => settlesWithin(exited, ms);
    if (eofWaitMs > 0) await wait(eofWaitMs);
    for (const [signal, ms] of [["SIGTERM", 1000], ["SIGKILL", 0]] as const) {
      if (done) return;
      try {
        this.#child.kill(signal);
      } catch { /* already gone */ }
      if (ms) await wait(ms);
    }
    // SIGKILL needs no permission through the ChildProcess (_child.ts):
    // the process goes, at the latest when the kernel lets go of it. The
    // process is not ref'd: a timer keeps the caller's event loop waiting,
    // 5 s at most (one held in the kernel past SIGKILL is left to exitOf()
    // in priv_context.ts, which says so).
    for (let i = 0; i < 5 && !done; i++) await wait(1000);
  }

  // While calls are in flight the caller's event loop stays alive (a pending
  // reply must not let the process exit); otherwise the daemon does not keep
  // it alive. The process and its pipes are never ref'd: one timer that never
  // fires is, while calls are in flight. Its ref and unref are flag flips;
  // the three handles' cost a sequential caller ~8 µs of CPU per call
  // (bench/HISTORY.md, 2026-12-04, late).
  #ref(): void {
    // #fail() clears the timer: a closed client keeps nothing alive.
    if (this.#keepAlive !== undefined) Deno.refTimer(this.#keepAlive);
  }

  #unref(): void {
    if (this.#keepAlive !== undefined) Deno.unrefTimer(this.#keepAlive);
  }

  #send(frame: Uint8Array | FrameParts): void {
    if (frame instanceof FrameParts) {
      // Large arguments, uncopied: handed over now, while their bytes are
      // still the call's, or copied now if they must wait (_parts.ts).
      if (!this.#writing && this.#child.writesParts && !this.#closed) {
        this.#write(frame.parts);
        return;
      }
      frame = assembleParts(frame);
    }
    if (!this.#writing && !this.#closed) {
      // Nothing waits: written now, without a trip through the outbox.
      this.#write(frame);
      return;
    }
    this.#outbox.push(frame);
    if (!this.#writing) this.#flush();
  }

  /**
   * Writes what the outbox holds as one write, and the next batch when that
   * one is written: frames queued meanwhile go out together.
   */
  #flush(): void {
    if (this.#outbox.length === 0 || this.#closed) return;
    const batch = this.#outbox.length === 1
      ? this.#outbox[0]
      : concatFrames(this.#outbox);
    this.#outbox = [];
    this.#write(batch);
  }

  /** One write at a time: a frame, or the parts of one. */
  #write(data: Uint8Array | Uint8Array[]): void {
    this.#writing = true;
    this.#written = data;
    try {
      this.#child.write(data, this.#afterWrite);
    } catch (error) {
      this.#writing = false;
      this.#written = undefined;
      throw error;
    }
  }

  /** The write in progress (#write), for #afterWrite. */
  #written: Uint8Array | Uint8Array[] | undefined;

  /** A write is done: one function for every write, no closure per write. */
  readonly #afterWrite = (error?: Error | null): void => {
    const data = this.#written;
    this.#written = undefined;
    this.#writing = false;
    if (data !== undefined && !Array.isArray(data)) releaseFrame(data);
    if (error) {
      this.#fail(
        new DaemonExitedError(
          `cannot write to the daemon of ${this.#opts.context}: it has gone away`,
          { context: this.#opts.context, cause: error },
        ),
      );
      return;
    }
    this.#flush();
  };

  /** Bytes from the daemon's stdout: the first `n` of a reused buffer. */
  #received(chunk: Uint8Array, n = chunk.length): void {
    if (this.#closed) return;
    try {
      for (const body of this.#decoder.push(chunk, n)) {
        this.#handle(body);
        if (this.#closed) return;
      }
    } catch (error) {
      this.#fail(
        error instanceof ProtocolError ? error : new DaemonExitedError(
          `reading from the daemon of ${this.#opts.context} failed: ${
            (error as Error).message
          }`,
          { context: this.#opts.context, cause: error },
        ),
      );
      this.kill();
    }
  }

  /**
   * The daemon's stdout has ended (or failed: `error`). Unless we closed the
   * channel (#fail closes our end of the pipe), the daemon went away by
   * itself: its exit status and the last of its stderr say why.
   */
  async #outputEnded(error?: Error): Promise<void> {
    this.#outputEndedNow();
    if (this.#closed) return;
    if (error) {
      this.#fail(
        new DaemonExitedError(
          `reading from the daemon of ${this.#opts.context} failed: ${error.message}`,
          { context: this.#opts.context, cause: error },
        ),
      );
      this.kill();
      return;
    }
    const status = await this.#child.exited;
    // Let the last of stderr arrive: it says why the daemon went away.
    await settlesWithin(this.#child.stderrDone, 300);
    // A daemon that was stopped and left as asked (by EOF, or by the
    // SIGTERM or SIGHUP it got too: systemd stopping a unit): the stop's
    // reason.
    if (
      this.#closing && !status.signal &&
      [0, 128 + 1, 128 + 15].includes(status.code)
    ) {
      return this.#fail(this.#closing, status);
    }
    const how = status.signal
      ? `was killed by ${status.signal}`
      : `exited with code ${status.code}`;
    const stderr = safeText(this.#stderr.trim(), true);
    this.#fail(
      new DaemonExitedError(
        `the privsep daemon of ${this.#opts.context} ${how}${
          stderr ? `: ${stderr}` : ""
        }`,
        { context: this.#opts.context },
      ),
      status,
    );
  }

  #handle(body: Uint8Array): void {
    const m = decodeMessage(body);
    switch (m.kind) {
      case Kind.Result: {
        const p = this.#take(m.id);
        p?.resolve(m.value);
        break;
      }
      case Kind.Error: {
        const p = this.#take(m.id);
        if (!p) break;
        p.reject(replyError(m.error, p.entrypoint, this.#opts.context));
        break;
      }
      case Kind.Log:
        this.#emitLog(m.record);
        break;
      case Kind.Hello:
        if (this.info) throw new ProtocolError("received a second hello");
        this.#hello(m.hello);
        break;
      case Kind.Fatal:
        throw new ProtocolError(
          `the daemon of ${this.#opts.context} closed the channel: ${
            safeText(`${m.error.name}: ${m.error.message}`, true)
          }`,
        );
      default:
        throw new ProtocolError(
          `received a message of kind ${m.kind}, which only callers send`,
        );
    }
  }

  #take(id: number): Pending | undefined {
    const p = this.#pending.get(id);
    if (!p) {
      // A reply for a call that timed out or was aborted: it has stopped,
      // so it is not stuck; the reply itself is dropped.
      this.#cancelled.settled(id);
      return undefined;
    }
    this.#pending.delete(id);
    if (p.timer !== undefined) clearTimeout(p.timer);
    p.cleanup?.();
    if (this.#pending.size === 0) this.#unref();
    return p;
  }

  /**
   * Forwards a record of the daemon. What the daemon says is its own: a
   * compromised daemon could forge records (found by a review: an audit
   * record naming another context, a message with a line break and a
   * terminal escape). So an audit record's `context` is the one this caller
   * started; control, line-separator and bidi characters of the message
   * become `?` (an audit record keeps no line break, a log record its line
   * feeds and tabs); a timestamp that is not a finite number is now.
   */
  #emitLog(record: LogRecordInfo): void {
    const level =
      (LEVELS.has(record.level) ? record.level : "info") as LogLevel;
    const isAudit = record.category[0] === "privsep" &&
      record.category[1] === "audit";
    const message = safeText(String(record.message), !isAudit);
    // Audit records have their own category, apart from the daemon's logs.
    (isAudit ? auditLog : this.#daemonLog).emit({
      level,
      message: [message],
      rawMessage: message,
      timestamp: Number.isFinite(record.timestamp)
        ? record.timestamp
        : Date.now(),
      properties: {
        ...safeProperties(record.properties, !isAudit),
        ...(isAudit ? { context: this.#opts.context } : {}),
        daemonCategory: safeText(record.category.join(".")),
        daemonPid: this.info?.pid,
      },
    });
  }

  #fail(error: Error, status?: ExitStatus): void {
    if (this.#closed) return;
    let final = error;
    if (!this.info) {
      // The daemon never said hello: it could not start or drop privileges.
      const stderr = safeText(this.#stderr.trim(), true);
      final = error instanceof ProtocolError ||
          error instanceof FailedToDropPrivileges
        ? error
        : new FailedToDropPrivileges(
          `the privsep daemon for ${this.#opts.context} failed to start${
            status
              ? ` (${
                status.signal
                  ? `signal ${status.signal}`
                  : `exit code ${status.code}`
              })`
              : ""
          }${stderr ? `: ${stderr}` : ""}. ${this.#opts.startHint(stderr)}`,
          {
            context: this.#opts.context,
            stderr,
            exitCode: status?.code,
            cause: error,
          },
        );
      this.#helloFailed?.(final);
    } else if (!this.#stopping) {
      log.warn("privsep daemon of {context} is gone: {reason}", {
        context: this.#opts.context,
        reason: final.message,
      });
    }
    this.#closed = final;
    for (const [id, p] of this.#pending.entries()) {
      this.#pending.delete(id);
      if (p.timer !== undefined) clearTimeout(p.timer);
      p.cleanup?.();
      p.reject(final);
    }
    this.#cancelled.clear();
    clearInterval(this.#keepAlive);
    this.#keepAlive = undefined;
    // No reply matters any more: EOF on its stdin makes the daemon leave,
    // and our end of its stdout closed makes a blocked write of a large
    // reply fail at once.
    this.#child.endInput();
    this.#child.closeOutput();
    this.#opts.onGone(this);
  }
}

/**
 * The daemon's environment before sudo resets it: the caller's, as
 * Deno.Command passed it on, when the caller may read it; otherwise only a
 * PATH, to find a helper command named without one. node:child_process reads
 * NODE_V8_COVERAGE whenever it spawns: without access to that variable it
 * cannot start the daemon, which this says before trying.
 */
function childEnv(): Record<string, string> {
  const env = (variable?: string) =>
    Deno.permissions.querySync({ name: "env", variable }).state ===
      "granted";
  if (env()) return Deno.env.toObject();
  if (!env("NODE_V8_COVERAGE")) {
    throw new Error(
      "the caller starts it through node:child_process, which needs env access: run the caller with --allow-env (the daemon's helper then gets the caller's environment), or at least --allow-env=NODE_V8_COVERAGE (it then gets only a PATH)",
    );
  }
  return {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  };
}
