// Copyright the privsep authors. Apache-2.0 license.

import assert from "node:assert/strict";
import { ProtocolError } from "../errors.ts";
import { encodeValue } from "./codec.ts";
import { FRAME_HEADER_BYTES, FrameDecoder } from "./frame.ts";
import { concat } from "./_test_util.ts";
import {
  decodeMessage,
  describeError,
  encodeMessage,
  Kind,
  MAX_ENTRYPOINT_NAME,
  type Message,
  PROTOCOL_VERSION,
  toRemoteErrorInfo,
} from "./messages.ts";

/** Encodes `message` as a frame, then decodes the frame's body. */
function roundTrip(message: readonly unknown[]): Message {
  const frame = encodeMessage(message);
  const [body] = new FrameDecoder().push(frame);
  assert.equal(body.length, frame.length - FRAME_HEADER_BYTES);
  return decodeMessage(body);
}

/** Asserts that decoding `value` as a message body throws ProtocolError. */
function assertMalformed(value: unknown, pattern?: RegExp): void {
  assert.throws(
    () => decodeMessage(encodeValue(value)),
    (error: unknown) => {
      assert.ok(
        error instanceof ProtocolError,
        `expected ProtocolError for ${Deno.inspect(value)}, got ${error}`,
      );
      if (pattern) assert.match(error.message, pattern);
      return true;
    },
    Deno.inspect(value),
  );
}

Deno.test("Kind values are the protocol's message numbers", () => {
  assert.deepEqual(Kind, {
    Hello: 0,
    Call: 1,
    Result: 2,
    Error: 3,
    Cancel: 4,
    Log: 5,
    Fatal: 6,
    Status: 7,
  });
  assert.equal(PROTOCOL_VERSION, 3);
});

Deno.test("encodeMessage() writes a frame whose body is the msgpack array", () => {
  const frame = encodeMessage([Kind.Cancel, 7]);
  assert.deepEqual(frame, new Uint8Array([0, 0, 0, 3, 0x92, 0x04, 0x07]));
});

Deno.test("encodeMessage() honours maxFrameBytes", () => {
  assert.throws(
    () => encodeMessage([Kind.Result, 1, "x".repeat(100)], 64),
    ProtocolError,
  );
});

Deno.test("decodeMessage() decodes a hello with uid, gid and capabilities", () => {
  const hello = {
    v: PROTOCOL_VERSION,
    pid: 1234,
    context: "file:///opt/app/mod.ts#sysAdmin",
    maxFrameBytes: 1 << 20,
    concurrency: 4,
    deno: "2.5.0",
    uid: 0,
    gid: 65534,
    capabilities: [12, 21],
  };
  assert.deepEqual(roundTrip([Kind.Hello, hello]), { kind: Kind.Hello, hello });
  // The caller's hello has only the version and pid.
  assert.deepEqual(roundTrip([Kind.Hello, { v: 1, pid: 1 }]), {
    kind: Kind.Hello,
    hello: { v: 1, pid: 1 },
  });
});

Deno.test("decodeMessage() drops hello fields of the wrong type and unknown fields", () => {
  const message = roundTrip([Kind.Hello, {
    v: 1,
    pid: 9,
    context: 5,
    maxFrameBytes: -1,
    concurrency: 1.5,
    deno: null,
    uid: "0",
    gid: -2,
    capabilities: [1, -1],
    extra: "ignored",
  }]);
  assert.deepEqual(message, { kind: Kind.Hello, hello: { v: 1, pid: 9 } });
  assert.deepEqual(
    roundTrip([Kind.Hello, { v: 1, pid: 9, capabilities: "all" }]),
    { kind: Kind.Hello, hello: { v: 1, pid: 9 } },
  );
  assert.deepEqual(
    roundTrip([Kind.Hello, { v: 1, pid: 9, capabilities: [] }]),
    { kind: Kind.Hello, hello: { v: 1, pid: 9, capabilities: [] } },
  );
});

Deno.test("decodeMessage() decodes a call", () => {
  const args = [1, "two", { three: [3] }, new Uint8Array([4]), null];
  assert.deepEqual(roundTrip([Kind.Call, 42, "net.ts#addRoute", args]), {
    kind: Kind.Call,
    id: 42,
    entrypoint: "net.ts#addRoute",
    args,
  });
  assert.deepEqual(roundTrip([Kind.Call, 0, "a#b", []]), {
    kind: Kind.Call,
    id: 0,
    entrypoint: "a#b",
    args: [],
  });
  const maxId = Number.MAX_SAFE_INTEGER;
  assert.equal(
    (roundTrip([Kind.Call, maxId, "a#b", []]) as { id: number }).id,
    maxId,
  );
});

Deno.test("decodeMessage() accepts an entrypoint of exactly MAX_ENTRYPOINT_NAME", () => {
  const name = "e".repeat(MAX_ENTRYPOINT_NAME);
  const message = roundTrip([Kind.Call, 1, name, []]);
  assert.equal(message.kind === Kind.Call && message.entrypoint, name);
});

Deno.test("decodeMessage() decodes a result", () => {
  for (
    const value of [null, undefined, 0, "ok", [1, 2], { a: { b: 2n ** 60n } }]
  ) {
    assert.deepEqual(roundTrip([Kind.Result, 3, value]), {
      kind: Kind.Result,
      id: 3,
      value,
    });
  }
  const date = new Date(1_700_000_000_000);
  const message = roundTrip([Kind.Result, 3, date]);
  assert.ok(message.kind === Kind.Result && message.value instanceof Date);
});

Deno.test("decodeMessage() decodes an error envelope", () => {
  const error = {
    name: "NotFound",
    message: "no such file",
    code: "ENOENT",
    data: { path: "/etc/x" },
    stack: "NotFound: no such file\n    at x",
  };
  assert.deepEqual(roundTrip([Kind.Error, 5, error]), {
    kind: Kind.Error,
    id: 5,
    error,
  });
  assert.deepEqual(roundTrip([Kind.Error, 5, { name: "E", message: "" }]), {
    kind: Kind.Error,
    id: 5,
    error: { name: "E", message: "" },
  });
});

Deno.test("decodeMessage() decodes a cancel", () => {
  assert.deepEqual(roundTrip([Kind.Cancel, 7]), { kind: Kind.Cancel, id: 7 });
});

Deno.test("decodeMessage() decodes a status request", () => {
  assert.deepEqual(roundTrip([Kind.Status, 7]), { kind: Kind.Status, id: 7 });
});

Deno.test("encodeMessage() writes a status request as PROTOCOL.md shows it", () => {
  assert.deepEqual(
    encodeMessage([Kind.Status, 5]),
    new Uint8Array([0, 0, 0, 3, 0x92, 0x07, 0x05]),
  );
});

Deno.test("decodeMessage() decodes a log record", () => {
  const record = {
    category: ["privsep", "daemon"],
    level: "info",
    message: "started",
    timestamp: 1_700_000_000_000,
    properties: { pid: 1, nested: { ok: true } },
  };
  assert.deepEqual(roundTrip([Kind.Log, record]), { kind: Kind.Log, record });
  const bare = { category: [], level: "debug", message: "", timestamp: 0 };
  assert.deepEqual(roundTrip([Kind.Log, { ...bare, properties: [1] }]), {
    kind: Kind.Log,
    record: bare,
  });
});

Deno.test("decodeMessage() decodes a fatal", () => {
  assert.deepEqual(
    roundTrip([Kind.Fatal, { name: "ProtocolError", message: "bad frame" }]),
    {
      kind: Kind.Fatal,
      error: { name: "ProtocolError", message: "bad frame" },
    },
  );
});

Deno.test("decodeMessage() rejects a top level that is not an array of two or more", () => {
  for (
    const value of [
      null,
      1,
      "call",
      { 0: 1, 1: 2 },
      new Uint8Array([1, 2]),
      [],
      [Kind.Cancel],
    ]
  ) {
    assertMalformed(value, /malformed top-level/);
  }
  assert.throws(() => decodeMessage(new Uint8Array([0xc1])), ProtocolError);
  assert.throws(() => decodeMessage(new Uint8Array(0)), ProtocolError);
});

Deno.test("decodeMessage() rejects an unknown kind", () => {
  assertMalformed([99, 1], /unknown kind 99/);
  assertMalformed([-1, 1], /unknown kind/);
  assertMalformed([1.5, 1, "a#b", []], /unknown kind/);
  assertMalformed(["1", 1, "a#b", []], /unknown kind/);
  assertMalformed([null, 1], /unknown kind/);
  assertMalformed([[1], 1], /unknown kind/);
  assertMalformed([{ kind: 1 }, 1], /unknown kind/);
});

Deno.test("decodeMessage() rejects a kind that arrives as a 64-bit integer", () => {
  // An int64 beyond 2^53 decodes as a bigint, which is not a kind. (One
  // within 2^53 is the same integer as any other msgpack int: a number.)
  assertMalformed([2n ** 60n, 1, "a#b", []], /unknown kind bigint/);
  assertMalformed([-(2n ** 60n), 7], /unknown kind bigint/);
});

Deno.test("decodeMessage() does not echo a huge unknown kind back in full", () => {
  assert.throws(
    () => decodeMessage(encodeValue(["k".repeat(100_000), 1])),
    (error: unknown) => {
      assert.ok(error instanceof ProtocolError);
      assert.ok(error.message.length < 1000, `${error.message.length}`);
      return true;
    },
  );
});

Deno.test("decodeMessage() rejects ids that are not safe non-negative integers", () => {
  const badIds = [
    -1,
    1.5,
    "1",
    null,
    NaN,
    Infinity,
    2 ** 53,
    2n ** 60n,
    [1],
    {},
  ];
  for (const id of badIds) {
    assertMalformed([Kind.Call, id, "a#b", []], /malformed call/);
    assertMalformed([Kind.Result, id, null], /malformed result/);
    assertMalformed(
      [Kind.Error, id, { name: "E", message: "m" }],
      /malformed error/,
    );
    assertMalformed([Kind.Cancel, id], /malformed cancel/);
    assertMalformed([Kind.Status, id], /malformed status/);
  }
});

Deno.test("decodeMessage() rejects messages of the wrong length", () => {
  assertMalformed([Kind.Call, 1, "a#b"], /malformed call/);
  assertMalformed([Kind.Call, 1, "a#b", [], 5], /malformed call/);
  assertMalformed([Kind.Result, 1], /malformed result/);
  assertMalformed([Kind.Result, 1, 2, 3], /malformed result/);
  assertMalformed([Kind.Error, 1], /malformed error/);
  assertMalformed(
    [Kind.Error, 1, { name: "E", message: "m" }, 4],
    /malformed error/,
  );
  assertMalformed([Kind.Cancel, 1, 2], /malformed cancel/);
  assertMalformed([Kind.Status, 1, 2], /malformed status/);
  assertMalformed([Kind.Hello, { v: 1, pid: 1 }, 3], /malformed hello/);
  const record = { category: [], level: "info", message: "", timestamp: 0 };
  assertMalformed([Kind.Log, record, 3], /malformed log/);
  assertMalformed(
    [Kind.Fatal, { name: "E", message: "m" }, 3],
    /malformed fatal/,
  );
});

Deno.test("decodeMessage() rejects a call with a bad entrypoint or args", () => {
  assertMalformed(
    [Kind.Call, 1, "e".repeat(MAX_ENTRYPOINT_NAME + 1), []],
    /malformed call/,
  );
  assertMalformed([Kind.Call, 1, 5, []], /malformed call/);
  assertMalformed([Kind.Call, 1, new Uint8Array([0x61]), []], /malformed call/);
  for (const args of [null, "args", { 0: 1 }, new Uint8Array([1]), 1]) {
    assertMalformed([Kind.Call, 1, "a#b", args], /malformed call/);
  }
});

Deno.test("decodeMessage() rejects a malformed hello", () => {
  for (
    const hello of [
      null,
      [],
      "hello",
      new Uint8Array([1]),
      { pid: 1 },
      { v: "1", pid: 1 },
      { v: 1 },
      { v: 1, pid: -1 },
      { v: 1, pid: 1.5 },
      { v: 1, pid: "1" },
    ]
  ) {
    assertMalformed([Kind.Hello, hello], /malformed hello/);
  }
});

Deno.test("decodeMessage() rejects a malformed log record", () => {
  const ok = { category: ["a"], level: "info", message: "m", timestamp: 1 };
  for (
    const record of [
      null,
      [],
      { ...ok, category: "a" },
      { ...ok, category: ["a", 1] },
      { ...ok, category: [null] },
      { ...ok, category: [["a"]] },
      { ...ok, level: 30 },
      { ...ok, message: null },
      { ...ok, timestamp: "now" },
      { category: ["a"], level: "info", message: "m" },
    ]
  ) {
    assertMalformed([Kind.Log, record], /malformed log/);
  }
});

Deno.test("decodeMessage() rejects an error or fatal envelope without name and message", () => {
  for (
    const envelope of [
      null,
      "boom",
      [],
      new Uint8Array([1]),
      { name: "E" },
      { message: "m" },
      { name: 1, message: "m" },
      { name: "E", message: ["m"] },
    ]
  ) {
    assertMalformed([Kind.Error, 1, envelope], /malformed error/);
    assertMalformed([Kind.Fatal, envelope], /malformed error/);
  }
});

Deno.test("toRemoteErrorInfo() drops unknown fields and fields of the wrong type", () => {
  assert.deepEqual(
    toRemoteErrorInfo({
      name: "E",
      message: "m",
      code: 2,
      stack: ["x"],
      constructor: "Function",
      prototype: {},
      extra: true,
    }),
    { name: "E", message: "m" },
  );
  const info = toRemoteErrorInfo({ name: "E", message: "m", data: null });
  assert.deepEqual(info, { name: "E", message: "m", data: null });
  assert.equal(Object.getPrototypeOf(info), Object.prototype);
});

Deno.test("toRemoteErrorInfo() truncates the name to 200 characters", () => {
  const info = toRemoteErrorInfo({ name: "N".repeat(10_000), message: "m" });
  assert.equal(info.name, "N".repeat(200));
  assert.equal(
    toRemoteErrorInfo({ name: "N".repeat(200), message: "" }).name.length,
    200,
  );
});

Deno.test("toRemoteErrorInfo() throws ProtocolError for a non-object", () => {
  for (
    const value of [undefined, null, "E", 1, [], [{ name: "E", message: "m" }]]
  ) {
    assert.throws(() => toRemoteErrorInfo(value), ProtocolError);
  }
});

Deno.test("describeError() keeps an Error subclass's name, message and code", () => {
  class MyError extends Error {
    override name = "MyError";
    code = "E_MINE";
  }
  assert.deepEqual(describeError(new MyError("boom"), false), {
    name: "MyError",
    message: "boom",
    code: "E_MINE",
  });
  assert.deepEqual(describeError(new TypeError("bad"), false), {
    name: "TypeError",
    message: "bad",
  });
  const numericCode = Object.assign(new Error("x"), { code: 5 });
  assert.deepEqual(describeError(numericCode, false), {
    name: "Error",
    message: "x",
  });
});

Deno.test("describeError() names an error by its class when the class does not set name", () => {
  class NotFoundError extends Error {}
  class Narrow extends TypeError {}
  class Named extends Error {
    override name = "Custom";
  }
  class OnPrototype extends Error {}
  OnPrototype.prototype.name = "FromPrototype";
  class Sub extends Named {}
  const setLater = new NotFoundError("x");
  setLater.name = "SetOnInstance";
  assert.equal(
    describeError(new NotFoundError("gone"), false).name,
    "NotFoundError",
  );
  assert.equal(describeError(new NotFoundError("gone"), false).message, "gone");
  assert.equal(describeError(new Narrow("n"), false).name, "Narrow");
  assert.equal(describeError(new Named("n"), false).name, "Custom");
  assert.equal(
    describeError(new OnPrototype("p"), false).name,
    "FromPrototype",
  );
  assert.equal(describeError(new Sub("s"), false).name, "Custom");
  assert.equal(describeError(setLater, false).name, "SetOnInstance");
  assert.equal(describeError(new Error("e"), false).name, "Error");
  assert.equal(describeError(new RangeError("r"), false).name, "RangeError");
  // An anonymous class keeps the inherited name.
  const Anonymous = (() => class extends Error {})();
  assert.equal(describeError(new Anonymous("a"), false).name, "Error");
  // A constructor getter that throws does not break the envelope.
  const hostile = new Error("h");
  Object.defineProperty(hostile, "constructor", {
    get() {
      throw new Error("no");
    },
  });
  assert.equal(describeError(hostile, false).name, "Error");
});

Deno.test("describeError() keeps a Deno error's name and code", () => {
  let thrown: unknown;
  try {
    Deno.statSync("/nonexistent/privsep-test");
  } catch (error) {
    thrown = error;
  }
  const info = describeError(thrown, false);
  assert.equal(info.name, "NotFound");
  assert.equal(info.code, "ENOENT");
  assert.match(info.message, /nonexistent/);
});

Deno.test("describeError() keeps data that encodes and drops data that does not", () => {
  const withData = Object.assign(new Error("x"), {
    data: { path: "/etc/x", n: [1, 2], bytes: new Uint8Array([1]) },
  });
  assert.deepEqual(describeError(withData, false), {
    name: "Error",
    message: "x",
    data: { path: "/etc/x", n: [1, 2], bytes: new Uint8Array([1]) },
  });

  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  for (const data of [Symbol("s"), cyclic, { big: 2n ** 70n }]) {
    const info = describeError(Object.assign(new Error("x"), { data }), false);
    assert.deepEqual(info, { name: "Error", message: "x" });
  }
  // What describeError returns always encodes.
  encodeMessage([Kind.Error, 1, describeError(withData, true)]);
});

Deno.test("describeError() includes the stack only with withStack", () => {
  const error = new RangeError("out");
  assert.equal(describeError(error, false).stack, undefined);
  assert.equal(Object.hasOwn(describeError(error, false), "stack"), false);
  assert.equal(describeError(error, true).stack, error.stack);
  assert.match(describeError(error, true).stack ?? "", /RangeError: out/);
});

Deno.test("describeError() does not leak a thrown non-Error value", () => {
  const secret = "hunter2-secret";
  for (
    const value of [
      secret,
      { password: secret },
      [secret],
      42,
      null,
      undefined,
      Symbol(secret),
    ]
  ) {
    const info = describeError(value, true);
    assert.equal(info.name, "Error");
    assert.match(info.message, /^non-Error value thrown: \w+$/);
    assert.ok(!JSON.stringify(info).includes(secret));
    assert.ok(!info.message.includes("42"));
    assert.deepEqual(Object.keys(info).sort(), ["message", "name"]);
  }
  assert.equal(
    describeError(secret, false).message,
    "non-Error value thrown: string",
  );
});

Deno.test("decodeMessage() of small frame bodies gives binary values that reach no other message's bytes", () => {
  // Small bodies share one buffer (protocol/_slab.ts): a view of it would
  // let an entrypoint (or the caller's application) read the arguments or
  // results of other calls through its `buffer`.
  const decoder = new FrameDecoder();
  const secret = new TextEncoder().encode("another call's secret");
  const [first, second] = decoder.push(
    concat(
      encodeMessage([Kind.Call, 1, "m.ts#f", [secret]]),
      encodeMessage([Kind.Call, 2, "m.ts#g", [new Uint8Array([1, 2, 3])]]),
    ),
  );
  assert.ok(first.buffer === second.buffer, "the bodies share a buffer");
  const m = decodeMessage(second);
  assert.equal(m.kind, Kind.Call);
  const [value] = (m as { args: Uint8Array[] }).args;
  assert.deepEqual(value, new Uint8Array([1, 2, 3]));
  assert.equal(value.buffer.byteLength, 3, "a copy, not a view of the slab");
  // A body that owns its buffer still gives views (one copy less).
  const own = encodeMessage([Kind.Call, 3, "m.ts#h", [secret]]).slice(
    FRAME_HEADER_BYTES,
  );
  const [alias] = (decodeMessage(own) as { args: Uint8Array[] }).args;
  assert.equal(alias.buffer, own.buffer);
});
