/**
 * What the last value decoded by `decodeValue` costs in memory, estimated
 * cheaply and conservatively from counts the decoder keeps anyway: a queued
 * call holds its decoded arguments, and a msgpack `{}` is one byte on the
 * wire but ~64 bytes in V8.
 *
 * Measured with Deno 2.9.6 (V8 heap used, after two full collections,
 * decoding arrays of 2,000-200,000 elements; per element, including the
 * 8-byte slot that holds it): a small integer 8 B; `[]` 40 B; `{}` 64 B;
 * `{a:0}` 64 B; `[{}]` 120 B; objects with a key no other object has
 * (`{k<i>:0}`) 216 B for 7.5 wire bytes (each new key makes a new hidden
 * class); 40 distinct keys in one object 64 B per entry; a float64 24 B; a
 * 64-bit bigint 32 B; a `Date` 104 B; a `Uint8Array` (a view of the frame,
 * even of 0 bytes) 208 B; an ASCII string of 13-128 bytes up to ~8.7 B per
 * byte (the decoder builds it by concatenation: a tree of cons strings, and
 * each of the last 1-3 characters is a cons string of 32 B: 23 bytes 241 B,
 * found by a review; 128 bytes ~6.7 B per byte). Strings
 * decoded as UTF-8 (non-ASCII, or longer than 128 bytes) are stored two
 * bytes per character once one character is beyond U+00FF: 16 B of header
 * plus up to 2 B per UTF-8 byte (`"x".repeat(125) + "€"`, 128 bytes: 280 B;
 * 1,003 bytes: 2,032 B; 250,003 bytes: 499,495 B; 9 ASCII bytes + `€`: 48 B).
 *
 * The estimate: the frame's bytes (binary values alias it), plus
 * {@linkcode ITEM_COST} per array element, map entry and container, plus
 * {@linkcode MAP_ENTRY_COST} more per map entry and map, plus
 * {@linkcode BIN_COST} per binary value, {@linkcode DATE_COST} per date,
 * {@linkcode CONS_STRING_COST} per byte of an ASCII string of 13-128 bytes,
 * and for a string decoded as UTF-8 its byte count once more plus
 * {@linkcode STRING_COST}. Every shape above costs less than its estimate
 * (`{}` 161 B estimated, `{k<i>:0}` 295 B, a date 134 B, an empty binary
 * 226 B, a 23-byte ASCII string 263 B, a 128-byte one 1,314 B, the 128-byte string with `€` 306 B,
 * the 1,003-byte one 2,057 B, the 250,003-byte one 500,061 B, 9 ASCII bytes +
 * `€` 73 B, a bigint 41 B: decoded with one `getBigUint64`, without
 * intermediate bigints to collect). It overcharges plain numbers (33 B for 8 B) and
 * ASCII or Latin-1 strings decoded as UTF-8 (stored one byte per character).
 *
 * Map keys that are array indices cost more, up to 12.4 kB for 7 bytes on the
 * wire: {@linkcode ElementsEstimate} charges them. And the estimate bounds a
 * message: past {@linkcode decodedCostLimit} the decoder refuses it.
 *
 * @module
 */

/** Per array element, map entry, array and map. */
export const ITEM_COST = 32;
/** More per map entry and map (hidden classes, property storage). */
export const MAP_ENTRY_COST = 96;
/** More per binary value (a `Uint8Array` object). */
export const BIN_COST = 192;
/** More per timestamp (a `Date` object). */
export const DATE_COST = 96;
/** More per byte of an ASCII string of 13 to 128 bytes (cons strings). */
export const CONS_STRING_COST = 9;

/**
 * More per string decoded as UTF-8 (V8's string header), charged with the
 * string's byte count once more (two bytes per byte with the frame's).
 */
export const STRING_COST = 16;

/**
 * What the keys of one map that are array indices cost beyond its entries.
 *
 * A key that is an array index (`"0"` to `"4294967294"`, no leading zero) is
 * no property in V8 but an element, kept in one of two stores per object.
 * Dense: 16 B + 8 B per slot, up to the largest index and more; V8 makes or
 * grows it for index i only when i is less than 1024 slots past its end
 * (V8's `JSObject::kMaxGap`), to 1.5 × (i + 1) + 16 slots; past 5000 slots
 * only while it holds at least ~1 element in 27 slots, and from a dictionary
 * it goes back to a dense store of at most ~18 slots per element. Otherwise a
 * dictionary: ~65 B per element, within the 128 B each entry is charged.
 * Measured with the daemon's V8 flags (Deno 2.9.6, V8 15.0; heap used after
 * two full collections, 2,000-20,000 objects of each shape), the object's
 * whole elements store: `{"0":0}` 152 B; `{"100":0}` 1,352 B; `{"1023":0}`
 * 12,432 B (1,552 slots, for 7 bytes on the wire); `{"1023":0,"2575":0}`
 * 31,056 B (3,880 slots); a third key `"4903"` (7,372 slots: a dictionary
 * again) 137 B; `{"1024":0}`, `{"4294967294":0}` 144 B (a dictionary);
 * `"4294967295"` and `"01"` are properties (nothing more). 3,000 keys `"0"`
 * to `"2999"`: 35.5 kB.
 *
 * The estimate follows the dense store's growth from above: `reach`, the
 * most slots a dense store could have by V8's rules whatever V8 chose for
 * each key (grown for every key less than 1024 past it, and for the largest
 * key when the keys are dense enough for a dictionary to turn back), capped
 * at the most V8 keeps dense for this many elements; charged 16 + 8 × that.
 * `{"1023":0}` is now estimated at 12,727 B (V8: 12,497 B with the object),
 * `{"1023":0,"2575":0}` 31,485 B (31,120 B), `{"100":0}` 1,646 B (1,416 B).
 * `protocol/decode_test.ts` checks it against V8 on 45 shapes, 24 of them
 * random. The stores V8 drops as it grows (~15% more) are garbage, not
 * charged; a store V8 gives up for a dictionary is charged (the third key
 * above: 40,579 B estimated).
 *
 * @example
 * ```ts
 * import { ElementsEstimate } from "./_decoded_cost.ts";
 * import assert from "node:assert/strict";
 *
 * const elements = new ElementsEstimate();
 * assert.equal(elements.add(1023), 16 + 8 * 1552); // {"1023": …}
 * assert.equal(elements.add(0), 0); // in the same store
 * ```
 */
export class ElementsEstimate {
  /** The most slots a dense store of this object could have now. */
  reach = 0;
  /** Index keys so far. */
  count = 0;
  /** The largest index so far. */
  max = -1;
  /** Bytes charged so far. */
  charged = 0;

  /** Takes the array index `i` of the next key; returns what to charge more. */
  add(i: number): number {
    const count = ++this.count;
    if (i > this.max) this.max = i;
    let reach = this.reach;
    if (i < reach + MAX_GAP) reach = Math.max(reach, denseSlots(i + 1));
    // A dictionary turns dense again when that takes at most twice its slots
    // (V8's ShouldConvertToFastElements): 3 per entry, 3 entries per element.
    if (this.max < DICTIONARY_TO_DENSE * (count + 1)) {
      reach = Math.max(reach, denseSlots(this.max + 1));
    }
    this.reach = reach;
    const slots = Math.min(
      reach,
      Math.max(MAX_UNCHECKED_DENSE, MAX_SLOTS_PER_ELEMENT * (count + 1)),
    );
    const bytes = slots > 0 ? ELEMENTS_HEADER + 8 * slots : 0;
    if (bytes <= this.charged) return 0;
    const more = bytes - this.charged;
    this.charged = bytes;
    return more;
  }
}

/** V8's `JSObject::kMaxGap`: how far past its end a dense store grows. */
const MAX_GAP = 1024;
/** V8's `kMaxUncheckedFastElementsLength`: dense stores grow to this freely. */
const MAX_UNCHECKED_DENSE = 5000;
/**
 * Beyond, the most slots per element V8 keeps dense: less than 3 × the slots
 * of the dictionary it would take instead (3 per entry, 3 entries per element).
 */
const MAX_SLOTS_PER_ELEMENT = 27;
/** Slots per element up to which a dictionary may turn dense (18, and more). */
const DICTIONARY_TO_DENSE = 24;
/** A `FixedArray`'s map and length. */
const ELEMENTS_HEADER = 16;

/** The slots V8 gives a dense store grown for `n` elements. */
function denseSlots(n: number): number {
  return n + Math.floor(n / 2) + 16;
}

/**
 * The array index a key stands for, or -1: V8 keeps such keys as elements.
 * Called only for keys that start with a digit.
 *
 * @example
 * ```ts
 * import { arrayIndex } from "./_decoded_cost.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(arrayIndex("1023"), 1023);
 * assert.equal(arrayIndex("01"), -1);
 * assert.equal(arrayIndex("4294967295"), -1); // 2^32 - 1: a property
 * ```
 */
export function arrayIndex(key: string): number {
  const n = key.length;
  if (n > 10 || (n > 1 && key.charCodeAt(0) === 0x30)) return -1;
  let value = 0;
  for (let i = 0; i < n; i++) {
    const digit = key.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value <= 4_294_967_294 ? value : -1;
}

/**
 * The estimated cost past which the decoder refuses a message (see
 * {@linkcode decodedCostLimit}): this much for any message...
 *
 * The estimate of a message without array-index keys is bounded by the item
 * cap (`MAX_DECODED_ITEMS`, 1,048,576) and its size: at most 336 B per item
 * (a map entry: 32 + 96, with a non-ASCII key, 16 more, and a binary value,
 * 192 more) and 10 B per byte (an ASCII string of 13-128 bytes: 9 + its own
 * byte), 352 MB + 10 B per byte in all. The floor and the rate are above
 * that, so that every message that decoded before the limit existed still
 * decodes, and the decoder need check the limit only where it charges an
 * array-index key (and once at the end). 1,048,575 entries of an empty binary
 * under the key `"é"` (5.2 MB) are estimated at 341 MB
 * (`protocol/decode_test.ts`). The costliest messages measured (daemon's V8
 * flags; estimate, then V8 heap): 1,048,574 empty binaries in one array
 * (2.1 MB) 237 MB, 218 MB; one map of 1,048,574 distinct keys to empty
 * binaries (10.4 MB) 346 MB, 285 MB; 1,048,574 dates (10.5 MB) 145 MB,
 * 109 MB; 120,000 ASCII strings of 128 bytes (15.6 MB) 112 MB, 105 MB; a
 * 16 MB string with a `€` 32 MB, 32 MB; the warm-up messages 9 kB and
 * 66 kB. What the limit stops is array-index keys: 200,000 `{"1023":0}`
 * (1.4 MB) took a root daemon to 2.5 GB, 400,000 to 4.1 GB; refused now at
 * ~400 MB of heap (`tests/queue_memory_test.ts`: the daemon grew by 509 MB
 * of RSS).
 *
 * @example
 * ```ts
 * import { DECODED_COST_FLOOR, decodedCostLimit } from "./_decoded_cost.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(decodedCostLimit(0), DECODED_COST_FLOOR);
 * ```
 */
export const DECODED_COST_FLOOR: number = 384 * 1024 * 1024;

/**
 * ...and this much more per byte of the message.
 *
 * @example
 * ```ts
 * import { DECODED_COST_PER_BYTE, decodedCostLimit } from "./_decoded_cost.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   decodedCostLimit(16 << 20) - decodedCostLimit(0),
 *   DECODED_COST_PER_BYTE * (16 << 20),
 * );
 * ```
 */
export const DECODED_COST_PER_BYTE = 12;

/**
 * The most a message of `bytes` bytes may be estimated to cost once decoded:
 * past it the decoder throws `ProtocolError` (both ends use it: the daemon
 * for the caller's messages, the caller for the daemon's). 576 MiB for a
 * message of the default `maxFrameBytes`, 16 MiB.
 *
 * @example
 * ```ts
 * import { decodedCostLimit } from "./_decoded_cost.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(decodedCostLimit(16 << 20), 576 * 1024 * 1024);
 * ```
 */
export function decodedCostLimit(bytes: number): number {
  return DECODED_COST_FLOOR + DECODED_COST_PER_BYTE * bytes;
}

/**
 * Set by `decodeValue` after each decode; read right after it (the daemon
 * reads it for each call message).
 */
export const lastDecoded: { cost: number } = { cost: 0 };

/**
 * What the next `decodeValue` may estimate its value at before it stops,
 * throwing {@linkcode DecodeCapExceeded}: checked before each element of an
 * array below the top level, of the top-level array from its fourth on (a
 * call's arguments, after its kind, id and entrypoint; the estimate counts
 * the message's bytes from the start), of any map, and at each array-index
 * key. Set by the daemon right before it decodes a
 * message while calls hold memory (daemon/_slots.ts), read and reset to
 * `Infinity` by that decode, so that no other decode sees it.
 */
export const nextDecodeCap: { cost: number } = { cost: Infinity };

/**
 * A message passed {@linkcode nextDecodeCap} (but not `decodedCostLimit`):
 * decoding stopped there. `head` is the top-level array as far as it was
 * decoded (a call's kind, id and entrypoint come before its arguments).
 */
export class DecodeCapExceeded extends Error {
  /** Always `"DecodeCapExceeded"`. */
  override name = "DecodeCapExceeded";
  constructor(
    /** The top-level array, partly decoded, if the message is one. */
    readonly head: unknown[] | undefined,
    /** The estimate when decoding stopped. */
    readonly cost: number,
  ) {
    super(`the message passed its cap at an estimated ${cost} bytes`);
  }
}
