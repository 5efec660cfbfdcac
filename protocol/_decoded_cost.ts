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
 * even of 0 bytes) 208 B; an ASCII string of 13-128 bytes ~6.7 B per byte
 * (the decoder builds it by concatenation: a tree of cons strings). Strings
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
 * 226 B, a 128-byte ASCII string 930 B, the 128-byte string with `€` 306 B,
 * the 1,003-byte one 2,057 B, the 250,003-byte one 500,061 B, 9 ASCII bytes +
 * `€` 73 B, a bigint 41 B: decoded with one `getBigUint64`, without
 * intermediate bigints to collect). It overcharges plain numbers (33 B for 8 B) and
 * ASCII or Latin-1 strings decoded as UTF-8 (stored one byte per character).
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
 * More per string decoded as UTF-8 (V8's string header), charged with the
 * string's byte count once more (two bytes per byte with the frame's).
 */
export const STRING_COST = 16;

/**
 * Set by `decodeValue` after each decode; read right after it (the daemon
 * reads it for each call message).
 */
export const lastDecoded: { cost: number } = { cost: 0 };
