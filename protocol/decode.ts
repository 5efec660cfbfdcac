/**
 * The msgpack decoder, for exactly the subset the protocol uses (see
 * `protocol/PROTOCOL.md`, "Frames").
 *
 * Decoding checks every length against the bytes that remain before
 * allocating anything, accepts only two extensions (timestamps and
 * msgpackr's `undefined`; no class is ever looked up or built from the
 * wire), limits nesting to 512 arrays and maps, rejects `__proto__` keys,
 * non-string keys and keys longer than 16,383 bytes, refuses a message once
 * its estimated cost in memory passes `decodedCostLimit()` (see
 * `_decoded_cost.ts`), and returns binary data as fresh `Uint8Array`s that do
 * not alias the input. Every decoding failure is a {@linkcode ProtocolError}
 * naming what is wrong and its byte offset.
 *
 * @module
 */

import { ProtocolError } from "../errors.ts";
import { KEY_BYTES_LIMIT, MAX_DEPTH, POW32 } from "./_codec_common.ts";
import {
  arrayIndex,
  BIN_COST,
  CONS_STRING_COST,
  DATE_COST,
  DecodeCapExceeded,
  DECODED_COST_FLOOR,
  DECODED_COST_PER_BYTE,
  decodedCostLimit,
  ElementsEstimate,
  ITEM_COST,
  lastDecoded,
  MAP_ENTRY_COST,
  nextDecodeCap,
  STRING_COST,
} from "./_decoded_cost.ts";

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

/**
 * Longest map key, in bytes: V8 hashes a string of more than 16,383
 * characters by its length alone, so that longer keys of one length all
 * collide in its table of property names. 800 keys of 16,384 bytes that
 * differ at their end took 0.7 s to decode (0.09 s at 16,383), and keys
 * held by queued calls slowed the next messages further.
 *
 * @example
 * ```ts
 * import { decodeValue, MAX_KEY_BYTES } from "@privsep/privsep/protocol";
 * import { ProtocolError } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * // {[key]: null} with a key of MAX_KEY_BYTES + 1 bytes (a str 16)
 * const n = MAX_KEY_BYTES + 1;
 * const bytes = new Uint8Array(4 + n + 1).fill(0x78);
 * bytes.set([0x81, 0xda, n >> 8, n & 0xff]);
 * bytes[4 + n] = 0xc0;
 * assert.throws(() => decodeValue(bytes), ProtocolError);
 * ```
 */
export const MAX_KEY_BYTES: number = KEY_BYTES_LIMIT;

/** Largest absolute time value of a `Date`, in milliseconds. */
const MAX_DATE_MS = 8.64e15;

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

/**
 * Sets a map's array-index entries on `o`, the largest index first, the
 * last of equal ones last (it wins, as in wire order). In wire order, keys
 * that alternately leave and fill a gap of 1024 made V8 convert the object's
 * elements between a dictionary and an array at every key: 345 kB took 7.7
 * s to decode (found by a review). Largest first, V8 converts at most once,
 * and JavaScript lists index keys in ascending order whatever the order of
 * insertion, so the object is the same.
 */
function setIndices(
  o: Record<string, unknown>,
  indices: number[],
  values: unknown[],
): void {
  const order = indices.map((_, j) => j);
  order.sort((a, b) => indices[b] - indices[a] || a - b);
  for (const j of order) o[indices[j]] = values[j];
}

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
  /** The caller's cap on the estimate (`nextDecodeCap`); `Infinity`: none. */
  cap = Infinity;
  /** The lesser of the cap and `decodedCostLimit()` for this message. */
  limit = 0;
  /** The top-level array, once decoding it started. */
  top: unknown[] | undefined = undefined;

  run(bytes: Uint8Array, alias = false, cap = Infinity): unknown {
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
    this.cap = cap;
    this.limit = Math.min(cap, decodedCostLimit(this.end));
    try {
      if (this.end === 0) invalid("empty input", 0);
      const value = this.read(0);
      if (this.p !== this.end) {
        invalid(
          `${this.end - this.p} trailing byte(s) after the value`,
          this.p,
        );
      }
      // Only array-index keys can pass the limit (see DECODED_COST_FLOOR),
      // and they are checked as they come; this is for whatever else might.
      // The cap was checked in arrays and maps (see array()).
      if (this.cost() > decodedCostLimit(this.end)) this.tooCostly(this.end);
      return value;
    } finally {
      this.src = EMPTY;
      this.dv = undefined;
      this.top = undefined;
      this.busy = false;
    }
  }

  /**
   * The estimate passed `limit`: past `decodedCostLimit()` the message is
   * refused (a `ProtocolError`); past the caller's cap only, decoding stops.
   */
  overLimit(at: number): never {
    const cost = this.cost();
    if (cost > decodedCostLimit(this.end)) this.tooCostly(at);
    throw new DecodeCapExceeded(this.top, cost);
  }

  /** The estimated cost of the message so far (see `_decoded_cost.ts`). */
  cost(): number {
    return this.end + this.items * ITEM_COST +
      this.mapItems * MAP_ENTRY_COST + this.extra;
  }

  tooCostly(at: number): never {
    throw new ProtocolError(
      `received a message that would take more than ${
        decodedCostLimit(this.end)
      } bytes of memory once decoded (${
        DECODED_COST_FLOOR >> 20
      } MiB + ${DECODED_COST_PER_BYTE} per byte of its ${this.end} bytes; estimated at byte offset ${at}). ` +
        `V8 gives an object with keys that are array indices ("0" to "4294967294") a store of 12 bytes per index below the largest (12 kB for {"1023": 0}): ` +
        `send such data as an array, with keys that are not numbers, or in several messages`,
    );
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
      case 0xd4: {
        // msgpackr's undefined (d4 00 00), here rather than in ext(): a
        // function that returns nothing answers it on every call, and ext()
        // alone, cold after thousands of calls that carried none, was
        // compiled among the first such calls (bench/HISTORY.md, session 15).
        const p = this.p;
        if (p + 2 <= this.end && this.src[p] === 0 && this.src[p + 1] === 0) {
          this.p = p + 2;
          return undefined;
        }
        return this.ext(1, at);
      }
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

  /** A map key of `n` bytes in a str 16 or str 32 (see MAX_KEY_BYTES). */
  longKey(n: number, at: number): string {
    if (n > MAX_KEY_BYTES) {
      invalid(
        `map key of ${n} bytes, longer than ${MAX_KEY_BYTES} (V8 hashes longer strings by their length alone)`,
        at,
      );
    }
    return this.str(n, at);
  }

  /**
   * Charges a map key that starts with a digit, if it is an array index
   * (see ElementsEstimate), and refuses the message once it costs too much.
   */
  element(
    index: number,
    elements: ElementsEstimate | undefined,
    at: number,
  ): ElementsEstimate {
    elements ??= new ElementsEstimate();
    const more = elements.add(index);
    if (more > 0) {
      this.extra += more;
      if (this.cost() > this.limit) this.overLimit(at);
    }
    return elements;
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
    if (depth === 0) this.top = a;
    if (this.cap === Infinity) {
      for (let i = 0; i < n; i++) a[i] = this.read(depth + 1);
    } else {
      // Capped: checked before each element and after the last; in the
      // top-level array from its fourth on (a call's arguments), since the
      // estimate counts the message's bytes from the start and a call's
      // kind, id and entrypoint must be read.
      const from = depth === 0 ? 3 : 0;
      for (let i = 0; i < n; i++) {
        if (i >= from && this.cost() > this.limit) this.overLimit(this.p);
        a[i] = this.read(depth + 1);
      }
      if (n > from && this.cost() > this.limit) this.overLimit(this.p);
    }
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
    /** Its keys that are array indices, once it has one. */
    let elements: ElementsEstimate | undefined;
    /** Their entries, set last (see below): indices, and values beside. */
    let indices: number[] | undefined;
    let values: unknown[] | undefined;
    // A top-level map is no message: capped too.
    const capped = this.cap !== Infinity;
    for (let i = 0; i < n; i++) {
      if (capped && this.cost() > this.limit) this.overLimit(this.p);
      const keyAt = this.p;
      const b = this.u8(keyAt, "map key");
      let key: string;
      if (b >= 0xa0 && b < 0xc0) key = this.key(b & 0x1f, keyAt);
      else if (b === 0xd9) key = this.str(this.u8(keyAt, "str 8"), keyAt);
      else if (b === 0xda) key = this.longKey(this.u16(keyAt, "str 16"), keyAt);
      else if (b === 0xdb) key = this.longKey(this.u32(keyAt, "str 32"), keyAt);
      else return invalid("map key that is not a str", keyAt);
      if (key === "__proto__") invalid('map key "__proto__"', keyAt);
      // Maybe an array index, which V8 keeps apart (ElementsEstimate).
      const c = key.charCodeAt(0);
      if (c <= 0x39 && c >= 0x30) {
        const index = arrayIndex(key);
        if (index >= 0) {
          elements = this.element(index, elements, keyAt);
          (indices ??= []).push(index);
          (values ??= []).push(this.read(depth + 1));
          continue;
        }
      }
      o[key] = this.read(depth + 1);
    }
    if (capped && this.cost() > this.limit) this.overLimit(this.p);
    if (indices) setIndices(o, indices, values!);
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
 * `__proto__` map keys, keys longer than {@linkcode MAX_KEY_BYTES}, nesting
 * deeper than 512, more than {@linkcode MAX_DECODED_ITEMS} items, and a
 * value estimated to cost more memory than 384 MiB + 12 bytes per byte of
 * `bytes` (maps with keys that are array indices, such as `{"1023": 0}`,
 * cost V8 up to 12 kB each) throw {@linkcode ProtocolError}. Integers beyond
 * 2^53 decode as `bigint`.
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
  const cap = nextDecodeCap.cost;
  nextDecodeCap.cost = Infinity;
  const value = decoder.run(bytes, options.aliasBinary ?? false, cap);
  lastDecoded.cost = decoder.cost();
  return value;
}

/**
 * Options of {@linkcode decodeValue}.
 *
 * @example
 * ```ts
 * import { type DecodeOptions, decodeValue, encodeValue } from "@privsep/privsep/protocol";
 * import assert from "node:assert/strict";
 *
 * const bytes = encodeValue(new Uint8Array([1, 2, 3]));
 * const options: DecodeOptions = { aliasBinary: true };
 * const view = decodeValue(bytes, options) as Uint8Array;
 * assert.deepEqual(view, new Uint8Array([1, 2, 3]));
 * assert.equal(view.buffer, bytes.buffer); // a view, not a copy
 * ```
 */
export interface DecodeOptions {
  /**
   * Return `bin` values as views into `bytes` instead of copies: one copy
   * less for large binary data, for input that is never reused and owns its
   * whole `ArrayBuffer` (a large frame body from `FrameDecoder`; a small one
   * may share its buffer with other messages, whose bytes a view's `buffer`
   * would reach). Off by default.
   */
  aliasBinary?: boolean;
}
