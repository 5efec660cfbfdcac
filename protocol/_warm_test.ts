import assert from "node:assert/strict";
import { decodeMessage, encodeMessage, Kind } from "./messages.ts";
import { lastDecoded } from "./_decoded_cost.ts";
import { sample, warmCodec } from "./_warm.ts";
import { encodeValue } from "./encode.ts";
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

Deno.test("warmCodec()'s values take every header the encoder writes below 64 KiB", () => {
  // A header the warm-up never took is a branch the decoder's compiled code
  // lacks: the first real value with it threw that code away (a chown's
  // uid, a uint 16, did in the full bench profile).
  const family = (b: number) =>
    b <= 0x7f
      ? "positive fixint"
      : b <= 0x8f
      ? "fixmap"
      : b <= 0x9f
      ? "fixarray"
      : b <= 0xbf
      ? "fixstr"
      : b >= 0xe0
      ? "negative fixint"
      : `0x${b.toString(16)}`;
  const seen = new Set(sample().map((v) => family(encodeValue(v)[0])));
  for (
    const header of [
      "positive fixint",
      "negative fixint",
      "fixmap",
      "fixarray",
      "fixstr",
      "0xc0", // nil
      "0xc2", // false
      "0xc3", // true
      "0xc4", // bin 8
      "0xc5", // bin 16
      "0xcb", // float 64
      "0xcc", // uint 8
      "0xcd", // uint 16
      "0xce", // uint 32
      "0xcf", // uint 64
      "0xd0", // int 8
      "0xd1", // int 16
      "0xd2", // int 32
      "0xd3", // int 64
      "0xd9", // str 8
      "0xda", // str 16
      "0xdc", // array 16
      "0xde", // map 16
    ]
  ) assert.ok(seen.has(header), `no warm-up value takes ${header}`);
});
