// Small byte strings carved out of a shared slab instead of each getting an
// ArrayBuffer of its own. Private: the encoder's small frames (encode.ts) and
// the frame decoder's small bodies (frame.ts) use it.
//
// Why: a new ArrayBuffer costs more than encoding or decoding a small
// message (its object, its backing store's allocation and release, and ~200
// bytes of the JS heap with its view, against ~80 for a view); a call's
// frame and its reply are each a few dozen bytes (bench/HISTORY.md,
// 2026-12-05, "allocation per call"). What is carved out is never written
// again: a slab is replaced when full, and collected once no view of it is
// left. A view of a slab shares its ArrayBuffer with other messages: code
// that hands out views of a message's bytes must copy them
// (protocol/messages.ts, decodeMessage).

/** The largest byte string carved out of the slab. */
export const SLAB_MAX_BYTES = 1024;
const SLAB_BYTES = 64 * 1024;
let slab = new Uint8Array(0);
let slabPos = 0;

/**
 * A copy of `n` bytes of `src` from `start` (`n` at most
 * {@linkcode SLAB_MAX_BYTES}), carved out of the slab.
 */
export function carve(src: Uint8Array, start: number, n: number): Uint8Array {
  // A slab whose buffer was transferred has length 0: replaced here too.
  if (slabPos + n > slab.length) {
    slab = new Uint8Array(SLAB_BYTES);
    slabPos = 0;
  }
  const out = slab.subarray(slabPos, slabPos + n);
  slabPos += n;
  if (n <= 64) {
    for (let i = 0; i < n; i++) out[i] = src[start + i];
  } else {
    out.set(src.subarray(start, start + n));
  }
  return out;
}

/** Whether `bytes` owns all of its ArrayBuffer (it is not carved or a view). */
export function ownsBuffer(bytes: Uint8Array): boolean {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
}
