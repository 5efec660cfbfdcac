/**
 * The msgpack encoder: a small implementation of exactly the subset the
 * protocol uses (see `protocol/PROTOCOL.md`, "Frames").
 *
 * It encodes `null`, booleans, numbers, 64-bit bigints, strings,
 * `Uint8Array`, arrays, plain objects, `Date` (the timestamp extension) and
 * `undefined` (msgpackr's fixext `d4 00 00`); anything else throws a
 * `TypeError` that names the type and where it sits in the value.
 *
 * @module
 */

import { carve, SLAB_MAX_BYTES } from "./_slab.ts";
import { ProtocolError } from "../errors.ts";
import { checkMaxFrameBytes, FRAME_HEADER_BYTES } from "./frame.ts";
import { ownFrame } from "./_release.ts";
import { KEY_BYTES_LIMIT, MAX_DEPTH, POW32 } from "./_codec_common.ts";
import {
  article,
  longKey,
  protoKey,
  TooBig,
  tooDeep,
  toTypeError,
  typeName,
  Unencodable,
  unencodableObject,
} from "./_encode_error.ts";

const keyEncoder = new TextEncoder();

/** Refuses a map key longer than the other side accepts (a rare, long key). */
function checkKeyLength(key: string): void {
  const bytes = keyEncoder.encode(key).length;
  if (bytes > KEY_BYTES_LIMIT) throw longKey(bytes);
}

/** Size of the encoder's scratch buffer when it is (re)created. */
const SCRATCH_BYTES = 8192;
/** A scratch buffer grown beyond this is dropped after the call. */
const KEEP_SCRATCH_BYTES = 1 << 20;
/**
 * `Uint8Array`s at least this long are not copied into the scratch buffer:
 * they are copied once, straight into the result.
 */
const DEFER_BIN_BYTES = 8192;
const U64_MAX = 0xffff_ffff_ffff_ffffn;
const I64_MIN = -0x8000_0000_0000_0000n;

const textEncoder = new TextEncoder();

// A Uint8Array's bytes as the typed-array internals see them, which is what
// the pipe's handle and TypedArray.prototype.set() read: a subclass may
// override `length`, `buffer` or `byteOffset`, and a frame's header must
// count exactly the bytes written after it.
const typedArrayProto = Object.getPrototypeOf(Uint8Array.prototype);
const intrinsic = (name: string) =>
  Object.getOwnPropertyDescriptor(typedArrayProto, name)!.get!;
const lengthGetter = intrinsic("length");
const bufferGetter = intrinsic("buffer");
const byteOffsetGetter = intrinsic("byteOffset");
function lengthOf(v: Uint8Array): number {
  return lengthGetter.call(v);
}

class Encoder {
  buf: Uint8Array<ArrayBuffer>;
  view: DataView<ArrayBuffer>;
  pos = 0;
  /** Largest output allowed (header included). */
  limit = Infinity;
  /** Large `Uint8Array`s copied only when the output is assembled. */
  readonly chunks: Uint8Array[] = [];
  /** Where each chunk goes, as a position in `buf`. */
  readonly chunkAt: number[] = [];
  /** The length of each chunk when it was seen. */
  readonly chunkLength: number[] = [];
  /** Total length of `chunks`. */
  deferred = 0;
  busy = false;

  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }

  /**
   * Encodes `value` after `header` reserved bytes; returns the output. With
   * `split`, an output whose large `Uint8Array`s add up to
   * {@linkcode PARTS_MIN_BYTES} or more comes back as its parts, uncopied.
   */
  run(
    value: unknown,
    header: number,
    limit: number,
    split = false,
  ): Uint8Array | FrameParts {
    this.busy = true;
    this.pos = header;
    this.limit = limit;
    try {
      this.value(value, 0);
      const total = this.pos + this.deferred;
      if (total > limit) throw new TooBig(total, true);
      if (header !== 0) {
        const n = total - header;
        const buf = this.buf;
        buf[0] = n >>> 24;
        buf[1] = (n >>> 16) & 0xff;
        buf[2] = (n >>> 8) & 0xff;
        buf[3] = n & 0xff;
      }
      return this.chunks.length === 0
        ? copyOut(this.buf, this.pos)
        : split && this.deferred >= PARTS_MIN_BYTES
        ? this.split()
        : ownFrame(this.assemble());
    } finally {
      this.pos = 0;
      // Only when needed: storing an array's length costs tens of
      // nanoseconds, even when it is 0 already.
      if (this.chunks.length !== 0) {
        this.deferred = 0;
        this.chunks.length = 0;
        this.chunkAt.length = 0;
        this.chunkLength.length = 0;
      }
      if (this.buf.length > KEEP_SCRATCH_BYTES) {
        this.buf = new Uint8Array(SCRATCH_BYTES);
        this.view = new DataView(this.buf.buffer);
      }
      this.busy = false;
    }
  }

  /** Interleaves the scratch buffer with the deferred chunks. */
  assemble(): Uint8Array {
    const out = new Uint8Array(this.pos + this.deferred);
    let from = 0;
    let to = 0;
    for (let k = 0; k < this.chunks.length; k++) {
      const at = this.chunkAt[k];
      out.set(this.buf.subarray(from, at), to);
      to += at - from;
      from = at;
      const chunk = this.chunk(k);
      out.set(chunk, to);
      to += chunk.length;
    }
    out.set(this.buf.subarray(from, this.pos), to);
    return out;
  }

  /**
   * The output as parts: copies of the scratch buffer's pieces between the
   * deferred chunks, and the chunks themselves.
   */
  split(): FrameParts {
    const parts: Uint8Array[] = [];
    let from = 0;
    for (let k = 0; k < this.chunks.length; k++) {
      const at = this.chunkAt[k];
      if (at > from) parts.push(this.buf.slice(from, at));
      from = at;
      parts.push(this.chunk(k));
    }
    if (this.pos > from) parts.push(this.buf.slice(from, this.pos));
    return new FrameParts(parts, this.pos + this.deferred);
  }

  /**
   * Deferred chunk `k` as a view of exactly the bytes counted when it was
   * seen: one that tracks a growable SharedArrayBuffer could grow (another
   * thread) before it is copied or written. A chunk that shrank throws.
   */
  chunk(k: number): Uint8Array {
    const chunk = this.chunks[k];
    const n = this.chunkLength[k];
    const now = lengthOf(chunk);
    if (now !== n) {
      throw new TypeError(
        `cannot encode a Uint8Array whose length changed during encoding (from ${n} to ${now} bytes)`,
      );
    }
    return new Uint8Array(
      bufferGetter.call(chunk),
      byteOffsetGetter.call(chunk),
      n,
    );
  }

  /** Makes room for `n` more bytes. */
  grow(n: number): void {
    if (this.pos + this.deferred > this.limit) {
      throw new TooBig(this.pos + this.deferred);
    }
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  value(v: unknown, depth: number): void {
    switch (typeof v) {
      case "string":
        this.str(v);
        return;
      case "number":
        this.num(v);
        return;
      case "object":
        if (v === null) {
          if (this.pos + 1 > this.buf.length) this.grow(1);
          this.buf[this.pos++] = 0xc0;
        } else {
          this.obj(v, depth);
        }
        return;
      case "boolean":
        if (this.pos + 1 > this.buf.length) this.grow(1);
        this.buf[this.pos++] = v ? 0xc3 : 0xc2;
        return;
      case "undefined": {
        if (this.pos + 3 > this.buf.length) this.grow(3);
        const buf = this.buf;
        buf[this.pos] = 0xd4;
        buf[this.pos + 1] = 0;
        buf[this.pos + 2] = 0;
        this.pos += 3;
        return;
      }
      case "bigint":
        this.bigint(v);
        return;
      case "function":
        throw new Unencodable(
          `a function${v.name ? ` (${v.name})` : ""}`,
          "functions cannot be sent; send data and decide on the other side what to run",
        );
      default:
        throw new Unencodable(
          `a ${typeof v}`,
          "send a string or number instead",
        );
    }
  }

  num(v: number): void {
    if (this.pos + 9 > this.buf.length) this.grow(9);
    const buf = this.buf;
    let pos = this.pos;
    if (Number.isSafeInteger(v) && (v !== 0 || 1 / v > 0)) {
      if (v >= 0) {
        if (v < 0x80) {
          buf[pos++] = v;
        } else if (v < 0x100) {
          buf[pos++] = 0xcc;
          buf[pos++] = v;
        } else if (v < 0x10000) {
          buf[pos++] = 0xcd;
          buf[pos++] = v >>> 8;
          buf[pos++] = v & 0xff;
        } else if (v < POW32) {
          buf[pos++] = 0xce;
          buf[pos++] = v >>> 24;
          buf[pos++] = (v >>> 16) & 0xff;
          buf[pos++] = (v >>> 8) & 0xff;
          buf[pos++] = v & 0xff;
        } else {
          buf[pos++] = 0xcf;
          pos = put64(buf, pos, Math.floor(v / POW32), v >>> 0);
        }
      } else if (v >= -0x20) {
        buf[pos++] = v & 0xff;
      } else if (v >= -0x80) {
        buf[pos++] = 0xd0;
        buf[pos++] = v & 0xff;
      } else if (v >= -0x8000) {
        buf[pos++] = 0xd1;
        buf[pos++] = (v >> 8) & 0xff;
        buf[pos++] = v & 0xff;
      } else if (v >= -0x8000_0000) {
        buf[pos++] = 0xd2;
        buf[pos++] = (v >> 24) & 0xff;
        buf[pos++] = (v >> 16) & 0xff;
        buf[pos++] = (v >> 8) & 0xff;
        buf[pos++] = v & 0xff;
      } else {
        buf[pos++] = 0xd3;
        pos = put64(buf, pos, Math.floor(v / POW32), v >>> 0);
      }
    } else {
      // Fractions, NaN, ±Infinity, -0 and integers beyond 2^53.
      buf[pos++] = 0xcb;
      this.view.setFloat64(pos, v);
      pos += 8;
    }
    this.pos = pos;
  }

  bigint(v: bigint): void {
    if (v > U64_MAX || v < I64_MIN) {
      throw new Unencodable(
        `the bigint ${v}`,
        "bigints must fit in 64 bits (int64 or uint64); send larger ones as strings",
      );
    }
    if (this.pos + 9 > this.buf.length) this.grow(9);
    if (v >= 0n) {
      this.buf[this.pos] = 0xcf;
      this.view.setBigUint64(this.pos + 1, v);
    } else {
      this.buf[this.pos] = 0xd3;
      this.view.setBigInt64(this.pos + 1, v);
    }
    this.pos += 9;
  }

  str(s: string): void {
    const n = s.length;
    if (n > 4096 && this.pos + this.deferred + n > this.limit) {
      // At least one byte per UTF-16 unit: no need to encode it to know.
      throw new TooBig(this.pos + this.deferred + n);
    }
    // The header is chosen for n bytes (ASCII); UTF-8 needs at most 3n.
    const max = 5 + 3 * n;
    if (this.pos + max > this.buf.length) this.grow(max);
    const buf = this.buf;
    const pos = this.pos;
    const header = n < 0x20 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
    let written = -1;
    if (n < 32) {
      // Short ASCII by hand: cheaper than a call to encodeInto.
      const start = pos + header;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[start + i] = c;
      }
      if (i === n) written = n;
    }
    if (written < 0) {
      written = textEncoder.encodeInto(s, buf.subarray(pos + header)).written;
      const needed = written < 0x20
        ? 1
        : written < 0x100
        ? 2
        : written < 0x10000
        ? 3
        : 5;
      if (needed !== header) {
        buf.copyWithin(pos + needed, pos + header, pos + header + written);
      }
      this.pos = putStrHeader(buf, pos, written, needed) + written;
      return;
    }
    this.pos = putStrHeader(buf, pos, written, header) + written;
  }

  obj(v: object, depth: number): void {
    if (Array.isArray(v)) {
      this.array(v, depth);
      return;
    }
    const proto = Object.getPrototypeOf(v);
    if (proto === null || proto === Object.prototype) {
      if (proto === null || objectPrototypeIsClean()) {
        this.map(v as Record<string, unknown>, depth);
      } else {
        this.mapOfKeys(v as Record<string, unknown>, depth);
      }
    } else if (ArrayBuffer.isView(v)) {
      if (!(v instanceof Uint8Array)) {
        const name = typeName(v);
        throw new Unencodable(
          article(name),
          `binary data must be a Uint8Array: pass new Uint8Array(x.buffer, x.byteOffset, x.byteLength)`,
        );
      }
      this.bin(v);
    } else if (v instanceof Date) {
      this.date(v);
    } else {
      throw unencodableObject(v);
    }
  }

  array(v: unknown[], depth: number): void {
    if (depth >= MAX_DEPTH) throw tooDeep(v);
    const n = v.length;
    if (this.pos + 5 > this.buf.length) this.grow(5);
    const buf = this.buf;
    if (n < 0x10) {
      buf[this.pos++] = 0x90 | n;
    } else if (n < 0x10000) {
      buf[this.pos] = 0xdc;
      buf[this.pos + 1] = n >>> 8;
      buf[this.pos + 2] = n & 0xff;
      this.pos += 3;
    } else {
      buf[this.pos] = 0xdd;
      put32(buf, this.pos + 1, n);
      this.pos += 5;
    }
    let i = 0;
    try {
      for (; i < n; i++) this.value(v[i], depth + 1);
    } catch (error) {
      if (error instanceof Unencodable) {
        error.path.push(i);
        error.containers.push(v);
      }
      throw error;
    }
  }

  /**
   * A plain object whose prototype adds no enumerable keys, so `for in`
   * yields exactly its own enumerable string keys (V8 then reads the values
   * through its enum cache, far faster than `Object.keys` and `v[key]`).
   * The count is only known at the end: one byte is reserved, enough for a
   * fixmap, and the entries move up for a map 16 or 32.
   */
  map(v: Record<string, unknown>, depth: number): void {
    if (depth >= MAX_DEPTH) throw tooDeep(v);
    if (this.pos + 1 > this.buf.length) this.grow(1);
    const at = this.pos++;
    const firstChunk = this.chunks.length;
    let n = 0;
    let key = "";
    try {
      for (const k in v) {
        key = k;
        if (k === "__proto__") throw protoKey();
        if (k.length > KEY_BYTES_LIMIT / 3) checkKeyLength(k);
        this.str(k);
        this.value(v[k], depth + 1);
        n++;
      }
    } catch (error) {
      if (error instanceof Unencodable) {
        // The __proto__ key itself is not part of the path.
        if (error.path.length > 0 || key !== "__proto__") error.path.push(key);
        error.containers.push(v);
      }
      throw error;
    }
    if (n < 0x10) {
      this.buf[at] = 0x80 | n;
      return;
    }
    const shift = n < 0x10000 ? 2 : 4;
    if (this.pos + shift > this.buf.length) this.grow(shift);
    const buf = this.buf;
    buf.copyWithin(at + 1 + shift, at + 1, this.pos);
    this.pos += shift;
    for (let k = firstChunk; k < this.chunks.length; k++) {
      this.chunkAt[k] += shift;
    }
    if (shift === 2) {
      buf[at] = 0xde;
      buf[at + 1] = n >>> 8;
      buf[at + 2] = n & 0xff;
    } else {
      buf[at] = 0xdf;
      put32(buf, at + 1, n);
    }
  }

  /** A plain object, while `Object.prototype` has enumerable keys. */
  mapOfKeys(v: Record<string, unknown>, depth: number): void {
    if (depth >= MAX_DEPTH) throw tooDeep(v);
    const keys = Object.keys(v);
    const n = keys.length;
    if (this.pos + 5 > this.buf.length) this.grow(5);
    const buf = this.buf;
    if (n < 0x10) {
      buf[this.pos++] = 0x80 | n;
    } else if (n < 0x10000) {
      buf[this.pos] = 0xde;
      buf[this.pos + 1] = n >>> 8;
      buf[this.pos + 2] = n & 0xff;
      this.pos += 3;
    } else {
      buf[this.pos] = 0xdf;
      put32(buf, this.pos + 1, n);
      this.pos += 5;
    }
    let i = 0;
    try {
      for (; i < n; i++) {
        const key = keys[i];
        if (key === "__proto__") throw protoKey();
        if (key.length > KEY_BYTES_LIMIT / 3) checkKeyLength(key);
        this.str(key);
        this.value(v[key], depth + 1);
      }
    } catch (error) {
      if (error instanceof Unencodable) {
        // The __proto__ key itself is not part of the path.
        if (error.path.length > 0 || keys[i] !== "__proto__") {
          error.path.push(keys[i]);
        }
        error.containers.push(v);
      }
      throw error;
    }
  }

  bin(v: Uint8Array): void {
    const n = lengthOf(v);
    if (n > 0xffff_ffff) {
      throw new Unencodable(
        `a Uint8Array of ${n} bytes`,
        "msgpack carries at most 4 GiB - 1 per bin",
      );
    }
    if (this.pos + 5 > this.buf.length) this.grow(5);
    const buf = this.buf;
    if (n < 0x100) {
      buf[this.pos] = 0xc4;
      buf[this.pos + 1] = n;
      this.pos += 2;
    } else if (n < 0x10000) {
      buf[this.pos] = 0xc5;
      buf[this.pos + 1] = n >>> 8;
      buf[this.pos + 2] = n & 0xff;
      this.pos += 3;
    } else {
      buf[this.pos] = 0xc6;
      put32(buf, this.pos + 1, n);
      this.pos += 5;
    }
    if (n >= DEFER_BIN_BYTES) {
      this.chunks.push(v);
      this.chunkAt.push(this.pos);
      this.chunkLength.push(n);
      this.deferred += n;
      if (this.pos + this.deferred > this.limit) {
        throw new TooBig(this.pos + this.deferred);
      }
      return;
    }
    if (this.pos + n > this.buf.length) this.grow(n);
    this.buf.set(v, this.pos);
    this.pos += n;
  }

  date(v: Date): void {
    const ms = v.getTime();
    if (Number.isNaN(ms)) {
      throw new Unencodable("an invalid Date", "send a valid Date or null");
    }
    const sec = Math.floor(ms / 1000);
    const nsec = (ms - sec * 1000) * 1_000_000;
    if (this.pos + 15 > this.buf.length) this.grow(15);
    const buf = this.buf;
    let pos = this.pos;
    if (nsec === 0 && sec >= 0 && sec < POW32) {
      // timestamp 32: fixext 4, type -1, u32 seconds.
      buf[pos++] = 0xd6;
      buf[pos++] = 0xff;
      pos = put32(buf, pos, sec);
    } else if (sec >= 0 && sec < 4 * POW32) {
      // timestamp 64: fixext 8, type -1, u30 nanoseconds and u34 seconds.
      buf[pos++] = 0xd7;
      buf[pos++] = 0xff;
      pos = put64(buf, pos, nsec * 4 + Math.floor(sec / POW32), sec >>> 0);
    } else {
      // timestamp 96: ext 8 of 12 bytes, type -1, u32 ns, i64 seconds.
      buf[pos++] = 0xc7;
      buf[pos++] = 12;
      buf[pos++] = 0xff;
      pos = put32(buf, pos, nsec);
      pos = put64(buf, pos, Math.floor(sec / POW32), sec >>> 0);
    }
    this.pos = pos;
  }
}

/**
 * Copies the first `n` bytes of `buf` out: into a fresh buffer when large,
 * otherwise carved out of the shared slab (_slab.ts).
 */
function copyOut(buf: Uint8Array<ArrayBuffer>, n: number): Uint8Array {
  if (n > SLAB_MAX_BYTES) return ownFrame(buf.slice(0, n));
  return carve(buf, 0, n);
}

function put32(buf: Uint8Array, pos: number, v: number): number {
  buf[pos] = v >>> 24;
  buf[pos + 1] = (v >>> 16) & 0xff;
  buf[pos + 2] = (v >>> 8) & 0xff;
  buf[pos + 3] = v & 0xff;
  return pos + 4;
}

/** Writes `hi * 2^32 + lo` (hi may be negative: two's complement). */
function put64(buf: Uint8Array, pos: number, hi: number, lo: number): number {
  buf[pos] = (hi >> 24) & 0xff;
  buf[pos + 1] = (hi >> 16) & 0xff;
  buf[pos + 2] = (hi >> 8) & 0xff;
  buf[pos + 3] = hi & 0xff;
  return put32(buf, pos + 4, lo);
}

function putStrHeader(
  buf: Uint8Array,
  pos: number,
  n: number,
  header: number,
): number {
  if (header === 1) {
    buf[pos] = 0xa0 | n;
  } else if (header === 2) {
    buf[pos] = 0xd9;
    buf[pos + 1] = n;
  } else if (header === 3) {
    buf[pos] = 0xda;
    buf[pos + 1] = n >>> 8;
    buf[pos + 2] = n & 0xff;
  } else {
    buf[pos] = 0xdb;
    put32(buf, pos + 1, n);
  }
  return pos + header;
}

/** Whether `for in` over a plain object yields only its own keys. */
function objectPrototypeIsClean(): boolean {
  for (const _ in Object.prototype) return false;
  return true;
}

const shared = new Encoder(SCRATCH_BYTES);

function encode(
  value: unknown,
  header: number,
  limit: number,
  fields: string | undefined,
): Uint8Array;
function encode(
  value: unknown,
  header: number,
  limit: number,
  fields: string | undefined,
  split: true,
): Uint8Array | FrameParts;
function encode(
  value: unknown,
  header: number,
  limit: number,
  fields: string | undefined,
  split = false,
): Uint8Array | FrameParts {
  // A getter (or a proxy) may encode while we encode: give it its own buffer.
  const encoder = shared.busy ? new Encoder(256) : shared;
  try {
    return encoder.run(value, header, limit, split);
  } catch (error) {
    if (error instanceof Unencodable) throw toTypeError(error, fields);
    if (error instanceof TooBig) {
      const max = limit - header;
      throw new ProtocolError(
        `message of ${error.exact ? "" : "at least "}${
          error.bytes - header
        } bytes exceeds maxFrameBytes ${max}; send less data per call or raise maxFrameBytes on both sides`,
      );
    }
    throw error;
  }
}

/**
 * Encodes one value as msgpack. Values that msgpack cannot carry (functions,
 * symbols, `Map`, `Set`, class instances, errors, typed arrays other than
 * `Uint8Array`, bigints beyond 64 bits, cycles, nesting deeper than 512)
 * throw a `TypeError` that says what and where.
 *
 * The result is exactly the encoding, but a small one (up to 1 KiB) is a
 * view into an `ArrayBuffer` shared with other results (each result's bytes
 * are its own and never rewritten): use it through its `byteOffset` and
 * `length`, not through `.buffer`.
 *
 * @example
 * ```ts
 * import { encodeValue } from "@privsep/privsep/protocol";
 * encodeValue([1, "a"]); // Uint8Array [0x92, 0x01, 0xa1, 0x61]
 * ```
 */
export function encodeValue(value: unknown): Uint8Array {
  return encode(value, 0, Infinity, undefined);
}

/**
 * Encodes one value as a complete frame: the body's length as a u32
 * big-endian integer, then the msgpack body, in one buffer (no extra copy).
 * A body above `maxFrameBytes` throws {@linkcode ProtocolError}, as soon as
 * the encoder gets past the limit; unencodable values throw like
 * {@linkcode encodeValue}, and a small frame shares its `ArrayBuffer` as
 * there. `fields`, space-separated names for the elements of a top-level
 * array, only make error messages read `args[1]` rather than `value[3][1]`.
 *
 * @example
 * ```ts
 * import { encodeFramed } from "@privsep/privsep/protocol";
 * encodeFramed([2, 1, "hi"], 1024); // Uint8Array [0, 0, 0, 6, 0x93, 2, 1, 0xa2, 0x68, 0x69]
 * ```
 */
export function encodeFramed(
  value: unknown,
  maxFrameBytes: number,
  fields?: string,
): Uint8Array {
  checkMaxFrameBytes(maxFrameBytes);
  return encode(
    value,
    FRAME_HEADER_BYTES,
    FRAME_HEADER_BYTES + maxFrameBytes,
    fields,
  );
}

/**
 * Large `Uint8Array`s (together at least this many bytes) that a frame may
 * carry as they are, as {@linkcode FrameParts}.
 */
export const PARTS_MIN_BYTES = 64 * 1024;

/**
 * A frame whose large `Uint8Array`s were not copied: written one part after
 * the other, the parts are the frame. The parts are views of the caller's
 * own buffers: write them before the caller's code runs again (the bytes
 * must be the ones the call was made with), or copy them with
 * {@linkcode assembleParts}. Private to privsep (not exported by the
 * protocol module).
 */
export class FrameParts {
  /**
   * @param parts The frame's bytes, in order.
   * @param length Their total length.
   */
  constructor(readonly parts: Uint8Array[], readonly length: number) {}
}

/**
 * Like {@linkcode encodeFramed}, but a frame whose large `Uint8Array`s add up
 * to {@linkcode PARTS_MIN_BYTES} or more comes back as {@linkcode FrameParts}
 * instead of being copied into one buffer. Private to privsep.
 */
export function encodeFramedParts(
  value: unknown,
  maxFrameBytes: number,
  fields?: string,
): Uint8Array | FrameParts {
  checkMaxFrameBytes(maxFrameBytes);
  return encode(
    value,
    FRAME_HEADER_BYTES,
    FRAME_HEADER_BYTES + maxFrameBytes,
    fields,
    true,
  );
}

/**
 * Copies the parts of a frame into one buffer, which releaseFrame() may free
 * once written. A part whose length changed since it was encoded (its buffer
 * was transferred or resized) throws `TypeError`.
 */
export function assembleParts(frame: FrameParts): Uint8Array {
  let total = 0;
  for (const part of frame.parts) total += part.length;
  if (total !== frame.length) {
    throw new TypeError(
      `cannot send a Uint8Array whose length changed after the call was made (its parts now have ${total} of the frame's ${frame.length} bytes)`,
    );
  }
  const out = new Uint8Array(total);
  let to = 0;
  for (const part of frame.parts) {
    out.set(part, to);
    to += part.length;
  }
  return ownFrame(out);
}
