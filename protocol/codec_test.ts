// Copyright the privsep authors. Apache-2.0 license.

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { ProtocolError } from "../errors.ts";
import { decodeValue, encodeValue } from "./codec.ts";

function roundTrip(value: unknown): unknown {
  return decodeValue(encodeValue(value));
}

/** Asserts that decoding `bytes` throws ProtocolError matching `pattern`. */
function assertRejects(bytes: number[] | Uint8Array, pattern?: RegExp): void {
  assert.throws(
    () =>
      decodeValue(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes)),
    (error: unknown) => {
      assert.ok(error instanceof ProtocolError, `got ${error}`);
      if (pattern) assert.match(error.message, pattern);
      return true;
    },
  );
}

/** `depth` nested one-element msgpack arrays around nil. */
function nestedArrays(depth: number): Uint8Array {
  const bytes = new Uint8Array(depth + 1).fill(0x91);
  bytes[depth] = 0xc0;
  return bytes;
}

const utf8 = (s: string) => [...new TextEncoder().encode(s)];

Deno.test("decodeValue() round-trips null and booleans", () => {
  assert.equal(roundTrip(null), null);
  assert.equal(roundTrip(true), true);
  assert.equal(roundTrip(false), false);
});

Deno.test("decodeValue() round-trips numbers, including NaN, Infinity and 2**53", () => {
  for (
    const n of [
      0,
      1,
      -1,
      127,
      128,
      -33,
      255,
      65536,
      2 ** 31,
      2 ** 32,
      -(2 ** 31) - 1,
      2 ** 40,
      -(2 ** 40),
      Number.MAX_SAFE_INTEGER,
      Number.MIN_SAFE_INTEGER,
      2 ** 53,
      1.5,
      -0.1,
      Number.MIN_VALUE,
      Number.MAX_VALUE,
      Infinity,
      -Infinity,
    ]
  ) {
    const back = roundTrip(n);
    assert.equal(typeof back, "number", `${n} came back as ${typeof back}`);
    assert.equal(back, n);
  }
  assert.ok(Number.isNaN(roundTrip(NaN)));
});

Deno.test("decodeValue() returns -0 as 0: msgpackr encodes it as the integer 0", () => {
  // Like JSON, the codec does not keep the sign of zero.
  assert.ok(Object.is(roundTrip(-0), 0));
  assert.ok(Object.is(roundTrip(-0.5), -0.5));
});

Deno.test("decodeValue() round-trips bigints as bigints, beyond 2**53 too", () => {
  for (
    const n of [
      2n ** 53n + 1n,
      -(2n ** 53n) - 1n,
      2n ** 63n - 1n,
      -(2n ** 63n),
      2n ** 64n - 1n,
      5n,
    ]
  ) {
    assert.equal(roundTrip(n), n);
  }
});

Deno.test("encodeValue() throws TypeError for a bigint beyond 64 bits", () => {
  assert.throws(() => encodeValue(2n ** 64n), TypeError);
  assert.throws(() => encodeValue(-(2n ** 63n) - 1n), TypeError);
});

Deno.test("decodeValue() round-trips strings, including unicode", () => {
  for (
    const s of [
      "",
      "a",
      "ü",
      "日本語",
      "😀 and \u{10FFFF}",
      "nul\0inside",
      "x".repeat(31),
      "x".repeat(32),
      "y".repeat(70_000),
    ]
  ) {
    assert.equal(roundTrip(s), s);
  }
});

Deno.test("decodeValue() returns binary data as a plain Uint8Array that does not alias the input", () => {
  const input = new Uint8Array([1, 2, 3, 255]);
  const wire = encodeValue(input);
  const out = decodeValue(wire) as Uint8Array;
  assert.equal(out.constructor, Uint8Array);
  assert.equal(Buffer.isBuffer(out), false);
  assert.deepEqual(out, input);
  assert.notEqual(out.buffer, input.buffer);
  assert.notEqual(out.buffer, wire.buffer);
  wire.fill(0);
  input.fill(0);
  assert.deepEqual(out, new Uint8Array([1, 2, 3, 255]));

  const empty = roundTrip(new Uint8Array(0)) as Uint8Array;
  assert.equal(empty.constructor, Uint8Array);
  assert.equal(empty.length, 0);

  const large = new Uint8Array(100_000).map((_, i) => i & 0xff);
  const back = roundTrip(large) as Uint8Array;
  assert.equal(back.constructor, Uint8Array);
  assert.deepEqual(back, large);
});

Deno.test("decodeValue() returns a Buffer input's binary data as a plain Uint8Array", () => {
  const out = roundTrip(Buffer.from([9, 8, 7])) as Uint8Array;
  assert.equal(out.constructor, Uint8Array);
  assert.deepEqual(out, new Uint8Array([9, 8, 7]));
  const fromBuffer = decodeValue(Buffer.from([0xc4, 0x02, 1, 2])) as Uint8Array;
  assert.equal(fromBuffer.constructor, Uint8Array);
  assert.deepEqual(fromBuffer, new Uint8Array([1, 2]));
});

Deno.test("decodeValue() round-trips nested arrays and objects", () => {
  const value = {
    a: [1, "two", [3, [4, null]], { b: true }],
    c: { d: { e: { f: "deep" } } },
    g: [],
    h: {},
    bytes: new Uint8Array([1]),
    "key with spaces": -1,
    "": "empty key",
  };
  const back = roundTrip(value) as typeof value;
  assert.deepEqual(back, value);
  assert.equal(Object.getPrototypeOf(back), Object.prototype);
  assert.equal(Object.getPrototypeOf(back.c.d), Object.prototype);
  assert.equal(back.bytes.constructor, Uint8Array);
});

Deno.test("decodeValue() round-trips a Date", () => {
  for (
    const date of [
      new Date(0),
      new Date(1_700_000_000_123),
      new Date(-1_000),
      new Date("2106-02-07T06:28:16.001Z"),
    ]
  ) {
    const back = roundTrip(date);
    assert.ok(back instanceof Date);
    assert.equal(back.getTime(), date.getTime());
  }
});

Deno.test("decodeValue() returns undefined for undefined (msgpackr's ext 0)", () => {
  assert.equal(roundTrip(undefined), undefined);
  assert.deepEqual(roundTrip([undefined, 1]), [undefined, 1]);
});

Deno.test("encodeValue() results are not overwritten by later calls", () => {
  const first = encodeValue({ a: "first" });
  const copy = first.slice();
  for (let i = 0; i < 10_000; i++) encodeValue({ i, s: "x".repeat(i % 100) });
  assert.deepEqual(first, copy);
  assert.deepEqual(decodeValue(first), { a: "first" });
});

Deno.test("encodeValue() throws TypeError for a symbol", () => {
  assert.throws(() => encodeValue(Symbol("x")), (error: unknown) => {
    assert.ok(error instanceof TypeError);
    assert.match(error.message, /cannot encode a value of type symbol/);
    return true;
  });
  assert.throws(() => encodeValue({ s: Symbol("x") }), TypeError);
});

Deno.test("encodeValue() throws TypeError for a cyclic object", () => {
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.throws(() => encodeValue(cyclic), TypeError);
});

Deno.test("encodeValue() encodes a function as undefined (msgpackr does not throw)", () => {
  assert.equal(roundTrip(() => 1), undefined);
  assert.deepEqual(roundTrip({ f() {} }), { f: undefined });
});

Deno.test("decodeValue() rejects garbage bytes", () => {
  assertRejects([0xc1]); // never used in msgpack
  assertRejects([0xc1, 0xc1, 0xc1]);
  assertRejects(new TextEncoder().encode("not msgpack at all"));
  // A map key that is an array.
  assertRejects([0x81, 0x90, 0x01]);
});

Deno.test("decodeValue() rejects empty and truncated input", () => {
  assertRejects([], /not valid msgpack/);
  assertRejects([0x92, 0x01], /not valid msgpack/); // array of 2, one element
  assertRejects([0xa5, 0x61], /not valid msgpack/); // str of 5, one byte
  assertRejects([0xc4, 0x10, 1, 2], /not valid msgpack/); // bin of 16
  assertRejects([0xcb, 0, 0], /not valid msgpack/); // float64 cut short
  assertRejects([0xdd, 0xff, 0xff, 0xff, 0xff], /not valid msgpack/);
  const whole = encodeValue({ a: [1, 2, "three"], b: new Uint8Array(10) });
  for (let i = 0; i < whole.length; i++) {
    assertRejects(whole.subarray(0, i));
  }
});

Deno.test("decodeValue() rejects trailing bytes after one value", () => {
  assertRejects([0x01, 0x02], /expected one msgpack value, found 2/);
  assertRejects([...encodeValue({ a: 1 }), ...encodeValue([1])]);
  assertRejects([0xc0, 0xc0]);
});

Deno.test("decodeValue() rejects nesting deeper than 512", () => {
  assertRejects(nestedArrays(600), /nested deeper than 512/);
  // Objects count as well.
  const deepMap = new Uint8Array(600 * 3 + 1);
  for (let i = 0; i < 600; i++) deepMap.set([0x81, 0xa1, 0x61], i * 3);
  deepMap[600 * 3] = 0xc0;
  assertRejects(deepMap, /nested deeper than 512/);
  // Far deeper input cannot overflow the stack into anything but ProtocolError.
  assertRejects(nestedArrays(200_000));
  // Moderate nesting is fine.
  let v = decodeValue(nestedArrays(100));
  for (let i = 0; i < 100; i++) v = (v as unknown[])[0];
  assert.equal(v, null);
});

Deno.test("decodeValue() never changes a prototype for a __proto__ key", () => {
  const polluted = [
    ...[0x82, 0xa9, ...utf8("__proto__")],
    ...[0x81, 0xa8, ...utf8("polluted"), 0xc3],
    ...[0xa1, 0x61, 0x01],
  ];
  const payloads = [
    new Uint8Array(polluted),
    // Nested one level down.
    new Uint8Array([0x81, 0xa1, 0x78, ...polluted]),
    // Inside an array.
    new Uint8Array([0x91, ...polluted]),
    // An own __proto__ key from JSON.parse, encoded by our own encoder.
    encodeValue(JSON.parse('{"__proto__": {"polluted": true}, "a": 1}')),
  ];
  for (const bytes of payloads) {
    let value: unknown;
    try {
      value = decodeValue(bytes);
    } catch (error) {
      assert.ok(error instanceof ProtocolError, `got ${error}`);
      continue;
    }
    // Whatever the codec does with the key, no prototype may change.
    const objects: unknown[] = [value];
    while (objects.length > 0) {
      const o = objects.pop();
      if (o === null || typeof o !== "object") continue;
      if (Array.isArray(o)) {
        assert.equal(Object.getPrototypeOf(o), Array.prototype);
        objects.push(...o);
        continue;
      }
      assert.equal(Object.getPrototypeOf(o), Object.prototype);
      assert.equal(Object.hasOwn(o, "__proto__"), false);
      objects.push(...Object.values(o));
    }
  }
  assert.equal(Object.hasOwn(Object.prototype, "polluted"), false);
  assert.equal(({} as { polluted?: unknown }).polluted, undefined);
});

Deno.test("decodeValue() rejects msgpackr extensions that build class instances", () => {
  // The bytes msgpackr writes with `moreTypes` and `structuredClone` on.
  const ext = (type: number) => [0xd4, type, 0x00];
  // An Error built by a name off the wire: ["TypeError", "x", undefined].
  assertRejects(
    [...ext(0x65), 0x93, 0xa9, ...utf8("TypeError"), 0xa1, 0x78, 0xd4, 0, 0],
    /unexpected TypeError value/,
  );
  assertRejects([...ext(0x73), 0x91, 0x01], /unexpected Set value/);
  assertRejects(
    [...ext(0x78), 0x92, 0xa2, ...utf8("re"), 0xa1, 0x67],
    /RegExp/,
  );
  assertRejects(
    [0xc7, 0x09, 0x74, 0x08, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f],
    /unexpected Float64Array value/,
  );
  // Nested below plain data too.
  assertRejects([0x81, 0xa1, 0x61, ...ext(0x73), 0x90], /Set/);
});
