// How the serving loop reads the channel (stdin). Private: the read loop of
// serve.ts calls it.
//
// Deno.stdin.read() reads on a thread of Deno's blocking pool (a dup of
// fd 0, a futex wake-up of the pool thread, its read, an eventfd wake-up
// of the main thread and a close, per read): the bytes of a call reach the
// main thread through a second wake-up across threads, which costs a
// sequential call a third to a half of its latency on a 2-vCPU VM.
// Deno.stdin.readSync() avoids it, but while it waits the event loop does
// not turn: a promise an entrypoint left waiting on I/O, a listener or a
// fetch makes no progress until the next call arrives.
//
// So by default (idle_read "event-loop") a pipe on stdin is read the way
// Deno reads a socket: node:net's Socket over fd 0 (non-blocking, in the
// event loop's epoll), into one reused buffer (`onread`), on the main
// thread. The data wakes the main thread directly, as a blocking read
// does, and the event loop keeps turning between calls. Anything else on
// stdin (a terminal, a file, or when the socket cannot be made) falls back
// to Deno.stdin.read(). idle_read "blocking" keeps the blocking read for
// an idle daemon (no call running or queued, nothing to write, no timer
// pending).

import type { Socket } from "node:net";

/** How an idle daemon waits for the next call (the `idle_read` setting). */
export type IdleRead = "event-loop" | "blocking";

/** Reads the channel. */
export interface ChannelReader {
  /**
   * Reads the next bytes into `into`: their count, or `null` at end of
   * input. `idle`: the daemon has nothing else to do (only the blocking
   * mode looks at it).
   */
  read(
    into: Uint8Array,
    idle: boolean,
  ): number | null | Promise<number | null>;
}

/** The `--idle-read` argument of the serving stage, checked. */
export function parseIdleRead(value: string | undefined): IdleRead {
  if (value === undefined || value === "event-loop") return "event-loop";
  if (value === "blocking") return "blocking";
  throw new RangeError(
    `--idle-read takes "event-loop" or "blocking", got ${
      JSON.stringify(value)
    }`,
  );
}

/**
 * The reader of the channel for `mode` (see the top of this file). node:net
 * is loaded only for the event-loop mode: it adds to the daemon's memory
 * (docs/performance.md).
 */
export async function channelReader(mode: IdleRead): Promise<ChannelReader> {
  if (mode === "blocking") {
    return {
      read: (into, idle) =>
        idle ? Deno.stdin.readSync(into) : Deno.stdin.read(into),
    };
  }
  try {
    const { fstatSync } = await import("node:fs");
    if (fstatSync(0).isFIFO()) {
      const { Socket } = await import("node:net");
      return new PipeReader(Socket);
    }
  } catch { /* not a pipe we can read that way: the fallback */ }
  return { read: (into) => Deno.stdin.read(into) };
}

const NO_BYTES = new Uint8Array(0);

/** Bytes the socket reads at once (the size of its reused buffer). */
const CHUNK = 64 * 1024;

/**
 * Reads a pipe on fd 0 through the event loop's epoll. The socket pushes
 * what it reads; read() pulls it: bytes that arrive while no read() waits
 * are kept (copied out of the reused buffer), and the socket pauses until
 * the next read(), so that a daemon that stops reading (its replies do not
 * get out) holds at most one chunk more.
 */
class PipeReader implements ChannelReader {
  readonly #socket: Socket;
  /** The pending read's buffer and resolve (fields: no object per read). */
  #into: Uint8Array = NO_BYTES;
  #waiting: ((n: number | null) => void) | undefined;
  #held: Uint8Array | undefined;
  #ended = false;
  #paused = false;

  constructor(socket: typeof Socket) {
    this.#socket = new socket(
      {
        fd: 0,
        readable: true,
        writable: false,
        onread: {
          buffer: new Uint8Array(CHUNK),
          callback: (n: number, buf: Uint8Array) => this.#arrived(n, buf),
        },
      } as ConstructorParameters<typeof socket>[0],
    );
    const end = () => this.#end();
    this.#socket.on("end", end);
    this.#socket.on("close", end);
    this.#socket.on("error", end);
  }

  read(into: Uint8Array): number | null | Promise<number | null> {
    if (this.#held) return this.#take(into);
    if (this.#ended) return null;
    if (this.#paused) {
      this.#paused = false;
      this.#socket.resume();
    }
    this.#into = into;
    return new Promise((resolve) => this.#waiting = resolve);
  }

  #arrived(n: number, buf: Uint8Array): void {
    const resolve = this.#waiting;
    if (resolve && !this.#held) {
      this.#waiting = undefined;
      const into = this.#into;
      // Not kept: it may be a large body's tail, garbage after its call.
      this.#into = NO_BYTES;
      const m = Math.min(n, into.length);
      if (m <= 64) {
        // A call's frame, most often: copied without a view of it.
        for (let i = 0; i < m; i++) into[i] = buf[i];
      } else into.set(buf.subarray(0, m));
      if (m < n) this.#hold(buf.subarray(m, n));
      resolve(m);
      return;
    }
    this.#hold(buf.subarray(0, n));
  }

  /** Keeps bytes nobody waits for; pauses the socket until read(). */
  #hold(data: Uint8Array): void {
    if (this.#held) {
      const joined = new Uint8Array(this.#held.length + data.length);
      joined.set(this.#held);
      joined.set(data, this.#held.length);
      this.#held = joined;
    } else this.#held = data.slice();
    if (!this.#paused && !this.#waiting) {
      this.#paused = true;
      this.#socket.pause();
    }
  }

  #take(into: Uint8Array): number {
    const held = this.#held!;
    const m = Math.min(held.length, into.length);
    into.set(m === held.length ? held : held.subarray(0, m));
    this.#held = m === held.length ? undefined : held.subarray(m);
    return m;
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    const resolve = this.#waiting;
    this.#waiting = undefined;
    resolve?.(this.#held ? this.#take(this.#into) : null);
  }
}
