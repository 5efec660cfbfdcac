/**
 * The msgpack codec: a small implementation of exactly the subset the
 * protocol uses (see `protocol/PROTOCOL.md`, "Frames").
 *
 * It encodes `null`, booleans, numbers, 64-bit bigints, strings,
 * `Uint8Array`, arrays, plain objects, `Date` (the timestamp extension) and
 * `undefined` (msgpackr's fixext `d4 00 00`); anything else throws a
 * `TypeError` that names the type and where it sits in the value.
 *
 * Decoding checks every length against the bytes that remain before
 * allocating anything, accepts only the two extensions above (no class is
 * ever looked up or built from the wire), limits nesting to 512 arrays and
 * maps, rejects `__proto__` keys and non-string keys, and returns binary data
 * as fresh `Uint8Array`s that do not alias the input. Every decoding failure
 * is a {@linkcode ProtocolError} naming what is wrong and its byte offset.
 *
 * @module
 */

import { ProtocolError } from "../errors.ts";
import { checkMaxFrameBytes, FRAME_HEADER_BYTES } from "./frame.ts";
import { ownFrame } from "./_release.ts";
import {
  BIN_COST,
  CONS_STRING_COST,
  DATE_COST,
  ITEM_COST,
  lastDecoded,
  MAP_ENTRY_COST,
  STRING_COST,
} from "./_decoded_cost.ts";

/** Deepest nesting of arrays and maps (objects), both ways. */
const MAX_DEPTH = 512;
/**
 * Most array elements plus map entries in one decoded message. Each costs
 * one byte on the wire but tens of bytes in memory: without a cap a 16 MiB
 * frame of empty arrays would become gigabytes of objects.
 *
 * @example
 * ```ts
 * import { decodeValue, MAX_DECODED_ITEMS } from "@privsep/privsep/protocol";
 * import { ProtocolError } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * // an array32 of MAX_DECODED_ITEMS zeros: 1 MiB on the wire, refused
 * const bytes = new Uint8Array(5 + MAX_DECODED_ITEMS);
 * bytes[0] = 0xdd;
 * new DataView(bytes.buffer).setUint32(1, MAX_DECODED_ITEMS);
 * assert.throws(() => decodeValue(bytes), ProtocolError);
 * ```
 */
export const MAX_DECODED_ITEMS: number = 1 << 20;

/** Size of the encoder's scratch buffer when it is (re)created. */
const SCRATCH_BYTES = 8192;
/** A scratch buffer grown beyond this is dropped after the call. */
const KEEP_SCRATCH_BYTES = 1 << 20;
/**
 * `Uint8Array`s at least this long are not copied into the scratch buffer:
 * they are copied once, straight into the result.
 */
const DEFER_BIN_BYTES = 8192;

const POW32 = 0x1_0000_0000;
const U64_MAX = 0xffff_ffff_ffff_ffffn;
const I64_MIN = -0x8000_0000_0000_0000n;
/** Largest absolute time value of a `Date`, in milliseconds. */
const MAX_DATE_MS = 8.64e15;

// ---------------------------------------------------------------------------
// Encoding

/**
 * Thrown inside the encoder for a value it cannot encode; every array and
 * object on the way up adds its index or key, and the entry points turn it
 * into a `TypeError`. Not an `Error`: no stack is captured.
 */
class Unencodable {
  /** Keys and indices from the failing value up to the root. */
  readonly path: (string | number)[] = [];
  /** The arrays and objects from the failing value up to the root. */
  readonly containers: object[] = [];
  constructor(
    /** What was found, such as "a function (cb)"; "" for too deep. */
    readonly what: string,
    /** What to do instead. */
    readonly hint: string,
  ) {}
}

/** Thrown inside the encoder once the output exceeds its limit. */
class TooBig {
  constructor(
    /** Output bytes so far (header included). */
    readonly bytes: number,
    /** Whether `bytes` is the whole output or only as far as it got. */
    readonly exact = false,
  ) {}
}

const textEncoder = new TextEncoder();

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

  /** Encodes `value` after `header` reserved bytes; returns the output. */
  run(value: unknown, header: number, limit: number): Uint8Array {
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
      const chunk = this.chunks[k];
      const n = this.chunkLength[k];
      if (chunk.length !== n) {
        throw new TypeError(
          `cannot encode a Uint8Array whose length changed during encoding (from ${n} to ${chunk.length} bytes)`,
        );
      }
      out.set(chunk, to);
      to += n;
    }
    out.set(this.buf.subarray(from, this.pos), to);
    return out;
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
    const n = v.length;
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
 * Results up to this size are carved out of a shared slab: allocating an
 * `ArrayBuffer` costs more than encoding a small message.
 */
const SLAB_RESULT_BYTES = 1024;
const SLAB_BYTES = 64 * 1024;
let slab = new Uint8Array(0);
let slabPos = 0;

/**
 * Copies the first `n` bytes of `buf` out: into a fresh buffer when large,
 * otherwise into the unused tail of the slab, which is never written again.
 */
function copyOut(buf: Uint8Array<ArrayBuffer>, n: number): Uint8Array {
  if (n > SLAB_RESULT_BYTES) return ownFrame(buf.slice(0, n));
  // A slab whose buffer was transferred has length 0: replaced here too.
  if (slabPos + n > slab.length) {
    slab = new Uint8Array(SLAB_BYTES);
    slabPos = 0;
  }
  const out = slab.subarray(slabPos, slabPos + n);
  slabPos += n;
  if (n <= 64) {
    for (let i = 0; i < n; i++) out[i] = buf[i];
  } else {
    out.set(buf.subarray(0, n));
  }
  return out;
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

function protoKey(): Unencodable {
  return new Unencodable(
    'an object with an own "__proto__" key',
    "the other side rejects it; rename the key",
  );
}

function tooDeep(container: object): Unencodable {
  const error = new Unencodable("", "");
  error.containers.push(container);
  return error;
}

/** The name of an object's class, or "" when it has none. */
function typeName(v: object): string {
  try {
    const proto = Object.getPrototypeOf(v);
    if (!proto || !Object.hasOwn(proto, "constructor")) return "";
    const name = typeof proto.constructor === "function"
      ? proto.constructor.name
      : "";
    return typeof name === "string" ? name : "";
  } catch {
    return "";
  }
}

function article(name: string): string {
  return `${/^[AEIO]/.test(name) ? "an" : "a"} ${name}`;
}

function unencodableObject(v: object): Unencodable {
  const name = typeName(v);
  if (v instanceof Error) {
    return new Unencodable(
      `an Error (${name || "Error"})`,
      "send its name and message as a plain object; a thrown error is sent to the caller as RemoteError",
    );
  }
  if (v instanceof ArrayBuffer || v instanceof SharedArrayBuffer) {
    return new Unencodable(
      article(name || "ArrayBuffer"),
      "pass a Uint8Array: new Uint8Array(buffer)",
    );
  }
  if (v instanceof Map) {
    return new Unencodable(
      "a Map",
      "send a plain object or an array of [key, value] pairs",
    );
  }
  if (v instanceof Set) {
    return new Unencodable("a Set", "send an array");
  }
  const builtin = name !== "" &&
    (globalThis as Record<string, unknown>)[name] ===
      Object.getPrototypeOf(v)?.constructor;
  return new Unencodable(
    builtin
      ? article(name)
      : name
      ? `an instance of class ${name}`
      : "an object with a custom prototype",
    "only plain objects, arrays, strings, numbers, bigints, booleans, null, undefined, Uint8Array and Date are sent; convert it to a plain object",
  );
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** Renders a path such as `args[1].options.cb`. */
function formatPath(
  path: readonly (string | number)[],
  end: number,
  fields: string | undefined,
): string {
  let out = "value";
  let k = 0;
  if (fields !== undefined && end > 0 && typeof path[0] === "number") {
    const name = fields.split(" ")[path[0]];
    if (name) {
      out = name;
      k = 1;
    }
  }
  for (; k < end; k++) {
    if (k === 12 && end > 16) {
      out += `…(${end - 16} more)…`;
      k = end - 4;
    }
    const key = path[k];
    if (typeof key === "number") {
      out += `[${key}]`;
    } else if (IDENTIFIER.test(key)) {
      out += `.${key}`;
    } else {
      out += `[${
        JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key)
      }]`;
    }
  }
  return out;
}

function toTypeError(error: Unencodable, fields?: string): TypeError {
  const path = error.path.reverse();
  const containers = error.containers.reverse();
  if (error.what !== "") {
    return new TypeError(
      `cannot encode ${error.what} at ${
        formatPath(path, path.length, fields)
      }: ${error.hint}`,
    );
  }
  // Too deep: a cycle, or data that is simply nested too far.
  const seen = new Map<object, number>();
  for (let j = 0; j < containers.length; j++) {
    const first = seen.get(containers[j]);
    if (first !== undefined) {
      return new TypeError(
        `cannot encode a cyclic structure: ${
          formatPath(path, j, fields)
        } refers back to ${formatPath(path, first, fields)}`,
      );
    }
    seen.set(containers[j], j);
  }
  return new TypeError(
    `cannot encode ${
      formatPath(path, path.length, fields)
    }: arrays and objects are nested deeper than ${MAX_DEPTH} levels`,
  );
}

const shared = new Encoder(SCRATCH_BYTES);

function encode(
  value: unknown,
  header: number,
  limit: number,
  fields: string | undefined,
): Uint8Array {
  // A getter (or a proxy) may encode while we encode: give it its own buffer.
  const encoder = shared.busy ? new Encoder(256) : shared;
  try {
    return encoder.run(value, header, limit);
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

// ---------------------------------------------------------------------------
// Decoding

const textDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const EMPTY = new Uint8Array(0);
const fromCharCode = String.fromCharCode;

function invalid(what: string, offset: number): never {
  throw new ProtocolError(
    `received invalid msgpack: ${what} at byte offset ${offset}`,
  );
}

/**
 * Decodes `n` bytes of ASCII at `p`, 8 and 4 at a time; `undefined` when a
 * byte is not ASCII. Much cheaper than TextDecoder for short strings.
 */
function ascii(src: Uint8Array, p: number, n: number): string | undefined {
  let s = "";
  for (; n >= 8; n -= 8, p += 8) {
    const a = src[p], b = src[p + 1], c = src[p + 2], d = src[p + 3];
    const e = src[p + 4], f = src[p + 5], g = src[p + 6], h = src[p + 7];
    if ((a | b | c | d | e | f | g | h) & 0x80) return undefined;
    s += fromCharCode(a, b, c, d, e, f, g, h);
  }
  if (n >= 4) {
    const a = src[p], b = src[p + 1], c = src[p + 2], d = src[p + 3];
    if ((a | b | c | d) & 0x80) return undefined;
    s += fromCharCode(a, b, c, d);
    n -= 4;
    p += 4;
  }
  for (; n > 0; n--, p++) {
    const c = src[p];
    if (c & 0x80) return undefined;
    s += fromCharCode(c);
  }
  return s;
}

/**
 * Map keys of up to 16 bytes, by a hash of their bytes: a hit returns the
 * string decoded earlier (the bytes are compared in full, so a collision
 * only costs a miss). Saves decoding and re-interning the same keys.
 */
const KEY_CACHE_SLOTS = 4096;
const keyCacheStrings: string[] = new Array(KEY_CACHE_SLOTS).fill("");
/** Length + 1 of the key in each slot; 0 for an empty slot. */
const keyCacheLength = new Uint8Array(KEY_CACHE_SLOTS);
const keyCacheBytes = new Uint8Array(KEY_CACHE_SLOTS * 16);

class Decoder {
  src: Uint8Array = EMPTY;
  p = 0;
  items = 0;
  /** Map entries and maps (also counted in `items`). */
  mapItems = 0;
  /** Memory beyond the counts above (see `_decoded_cost.ts`). */
  extra = 0;
  end = 0;
  dv: DataView | undefined = undefined;
  busy = false;

  /** Return `bin` values as views of the input instead of copies. */
  alias = false;

  run(bytes: Uint8Array, alias = false): unknown {
    this.busy = true;
    this.alias = alias;
    this.items = 0;
    this.mapItems = 0;
    this.extra = 0;
    // A plain view: `slice` on a Node Buffer would alias the input.
    this.src = bytes.constructor === Uint8Array
      ? bytes
      : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.p = 0;
    this.end = this.src.length;
    try {
      if (this.end === 0) invalid("empty input", 0);
      const value = this.read(0);
      if (this.p !== this.end) {
        invalid(
          `${this.end - this.p} trailing byte(s) after the value`,
          this.p,
        );
      }
      return value;
    } finally {
      this.src = EMPTY;
      this.dv = undefined;
      this.busy = false;
    }
  }

  view(): DataView {
    return this.dv ??= new DataView(
      this.src.buffer,
      this.src.byteOffset,
      this.src.byteLength,
    );
  }

  /** Checks that `n` more bytes exist for the value starting at `at`. */
  need(n: number, at: number, what: string): void {
    if (n > this.end - this.p) {
      invalid(
        `${what} needs ${n} more byte(s), ${this.end - this.p} left`,
        at,
      );
    }
  }

  u8(at: number, what: string): number {
    if (this.p >= this.end) this.need(1, at, what);
    return this.src[this.p++];
  }

  u16(at: number, what: string): number {
    const p = this.p;
    if (p + 2 > this.end) this.need(2, at, what);
    this.p = p + 2;
    return (this.src[p] << 8) | this.src[p + 1];
  }

  u32(at: number, what: string): number {
    const p = this.p;
    if (p + 4 > this.end) this.need(4, at, what);
    this.p = p + 4;
    const src = this.src;
    return src[p] * 0x100_0000 +
      ((src[p + 1] << 16) | (src[p + 2] << 8) | src[p + 3]);
  }

  read(depth: number): unknown {
    const at = this.p;
    if (at >= this.end) invalid("input ends where a value should start", at);
    const b = this.src[this.p++];
    if (b < 0xa0) {
      if (b < 0x80) return b;
      if (b < 0x90) return this.map(b & 0x0f, depth, at);
      return this.array(b & 0x0f, depth, at);
    }
    if (b < 0xc0) return this.str(b & 0x1f, at);
    if (b >= 0xe0) return b - 0x100;
    switch (b) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
        return this.bin(this.u8(at, "bin 8"), at);
      case 0xc5:
        return this.bin(this.u16(at, "bin 16"), at);
      case 0xc6:
        return this.bin(this.u32(at, "bin 32"), at);
      case 0xc7:
        return this.ext(this.u8(at, "ext 8"), at);
      case 0xc8:
        return this.ext(this.u16(at, "ext 16"), at);
      case 0xc9:
        return this.ext(this.u32(at, "ext 32"), at);
      case 0xca: {
        this.need(4, at, "float 32");
        const v = this.view().getFloat32(this.p);
        this.p += 4;
        return v;
      }
      case 0xcb: {
        this.need(8, at, "float 64");
        const v = this.view().getFloat64(this.p);
        this.p += 8;
        return v;
      }
      case 0xcc:
        return this.u8(at, "uint 8");
      case 0xcd:
        return this.u16(at, "uint 16");
      case 0xce:
        return this.u32(at, "uint 32");
      case 0xcf: {
        this.need(8, at, "uint 64");
        const p = this.p;
        const hi = this.u32(at, "");
        const lo = this.u32(at, "");
        // Up to 2^53 - 1 as a number, beyond as a bigint (read at once: no
        // intermediate bigints to collect).
        if (hi < 0x20_0000) return hi * POW32 + lo;
        return this.view().getBigUint64(p);
      }
      case 0xd0:
        return (this.u8(at, "int 8") << 24) >> 24;
      case 0xd1:
        return (this.u16(at, "int 16") << 16) >> 16;
      case 0xd2:
        return this.u32(at, "int 32") | 0;
      case 0xd3: {
        this.need(8, at, "int 64");
        const p = this.p;
        const hi = this.u32(at, "") | 0;
        const lo = this.u32(at, "");
        if (hi >= -0x20_0000 && hi < 0x20_0000) {
          const v = hi * POW32 + lo;
          if (v >= -Number.MAX_SAFE_INTEGER) return v;
        }
        return this.view().getBigInt64(p);
      }
      case 0xd4:
        return this.ext(1, at);
      case 0xd5:
        return this.ext(2, at);
      case 0xd6:
        return this.ext(4, at);
      case 0xd7:
        return this.ext(8, at);
      case 0xd8:
        return this.ext(16, at);
      case 0xd9:
        return this.str(this.u8(at, "str 8"), at);
      case 0xda:
        return this.str(this.u16(at, "str 16"), at);
      case 0xdb:
        return this.str(this.u32(at, "str 32"), at);
      case 0xdc:
        return this.array(this.u16(at, "array 16"), depth, at);
      case 0xdd:
        return this.array(this.u32(at, "array 32"), depth, at);
      case 0xde:
        return this.map(this.u16(at, "map 16"), depth, at);
      case 0xdf:
        return this.map(this.u32(at, "map 32"), depth, at);
      default: // 0xc1
        return invalid("reserved byte 0xc1", at);
    }
  }

  str(n: number, at: number): string {
    const p = this.p;
    if (n > this.end - p) this.need(n, at, `str of ${n} bytes`);
    this.p = p + n;
    if (n <= 128) {
      const s = ascii(this.src, p, n);
      if (s !== undefined) {
        // Built by concatenation: cons strings cost ~7 bytes per byte.
        if (n > 12) this.extra += n * CONS_STRING_COST;
        return s;
      }
    }
    // Charged its bytes once more (with the frame's, two per byte: V8 stores
    // a string with a character beyond U+00FF two bytes per character) and
    // its header.
    this.extra += n + STRING_COST;
    return this.utf8(p, n, at);
  }

  utf8(p: number, n: number, at: number): string {
    try {
      return textDecoder.decode(this.src.subarray(p, p + n));
    } catch {
      return invalid(`str of ${n} bytes is not valid UTF-8`, at);
    }
  }

  /** A map key: short keys come from a cache, as the same strings. */
  key(n: number, at: number): string {
    const p = this.p;
    if (n > 16) return this.str(n, at);
    if (n > this.end - p) this.need(n, at, `str of ${n} bytes`);
    this.p = p + n;
    const src = this.src;
    let h = n;
    for (let i = p; i < p + n; i++) h = Math.imul(h ^ src[i], 0x9e3779b1);
    const slot = (h >>> 20) & (KEY_CACHE_SLOTS - 1);
    const base = slot * 16;
    if (keyCacheLength[slot] === n + 1) {
      let i = 0;
      while (i < n && keyCacheBytes[base + i] === src[p + i]) i++;
      if (i === n) return keyCacheStrings[slot];
    }
    let key = ascii(src, p, n);
    if (key === undefined) {
      this.extra += n + STRING_COST;
      key = this.utf8(p, n, at);
    }
    keyCacheStrings[slot] = key;
    keyCacheLength[slot] = n + 1;
    for (let i = 0; i < n; i++) keyCacheBytes[base + i] = src[p + i];
    return key;
  }

  bin(n: number, at: number): Uint8Array {
    const p = this.p;
    if (n > this.end - p) this.need(n, at, `bin of ${n} bytes`);
    this.p = p + n;
    this.extra += BIN_COST;
    return this.alias ? this.src.subarray(p, p + n) : this.src.slice(p, p + n);
  }

  tooMany(at: number): never {
    return invalid(
      `more than ${MAX_DECODED_ITEMS} array elements and map entries in one message`,
      at,
    );
  }

  array(n: number, depth: number, at: number): unknown[] {
    if (depth >= MAX_DEPTH) {
      invalid(`arrays and maps nested deeper than ${MAX_DEPTH}`, at);
    }
    // Every element takes at least one byte.
    if (n > this.end - this.p) this.need(n, at, `array of ${n} elements`);
    if ((this.items += n + 1) > MAX_DECODED_ITEMS) this.tooMany(at);
    const a = new Array(n);
    for (let i = 0; i < n; i++) a[i] = this.read(depth + 1);
    return a;
  }

  map(n: number, depth: number, at: number): Record<string, unknown> {
    if (depth >= MAX_DEPTH) {
      invalid(`arrays and maps nested deeper than ${MAX_DEPTH}`, at);
    }
    // Every key and every value takes at least one byte.
    if (n * 2 > this.end - this.p) {
      this.need(n * 2, at, `map of ${n} entries`);
    }
    if ((this.items += n + 1) > MAX_DECODED_ITEMS) this.tooMany(at);
    this.mapItems += n + 1;
    const o: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) {
      const keyAt = this.p;
      const b = this.u8(keyAt, "map key");
      let key: string;
      if (b >= 0xa0 && b < 0xc0) key = this.key(b & 0x1f, keyAt);
      else if (b === 0xd9) key = this.str(this.u8(keyAt, "str 8"), keyAt);
      else if (b === 0xda) key = this.str(this.u16(keyAt, "str 16"), keyAt);
      else if (b === 0xdb) key = this.str(this.u32(keyAt, "str 32"), keyAt);
      else return invalid("map key that is not a str", keyAt);
      if (key === "__proto__") invalid('map key "__proto__"', keyAt);
      o[key] = this.read(depth + 1);
    }
    return o;
  }

  ext(n: number, at: number): unknown {
    // The type byte, then n bytes of data.
    this.need(n + 1, at, `ext of ${n} bytes`);
    const src = this.src;
    const type = (src[this.p] << 24) >> 24;
    const p = this.p + 1;
    this.p = p + n;
    if (type === 0) {
      // msgpackr's undefined: fixext 1, type 0, data 0.
      if (n !== 1 || src[p] !== 0) {
        invalid(`ext type 0 that is not undefined (d4 00 00)`, at);
      }
      return undefined;
    }
    if (type !== -1) invalid(`unsupported ext type ${type}`, at);
    let sec: number;
    let nsec: number;
    const dv = this.view();
    if (n === 4) {
      sec = dv.getUint32(p);
      nsec = 0;
    } else if (n === 8) {
      const hi = dv.getUint32(p);
      nsec = hi >>> 2;
      sec = (hi & 3) * POW32 + dv.getUint32(p + 4);
    } else if (n === 12) {
      nsec = dv.getUint32(p);
      sec = dv.getInt32(p + 4) * POW32 + dv.getUint32(p + 8);
    } else {
      return invalid(`timestamp of ${n} bytes (must be 4, 8 or 12)`, at);
    }
    if (nsec > 999_999_999) invalid("timestamp with nanoseconds ≥ 10^9", at);
    const ms = sec * 1000 + Math.floor(nsec / 1_000_000);
    if (!(Math.abs(ms) <= MAX_DATE_MS)) {
      invalid("timestamp outside the range of Date", at);
    }
    this.extra += DATE_COST;
    return new Date(ms);
  }
}

const sharedDecoder = new Decoder();

/**
 * Decodes exactly one msgpack value. Malformed input, trailing bytes,
 * extensions other than `undefined` and timestamps, non-string or
 * `__proto__` map keys and nesting deeper than 512 throw
 * {@linkcode ProtocolError}. Integers beyond 2^53 decode as `bigint`.
 *
 * @example
 * ```ts
 * import { decodeValue, encodeValue } from "@privsep/privsep/protocol";
 * decodeValue(encodeValue({ a: 1 })); // { a: 1 }
 * ```
 */
export function decodeValue(
  bytes: Uint8Array,
  options: DecodeOptions = {},
): unknown {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError("decodeValue() takes a Uint8Array");
  }
  // An object's setter on Object.prototype could decode while we decode.
  const decoder = sharedDecoder.busy ? new Decoder() : sharedDecoder;
  const value = decoder.run(bytes, options.aliasBinary ?? false);
  lastDecoded.cost = bytes.length + decoder.items * ITEM_COST +
    decoder.mapItems * MAP_ENTRY_COST + decoder.extra;
  return value;
}

/** Options of {@linkcode decodeValue}. */
export interface DecodeOptions {
  /**
   * Return `bin` values as views into `bytes` instead of copies: one copy
   * less for large binary data, for input that is never reused (a frame
   * body from `FrameDecoder`). Off by default.
   */
  aliasBinary?: boolean;
}
