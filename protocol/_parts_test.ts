import assert from "node:assert/strict";
import { ProtocolError } from "../errors.ts";
import { fieldsOf } from "./_fields.ts";
import {
  assembleParts,
  encodeMessageParts,
  FrameParts,
  PARTS_MIN_BYTES,
} from "./_parts.ts";
import { encodeMessage, Kind } from "./messages.ts";
import { concat } from "./_test_util.ts";

const MAX = 8 * 1024 * 1024;

Deno.test("encodeMessageParts() leaves large Uint8Arrays uncopied, and its parts are encodeMessage()'s frame", () => {
  const a = new Uint8Array(PARTS_MIN_BYTES).fill(1);
  const b = new Uint8Array(PARTS_MIN_BYTES * 2 + 3).fill(2).subarray(1);
  const messages = [
    [Kind.Call, 1, "mod.ts#f", [a]],
    [Kind.Call, 2, "mod.ts#f", ["before", a, { x: b, y: "after" }, 7]],
    [Kind.Result, 3, b],
    [Kind.Result, 4, [a, a]],
  ];
  for (const message of messages) {
    const frame = encodeMessageParts(message, MAX);
    assert.ok(frame instanceof FrameParts, Deno.inspect(message[1]));
    // The application's own buffers are parts, as they are.
    assert.ok(frame.parts.includes(message[1] === 3 ? b : a));
    const whole = encodeMessage(message, MAX);
    assert.equal(frame.length, whole.length);
    assert.deepEqual(concat(...frame.parts), whole);
    assert.deepEqual(assembleParts(frame), whole);
  }
});

Deno.test("encodeMessageParts() returns one frame when the large Uint8Arrays are under PARTS_MIN_BYTES", () => {
  for (
    const value of [
      null,
      "text",
      new Uint8Array(PARTS_MIN_BYTES - 1),
      [new Uint8Array(8192), new Uint8Array(8192)],
    ]
  ) {
    const frame = encodeMessageParts([Kind.Result, 1, value], MAX);
    assert.ok(frame instanceof Uint8Array);
    assert.deepEqual(frame, encodeMessage([Kind.Result, 1, value], MAX));
  }
});

Deno.test("encodeMessageParts() enforces maxFrameBytes and names a bad argument like encodeMessage()", () => {
  const big = new Uint8Array(PARTS_MIN_BYTES);
  assert.throws(
    () => encodeMessageParts([Kind.Call, 1, "mod.ts#f", [big]], 1000),
    ProtocolError,
  );
  assert.throws(
    () => encodeMessageParts([Kind.Call, 1, "mod.ts#f", [big, () => 1]], MAX),
    /args\[1\]/,
  );
});

Deno.test("assembleParts() rejects a part whose buffer was transferred after encoding", () => {
  const a = new Uint8Array(PARTS_MIN_BYTES);
  const frame = encodeMessageParts([Kind.Call, 1, "mod.ts#f", [a]], MAX);
  assert.ok(frame instanceof FrameParts);
  a.buffer.transfer();
  assert.throws(
    () => assembleParts(frame),
    (error: unknown) =>
      error instanceof TypeError &&
      /length changed after the call was made/.test(error.message),
  );
});

Deno.test("fieldsOf() knows the kinds of messages.ts by their numbers", () => {
  assert.equal(fieldsOf(Kind.Call), "kind id entrypoint args");
  assert.equal(fieldsOf(Kind.Result), "kind id value");
  assert.equal(fieldsOf(Kind.Error), "kind id error");
  assert.equal(fieldsOf(Kind.Fatal), "kind error");
  assert.equal(fieldsOf(Kind.Log), "kind record");
  assert.equal(fieldsOf(Kind.Cancel), undefined);
});
