// What the msgpack encoder and decoder share. Private: see encode.ts and
// decode.ts.

/** Deepest nesting of arrays and maps (objects), both ways. */
export const MAX_DEPTH = 512;

/**
 * Longest map key in bytes, both ways (decode.ts's `MAX_KEY_BYTES` says
 * why).
 */
export const KEY_BYTES_LIMIT = 16_383;

/** 2^32: splits a 64-bit integer into its high and low 32 bits. */
export const POW32 = 0x1_0000_0000;
