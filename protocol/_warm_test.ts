import assert from "node:assert/strict";
import { decodeMessage, encodeMessage, Kind } from "./messages.ts";
import { lastDecoded } from "./_decoded_cost.ts";
import { warmCodec } from "./_warm.ts";

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
