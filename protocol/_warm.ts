// Runs the codec over every kind of value and message before the first real
// call. The caller does it while its daemon starts (sudo, Deno's start-up and
// the privilege drop take hundreds of milliseconds, during which the caller
// only waits); the daemon right after its hello, while the caller reads the
// hello and checks the daemon's credentials. Private: both ends use it.
//
// Why: V8 compiles the codec for the values it has seen. A process that has
// only carried `echo(null)` calls has optimized code without the branches
// for a long string (TextEncoder.encodeInto, a str8 header) or `undefined`;
// the first call that brings one throws that code away ("insufficient type
// feedback", and on the first encodeInto a cascade of "dependent prototype
// chain changed") and compiles what it had never run. Type feedback gathered
// here, before any function is hot, is what the optimizing compiler later
// builds on. Only the codec runs: no entrypoint, no I/O. bench/HISTORY.md
// (2026-12-04) has the figures, from bench/first_call_codec.ts (one
// process) and bench/first_call.ts (caller and daemon).

import { releaseFrame } from "./_release.ts";
import {
  assembleParts,
  encodeMessageParts,
  FrameParts,
  PARTS_MIN_BYTES,
} from "./_parts.ts";
import { FrameDecoder } from "./frame.ts";
import { decodeMessage, encodeMessage, Kind } from "./messages.ts";

let warmed = false;

/**
 * Values of every type and width the encoder and decoder handle (exported for
 * _warm_test.ts, which checks that they take every header the encoder writes
 * for a value below 64 KiB).
 */
export function sample(): unknown[] {
  return [
    null,
    true,
    false,
    undefined,
    0,
    1,
    200,
    1000,
    65_534,
    70_000,
    2 ** 40,
    -1,
    -100,
    -1000,
    -40_000,
    -(2 ** 31) - 1,
    -(2 ** 40),
    1.5,
    -0,
    2n ** 63n,
    -(2n ** 62n),
    "short",
    "/a/path/longer/than/thirty-two/characters",
    "é",
    "ünïcødé, longer than thirty-two characters",
    "x".repeat(300),
    new Uint8Array(16),
    new Uint8Array(300),
    { a: 1, key: "value", nested: { list: [1, "two", null] } },
    { ["k".repeat(20)]: 0, ["ü".repeat(4)]: 1 },
    Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])),
    Array.from({ length: 20 }, (_, i) => i),
    new Date(0),
    new Date(2 ** 40),
    new Date(-1),
    [[[]], {}],
  ];
}

/** Encodes and decodes one message of each kind a peer sends, a few times. */
export function warmCodec(): void {
  if (warmed) return;
  warmed = true;
  const values = sample();
  const messages: unknown[][] = [
    [Kind.Call, 1, "some/module.ts#someFunction", values],
    [Kind.Call, 2, "mod.ts#f", ["/a/path/longer/than/thirty-two/characters"]],
    [Kind.Result, 1, values],
    [Kind.Result, 2, undefined],
    [Kind.Result, 3, null],
    [Kind.Error, 4, { name: "NotFound", message: "gone", code: "ENOENT" }],
    [Kind.Log, {
      category: ["privsep", "audit"],
      level: "info",
      message: "a record",
      timestamp: 1,
      properties: { entrypoint: "mod.ts#f", durationMs: 0.012, ok: true },
    }],
    [Kind.Cancel, 5],
    [Kind.Status, 6],
  ];
  // Feedback vectors exist only after a function's first few calls: one
  // pass is not enough, three are.
  for (let i = 0; i < 3; i++) {
    for (const message of messages) {
      const frame = encodeMessage(message);
      decodeMessage(frame.subarray(4));
      releaseFrame(frame);
    }
  }
  warmLargePaths();
}

/**
 * The paths of a large message too, small ones between them: a call or a
 * result whose Uint8Array goes as frame parts (protocol/_parts.ts), and a
 * frame that arrives over many reads. An application's first large call
 * would otherwise be the first to take their branches in code V8 had
 * optimized without them, which it throws away and compiles again while
 * the next calls wait: after the bench's 1 MiB phase, the encoder's `run`
 * and the FrameDecoder's `push` and `read` were among the functions
 * deoptimized (bench/HISTORY.md, 2026-12-04 late).
 */
function warmLargePaths(): void {
  const large = new Uint8Array(PARTS_MIN_BYTES);
  const decoder = new FrameDecoder(4 * PARTS_MIN_BYTES);
  const messages: unknown[][] = [
    [Kind.Call, 1, "mod.ts#f", [large]],
    [Kind.Result, 1, large],
    [Kind.Call, 2, "mod.ts#f", [null]],
    [Kind.Result, 2, null],
  ];
  for (let i = 0; i < 3; i++) {
    for (const message of messages) {
      const encoded = encodeMessageParts(message, 4 * PARTS_MIN_BYTES);
      const frame = encoded instanceof FrameParts
        ? assembleParts(encoded)
        : encoded;
      // In reads of 16 KiB, as a pipe hands a large frame over.
      for (let at = 0; at < frame.length; at += 16_384) {
        for (const body of decoder.push(frame.subarray(at, at + 16_384))) {
          decodeMessage(body);
        }
      }
      releaseFrame(frame);
    }
  }
}
