// Copyright the privsep authors. Apache-2.0 license.

import assert from "node:assert/strict";
import { encodeMessage, Kind } from "./messages.ts";
import { concatFrames } from "./frame.ts";
import { releaseFrame } from "./_release.ts";

Deno.test("releaseFrame() frees a large frame the encoder allocated", () => {
  const arg = new Uint8Array(100_000).fill(7);
  const frame = encodeMessage([Kind.Call, 1, "x", [arg]]);
  releaseFrame(frame);
  assert.equal(frame.length, 0, "the frame's buffer is detached");
  assert.equal(arg.length, 100_000, "the argument is untouched");
  assert.equal(arg[99_999], 7);
});

Deno.test("releaseFrame() frees a large batch from concatFrames()", () => {
  const a = encodeMessage([Kind.Result, 1, new Uint8Array(20_000)]);
  const batch = concatFrames([a, a]);
  releaseFrame(batch);
  assert.equal(batch.length, 0);
});

Deno.test("releaseFrame() leaves alone a buffer the codec did not allocate", () => {
  const mine = new Uint8Array(100_000);
  releaseFrame(mine);
  assert.equal(mine.length, 100_000);
});

Deno.test("releaseFrame() leaves small frames (which share a slab) alone", () => {
  const small = encodeMessage([Kind.Result, 1, "ok"]);
  const next = encodeMessage([Kind.Result, 2, "ok"]);
  releaseFrame(small);
  assert.ok(small.length > 0);
  assert.ok(next.length > 0);
});

Deno.test("releaseFrame() releases a frame once", () => {
  const frame = encodeMessage([Kind.Result, 1, "x".repeat(50_000)]);
  releaseFrame(frame);
  releaseFrame(frame);
  assert.equal(frame.length, 0);
});
