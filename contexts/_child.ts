// The daemon's process and its three pipes, as the caller holds them.
// Private: DaemonClient (_client.ts) is its only user.
//
// Spawned through node:child_process, whose pipes Deno 2.9 reads and writes
// in its event loop (epoll on the main thread), rather than Deno.Command's
// web streams: in a bare Deno pair doing 24-byte round trips (bench:floor),
// a stream read and a stream write allocate ~6 KB of JS objects per round
// trip against ~1.4 KB, and take more of the caller's CPU per call; the
// young collections and the tier-up of all that stream code are what the
// caller's tail latency was made of. The daemon's stdout is read into one
// reused buffer (`onread`), so that a large reply costs no allocation per
// read; the FrameDecoder copies what it keeps. Its stdin is written through
// the pipe's handle, as node:net's Socket does below its Writable: one call
// per frame instead of the Writable's dozen functions, their objects and
// their tick (caller CPU per sequential call 55-59 -> 38-48 µs in
// bench/tail.ts), and a frame can go as parts, large arguments uncopied
// (protocol/_parts.ts).

import { type ChildProcess, spawn } from "node:child_process";
import { Socket } from "node:net";
import { constants } from "node:os";
import process from "node:process";
import { getSystemErrorName } from "node:util";

/** How the process ended: as Deno.CommandStatus reports it. */
export interface ExitStatus {
  /** The exit code; 128 + the signal's number when killed by a signal. */
  code: number;
  /** The signal that killed it, if one did. */
  signal: string | null;
}

/** Where the process's output goes. */
export interface ChildHandlers {
  /**
   * Bytes from the daemon's stdout: the first `n` of `chunk` (all of it when
   * `n` is absent). They are only valid during the call: their memory is
   * read into again.
   */
  data(chunk: Uint8Array, n?: number): void;
  /** stdout has ended (EOF), or reading it failed (`error`). */
  end(error?: Error): void;
  /** Bytes from the daemon's stderr. */
  stderr(chunk: Uint8Array): void;
  /** The process could not be started at all (no such program, EACCES). */
  spawnFailed(error: Error): void;
}

/** Bytes read from stdout at once: the size of the reused read buffer. */
const READ_CHUNK = 64 * 1024;

type StreamHandle = { useUserBuffer?: unknown };

/** One spawned daemon (or its sudo) and the caller's ends of its pipes. */
export class DaemonProcess {
  readonly #cp: ChildProcess;
  // Absent when the process could not be started (spawnFailed follows).
  readonly #stdin: Socket | undefined;
  readonly #stdout: Socket | undefined;
  readonly #stderr: Socket | undefined;
  readonly #direct: DirectWriter | undefined;
  #gone = false;
  /** Resolves when the process has exited, or could not be started. */
  readonly exited: Promise<ExitStatus>;
  /** Resolves when stderr has ended. */
  readonly stderrDone: Promise<void>;

  /**
   * Spawns `program` in its own session (a ^C on the caller's terminal must
   * not reach sudo) with `env`. Failures to start (no such program, no run
   * permission) arrive through `handlers.spawnFailed`, as node:child_process
   * reports them.
   */
  constructor(
    program: string,
    args: readonly string[],
    env: Record<string, string>,
    handlers: ChildHandlers,
    /** Tests only: false reads stdout through its `data` events. */
    takeOver = true,
  ) {
    const cp = spawn(program, [...args], {
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
      env,
    });
    this.#cp = cp;
    // Without a pid it did not start, and its stdio objects are not pipes.
    const started = cp.pid !== undefined;
    this.#stdin = started ? cp.stdin as Socket : undefined;
    this.#stderr = started ? cp.stderr as Socket : undefined;
    this.#direct = started && takeOver
      ? directWriter(cp.stdin as Socket)
      : undefined;
    this.#stdout = started
      ? readInto(cp.stdout as Socket, handlers.data, takeOver)
      : undefined;
    let exited!: (status: ExitStatus) => void;
    this.exited = new Promise((resolve) => exited = resolve);
    cp.once("exit", (code, signal) => {
      this.#gone = true;
      exited({
        code: code ?? 128 +
            ((constants.signals as Record<string, number>)[signal ?? ""] ??
              0),
        signal: signal ?? null,
      });
    });
    // on, not once: an 'error' event without a listener would throw in the
    // application's process.
    cp.on("error", (error) => {
      // Only a process that never started: later errors (a failed kill)
      // are not ours to report.
      if (cp.pid !== undefined || this.#gone) return;
      this.#gone = true;
      handlers.spawnFailed(error);
      exited({ code: 127, signal: null });
    });
    let ended = false;
    const end = (error?: Error) => {
      if (ended) return;
      ended = true;
      handlers.end(error);
    };
    this.#stdout?.on("end", () => end());
    this.#stdout?.on("close", () => end());
    this.#stdout?.on("error", (error: Error) => end(error));
    // Write errors (EPIPE: the daemon has gone) reach write()'s callback.
    this.#stdin?.on("error", () => {});
    const stderr = this.#stderr;
    stderr?.on("data", (chunk: Uint8Array) => handlers.stderr(chunk));
    stderr?.on("error", () => {});
    this.stderrDone = stderr
      ? new Promise((resolve) => {
        stderr.once("end", resolve);
        stderr.once("close", resolve);
      })
      : Promise.resolve();
  }

  /** The spawned process's id (sudo's, when started through sudo). */
  get pid(): number {
    return this.#cp.pid ?? 0;
  }

  /**
   * Writes `data` to the daemon's stdin: a frame, or the parts of one, in
   * order, as one write (only when {@linkcode writesParts}: the bytes are
   * taken before this returns). `done` runs once it is written (the buffer
   * may be reused then) or failed.
   */
  write(
    data: Uint8Array | Uint8Array[],
    done: (error?: Error | null) => void,
  ): void {
    const stdin = this.#stdin;
    // Never started: spawnFailed says why, once node:child_process knows.
    if (!stdin) return done();
    if (stdin.destroyed || stdin.writableEnded) {
      done(new Error("the daemon's stdin is closed"));
      return;
    }
    if (this.#direct) {
      this.#directWrite(this.#direct, data, done);
      return;
    }
    if (Array.isArray(data)) {
      throw new TypeError(
        "frame parts need a direct write (writesParts); copy them into one frame",
      );
    }
    stdin.write(data, done);
  }

  /**
   * Whether {@linkcode write} takes a frame's parts, handing them over at
   * once (Deno copies them then). Without it, a caller must copy the parts
   * into one frame.
   */
  get writesParts(): boolean {
    return this.#direct !== undefined;
  }

  /**
   * Hands `data` to the pipe's handle, without node:stream's Writable: the
   * kernel takes what fits now, Deno copies the rest and writes it from its
   * event loop, in the order writes were made. `done` runs in a microtask when
   * all of it went now, else when Deno has written it.
   */
  #directWrite(
    direct: DirectWriter,
    data: Uint8Array | Uint8Array[],
    done: (error?: Error | null) => void,
  ): void {
    // The handle calls req.oncomplete() as a method: one function for
    // every write, no closure per write.
    const req: WriteReq = { oncomplete: writeCompleted, done };
    const status = Array.isArray(data)
      ? direct.handle.writev(req, data, true)
      : direct.handle.writeBuffer(req, data);
    if (status < 0) {
      // Not synchronously: the caller's bookkeeping of this write is done
      // only once write() returns.
      const error = writeError(status);
      queueMicrotask(() => done(error));
    } else if (direct.state[direct.kLastWriteWasAsync] === 0) {
      // Written, but reported after the code that made this write has run,
      // as node:stream reports it: frames sent meanwhile (calls made
      // together, in one tick) wait in the caller's outbox and go out as one
      // write. Reported at once, each would be a write of its own, and a
      // daemon sharing the CPU would wake up, and finish, for each in turn.
      queueMicrotask(done);
    }
  }

  /**
   * Closes the daemon's stdin after what was written: it reads EOF. The
   * handle shuts the pipe down after its pending writes, direct ones
   * included, as libuv's uv_shutdown() does (_child_test.ts checks).
   */
  endInput(): void {
    this.#stdin?.end();
  }

  /** Closes the daemon's stdin at once, dropping what was not written. */
  abortInput(): void {
    this.#stdin?.destroy();
  }

  /**
   * Closes the caller's end of stdout: a daemon blocked writing a large
   * reply fails with EPIPE and leaves.
   */
  closeOutput(): void {
    this.#stdout?.destroy();
  }

  /** Sends `signal` to the process (sudo relays it to the daemon). */
  kill(signal: "SIGTERM" | "SIGKILL"): void {
    if (this.#gone) return;
    // Through the ChildProcess, not by pid: it knows whether the process has
    // been reaped, so a pid the system gave to another process since is
    // never signalled. Deno's kill() sends one signal only (it sets
    // `killed`): cleared, so that a SIGKILL after an ignored SIGTERM goes.
    // It also records the signal as the one the process died of, which would
    // hide how it really ended (a daemon that handles SIGTERM and exits): the
    // exit event then reports the truth.
    const cp = this.#cp as { killed: boolean; signalCode: string | null };
    cp.killed = false;
    try {
      this.#cp.kill(signal);
    } catch { /* exited meanwhile */ }
    cp.signalCode = null;
  }

  /**
   * The process and its pipes do not keep the caller's event loop alive
   * (DaemonClient keeps it alive while calls are in flight).
   */
  unref(): void {
    if (this.#cp.pid !== undefined) this.#cp.unref();
    this.#stdout?.unref();
    this.#stderr?.unref();
  }
}

/**
 * A socket over `stdout`'s pipe that reads into one reused buffer and hands
 * each read to `data`. It takes over the pipe's handle (node:net's `onread`
 * option, as the daemon reads its stdin): a child_process pipe would
 * allocate a new 64 KiB buffer for every read, which a large reply pays in
 * page faults. Where the handle cannot take a buffer, the pipe's own
 * `data` events.
 */
function readInto(
  stdout: Socket,
  data: (chunk: Uint8Array, n?: number) => void,
  takeOver: boolean,
): Socket {
  const handle = (stdout as unknown as { _handle?: StreamHandle })._handle;
  if (takeOver && handle && typeof handle.useUserBuffer === "function") {
    try {
      const socket = new Socket(
        {
          handle,
          readable: true,
          writable: false,
          onread: {
            buffer: new Uint8Array(READ_CHUNK),
            callback: (n: number, buf: Uint8Array) => {
              // The reused buffer and the count read: no view per read.
              data(buf, n);
            },
          },
        } as ConstructorParameters<typeof Socket>[0],
      );
      // The pipe's first socket lets go of the handle and closes: the
      // ChildProcess then sees all its pipes closed, and keeps nothing alive.
      (stdout as unknown as { _handle: unknown })._handle = null;
      stdout.destroy();
      return socket;
    } catch { /* the fallback below */ }
  }
  stdout.on("data", (chunk: Uint8Array) => data(chunk));
  return stdout;
}

/**
 * The stdin pipe's handle, written without node:stream, and Deno's stream
 * state, which says whether the last write finished at once. Node's own
 * net.Socket writes this way (lib/internal/stream_base_commons.js); Deno 2.9
 * implements the same handle. Where any of it is missing, the Writable.
 */
interface DirectWriter {
  handle: {
    writeBuffer(req: WriteReq, data: Uint8Array): number;
    writev(req: WriteReq, data: Uint8Array[], allBuffers: true): number;
  };
  state: Int32Array;
  kLastWriteWasAsync: number;
}

type WriteReq = {
  oncomplete(this: WriteReq, status: number): void;
  done: (error?: Error | null) => void;
};

/** A direct write's completion, reported by the pipe's handle. */
function writeCompleted(this: WriteReq, status: number): void {
  this.done(status < 0 ? writeError(status) : null);
}

function directWriter(stdin: Socket): DirectWriter | undefined {
  try {
    const handle = (stdin as unknown as { _handle?: DirectWriter["handle"] })
      ._handle;
    const binding = (process as unknown as {
      binding(name: string): {
        streamBaseState?: unknown;
        kLastWriteWasAsync?: unknown;
      };
    }).binding("stream_wrap");
    const { streamBaseState: state, kLastWriteWasAsync } = binding;
    if (
      handle && typeof handle.writeBuffer === "function" &&
      typeof handle.writev === "function" &&
      state instanceof Int32Array && typeof kLastWriteWasAsync === "number"
    ) {
      return { handle, state, kLastWriteWasAsync };
    }
  } catch { /* the Writable */ }
  return undefined;
}

/** An error for a failed write's status (a negative errno, as in libuv). */
function writeError(status: number): Error {
  let code = "EIO";
  try {
    code = getSystemErrorName(status);
  } catch { /* not an errno */ }
  return Object.assign(new Error(`writing to the daemon failed: ${code}`), {
    code,
  });
}
