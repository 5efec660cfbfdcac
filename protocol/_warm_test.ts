import assert from "node:assert/strict";
import { decodeMessage, encodeMessage, Kind } from "./messages.ts";
import { lastDecoded } from "./_decoded_cost.ts";
import { warmCodec } from "./_warm.ts";
import {
  assembleParts,
  encodeMessageParts,
  FrameParts,
  PARTS_MIN_BYTES,
} from "./_parts.ts";
import { FrameDecoder } from "./frame.ts";

Deno.test("warmCodec() leaves the codec's output and decoded values unchanged", () => {
  const message = [Kind.Call, 7, "mod.ts#chown", [
    "/a/long/path/to/target",
    0,
    -1,
  ]];
  const before = encodeMessage(message);
  warmCodec();
  warmCodec();
  const after = encodeMessage(message);
  assert.deepEqual(after, before);
  assert.deepEqual(decodeMessage(after.subarray(4)), {
    kind: Kind.Call,
    id: 7,
    entrypoint: "mod.ts#chown",
    args: ["/a/long/path/to/target", 0, -1],
  });
  // The cost of the message just decoded is this message's, not the warm-up's.
  const cost = lastDecoded.cost;
  decodeMessage(before.subarray(4));
  assert.equal(lastDecoded.cost, cost);
});

Deno.test("warmCodec() leaves a large message's frame parts and their decoding unchanged", () => {
  const bytes = new Uint8Array(PARTS_MIN_BYTES + 3).map((_, i) => i & 0xff);
  const message = [Kind.Call, 9, "mod.ts#store", [bytes, "name"]];
  const frame = () => {
    const encoded = encodeMessageParts(message, 1 << 20);
    assert.ok(encoded instanceof FrameParts, "a large call goes as parts");
    return assembleParts(encoded);
  };
  const before = frame();
  warmCodec();
  const after = frame();
  assert.deepEqual(after, before);
  const decoder = new FrameDecoder(1 << 20);
  const bodies = [];
  for (let at = 0; at < after.length; at += 4096) {
    bodies.push(...decoder.push(after.subarray(at, at + 4096)));
  }
  assert.equal(bodies.length, 1);
  assert.deepEqual(decodeMessage(bodies[0]), {
    kind: Kind.Call,
    id: 9,
    entrypoint: "mod.ts#store",
    args: [bytes, "name"],
  });
});
