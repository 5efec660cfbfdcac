// How FrameDecoder sizes a body. Private: the daemon's malloc settings
// (daemon/start.ts) are chosen to match it.

/** Bodies up to this size are allocated once, at their announced size. */
export const EXACT_BODY_BYTES = 4 << 20;
