// Frees a large written frame's memory at once instead of at some later
// garbage collection. Private: both ends of the channel use it.

/** Frames above this size own their buffer (smaller ones may share a slab). */
export const RELEASE_MIN_BYTES = 16 * 1024;

/**
 * Detaches the buffer of a frame that has been written and is referenced
 * nowhere else, which frees its memory now. Does nothing for a small frame
 * or a view into a larger buffer.
 */
export function releaseFrame(frame: Uint8Array): void {
  const buffer = frame.buffer as ArrayBuffer;
  if (
    frame.byteLength > RELEASE_MIN_BYTES && frame.byteOffset === 0 &&
    frame.byteLength === buffer.byteLength
  ) {
    buffer.transfer(0);
  }
}
