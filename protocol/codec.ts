/**
 * The msgpack codec: a small implementation of exactly the subset the
 * protocol uses (see `protocol/PROTOCOL.md`, "Frames"). The encoder is in
 * `encode.ts`, the decoder in `decode.ts`; this module re-exports both.
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
 * @example
 * ```ts
 * import { decodeValue, encodeValue } from "@privsep/privsep/protocol";
 * import assert from "node:assert/strict";
 *
 * const date = new Date(0);
 * assert.deepEqual(decodeValue(encodeValue({ when: date, n: 1n << 60n })), {
 *   when: date,
 *   n: 1n << 60n,
 * });
 * ```
 *
 * @module
 */

export { encodeFramed, encodeValue } from "./encode.ts";
export {
  type DecodeOptions,
  decodeValue,
  MAX_DECODED_ITEMS,
  MAX_KEY_BYTES,
} from "./decode.ts";
