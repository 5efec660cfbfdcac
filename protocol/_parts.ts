// Calls and replies whose large Uint8Arrays are written as they are, not
// copied into one frame first. Private: the caller (contexts/_client.ts) and
// the daemon (daemon/_outbox.ts) use it.
//
// Why: copying a 1 MiB argument into a new frame costs a new MiB of memory,
// zeroed, then filled; in a process whose memory for it is new (the caller
// keeps its replies until V8 collects them) that is ~256 page faults, ~3 ms
// on this VM (bench/HISTORY.md). Written as parts, the bytes are copied once,
// by the kernel or by Deno's write into its own buffer, at the moment the
// parts are handed over. So the parts must be handed over before the
// application's code runs again, or copied (assembleParts) when they have to
// wait behind another write: the bytes sent are always the ones the call was
// made with.

export { assembleParts, FrameParts, PARTS_MIN_BYTES } from "./encode.ts";
import { encodeFramedParts, type FrameParts } from "./encode.ts";
import { fieldsOf } from "./_fields.ts";

/**
 * Like encodeMessage(), but a message whose large Uint8Arrays add up to
 * PARTS_MIN_BYTES or more comes back as FrameParts.
 */
export function encodeMessageParts(
  message: readonly unknown[],
  maxFrameBytes: number,
): Uint8Array | FrameParts {
  return encodeFramedParts(message, maxFrameBytes, fieldsOf(message[0]));
}
