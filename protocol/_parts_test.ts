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
    // The application's own buffers are parts, uncopied (views of their
    // memory).
    const own = message[1] === 3 ? b : a;
    assert.ok(
      frame.parts.some((part) =>
        part.buffer === own.buffer && part.byteOffset === own.byteOffset &&
        part.length === own.length
      ),
    );
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

/**
 * The bytes `parts` hold as the pipe's handle writes them: each view's own
 * length (a subclass's `length` getter is not what the handle reads).
 */
function bytesWritten(parts: Uint8Array[]): Uint8Array {
  const views = parts.map((part) => new Uint8Array(part));
  const out = new Uint8Array(views.reduce((n, v) => n + v.length, 0));
  let to = 0;
  for (const view of views) {
    out.set(view, to);
    to += view.length;
  }
  return out;
}

/** The body length a frame's header states. */
function stated(frame: Uint8Array): number {
  return new DataView(frame.buffer, frame.byteOffset).getUint32(0);
}

Deno.test("encodeMessageParts() frames a Uint8Array subclass by the bytes it holds, not by its length getter", () => {
  // An application's subclass whose `length` is its own idea (bytes in use).
  class Chunk extends Uint8Array {
    override get length(): number {
      return PARTS_MIN_BYTES;
    }
  }
  const bytes = new Chunk(PARTS_MIN_BYTES * 2).fill(7);
  const frame = encodeMessageParts([Kind.Call, 1, "mod.ts#f", [bytes]], MAX);
  assert.ok(frame instanceof FrameParts);
  const written = bytesWritten(frame.parts);
  // What follows the header's count would be read as the next frame.
  assert.equal(stated(written), written.length - 4);
  assert.equal(frame.length, written.length);
});

Deno.test("encodeMessageParts() parts keep the length a growable SharedArrayBuffer's view had when encoded", () => {
  // A view that tracks a growable SharedArrayBuffer, which another thread
  // may grow at any moment (here: this one, after encoding).
  const sab = new SharedArrayBuffer(PARTS_MIN_BYTES, {
    maxByteLength: PARTS_MIN_BYTES * 2,
  });
  const bytes = new Uint8Array(sab).fill(5);
  const frame = encodeMessageParts([Kind.Call, 1, "mod.ts#f", [bytes]], MAX);
  assert.ok(frame instanceof FrameParts);
  sab.grow(PARTS_MIN_BYTES * 2);
  const written = bytesWritten(frame.parts);
  assert.equal(stated(written), written.length - 4);
  assert.equal(frame.length, written.length);
  assert.deepEqual(
    written,
    encodeMessage([Kind.Call, 1, "mod.ts#f", [
      new Uint8Array(PARTS_MIN_BYTES).fill(5),
    ]], MAX),
  );
});
