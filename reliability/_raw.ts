// A raw channel to a real daemon: spawns the exact argv of ctx.command()
// (direct start as root) with Deno.Command and speaks the wire protocol by
// hand, so that tests can send any bytes and see every frame that comes
// back (duplicates included). Every wait has a timeout: the caller side
// never hangs.
import { FrameDecoder } from "../protocol/frame.ts";
import {
  decodeMessage,
  encodeMessage,
  Kind,
  type Message,
  PROTOCOL_VERSION,
} from "../protocol/messages.ts";

/** A frame from the daemon, decoded, or the reason it could not be. */
export type Received = Message | { kind: "undecodable"; error: string };

export class TimeoutError extends Error {
  override name = "TimeoutError";
}

/** Resolves `p`, or rejects with {@linkcode TimeoutError} after `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) =>
      timer = setTimeout(
        () => reject(new TimeoutError(`${what}: no answer within ${ms} ms`)),
        ms,
      )
    ),
  ]).finally(() => clearTimeout(timer));
}

/** Kilobytes of a field (VmRSS, VmHWM, …) of /proc/<pid>/status, or undefined. */
export function procKb(pid: number, field: string): number | undefined {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Number of open file descriptors of `pid`, or undefined. */
export function fdCount(pid: number): number | undefined {
  try {
    return [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
  } catch {
    return undefined;
  }
}

export class RawDaemon {
  readonly child: Deno.ChildProcess;
  readonly pid: number;
  readonly exited: Promise<Deno.CommandStatus>;
  status: Deno.CommandStatus | undefined;
  stderr = "";
  /** Every frame received, in order (when `keep` is on). */
  readonly received: Received[] = [];
  /** Frames received in all. */
  framesIn = 0;
  /** Bytes received in all. */
  bytesIn = 0;
  /** Called for every decoded frame (after it is stored). */
  onMessage: ((m: Received) => void) | undefined;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #decoder: FrameDecoder;
  #waiters: (() => void)[] = [];
  #readerDone: Promise<void>;
  #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  #paused = false;
  #resume: (() => void) | undefined;
  keep = true;

  constructor(argv: readonly string[], maxFrameBytes = 16 << 20) {
    this.#decoder = new FrameDecoder(maxFrameBytes);
    this.child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      detached: true,
    }).spawn();
    this.pid = this.child.pid;
    this.exited = this.child.status.then((s) => this.status = s);
    this.#writer = this.child.stdin.getWriter();
    this.#writer.closed.catch(() => {});
    this.#readerDone = this.#read();
    const stderr = this.child.stderr;
    (async () => {
      const d = new TextDecoder();
      try {
        for await (const c of stderr) {
          this.stderr = (this.stderr + d.decode(c, { stream: true })).slice(
            -16384,
          );
        }
      } catch { /* closed */ }
    })();
  }

  async #read(): Promise<void> {
    const reader = this.#reader = this.child.stdout.getReader();
    try {
      for (;;) {
        if (this.#paused) {
          await new Promise<void>((r) => this.#resume = r);
        }
        const { value, done } = await reader.read();
        if (done) break;
        this.bytesIn += value.length;
        let bodies: Uint8Array[];
        try {
          bodies = this.#decoder.push(value);
        } catch (error) {
          this.#store({ kind: "undecodable", error: String(error) });
          break;
        }
        for (const body of bodies) {
          let m: Received;
          try {
            m = decodeMessage(body);
          } catch (error) {
            m = { kind: "undecodable", error: String(error) };
          }
          this.#store(m);
        }
      }
    } catch {
      /* cancelled */
    } finally {
      this.#wake();
    }
  }

  #store(m: Received): void {
    this.framesIn++;
    if (this.keep) this.received.push(m);
    this.onMessage?.(m);
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Stops reading stdout (the pipe fills; the daemon's writes block). */
  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.#resume?.();
    this.#resume = undefined;
  }

  /** Closes our end of the daemon's stdout. */
  async closeStdout(): Promise<void> {
    this.#paused = false;
    this.#resume?.();
    try {
      await this.#reader?.cancel();
    } catch { /* already closed */ }
  }

  /** Waits until `pred` finds a frame (from index `from`), or times out. */
  async waitFor(
    pred: (m: Received) => boolean,
    ms: number,
    what: string,
    from = 0,
  ): Promise<Received> {
    const deadline = performance.now() + ms;
    let i = from;
    for (;;) {
      for (; i < this.received.length; i++) {
        if (pred(this.received[i])) return this.received[i];
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new TimeoutError(`${what}: not received within ${ms} ms`);
      }
      const woke = new Promise<void>((r) => this.#waiters.push(r));
      await withTimeout(woke, left, what).catch(() => {});
      if (this.status && i >= this.received.length) {
        await this.#readerDone;
        if (i >= this.received.length) {
          throw new Error(
            `${what}: the daemon exited (${
              JSON.stringify(this.status)
            }) first; stderr: ${this.stderr.trim()}`,
          );
        }
      }
    }
  }

  /** Waits for the daemon's hello and answers with ours. */
  async handshake(ms = 15_000, sendHello = true) {
    const hello = await this.waitFor(
      (m) => m.kind === Kind.Hello,
      ms,
      "the daemon's hello",
    );
    if (sendHello) {
      await this.write(
        encodeMessage([Kind.Hello, { v: PROTOCOL_VERSION, pid: Deno.pid }]),
      );
    }
    return (hello as Extract<Message, { kind: 0 }>).hello;
  }

  /** Writes bytes to the daemon's stdin, with a timeout. */
  async write(bytes: Uint8Array, ms = 30_000): Promise<void> {
    await withTimeout(this.#writer.write(bytes), ms, "writing to the daemon");
  }

  /** Writes without waiting (for pipelined writes); errors are swallowed. */
  writeNoWait(bytes: Uint8Array): Promise<void> {
    return this.#writer.write(bytes).catch(() => {});
  }

  /** Closes the daemon's stdin (EOF). */
  async closeStdin(): Promise<void> {
    await this.#writer.close().catch(() => {});
  }

  /** Waits for the exit, or throws after `ms`. */
  async waitExit(ms: number): Promise<Deno.CommandStatus> {
    return await withTimeout(this.exited, ms, `exit of daemon ${this.pid}`);
  }

  /** Ends the daemon (EOF, then SIGKILL after `ms`) and reaps it. */
  async kill(ms = 2000): Promise<Deno.CommandStatus> {
    await this.closeStdin();
    try {
      return await this.waitExit(ms);
    } catch {
      try {
        this.child.kill("SIGKILL");
      } catch { /* gone */ }
      return await this.exited;
    }
  }
}
