import assert from "node:assert/strict";
import { callSignal } from "./call_scope.ts";
import { CallAbort } from "./_call_abort.ts";
import type { StandardSchemaV1 } from "./schema.ts";
import { decodeMessage, Kind, type Message } from "../protocol/messages.ts";
import { FRAME_HEADER_BYTES } from "../protocol/frame.ts";
import {
  errorFrame,
  type Invocable,
  invoke,
  type Outcome,
  replyFrame,
} from "./invoke.ts";

/** A call never cancelled. */
const NEVER = new CallAbort();

function entry(
  fn: (...args: never[]) => unknown,
  options?: Invocable["options"],
): Invocable {
  return {
    key: `t.ts#${fn.name}`,
    fn: fn as (...args: unknown[]) => unknown,
    options,
  };
}

const positive: StandardSchemaV1<unknown, number> = {
  "~standard": {
    version: 1,
    vendor: "test",
    validate: (v) =>
      typeof v === "number" && v > 0
        ? { value: v }
        : { issues: [{ message: "not a positive number" }] },
  },
};

function decoded(frame: Uint8Array): Message {
  return decodeMessage(frame.subarray(FRAME_HEADER_BYTES));
}

Deno.test("invoke() settles a synchronous function without schemas before it returns, with no promise", () => {
  const outcomes: Outcome[] = [];
  const returned = invoke(
    entry(function add(a: number, b: number) {
      return a + b;
    }),
    [2, 3],
    NEVER,
    (o) => outcomes.push(o),
  );
  assert.equal(returned, undefined);
  assert.deepEqual(outcomes, [{ value: 5 }]);
});

Deno.test("invoke() settles a synchronous throw as an error outcome, synchronously", () => {
  const boom = new RangeError("boom");
  const outcomes: Outcome[] = [];
  const returned = invoke(
    entry(function fail() {
      throw boom;
    }),
    [],
    NEVER,
    (o) => outcomes.push(o),
  );
  assert.equal(returned, undefined);
  assert.deepEqual(outcomes, [{ error: boom }]);
});

Deno.test("invoke() returns the promise of an async function's outcome", async () => {
  const outcomes: Outcome[] = [];
  const returned = invoke(
    entry(async function later(x: string) {
      await Promise.resolve();
      return x.toUpperCase();
    }),
    ["hi"],
    NEVER,
    (o) => outcomes.push(o),
  );
  assert.ok(returned instanceof Promise);
  assert.deepEqual(outcomes, []);
  await returned;
  assert.deepEqual(outcomes, [{ value: "HI" }]);
});

Deno.test("invoke() runs the function with the call's signal as callSignal()", async () => {
  const call = new CallAbort();
  let seen: AbortSignal | undefined;
  invoke(
    entry(function look() {
      seen = callSignal();
    }),
    [],
    call,
    () => {},
  );
  assert.ok(seen instanceof AbortSignal);
  assert.equal(seen, call.signal, "the same signal each time it is asked for");
  // With schemas too (the asynchronous path).
  seen = undefined;
  await invoke(
    entry(function look2(_n: number) {
      seen = callSignal();
    }, { args: [positive] }),
    [1],
    call,
    () => {},
  );
  assert.equal(seen, call.signal);
});

Deno.test("invoke() refuses arguments a schema rejects without running the function", async () => {
  let ran = false;
  const outcomes: Outcome[] = [];
  await invoke(
    entry(function setMtu(_mtu: number) {
      ran = true;
    }, { args: [positive] }),
    [-1],
    NEVER,
    (o) => outcomes.push(o),
  );
  assert.equal(ran, false);
  const error = (outcomes[0] as { error: Error }).error;
  assert.equal(error.name, "InvalidArgument");
  assert.match(error.message, /argument 1 \(_mtu\) of t\.ts#setMtu/);
});

Deno.test("invoke() refuses a result its schema rejects", async () => {
  const outcomes: Outcome[] = [];
  await invoke(
    entry(function negative() {
      return -5;
    }, { result: positive }),
    [],
    NEVER,
    (o) => outcomes.push(o),
  );
  const error = (outcomes[0] as { error: Error }).error;
  assert.equal(error.name, "InvalidArgument");
  assert.match(error.message, /the result of t\.ts#negative is invalid/);
});

Deno.test("invoke() waits for its slot and does not start a call cancelled meanwhile", async () => {
  let ran = false;
  let free!: () => void;
  const wait = new Promise<void>((r) => free = r);
  const call = new CallAbort();
  const outcomes: Outcome[] = [];
  const returned = invoke(
    entry(function work() {
      ran = true;
    }),
    [],
    call,
    (o) => outcomes.push(o),
    wait,
  );
  assert.ok(returned instanceof Promise, "a call that waits is asynchronous");
  const reason = new DOMException("cancelled", "AbortError");
  call.abort(reason);
  free();
  await returned;
  assert.equal(ran, false);
  assert.deepEqual(outcomes, [{ error: reason }]);
});

Deno.test("invoke() rejects only when done throws", async () => {
  const oops = new Error("done failed");
  await assert.rejects(
    invoke(
      entry(async function fine() {}),
      [],
      NEVER,
      () => {
        throw oops;
      },
    )!,
    (e) => e === oops,
  );
});

const LIMITS = { maxFrameBytes: 1 << 20, withStack: false };

Deno.test("replyFrame() encodes a value as a result frame", () => {
  const reply = replyFrame(9, { value: { a: [1, "x"] } }, LIMITS);
  assert.equal(reply.ok, true);
  assert.deepEqual(decoded(reply.frame), {
    kind: Kind.Result,
    id: 9,
    value: { a: [1, "x"] },
  });
});

Deno.test("replyFrame() makes a value that cannot be sent an error reply", () => {
  const reply = replyFrame(4, { value: () => 1 }, LIMITS);
  assert.equal(reply.ok, false);
  assert.ok(!reply.ok && reply.error instanceof TypeError);
  const m = decoded(reply.frame);
  assert.equal(m.kind, Kind.Error);
  assert.equal((m as { error: { name: string } }).error.name, "TypeError");
});

Deno.test("replyFrame() makes a value above maxFrameBytes an error reply", () => {
  const reply = replyFrame(4, { value: "x".repeat(20_000) }, {
    maxFrameBytes: 10_000,
    withStack: false,
  });
  assert.equal(reply.ok, false);
  const m = decoded(reply.frame) as { kind: number; error: { name: string } };
  assert.equal(m.kind, Kind.Error);
  assert.equal(m.error.name, "ProtocolError");
});

Deno.test("replyFrame() describes a thrown error, with code and data, stack only when asked", () => {
  const error = Object.assign(new Error("gone"), {
    code: "ENOENT",
    data: { path: "/x" },
  });
  const without = decoded(replyFrame(1, { error }, LIMITS).frame);
  assert.deepEqual(without, {
    kind: Kind.Error,
    id: 1,
    error: {
      name: "Error",
      message: "gone",
      code: "ENOENT",
      data: { path: "/x" },
    },
  });
  const withStack = decoded(
    replyFrame(1, { error }, { ...LIMITS, withStack: true }).frame,
  ) as { error: { stack?: string } };
  assert.equal(withStack.error.stack, error.stack);
});

Deno.test("errorFrame() applies the hint to the envelope", () => {
  const m = decoded(
    errorFrame(2, new Error("raw"), {
      ...LIMITS,
      hint: (info) => ({ ...info, message: `${info.message} (advice)` }),
    }),
  ) as { error: { message: string } };
  assert.equal(m.error.message, "raw (advice)");
});

Deno.test("errorFrame() cuts an envelope above maxFrameBytes, dropping data and stack", () => {
  const error = Object.assign(new Error("m".repeat(50_000)), {
    code: "EBIG",
    data: "d".repeat(50_000),
  });
  const frame = errorFrame(3, error, {
    maxFrameBytes: 16_384,
    withStack: true,
  });
  assert.ok(frame.length <= 16_384 + FRAME_HEADER_BYTES);
  const m = decoded(frame) as {
    id: number;
    error: { name: string; message: string; code?: string; data?: unknown };
  };
  assert.equal(m.id, 3);
  assert.equal(m.error.name, "Error");
  assert.equal(m.error.code, "EBIG");
  assert.equal(m.error.data, undefined);
  assert.equal(
    m.error.message,
    `${
      "m".repeat(4096)
    }… (error reply cut: it was larger than maxFrameBytes 16384)`,
  );
});

Deno.test("errorFrame() says only ReplyTooLarge when not even a cut message fits", () => {
  const m = decoded(
    errorFrame(5, new Error("m".repeat(10_000)), {
      maxFrameBytes: 4096,
      withStack: false,
    }),
  );
  assert.deepEqual(m, {
    kind: Kind.Error,
    id: 5,
    error: { name: "ReplyTooLarge", message: "error reply too large" },
  });
});
