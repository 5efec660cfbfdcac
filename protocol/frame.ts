/**
 * Length-prefixed framing: every message on the wire is a 4-byte unsigned
 * big-endian length followed by that many bytes of msgpack.
 *
 * The decoder never allocates a buffer whose size comes off the wire before
 * checking it against a hard maximum, and it rejects empty frames.
 *
 * @module
 */

import { carve, SLAB_MAX_BYTES } from "./_slab.ts";
import { ProtocolError } from "../errors.ts";
import { ownFrame } from "./_release.ts";
import { EXACT_BODY_BYTES } from "./_body.ts";

/**
 * Size of the length prefix in bytes.
 *
 * @example
 * ```ts
 * import { encodeFrame, FRAME_HEADER_BYTES } from "@privsep/privsep/protocol";
 * import assert from "node:assert/strict";
 *
 * const frame = encodeFrame(new Uint8Array([0xc0]));
 * assert.equal(frame.length, FRAME_HEADER_BYTES + 1);
 * assert.deepEqual(frame.subarray(FRAME_HEADER_BYTES), new Uint8Array([0xc0]));
 * ```
 */
export const FRAME_HEADER_BYTES = 4;

/**
 * Default hard maximum for one frame's body: 16 MiB.
 *
 * @example
 * ```ts
 * import { DEFAULT_MAX_FRAME_BYTES, FrameDecoder } from "@privsep/privsep/protocol";
 * import { ProtocolError } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * assert.equal(DEFAULT_MAX_FRAME_BYTES, 16 * 1024 * 1024);
 * // a length prefix above the maximum is refused before any body arrives
 * const header = new Uint8Array(4);
 * new DataView(header.buffer).setUint32(0, DEFAULT_MAX_FRAME_BYTES + 1);
 * assert.throws(() => new FrameDecoder().push(header), ProtocolError);
 * ```
 */
export const DEFAULT_MAX_FRAME_BYTES: number = 16 * 1024 * 1024;

/** The largest value a u32 length prefix can carry. */
const U32_MAX = 0xffff_ffff;

/**
 * A padding frame: length 1, body the single byte `0x0a` (a newline). A
 * receiver drops it ({@linkcode FrameDecoder} never returns it); it can never
 * be a message, which is always a msgpack array. The daemon ends a write with
 * it when the write contains a newline byte elsewhere: Deno writes its stdout
 * through a line buffer that would otherwise split the write at its last
 * newline into two system calls, and wake the reader twice.
 *
 * @example
 * ```ts
 * import { FrameDecoder, PADDING_FRAME } from "./frame.ts"; // PADDING_FRAME is internal
 * new FrameDecoder().push(PADDING_FRAME); // []
 * ```
 */
export const PADDING_FRAME: Uint8Array = new Uint8Array([0, 0, 0, 1, 0x0a]);

/**
 * `data` followed by {@linkcode PADDING_FRAME} when `data` holds a newline
 * byte anywhere but at its end (otherwise `data` itself), so that a line
 * buffered write sends it in one system call.
 *
 * @example
 * ```ts
 * import { encodeFrame, padFrames } from "./frame.ts"; // internal
 * padFrames(encodeFrame(new Uint8Array([0x0a, 1]))).length; // 6 + 5
 * padFrames(encodeFrame(new Uint8Array([1, 2]))).length; // 6
 * ```
 */
export function padFrames(data: Uint8Array): Uint8Array {
  const last = data.lastIndexOf(0x0a);
  if (last === -1 || last === data.length - 1) return data;
  const out = new Uint8Array(data.length + PADDING_FRAME.length);
  out.set(data);
  out.set(PADDING_FRAME, data.length);
  return ownFrame(out);
}

/**
 * Checks a `maxFrameBytes` option and returns it.
 *
 * @example
 * ```ts
 * import { checkMaxFrameBytes } from "@privsep/privsep/protocol";
 * checkMaxFrameBytes(1024); // 1024
 * ```
 */
export function checkMaxFrameBytes(value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > U32_MAX) {
    throw new RangeError(
      `maxFrameBytes must be an integer from 1 to ${U32_MAX}, got ${value}`,
    );
  }
  return value;
}

/**
 * Prefixes `body` with its length as a u32 big-endian integer.
 *
 * @example
 * ```ts
 * import { encodeFrame } from "@privsep/privsep/protocol";
 * encodeFrame(new Uint8Array([0xc0])); // Uint8Array [0, 0, 0, 1, 0xc0]
 * ```
 */
export function encodeFrame(
  body: Uint8Array,
  maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES,
): Uint8Array {
  if (body.length === 0) throw new RangeError("a frame body cannot be empty");
  if (body.length > maxFrameBytes) {
    throw new ProtocolError(
      `message of ${body.length} bytes exceeds maxFrameBytes ${maxFrameBytes}; send less data per call or raise maxFrameBytes on both sides`,
    );
  }
  const out = new Uint8Array(FRAME_HEADER_BYTES + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Incremental frame decoder: feed it chunks as they arrive, get whole frame
 * bodies back (padding frames, one byte 0x0a, are dropped). Any
 * malformed input throws {@linkcode ProtocolError} and the decoder must then
 * be discarded (the channel is closed).
 *
 * @example
 * ```ts
 * import { encodeFrame, FrameDecoder } from "@privsep/privsep/protocol";
 * const decoder = new FrameDecoder();
 * const wire = encodeFrame(new Uint8Array([1, 2, 3]));
 * decoder.push(wire.subarray(0, 2)); // []
 * decoder.push(wire.subarray(2)); // [Uint8Array [1, 2, 3]]
 * ```
 */
export class FrameDecoder {
  readonly #max: number;
  /** The length prefix being read (a header may span chunks). */
  readonly #head = new Uint8Array(FRAME_HEADER_BYTES);
  #headLen = 0;
  /** The body being filled, its announced size, and how much has arrived. */
  #body: Uint8Array | undefined;
  #bodyLen = 0;
  #filled = 0;
  /** A view from bodyTail() awaits its commit(). */
  #tailOut = false;

  /** Creates a decoder that rejects frames larger than `maxFrameBytes`. */
  constructor(maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES) {
    this.#max = checkMaxFrameBytes(maxFrameBytes);
  }

  /** Bytes received but not yet returned as a frame. */
  get buffered(): number {
    return this.#body ? FRAME_HEADER_BYTES + this.#filled : this.#headLen;
  }

  /**
   * Appends the first `length` bytes of `chunk` (all of it by default: a
   * reused read buffer is passed with the count read, without a view) and
   * returns every complete frame body now available. A `length` that is not
   * a non-negative integer throws `RangeError`.
   * Throws `TypeError` while a view from `bodyTail()` awaits its `commit()`.
   * The returned bodies do not alias `chunk`, so the caller may reuse it;
   * bodies of up to 1 KiB are carved out of a buffer shared with other
   * messages (never written again), so hand out copies of their bytes, not
   * views of their `buffer`.
   * A body is allocated once at its announced size up to 4 MiB, and grows
   * as its bytes arrive beyond that; a body that arrives in one piece is
   * copied once.
   */
  push(chunk: Uint8Array, length: number = chunk.length): Uint8Array[] {
    if (this.#tailOut) {
      throw new TypeError(
        "push() while the view from bodyTail() is outstanding: commit(n) the bytes read into it first",
      );
    }
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new RangeError(
        `push() takes a length that is a non-negative integer, got ${length}`,
      );
    }
    // Made at the first frame, for exactly one (the common case): an empty
    // array would get room for 17 at its first push.
    let frames: Uint8Array[] | undefined;
    let pos = 0;
    const end = Math.min(length, chunk.length);
    while (pos < end) {
      if (this.#body === undefined && this.#headLen === FRAME_HEADER_BYTES) {
        this.#startBody();
      }
      if (this.#body !== undefined) {
        const take = Math.min(this.#bodyLen - this.#filled, end - pos);
        this.#reserve(this.#filled + take);
        this.#body.set(chunk.subarray(pos, pos + take), this.#filled);
        this.#filled += take;
        pos += take;
        if (this.#filled === this.#bodyLen) {
          const body = this.#body;
          if (!isPadding(body, this.#bodyLen)) {
            const frame = body.length === this.#bodyLen
              ? body
              : body.slice(0, this.#bodyLen);
            if (frames === undefined) frames = [frame];
            else frames.push(frame);
          }
          this.#body = undefined;
          this.#headLen = 0;
        }
        continue;
      }
      if (this.#headLen === 0 && end - pos >= FRAME_HEADER_BYTES) {
        // The common case: a whole header, maybe a whole frame, in the chunk.
        const n = this.#check(
          ((chunk[pos] << 24) >>> 0) + (chunk[pos + 1] << 16) +
            (chunk[pos + 2] << 8) + chunk[pos + 3],
        );
        pos += FRAME_HEADER_BYTES;
        if (end - pos >= n) {
          if (n !== 1 || chunk[pos] !== 0x0a) {
            // A copy, never a view of `chunk` (a Node Buffer's slice would
            // be one): a small one carved out of a shared slab (_slab.ts).
            const frame = n <= SLAB_MAX_BYTES
              ? carve(chunk, pos, n)
              : chunk.constructor === Uint8Array
              ? chunk.slice(pos, pos + n)
              : new Uint8Array(chunk.subarray(pos, pos + n));
            if (frames === undefined) frames = [frame];
            else frames.push(frame);
          }
          pos += n;
        } else {
          this.#headLen = FRAME_HEADER_BYTES;
          this.#bodyLen = n;
        }
        continue;
      }
      this.#head[this.#headLen++] = chunk[pos++];
      if (this.#headLen === FRAME_HEADER_BYTES) {
        const h = this.#head;
        this.#bodyLen = this.#check(
          ((h[0] << 24) >>> 0) + (h[1] << 16) + (h[2] << 8) + h[3],
        );
      }
    }
    return frames ?? [];
  }

  /**
   * The unfilled rest of a large body being received, to read into
   * directly instead of through `push()`, which copies; `undefined` when
   * no body is pending or fewer than `minBytes` of it are missing. After
   * reading `n` bytes into it, call `commit(n)`; nothing else may be pushed
   * in between.
   *
   * @example
   * ```ts
   * import { encodeFrame, FrameDecoder } from "@privsep/privsep/protocol";
   * import assert from "node:assert/strict";
   * const wire = encodeFrame(new Uint8Array(100_000).fill(7));
   * const decoder = new FrameDecoder();
   * decoder.push(wire.subarray(0, 10));
   * const tail = decoder.bodyTail()!;
   * tail.set(wire.subarray(10));
   * const [body] = decoder.commit(wire.length - 10);
   * assert.equal(body.length, 100_000);
   * ```
   */
  bodyTail(minBytes: number = 64 * 1024): Uint8Array | undefined {
    if (this.#body === undefined && this.#headLen === FRAME_HEADER_BYTES) {
      this.#startBody();
    }
    const body = this.#body;
    if (body === undefined || this.#bodyLen - this.#filled < minBytes) {
      return undefined;
    }
    if (this.#filled === body.length) this.#reserve(this.#filled + 1);
    this.#tailOut = true;
    return this.#body!.subarray(this.#filled, this.#bodyLen);
  }

  /**
   * Counts `n` bytes read into the view from `bodyTail()`, and returns the
   * body when it is complete (an empty list otherwise). A read that moved
   * the view's memory to a new `ArrayBuffer` (a BYOB stream read transfers
   * it) passes the view it returned as `moved`.
   *
   * @example
   * ```ts
   * import { FrameDecoder } from "@privsep/privsep/protocol";
   * const decoder = new FrameDecoder();
   * decoder.push(new Uint8Array([0, 1, 0, 0])); // announces 65536 bytes
   * decoder.bodyTail()!.fill(1);
   * decoder.commit(65536); // [Uint8Array(65536)]
   * ```
   */
  commit(n: number, moved?: Uint8Array): Uint8Array[] {
    let body = this.#body;
    if (body !== undefined && moved !== undefined) {
      if (
        body.length !== 0 || moved.byteOffset !== this.#filled ||
        moved.buffer.byteLength > this.#bodyLen
      ) {
        throw new RangeError(
          "commit(n, moved): moved must be the view a transferring read returned for the view of bodyTail()",
        );
      }
      body = this.#body = new Uint8Array(moved.buffer as ArrayBuffer);
    }
    if (
      body === undefined || !Number.isInteger(n) || n < 0 ||
      this.#filled + n > Math.min(body.length, this.#bodyLen)
    ) {
      throw new RangeError(
        `commit(${n}) does not match the view bodyTail() returned: call bodyTail() first and commit at most its length`,
      );
    }
    this.#tailOut = false;
    this.#filled += n;
    if (this.#filled < this.#bodyLen) return [];
    this.#body = undefined;
    this.#headLen = 0;
    return isPadding(body, this.#bodyLen) ? [] : [body];
  }

  #check(n: number): number {
    if (n === 0) throw new ProtocolError("received an empty frame");
    if (n > this.#max) {
      throw new ProtocolError(
        `received a frame of ${n} bytes, above maxFrameBytes ${this.#max}`,
      );
    }
    return n;
  }

  #startBody(): void {
    // A body up to 4 MiB is allocated at its announced size, once; a larger
    // one starts at 4 MiB and grows as its data arrives, so that a peer
    // cannot make the decoder reserve maxFrameBytes with a header alone.
    this.#body = new Uint8Array(Math.min(this.#bodyLen, EXACT_BODY_BYTES));
    this.#filled = 0;
  }

  #reserve(size: number): void {
    const body = this.#body!;
    if (size <= body.length) return;
    // Doubling: at most twice what has arrived is ever allocated.
    const next = new Uint8Array(
      Math.min(this.#bodyLen, Math.max(size, body.length * 2)),
    );
    next.set(body.subarray(0, this.#filled));
    this.#body = next;
  }
}

/** Whether a body of `length` bytes is that of {@linkcode PADDING_FRAME}. */
function isPadding(body: Uint8Array, length: number): boolean {
  return length === 1 && body[0] === 0x0a;
}

/**
 * Joins encoded frames into one buffer, so that a batch goes out in one write.
 *
 * @example
 * ```ts
 * import { concatFrames, encodeFrame } from "@privsep/privsep/protocol";
 * import assert from "node:assert/strict";
 * const a = encodeFrame(new Uint8Array([1]));
 * const b = encodeFrame(new Uint8Array([2]));
 * assert.equal(concatFrames([a, b]).length, a.length + b.length);
 * ```
 */
export function concatFrames(frames: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const f of frames) n += f.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const f of frames) {
    out.set(f, off);
    off += f.length;
  }
  return ownFrame(out);
}
