// Frees a large written frame's memory at once instead of at some later
// garbage collection. Private: both ends of the channel use it.

/** Frames above this size are the ones worth releasing. */
export const RELEASE_MIN_BYTES = 16 * 1024;

/**
 * The large frames the codec and concatFrames() allocated themselves: only
 * these may be released, never a buffer that came from elsewhere (a
 * caller's argument, an entrypoint's result).
 */
const owned = new WeakSet<Uint8Array>();

/** Records that `frame` is a fresh buffer nothing else references. */
export function ownFrame<T extends Uint8Array>(frame: T): T {
  if (frame.byteLength > RELEASE_MIN_BYTES) owned.add(frame);
  return frame;
}

/**
 * Detaches the buffer of a frame that has been written, which frees its
 * memory now. Does nothing for a frame {@linkcode ownFrame} did not record.
 */
export function releaseFrame(frame: Uint8Array): void {
  if (!owned.delete(frame)) return;
  const buffer = frame.buffer as ArrayBuffer;
  if (frame.byteOffset === 0 && frame.byteLength === buffer.byteLength) {
    buffer.transfer(0);
  }
}
