// The daemon's way out: every frame it sends goes through one Outbox, which
// writes small frames at once and batches whatever piles up during a write.

import { concatFrames, padFrames } from "../protocol/frame.ts";
import { releaseFrame } from "../protocol/_release.ts";
import { assembleParts, FrameParts } from "../protocol/_parts.ts";

/** Frames up to this size are written synchronously when nothing is queued. */
export const SYNC_WRITE_MAX = 16 * 1024;

/** Where an Outbox writes: the daemon's stdout (tests pass their own). */
export interface FrameWriter {
  /** Writes some of `data` now, blocking; the count written. */
  writeSync(data: Uint8Array): number;
  /** Writes some of `data`; the count written. */
  write(data: Uint8Array): Promise<number>;
}

/** Writes frames to stdout, batching whatever piles up during a write. */
export class Outbox {
  #queue: Uint8Array[] = [];
  #queued = 0;
  /** Bytes ever queued for an asynchronous write, and of those written. */
  #queuedTotal = 0;
  #writtenTotal = 0;
  #writing = false;
  #drained: (() => void)[] = [];
  /** Small frames held by cork(), to go out as one write (undefined: not corked). */
  #held: Uint8Array[] | undefined;
  #heldBytes = 0;
  readonly #out: FrameWriter;
  /** Called when the caller is gone (a write failed). */
  onGone: () => void = () => Deno.exit(0);

  constructor(out: FrameWriter = Deno.stdout) {
    this.#out = out;
  }

  /** Bytes accepted but not yet written. */
  get pending(): number {
    return this.#queued;
  }

  /** Whether nothing waits to be written (or is held by cork()). */
  get idle(): boolean {
    return !this.busy && this.#heldBytes === 0;
  }

  /** Whether cork() holds frames now. */
  get corked(): boolean {
    return this.#held !== undefined;
  }

  /**
   * Holds small frames from now on, until sendHeld() or uncork(): the
   * replies of calls read together go out in one write and wake the caller
   * once. At most {@linkcode SYNC_WRITE_MAX} bytes are held, so that what
   * is held goes out as any small frame does: at once, with a blocking
   * write, when nothing is queued (a caller that does not read stops the
   * daemon there). A large frame sends what is held first; holding goes on
   * after it. The session decides how long a frame may be held
   * (_session.ts, #dispatchTogether).
   */
  cork(): void {
    this.#held ??= [];
  }

  /** Sends what cork() holds, in order, as one write; goes on holding. */
  sendHeld(): void {
    const held = this.#held;
    if (held === undefined || held.length === 0) return;
    this.#held = [];
    this.#heldBytes = 0;
    this.#send(held.length === 1 ? held[0] : concatFrames(held), false);
  }

  /** Sends what cork() holds and stops holding. */
  uncork(): void {
    this.sendHeld();
    this.#held = undefined;
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
   * Between cork() and uncork(), small frames are held (see cork()).
   */
  send(frame: Uint8Array | FrameParts, alone = false): void {
    if (this.#sealed) return;
    if (this.#held !== undefined) {
      if (!(frame instanceof FrameParts) && frame.length <= SYNC_WRITE_MAX) {
        if (this.#heldBytes + frame.length > SYNC_WRITE_MAX) this.sendHeld();
        this.#held!.push(frame);
        this.#heldBytes += frame.length;
        return;
      }
      this.sendHeld();
    }
    this.#send(frame, alone);
  }

  #sealed = false;

  /**
   * Sends nothing more from now on (after a Fatal: the channel is broken,
   * and a call that returns while the daemon leaves must not answer after
   * it); what was queued before is still written.
   */
  seal(): void {
    this.#sealed = true;
  }

  /** send() without cork(). */
  #send(frame: Uint8Array | FrameParts, alone: boolean): void {
    if (frame instanceof FrameParts) {
      // A large result, uncopied (protocol/_parts.ts): written now, part by
      // part, while its bytes are still the entrypoint's result; copied into
      // one frame if it has to wait.
      if (this.idle && alone) {
        try {
          for (const part of frame.parts) this.#writeAllSync(part);
        } catch {
          this.onGone();
        }
        return;
      }
      frame = assembleParts(frame);
    }
    const large = frame.length > SYNC_WRITE_MAX;
    if (this.idle && (alone || !large)) {
      // A small frame is padded when it holds a newline byte, so that Deno's
      // line-buffered stdout sends it in one write instead of two (see
      // PADDING_FRAME); a large one is not copied for that.
      const data = large ? frame : padFrames(frame);
      try {
        this.#writeAllSync(data);
      } catch {
        this.onGone();
        return;
      }
      if (large) releaseFrame(data);
      return;
    }
    this.#queue.push(frame);
    this.#queued += frame.length;
    this.#queuedTotal += frame.length;
    if (!this.#writing) this.#flush();
  }

  /** Writes all of `data` now, blocking; throws if the caller is gone. */
  #writeAllSync(data: Uint8Array): void {
    // The whole frame usually goes at once: no view made for it.
    let off = this.#out.writeSync(data);
    while (off < data.length) off += this.#out.writeSync(data.subarray(off));
  }

  /**
   * The position after everything queued so far: writtenTo() of it resolves
   * once all of that has been written (frames queued later do not count).
   */
  get queuedTo(): number {
    return this.#queuedTotal;
  }

  /** Whether a write is in progress or frames are queued for one. */
  get busy(): boolean {
    return this.#writing || this.#queue.length > 0;
  }

  /** Whether what was queued up to `position` (queuedTo) has been written. */
  hasWritten(position: number): boolean {
    return this.#writtenTotal >= position;
  }

  /**
   * Resolves once what was queued up to `position` (queuedTo) has been
   * written; undefined when it already has.
   */
  writtenTo(position: number): Promise<void> | undefined {
    if (this.#writtenTotal >= position) return undefined;
    return (async () => {
      // Woken after each write, as below()'s waiters are.
      while (this.#writtenTotal < position) {
        await new Promise<void>((resolve) => this.#drained.push(resolve));
      }
    })();
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
          off += await this.#out.write(data.subarray(off));
        }
        this.#queued -= joined.length;
        this.#writtenTotal += joined.length;
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
