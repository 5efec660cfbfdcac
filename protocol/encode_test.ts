// Copyright the privsep authors. Apache-2.0 license.

// Tests of the msgpack encoder: the bytes encodeValue() and encodeFramed()
// write, and the TypeError for what msgpack cannot carry.

import assert from "node:assert/strict";
import { ProtocolError } from "../errors.ts";
import { decodeValue, MAX_KEY_BYTES } from "./decode.ts";
import { encodeFramed, encodeValue } from "./encode.ts";
import { encodeMessage, Kind } from "./messages.ts";
import { concat, h, hex, roundTrip, utf8 } from "./_test_util.ts";

/** Asserts that encoding `value` throws TypeError matching `pattern`. */
function assertUnencodable(value: unknown, pattern: RegExp): void {
  assert.throws(
    () => encodeValue(value),
    (error: unknown) => {
      assert.ok(
        error instanceof TypeError,
        `expected TypeError for ${Deno.inspect(value)}, got ${error}`,
      );
      assert.match(error.message, pattern);
      return true;
    },
  );
}

// ---------------------------------------------------------------------------
// Byte-exact encodings

Deno.test("encodeValue() writes nil, false and true as c0, c2, c3", () => {
  assert.equal(hex(encodeValue(null)), "c0");
  assert.equal(hex(encodeValue(false)), "c2");
  assert.equal(hex(encodeValue(true)), "c3");
  assert.equal(roundTrip(null), null);
  assert.equal(roundTrip(true), true);
  assert.equal(roundTrip(false), false);
});

Deno.test("encodeValue() writes every integer in its smallest form, at every width boundary", () => {
  const cases: [number, string][] = [
    [0, "00"],
    [1, "01"],
    [127, "7f"],
    [128, "cc 80"],
    [255, "cc ff"],
    [256, "cd 01 00"],
    [65535, "cd ff ff"],
    [65536, "ce 00 01 00 00"],
    [2 ** 31, "ce 80 00 00 00"],
    [2 ** 32 - 1, "ce ff ff ff ff"],
    [2 ** 32, "cf 00 00 00 01 00 00 00 00"],
    [2 ** 40 + 5, "cf 00 00 01 00 00 00 00 05"],
    [2 ** 53 - 1, "cf 00 1f ff ff ff ff ff ff"],
    [-1, "ff"],
    [-32, "e0"],
    [-33, "d0 df"],
    [-128, "d0 80"],
    [-129, "d1 ff 7f"],
    [-32768, "d1 80 00"],
    [-32769, "d2 ff ff 7f ff"],
    [-(2 ** 31), "d2 80 00 00 00"],
    [-(2 ** 31) - 1, "d3 ff ff ff ff 7f ff ff ff"],
    [-(2 ** 32), "d3 ff ff ff ff 00 00 00 00"],
    [-(2 ** 53) + 1, "d3 ff e0 00 00 00 00 00 01"],
  ];
  for (const [n, bytes] of cases) {
    assert.equal(hex(encodeValue(n)), bytes, `encoding ${n}`);
    const back = decodeValue(h(bytes));
    assert.equal(typeof back, "number", `${n} came back as ${typeof back}`);
    assert.equal(back, n);
  }
});

Deno.test("encodeValue() writes non-integers, NaN, ±Infinity, -0 and integers beyond 2^53 as float 64", () => {
  assert.equal(hex(encodeValue(1.5)), "cb 3f f8 00 00 00 00 00 00");
  assert.equal(hex(encodeValue(-0)), "cb 80 00 00 00 00 00 00 00");
  assert.equal(hex(encodeValue(Infinity)), "cb 7f f0 00 00 00 00 00 00");
  assert.equal(hex(encodeValue(-Infinity)), "cb ff f0 00 00 00 00 00 00");
  assert.equal(hex(encodeValue(2 ** 53)), "cb 43 40 00 00 00 00 00 00");
  assert.equal(encodeValue(NaN)[0], 0xcb);
  for (
    const n of [
      1.5,
      -0.1,
      0.1 + 0.2,
      2 ** 53,
      -(2 ** 53),
      2 ** 64,
      1e300,
      Number.MIN_VALUE,
      Number.MAX_VALUE,
      -Number.MAX_VALUE,
      Infinity,
      -Infinity,
    ]
  ) {
    assert.equal(roundTrip(n), n);
  }
  assert.ok(Number.isNaN(roundTrip(NaN)));
  assert.ok(Object.is(roundTrip(-0), -0), "-0 keeps its sign");
  assert.ok(Object.is(roundTrip(0), 0));
});

Deno.test("encodeValue() throws TypeError for a bigint beyond 64 bits", () => {
  assertUnencodable(2n ** 64n, /bigint 18446744073709551616 .*64 bits/);
  assertUnencodable(-(2n ** 63n) - 1n, /bigint -9223372036854775809/);
  assertUnencodable({ n: [2n ** 100n] }, /at value\.n\[0\]/);
});

Deno.test("a lone surrogate encodes as U+FFFD, like TextEncoder", () => {
  assert.equal(roundTrip("a\uD800b"), "a\uFFFDb");
  assert.equal(roundTrip("\uDC00"), "\uFFFD");
});

Deno.test("objects encode only own enumerable string keys, in order", () => {
  const object: Record<string | symbol, unknown> = { b: 1, a: 2, 10: "ten" };
  object[Symbol("hidden")] = 3;
  Object.defineProperty(object, "hidden", { value: 4, enumerable: false });
  assert.equal(
    hex(encodeValue(object)),
    hex(concat([0x83, 0xa2], utf8("10"), [0xa3], utf8("ten"), h("a1 62 01"), [
      0xa1,
      0x61,
      0x02,
    ])),
  );
  assert.deepEqual(roundTrip(object), { 10: "ten", b: 1, a: 2 });
  // A null-prototype object is a plain object too.
  const bare = Object.assign(Object.create(null), { x: 1 });
  assert.deepEqual(roundTrip(bare), { x: 1 });
  assert.equal(Object.getPrototypeOf(roundTrip(bare)), Object.prototype);
  // An enumerable getter is read.
  assert.deepEqual(
    roundTrip({
      get g() {
        return "got";
      },
    }),
    { g: "got" },
  );
});

Deno.test("objects encode only own keys while Object.prototype has an enumerable key", () => {
  const proto = Object.prototype as Record<string, unknown>;
  proto.polluted = "yes";
  try {
    assert.deepEqual(
      [...encodeValue({ a: 1, b: { c: 2 } })],
      [...h("82 a1 61 01 a1 62 81 a1 63 02")],
    );
  } finally {
    delete proto.polluted;
  }
});

Deno.test("encodeValue() throws TypeError for an invalid Date", () => {
  assertUnencodable(new Date(NaN), /invalid Date at value/);
  assertUnencodable({ when: new Date("nope") }, /invalid Date at value\.when/);
});

Deno.test("encodeValue() results are not overwritten by later calls and do not overlap", () => {
  const first = encodeValue({ a: "first" });
  const copy = first.slice();
  const results: Uint8Array[] = [];
  for (let i = 0; i < 10_000; i++) {
    results.push(encodeValue({ i, s: "x".repeat(i % 100) }));
  }
  assert.deepEqual(first, copy);
  assert.deepEqual(decodeValue(first), { a: "first" });
  for (let i = 0; i < results.length; i += 997) {
    assert.deepEqual(decodeValue(results[i]), {
      i,
      s: "x".repeat(i % 100),
    });
  }
  // Small results may share an ArrayBuffer, but never bytes.
  const a = encodeValue([1, 2, 3]);
  const b = encodeValue([4, 5, 6]);
  if (a.buffer === b.buffer) {
    assert.ok(
      a.byteOffset + a.length <= b.byteOffset ||
        b.byteOffset + b.length <= a.byteOffset,
    );
  }
  a.fill(0);
  assert.deepEqual(decodeValue(b), [4, 5, 6]);
});

Deno.test("encodeValue() may be called from a getter while it encodes", () => {
  const value = {
    a: 1,
    get nested() {
      return decodeValue(encodeValue({ inner: [1, 2, "x".repeat(100)] }));
    },
    z: "end",
  };
  assert.deepEqual(roundTrip(value), {
    a: 1,
    nested: { inner: [1, 2, "x".repeat(100)] },
    z: "end",
  });
});

Deno.test("encodeValue() throws TypeError when a large Uint8Array shrinks while it encodes", () => {
  const buffer = new ArrayBuffer(20_000, { maxByteLength: 40_000 });
  const bytes = new Uint8Array(buffer);
  const value = {
    bytes,
    get shrink() {
      buffer.resize(10);
      return 1;
    },
  };
  assert.throws(() => encodeValue(value), /changed during encoding/);
  // The encoder is still usable.
  assert.deepEqual(roundTrip([1]), [1]);
});

// ---------------------------------------------------------------------------
// encodeFramed

Deno.test("encodeFramed() writes the u32 big-endian body length, then the body", () => {
  assert.equal(
    hex(encodeFramed([2, 1, "hi"], 1024)),
    "00 00 00 06 93 02 01 a2 68 69",
  );
  for (
    const value of [
      null,
      [1, 17, "ops.ts#echo", [null]],
      { a: "x".repeat(70_000) },
      [2, 1, new Uint8Array(1 << 20).fill(7)],
    ]
  ) {
    const frame = encodeFramed(value, 16 << 20);
    const body = encodeValue(value);
    assert.equal(
      new DataView(frame.buffer, frame.byteOffset).getUint32(0),
      body.length,
    );
    assert.deepEqual(frame.subarray(4), body);
  }
});

Deno.test("encodeFramed() throws ProtocolError for a body above maxFrameBytes, and allows exactly the maximum", () => {
  const value = [2, 1, "x".repeat(100)]; // 1 + 1 + 1 + 2 + 100 = 105 bytes
  assert.equal(encodeValue(value).length, 105);
  assert.equal(encodeFramed(value, 105).length, 109);
  assert.throws(
    () => encodeFramed(value, 104),
    (error: unknown) => {
      assert.ok(error instanceof ProtocolError);
      assert.match(error.message, /105 bytes exceeds maxFrameBytes 104/);
      return true;
    },
  );
  assert.throws(
    () => encodeFramed([new Uint8Array(100_000)], 50_000),
    /exceeds maxFrameBytes 50000/,
  );
  assert.throws(() => encodeFramed(1, 0), RangeError);
  assert.throws(() => encodeFramed(1, 2 ** 32), RangeError);
  assert.throws(() => encodeFramed(1, 1.5), RangeError);
});

Deno.test("encodeFramed() gives up on an oversized value without encoding all of it", () => {
  const huge = "x".repeat(64 << 20);
  const started = performance.now();
  for (let i = 0; i < 20; i++) {
    assert.throws(() => encodeFramed([huge], 1024), ProtocolError);
    assert.throws(
      () => encodeFramed(Array.from({ length: 100 }, () => huge), 1 << 20),
      ProtocolError,
    );
  }
  assert.ok(performance.now() - started < 5_000);
});

Deno.test("encodeMessage() names a call's unencodable argument by its place in args", () => {
  assert.throws(
    () =>
      encodeMessage([Kind.Call, 1, "ops.ts#x", [1, { options: { cb() {} } }]]),
    (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.match(
        error.message,
        /cannot encode a function \(cb\) at args\[1\]\.options\.cb/,
      );
      return true;
    },
  );
  assert.throws(
    () => encodeMessage([Kind.Result, 1, { m: new Map() }]),
    /a Map at value\.m/,
  );
  assert.throws(
    () => encodeMessage([Kind.Result, 1, "x".repeat(100)], 64),
    ProtocolError,
  );
});

// ---------------------------------------------------------------------------
// What cannot be encoded

Deno.test("encodeValue() throws TypeError for functions and symbols, naming the type and path", () => {
  assertUnencodable(() => 1, /cannot encode a function at value:/);
  assertUnencodable(
    function named() {},
    /cannot encode a function \(named\) at value/,
  );
  assertUnencodable(
    { x: [1, { cb() {} }] },
    /a function \(cb\) at value\.x\[1\]\.cb/,
  );
  assertUnencodable(Symbol("x"), /cannot encode a symbol at value/);
  assertUnencodable([0, [Symbol("x")]], /a symbol at value\[1\]\[0\]/);
  assertUnencodable(
    { "not an identifier": { f: Symbol() } },
    /at value\["not an identifier"\]\.f/,
  );
});

Deno.test("encodeValue() throws TypeError for Map, Set, errors, class instances and other objects", () => {
  class Point {
    x = 1;
  }
  assertUnencodable(new Map([[1, 2]]), /a Map at value: send a plain object/);
  assertUnencodable(new Set([1]), /a Set at value: send an array/);
  assertUnencodable(new WeakMap(), /a WeakMap at value/);
  assertUnencodable(new Point(), /an instance of class Point at value/);
  assertUnencodable(
    { p: [new Point()] },
    /an instance of class Point at value\.p\[0\]/,
  );
  assertUnencodable(new Error("x"), /an Error \(Error\) at value/);
  assertUnencodable(
    { e: new TypeError("x") },
    /an Error \(TypeError\) at value\.e/,
  );
  assertUnencodable(/re/g, /a RegExp at value/);
  assertUnencodable(Promise.resolve(1), /a Promise at value/);
  assertUnencodable(new Number(1), /a Number at value/);
  assertUnencodable(new String("s"), /a String at value/);
  assertUnencodable(Object.create({ inherited: 1 }), /custom prototype/);
  assertUnencodable(new URL("http://x/"), /a URL at value/);
});

Deno.test("encodeValue() throws TypeError for typed arrays other than Uint8Array and for ArrayBuffers", () => {
  for (
    const view of [
      new Uint16Array(2),
      new Int8Array(2),
      new Uint8ClampedArray(2),
      new Float64Array(2),
      new BigInt64Array(1),
      new DataView(new ArrayBuffer(2)),
    ]
  ) {
    const name = view.constructor.name;
    assertUnencodable(
      view,
      new RegExp(`an? ${name} at value: binary data must be a Uint8Array`),
    );
    assertUnencodable({ data: view }, new RegExp(`${name} at value\\.data`));
  }
  assertUnencodable(
    new ArrayBuffer(4),
    /an ArrayBuffer at value: pass a Uint8Array/,
  );
  assertUnencodable(
    new SharedArrayBuffer(4),
    /a SharedArrayBuffer at value: pass a Uint8Array/,
  );
});

Deno.test("encodeValue() throws TypeError for a cycle, naming where it closes", () => {
  const cyclic: Record<string, unknown> = { a: {} };
  (cyclic.a as Record<string, unknown>).self = cyclic;
  assertUnencodable(
    cyclic,
    /cyclic structure: value\.a\.self refers back to value$/,
  );
  const list: unknown[] = [1];
  list.push([list]);
  assertUnencodable(
    list,
    /cyclic structure: value\[1\]\[0\] refers back to value$/,
  );
  // The same object twice, side by side, is no cycle.
  const shared = { s: 1 };
  assert.deepEqual(roundTrip([shared, shared]), [{ s: 1 }, { s: 1 }]);
});

Deno.test("encodeValue() allows 512 levels of arrays and objects, not 513", () => {
  let ok: unknown = null;
  for (let i = 0; i < 512; i++) ok = i % 2 ? [ok] : { k: ok };
  assert.equal(encodeValue(ok).length, 256 + 256 * 3 + 1);
  let deep: unknown = null;
  for (let i = 0; i < 513; i++) deep = [deep];
  assertUnencodable(deep, /nested deeper than 512 levels/);
  // Bin and Date at the bottom do not count as a level.
  let leaf: unknown = new Uint8Array(1);
  for (let i = 0; i < 512; i++) leaf = [leaf];
  assert.equal(encodeValue(leaf).length, 512 + 3);
});

Deno.test("encodeValue() throws TypeError for an object with an own __proto__ key", () => {
  assertUnencodable(
    JSON.parse('{"__proto__": {"polluted": true}, "a": 1}'),
    /own "__proto__" key at value:/,
  );
  assertUnencodable(
    { x: [JSON.parse('{"__proto__": 1}')] },
    /own "__proto__" key at value\.x\[0\]:/,
  );
});

Deno.test("encodeValue() refuses a map key longer than MAX_KEY_BYTES, which the decoder would refuse", () => {
  const ok = { ["x".repeat(MAX_KEY_BYTES)]: 1 };
  assert.deepEqual(decodeValue(encodeValue(ok)), ok);
  for (const key of ["x".repeat(MAX_KEY_BYTES + 1), "é".repeat(8192)]) {
    assert.throws(
      () => encodeValue({ [key]: 1 }),
      (e: unknown) =>
        e instanceof TypeError && /map key of 16384 bytes/.test(e.message),
    );
  }
  // With an enumerable key on Object.prototype the encoder takes another
  // path (mapOfKeys): the same limit.
  const proto = Object.prototype as Record<string, unknown>;
  Object.defineProperty(proto, "extra", {
    value: 1,
    enumerable: true,
    configurable: true,
  });
  try {
    assert.throws(
      () => encodeValue({ ["x".repeat(MAX_KEY_BYTES + 1)]: 1 }),
      TypeError,
    );
  } finally {
    delete proto.extra;
  }
});
