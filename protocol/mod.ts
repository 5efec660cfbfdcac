/**
 * The privsep wire protocol: u32 big-endian length-prefixed msgpack frames
 * (see `protocol/PROTOCOL.md` for the byte layout). Useful to write a client
 * or a test double in another process; services never need it.
 *
 * @example
 * ```ts
 * import { decodeMessage, encodeMessage, FrameDecoder, Kind } from "@privsep/privsep/protocol";
 * const decoder = new FrameDecoder();
 * const [body] = decoder.push(encodeMessage([Kind.Cancel, 7]));
 * decodeMessage(body); // { kind: 4, id: 7 }
 * ```
 *
 * @module
 */

export {
  checkMaxFrameBytes,
  concatFrames,
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrame,
  FRAME_HEADER_BYTES,
  FrameDecoder,
} from "./frame.ts";
export * from "./codec.ts";
export * from "./messages.ts";
export type { RemoteErrorInfo } from "../errors.ts";
