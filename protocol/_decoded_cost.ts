/**
 * What the last value decoded by `decodeValue` costs in memory, estimated
 * cheaply and conservatively from counts the decoder keeps anyway: a queued
 * call holds its decoded arguments, and a msgpack `{}` is one byte on the
 * wire but ~64 bytes in V8.
 *
 * Measured with Deno 2.9.6 (V8 heap used, after two full collections,
 * decoding arrays of 5,000-200,000 elements; per element, including the
 * 8-byte slot that holds it): a small integer 8 B; `[]` 40 B; `{}` 64 B;
 * `{a:0}` 64 B; `[{}]` 120 B; objects with a key no other object has
 * (`{k<i>:0}`) 216 B for 7.5 wire bytes (each new key makes a new hidden
 * class); 40 distinct keys in one object 64 B per entry; a float64 24 B; a
 * 64-bit bigint 32 B; a `Date` 104 B; a `Uint8Array` (a view of the frame,
 * even of 0 bytes) 208 B; an ASCII string of 13-128 bytes ~6.7 B per byte
 * (the decoder builds it by concatenation: a tree of cons strings), a longer
 * or non-ASCII one ~1 B per byte.
 *
 * The estimate: the frame's bytes (binary values alias it), plus
 * {@linkcode ITEM_COST} per array element, map entry and container, plus
 * {@linkcode MAP_ENTRY_COST} more per map entry and map, plus
 * {@linkcode BIN_COST} per binary value, {@linkcode DATE_COST} per date, and
 * {@linkcode CONS_STRING_COST} per byte of a string of 13-128 bytes. Every
 * shape above costs less than its estimate (`{}` 161 B estimated, `{k<i>:0}`
 * 295 B, a date 134 B, an empty binary 226 B, a 128-byte string 930 B).
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
export const CONS_STRING_COST = 6;

/**
 * Set by `decodeValue` after each decode; read right after it (the daemon
 * reads it for each call message).
 */
export const lastDecoded: { cost: number } = { cost: 0 };
