// Copyright the privsep authors. Apache-2.0 license.

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { pack } from "msgpackr/pack";
import { unpack } from "msgpackr/unpack";
import { ProtocolError } from "../errors.ts";
import {
  decodeValue,
  encodeFramed,
  encodeValue,
  MAX_DECODED_ITEMS,
} from "./codec.ts";
import { encodeMessage, Kind } from "./messages.ts";

function roundTrip(value: unknown): unknown {
  return decodeValue(encodeValue(value));
}

/** Bytes from a string of hex pairs, spaces ignored. */
function h(hex: string): Uint8Array {
  const clean = hex.replace(/\s+/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  }
  return out;
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ");
}

function concat(...parts: (Uint8Array | number[])[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

const utf8 = (s: string) => new TextEncoder().encode(s);

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

/** `depth` nested one-element msgpack arrays around nil. */
function nestedArrays(depth: number): Uint8Array {
  const bytes = new Uint8Array(depth + 1).fill(0x91);
  bytes[depth] = 0xc0;
  return bytes;
}

/** `depth` nested one-entry maps `{a: …}` around nil. */
function nestedMaps(depth: number): Uint8Array {
  const bytes = new Uint8Array(depth * 3 + 1);
  for (let i = 0; i < depth; i++) bytes.set([0x81, 0xa1, 0x61], i * 3);
  bytes[depth * 3] = 0xc0;
  return bytes;
}

/** msgpackr's view of data: Buffer as Uint8Array, safe int64 as number. */
function normalize(value: unknown): unknown {
  if (typeof value === "bigint") {
    return value >= -BigInt(Number.MAX_SAFE_INTEGER) &&
        value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : value;
  }
  if (value instanceof Uint8Array) return new Uint8Array(value);
  if (Array.isArray(value)) return value.map(normalize);
  if (value instanceof Date || value === null || typeof value !== "object") {
    return value;
  }
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, normalize(v)]),
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

Deno.test("decodeValue() reads float 32", () => {
  assert.equal(decodeValue(h("ca 3f c0 00 00")), 1.5);
  assert.ok(Object.is(decodeValue(h("ca 80 00 00 00")), -0));
  assert.equal(decodeValue(h("ca 7f 80 00 00")), Infinity);
  assert.ok(Number.isNaN(decodeValue(h("ca 7f c0 00 00"))));
});

Deno.test("bigints travel as int 64 or uint 64; within 2^53 they decode as numbers", () => {
  assert.equal(hex(encodeValue(5n)), "cf 00 00 00 00 00 00 00 05");
  assert.equal(hex(encodeValue(-5n)), "d3 ff ff ff ff ff ff ff fb");
  assert.equal(roundTrip(5n), 5);
  assert.equal(roundTrip(-5n), -5);
  assert.equal(roundTrip(2n ** 53n - 1n), Number.MAX_SAFE_INTEGER);
  assert.equal(roundTrip(-(2n ** 53n) + 1n), Number.MIN_SAFE_INTEGER);
  for (
    const n of [
      2n ** 53n,
      2n ** 53n + 1n,
      -(2n ** 53n),
      -(2n ** 53n) - 1n,
      2n ** 63n - 1n,
      2n ** 63n,
      -(2n ** 63n),
      2n ** 64n - 1n,
    ]
  ) {
    assert.equal(roundTrip(n), n);
  }
  assert.equal(hex(encodeValue(2n ** 64n - 1n)), "cf ff ff ff ff ff ff ff ff");
  assert.equal(hex(encodeValue(-(2n ** 63n))), "d3 80 00 00 00 00 00 00 00");
  // The same boundaries written by hand.
  assert.equal(decodeValue(h("cf 00 20 00 00 00 00 00 00")), 2n ** 53n);
  assert.equal(decodeValue(h("d3 ff e0 00 00 00 00 00 00")), -(2n ** 53n));
  assert.equal(decodeValue(h("d3 00 00 00 00 00 00 00 07")), 7);
  assert.equal(decodeValue(h("cf 00 00 00 00 00 00 00 00")), 0);
});

Deno.test("encodeValue() throws TypeError for a bigint beyond 64 bits", () => {
  assertUnencodable(2n ** 64n, /bigint 18446744073709551616 .*64 bits/);
  assertUnencodable(-(2n ** 63n) - 1n, /bigint -9223372036854775809/);
  assertUnencodable({ n: [2n ** 100n] }, /at value\.n\[0\]/);
});

Deno.test("strings take fixstr, str 8, str 16 or str 32 by their UTF-8 length", () => {
  const cases: [number, string][] = [
    [0, "a0"],
    [1, "a1"],
    [31, "bf"],
    [32, "d9 20"],
    [255, "d9 ff"],
    [256, "da 01 00"],
    [65535, "da ff ff"],
    [65536, "db 00 01 00 00"],
  ];
  for (const [n, header] of cases) {
    const s = "x".repeat(n);
    const bytes = encodeValue(s);
    const headerBytes = h(header);
    assert.equal(bytes.length, headerBytes.length + n);
    assert.equal(hex(bytes.subarray(0, headerBytes.length)), header, `${n}`);
    assert.ok(bytes.subarray(headerBytes.length).every((b) => b === 0x78));
    assert.equal(decodeValue(bytes), s);
  }
  assert.equal(hex(encodeValue("hi")), "a2 68 69");
  assert.equal(hex(encodeValue("ü")), "a2 c3 bc");
});

Deno.test("strings whose UTF-8 form crosses a header boundary get the larger header", () => {
  // 16 characters, 32 bytes: str 8, not fixstr.
  const e16 = "é".repeat(16);
  assert.equal(hex(encodeValue(e16).subarray(0, 2)), "d9 20");
  assert.equal(roundTrip(e16), e16);
  // 31 characters, 32 bytes.
  const mixed = "x".repeat(30) + "é";
  assert.equal(hex(encodeValue(mixed).subarray(0, 2)), "d9 20");
  assert.equal(roundTrip(mixed), mixed);
  // 128 characters, 256 bytes: str 16.
  const e128 = "é".repeat(128);
  assert.equal(hex(encodeValue(e128).subarray(0, 3)), "da 01 00");
  assert.equal(roundTrip(e128), e128);
  // 21846 characters, 65538 bytes: str 32.
  const euro = "€".repeat(21846);
  assert.equal(hex(encodeValue(euro).subarray(0, 5)), "db 00 01 00 02");
  assert.equal(roundTrip(euro), euro);
});

Deno.test("strings round-trip: unicode, NUL, a leading BOM, every length up to 300", () => {
  for (
    const s of [
      "",
      "ü",
      "日本語",
      "😀 and \u{10FFFF}",
      "nul\0inside",
      "\uFEFFstarts with a BOM",
      "\uFEFF",
      "ascii then ü",
      "y".repeat(70_000),
      "ü".repeat(70_000),
    ]
  ) {
    assert.equal(roundTrip(s), s);
    assert.equal(hex(encodeValue(s)), hex(pack(s)), `same bytes as msgpackr`);
  }
  // Both decoding paths (short ASCII by hand, the rest by TextDecoder), with
  // the non-ASCII character at every position.
  for (let n = 0; n <= 300; n++) {
    const ascii = Array.from({ length: n }, (_, i) => "abc#/._-"[i % 8]).join(
      "",
    );
    assert.equal(roundTrip(ascii), ascii);
    if (n > 0) {
      const at = n % 37 % n;
      const s = ascii.slice(0, at) + "ß" + ascii.slice(at + 1);
      assert.equal(roundTrip(s), s);
    }
  }
});

Deno.test("a lone surrogate encodes as U+FFFD, like TextEncoder", () => {
  assert.equal(roundTrip("a\uD800b"), "a\uFFFDb");
  assert.equal(roundTrip("\uDC00"), "\uFFFD");
});

Deno.test("bin takes bin 8, bin 16 or bin 32 by length", () => {
  const cases: [number, string][] = [
    [0, "c4 00"],
    [1, "c4 01"],
    [255, "c4 ff"],
    [256, "c5 01 00"],
    [8191, "c5 1f ff"],
    [8192, "c5 20 00"],
    [65535, "c5 ff ff"],
    [65536, "c6 00 01 00 00"],
    [1 << 20, "c6 00 10 00 00"],
  ];
  for (const [n, header] of cases) {
    const data = new Uint8Array(n).map((_, i) => (i * 7) & 0xff);
    const bytes = encodeValue(data);
    const headerBytes = h(header);
    assert.equal(bytes.length, headerBytes.length + n);
    assert.equal(hex(bytes.subarray(0, headerBytes.length)), header, `${n}`);
    const back = decodeValue(bytes) as Uint8Array;
    assert.equal(back.constructor, Uint8Array);
    assert.deepEqual(back, data);
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
  assert.equal(out.byteOffset, 0);
  assert.equal(out.buffer.byteLength, 4);
  wire.fill(0);
  input.fill(0);
  assert.deepEqual(out, new Uint8Array([1, 2, 3, 255]));

  // An input that is a view into a larger buffer.
  const framed = concat([9, 9, 9], [0xc4, 0x02, 7, 8], [9]);
  const view = decodeValue(framed.subarray(3, 7)) as Uint8Array;
  assert.deepEqual(view, new Uint8Array([7, 8]));
  framed.fill(0);
  assert.deepEqual(view, new Uint8Array([7, 8]));
});

Deno.test("a Buffer encodes as bin and decodes as a plain Uint8Array; a Buffer input never aliases", () => {
  assert.equal(hex(encodeValue(Buffer.from([9, 8, 7]))), "c4 03 09 08 07");
  const out = roundTrip(Buffer.from([9, 8, 7])) as Uint8Array;
  assert.equal(out.constructor, Uint8Array);
  assert.deepEqual(out, new Uint8Array([9, 8, 7]));
  const input = Buffer.from([0x91, 0xc4, 0x02, 1, 2]);
  const [fromBuffer] = decodeValue(input) as [Uint8Array];
  assert.equal(fromBuffer.constructor, Uint8Array);
  assert.deepEqual(fromBuffer, new Uint8Array([1, 2]));
  input.fill(0);
  assert.deepEqual(fromBuffer, new Uint8Array([1, 2]));
});

Deno.test("arrays take fixarray, array 16 or array 32 by length", () => {
  const cases: [number, string][] = [
    [0, "90"],
    [15, "9f"],
    [16, "dc 00 10"],
    [65535, "dc ff ff"],
    [65536, "dd 00 01 00 00"],
  ];
  for (const [n, header] of cases) {
    const array = Array.from({ length: n }, (_, i) => i & 0x7f);
    const bytes = encodeValue(array);
    assert.equal(hex(bytes.subarray(0, h(header).length)), header, `${n}`);
    assert.equal(bytes.length, h(header).length + n);
    assert.deepEqual(decodeValue(bytes), array);
  }
  assert.equal(hex(encodeValue([1, "a"])), "92 01 a1 61");
});

Deno.test("array holes encode as undefined", () => {
  // deno-lint-ignore no-sparse-arrays
  const sparse = [1, , 3];
  assert.equal(hex(encodeValue(sparse)), "93 01 d4 00 00 03");
  assert.deepEqual(roundTrip(sparse), [1, undefined, 3]);
  assert.deepEqual(roundTrip(new Array(2)), [undefined, undefined]);
});

Deno.test("objects take fixmap, map 16 or map 32 by key count", () => {
  const cases: [number, string][] = [
    [0, "80"],
    [15, "8f"],
    [16, "de 00 10"],
    [65535, "de ff ff"],
    [65536, "df 00 01 00 00"],
  ];
  for (const [n, header] of cases) {
    const object: Record<string, number> = {};
    for (let i = 0; i < n; i++) object[`k${i}`] = i & 0x7f;
    const bytes = encodeValue(object);
    assert.equal(hex(bytes.subarray(0, h(header).length)), header, `${n}`);
    const back = decodeValue(bytes) as Record<string, number>;
    assert.deepEqual(back, object);
    assert.deepEqual(Object.keys(back), Object.keys(object), "key order");
    assert.equal(Object.getPrototypeOf(back), Object.prototype);
  }
  assert.equal(hex(encodeValue({ a: 1 })), "81 a1 61 01");
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

Deno.test("maps of 16 or more keys holding large Uint8Arrays and nested maps encode right", () => {
  // The encoder reserves one byte for a map's header and moves the entries
  // up for map 16: large Uint8Arrays are copied only at the end, so their
  // places must move too.
  const big = (n: number, seed: number) =>
    new Uint8Array(n).map((_, i) => (i * seed) & 0xff);
  const inner: Record<string, unknown> = {};
  for (let i = 0; i < 20; i++) {
    inner[`i${i}`] = i % 5 === 0 ? big(9000 + i, i + 3) : i;
  }
  const outer: Record<string, unknown> = { first: big(10_000, 1) };
  for (let i = 0; i < 17; i++) outer[`o${i}`] = i === 8 ? inner : `s${i}`;
  outer.last = big(70_000, 5);
  const value = [outer, big(8192, 7), { small: big(3, 1) }];
  const bytes = encodeValue(value);
  assert.deepEqual(decodeValue(bytes), value);
  assert.deepEqual(normalize(unpack(bytes)), value);
  assert.deepEqual(decodeValue(pack(value)), value);
});

Deno.test("Date travels as the timestamp extension, 32, 64 or 96 bit by value", () => {
  assert.equal(hex(encodeValue(new Date(0))), "d6 ff 00 00 00 00");
  assert.equal(
    hex(encodeValue(new Date(1_700_000_000_000))),
    "d6 ff 65 53 f1 00",
  );
  // 123 ms = 123 000 000 ns, in the top 30 bits of the first word.
  assert.equal(
    hex(encodeValue(new Date(1_700_000_000_123))),
    "d7 ff 1d 53 53 00 65 53 f1 00",
  );
  // Before 1970: timestamp 96, i64 seconds -1 plus 999 ms.
  assert.equal(
    hex(encodeValue(new Date(-1))),
    "c7 0c ff 3b 8b 87 c0 ff ff ff ff ff ff ff ff",
  );
  // 2^34 seconds and beyond: timestamp 96.
  assert.equal(encodeValue(new Date(2 ** 34 * 1000))[0], 0xc7);
  for (
    const date of [
      new Date(0),
      new Date(1),
      new Date(1_700_000_000_123),
      new Date(-1),
      new Date(-1_000),
      new Date(-1_500),
      new Date("2106-02-07T06:28:15.000Z"), // 2^32 - 1 s
      new Date("2106-02-07T06:28:16.001Z"), // timestamp 64
      new Date(2 ** 34 * 1000 - 1), // the last timestamp 64
      new Date(2 ** 34 * 1000),
      new Date(8.64e15),
      new Date(-8.64e15),
      new Date("0001-01-01T00:00:00.000Z"),
    ]
  ) {
    const back = roundTrip(date);
    assert.ok(back instanceof Date);
    assert.equal(back.getTime(), date.getTime(), date.toISOString());
  }
});

Deno.test("encodeValue() throws TypeError for an invalid Date", () => {
  assertUnencodable(new Date(NaN), /invalid Date at value/);
  assertUnencodable({ when: new Date("nope") }, /invalid Date at value\.when/);
});

Deno.test("decodeValue() rejects malformed timestamps", () => {
  // msgpackr's "invalid Date": fixext 1 of type -1.
  assertRejects(h("d4 ff ff"), /timestamp of 1 bytes/);
  assertRejects(h("d5 ff 00 00"), /timestamp of 2 bytes/);
  assertRejects(h("d8 ff" + " 00".repeat(16)), /timestamp of 16 bytes/);
  // Nanoseconds of 10^9 (0x3b9aca00 << 2).
  assertRejects(h("d7 ff ee 6b 28 00 00 00 00 00"), /nanoseconds/);
  assertRejects(h("c7 0c ff 3b 9a ca 00 00 00 00 00 00 00 00 00"), /nanosec/);
  // Seconds beyond what a Date holds.
  assertRejects(
    h("c7 0c ff 00 00 00 00 7f ff ff ff ff ff ff ff"),
    /outside the range of Date/,
  );
  assertRejects(
    h("c7 0c ff 00 00 00 00 00 00 07 dc 00 00 00 00"),
    /outside the range of Date/,
  );
});

Deno.test("undefined travels as fixext 1 type 0 (d4 00 00)", () => {
  assert.equal(hex(encodeValue(undefined)), "d4 00 00");
  assert.equal(decodeValue(h("d4 00 00")), undefined);
  assert.deepEqual(roundTrip([undefined, 1]), [undefined, 1]);
  const back = roundTrip({ u: undefined }) as Record<string, unknown>;
  assert.ok(Object.hasOwn(back, "u"));
  assert.equal(back.u, undefined);
});

Deno.test("decodeValue() round-trips nested arrays and objects as plain objects", () => {
  const value = {
    a: [1, "two", [3, [4, null]], { b: true }],
    c: { d: { e: { f: "deep" } } },
    g: [],
    h: {},
    bytes: new Uint8Array([1]),
    "key with spaces": -1,
    "": "empty key",
    "ключ": "non-ASCII key",
    "a key longer than sixteen bytes": 1,
  };
  const back = roundTrip(value) as typeof value;
  assert.deepEqual(back, value);
  assert.equal(Object.getPrototypeOf(back), Object.prototype);
  assert.equal(Object.getPrototypeOf(back.c.d), Object.prototype);
  assert.equal(back.bytes.constructor, Uint8Array);
});

Deno.test("map keys come back right whatever they share (the key cache)", () => {
  // Keys that are prefixes of one another, differ in one byte, are non-ASCII
  // or empty, decoded many times in varying combinations.
  let seed = 7;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const alphabet = ["a", "b", "ü", "€", "0", "_", "😀"];
  for (let round = 0; round < 2000; round++) {
    const object: Record<string, number> = {};
    const n = rand(20);
    for (let i = 0; i < n; i++) {
      let key = "";
      const length = rand(10);
      for (let j = 0; j < length; j++) key += alphabet[rand(alphabet.length)];
      if (key !== "__proto__") object[key] = i;
    }
    assert.deepEqual(roundTrip(object), object);
  }
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
// Cross-compatibility with msgpackr

const compatible: unknown[] = [
  null,
  true,
  false,
  0,
  1,
  127,
  128,
  255,
  256,
  65535,
  65536,
  2 ** 32 - 1,
  -1,
  -32,
  -33,
  -128,
  -129,
  -32768,
  -32769,
  -(2 ** 31),
  1.5,
  -0.25,
  1e300,
  NaN,
  Infinity,
  -Infinity,
  "",
  "hi",
  "x".repeat(31),
  "x".repeat(32),
  "x".repeat(256),
  "y".repeat(65536),
  "ünïcødé 😀",
  new Uint8Array(0),
  new Uint8Array([1, 2, 3]),
  new Uint8Array(300).fill(9),
  new Uint8Array(70_000).fill(1),
  [],
  [1, [2, [3, [4]]]],
  Array.from({ length: 16 }, (_, i) => i),
  Array.from({ length: 70_000 }, (_, i) => i % 3),
  {},
  { a: 1, b: "two", c: [3], d: { e: null } },
  Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])),
  new Date(0),
  new Date(1_700_000_000_123),
  new Date(-1_500),
  new Date(2 ** 34 * 1000 + 5),
  undefined,
  [undefined, null],
  2n ** 63n - 1n,
  -(2n ** 63n),
  2n ** 64n - 1n,
  [1, 17, "ops.ts#echo", [null]],
  [2, 17, { ok: true, path: "/etc/motd", size: 1234 }],
];

Deno.test("decodeValue() reads what msgpackr's pack() writes", () => {
  for (const value of compatible) {
    assert.deepEqual(
      decodeValue(pack(value)),
      value,
      `${Deno.inspect(value).slice(0, 80)}`,
    );
  }
  // msgpackr writes integers beyond 32 bits as float 64.
  for (const n of [2 ** 32, 2 ** 53 - 1, -(2 ** 40)]) {
    assert.equal(decodeValue(pack(n)), n);
  }
});

Deno.test("msgpackr's unpack() reads what encodeValue() writes", () => {
  for (
    const value of [
      ...compatible,
      -0,
      2 ** 32,
      2 ** 53 - 1,
      -(2 ** 53) + 1,
      5n,
      -5n,
    ]
  ) {
    assert.deepEqual(
      normalize(unpack(encodeValue(value))),
      normalize(value),
      `${Deno.inspect(value).slice(0, 80)}`,
    );
  }
});

Deno.test("encodeValue() writes the same bytes as msgpackr for small integers, strings, bin, arrays and Dates", () => {
  for (
    const value of [
      0,
      127,
      128,
      -32,
      -33,
      65536,
      "hi",
      "x".repeat(300),
      new Uint8Array([1, 2]),
      [1, "a", null, true],
      new Date(0),
      new Date(1_700_000_000_123),
      undefined,
    ]
  ) {
    assert.equal(
      hex(encodeValue(value)),
      hex(pack(value)),
      Deno.inspect(value),
    );
  }
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

Deno.test("decodeValue() throws TypeError for a non-Uint8Array argument", () => {
  assert.throws(() => decodeValue([0xc0] as unknown as Uint8Array), TypeError);
  assert.throws(
    () => decodeValue(new ArrayBuffer(1) as unknown as Uint8Array),
    TypeError,
  );
});

// ---------------------------------------------------------------------------
// What cannot be decoded

Deno.test("decodeValue() rejects the reserved byte 0xc1 and garbage", () => {
  assertRejects([0xc1], /reserved byte 0xc1 at byte offset 0/);
  assertRejects([0x92, 0x01, 0xc1], /reserved byte 0xc1 at byte offset 2/);
  assertRejects(utf8("not msgpack at all"), /trailing/);
});

Deno.test("decodeValue() rejects empty and truncated input, saying where", () => {
  assertRejects([], /empty input at byte offset 0/);
  assertRejects(
    [0x92, 0x01],
    /array of 2 elements needs 2 more byte\(s\), 1 left/,
  );
  assertRejects(
    [0x92, 0xa1, 0x61],
    /input ends where a value should start at byte offset 3/,
  );
  assertRejects(
    [0xa5, 0x61],
    /str of 5 bytes needs 5 more byte\(s\), 1 left at byte offset 0/,
  );
  assertRejects([0xc4, 0x10, 1, 2], /bin of 16 bytes .* at byte offset 0/);
  assertRejects([0xcb, 0, 0], /float 64 needs 8 more byte\(s\), 2 left/);
  assertRejects([0xcd, 0], /uint 16/);
  assertRejects(
    [0x91, 0xd9],
    /str 8 needs 1 more byte\(s\), 0 left at byte offset 1/,
  );
  const whole = encodeValue({
    a: [1, 2, "three", 2 ** 40, -(2 ** 40), 1.5, 2n ** 60n],
    b: new Uint8Array(10),
    c: new Date(1_700_000_000_123),
    d: undefined,
    "a key longer than sixteen bytes": "ü".repeat(20),
  });
  for (let i = 0; i < whole.length; i++) assertRejects(whole.subarray(0, i));
});

Deno.test("decodeValue() rejects trailing bytes after one value", () => {
  assertRejects(
    [0x01, 0x02],
    /1 trailing byte\(s\) after the value at byte offset 1/,
  );
  assertRejects(concat(encodeValue({ a: 1 }), encodeValue([1])), /trailing/);
  assertRejects([0xc0, 0xc0], /trailing/);
});

Deno.test("decodeValue() allows 512 levels of arrays and maps, not 513", () => {
  let v = decodeValue(nestedArrays(512));
  for (let i = 0; i < 512; i++) v = (v as unknown[])[0];
  assert.equal(v, null);
  assert.ok(decodeValue(nestedMaps(512)));
  assertRejects(nestedArrays(513), /nested deeper than 512 at byte offset 512/);
  assertRejects(nestedMaps(513), /nested deeper than 512 at byte offset 1536/);
  // Far deeper input cannot overflow the stack into anything but ProtocolError.
  assertRejects(nestedArrays(200_000), /nested deeper than 512/);
});

Deno.test("decodeValue() rejects map keys that are not strings", () => {
  assertRejects(
    [0x81, 0x01, 0x01],
    /map key that is not a str at byte offset 1/,
  );
  assertRejects([0x81, 0xc0, 0x01], /map key that is not a str/);
  assertRejects([0x81, 0x90, 0x01], /map key that is not a str/);
  assertRejects([0x81, 0xc4, 0x01, 0x61, 0x01], /map key that is not a str/);
  assertRejects(
    [0x82, 0xa1, 0x61, 0x01, 0xcb, ...new Array(8).fill(0), 0x01],
    /not a str at byte offset 4/,
  );
});

Deno.test("decodeValue() rejects a __proto__ key anywhere, and no prototype changes", () => {
  const polluted = [
    ...[0x82, 0xa9, ...utf8("__proto__")],
    ...[0x81, 0xa8, ...utf8("polluted"), 0xc3],
    ...[0xa1, 0x61, 0x01],
  ];
  assertRejects(polluted, /map key "__proto__" at byte offset 1/);
  assertRejects(
    [0x81, 0xa1, 0x78, ...polluted],
    /"__proto__" at byte offset 4/,
  );
  assertRejects([0x91, ...polluted], /"__proto__" at byte offset 2/);
  // str 8 form of the same key.
  assertRejects([0x81, 0xd9, 0x09, ...utf8("__proto__"), 0xc0], /__proto__/);
  assertRejects(pack(JSON.parse('{"__proto__": {"polluted": true}}')));
  assert.equal(Object.hasOwn(Object.prototype, "polluted"), false);
  assert.equal(({} as { polluted?: unknown }).polluted, undefined);
  // Other keys that name Object.prototype's members are plain own keys.
  const back = decodeValue(encodeValue({ constructor: 1, toString: 2 }));
  assert.deepEqual(Object.keys(back as object), ["constructor", "toString"]);
  assert.equal(Object.getPrototypeOf(back), Object.prototype);
});

Deno.test("decodeValue() rejects every extension but undefined and timestamps, without building anything", () => {
  const ext = (type: number) => [0xd4, type, 0x00];
  // The bytes msgpackr writes with `moreTypes` and `structuredClone` on:
  // an Error built by a name off the wire, Set, RegExp, typed arrays.
  assertRejects(
    [...ext(0x65), 0x93, 0xa9, ...utf8("TypeError"), 0xa1, 0x78, 0xd4, 0, 0],
    /unsupported ext type 101 at byte offset 0/,
  );
  assertRejects([...ext(0x73), 0x91, 0x01], /unsupported ext type 115/);
  assertRejects(
    [...ext(0x78), 0x92, 0xa2, ...utf8("re"), 0xa1, 0x67],
    /unsupported ext type 120/,
  );
  assertRejects(
    [0xc7, 0x09, 0x74, 0x08, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f],
    /unsupported ext type 116/,
  );
  // A record definition (msgpackr's structures).
  assertRejects([0xd4, 0x72, 0x40], /unsupported ext type 114/);
  // Nested below plain data too.
  assertRejects(
    [0x81, 0xa1, 0x61, ...ext(0x73), 0x90],
    /ext type 115 at byte offset 3/,
  );
  for (const type of [1, 2, 0x42, 0x7f, 0x80, 0xfe]) {
    for (const head of [[0xd4], [0xd5], [0xd6], [0xd7], [0xd8]]) {
      const n = 1 << (head[0] - 0xd4);
      assertRejects(
        [...head, type, ...new Array(n).fill(0)],
        /unsupported ext type/,
      );
    }
    assertRejects([0xc7, 0x03, type, 1, 2, 3], /unsupported ext type/);
    assertRejects([0xc8, 0x00, 0x01, type, 1], /unsupported ext type/);
    assertRejects(
      [0xc9, 0x00, 0x00, 0x00, 0x01, type, 1],
      /unsupported ext type/,
    );
  }
  // Type 0 is only undefined: one byte, 0.
  assertRejects([0xd4, 0x00, 0x01], /ext type 0 that is not undefined/);
  assertRejects([0xd5, 0x00, 0x00, 0x00], /ext type 0 that is not undefined/);
  assertRejects([0xc7, 0x00, 0x00], /ext type 0 that is not undefined/);
});

Deno.test("decodeValue() rejects invalid UTF-8 in strings and keys", () => {
  const bad = [
    [0xff],
    [0xc0, 0x80], // overlong NUL
    [0xe0, 0x80, 0x80], // overlong
    [0xed, 0xa0, 0x80], // an encoded surrogate
    [0x80], // a lone continuation byte
    [0xe2, 0x82], // cut short
    [0xf4, 0x90, 0x80, 0x80], // beyond U+10FFFF
    [0x61, 0x62, 0xc3], // ASCII, then cut short
  ];
  for (const bytes of bad) {
    assertRejects(
      [0xa0 | bytes.length, ...bytes],
      /not valid UTF-8 at byte offset 0/,
    );
    assertRejects(
      [0x81, 0xa0 | bytes.length, ...bytes, 0xc0],
      /not valid UTF-8 at byte offset 1/,
    );
    const long = [...new Array(40).fill(0x61), ...bytes];
    assertRejects([0xd9, long.length, ...long], /not valid UTF-8/);
    assertRejects([0x81, 0xd9, long.length, ...long, 0xc0], /not valid UTF-8/);
  }
});

Deno.test("decodeValue() checks every length against the bytes left before allocating", () => {
  assertRejects(
    [0xdb, 0xff, 0xff, 0xff, 0xff, 0x61],
    /str of 4294967295 bytes needs 4294967295 more byte\(s\), 1 left at byte offset 0/,
  );
  assertRejects(
    [0xc6, 0xff, 0xff, 0xff, 0xff, 0x61],
    /bin of 4294967295 bytes/,
  );
  assertRejects([0xdd, 0xff, 0xff, 0xff, 0xff], /array of 4294967295 elements/);
  assertRejects([0xdf, 0xff, 0xff, 0xff, 0xff], /map of 4294967295 entries/);
  assertRejects(
    [0xc9, 0xff, 0xff, 0xff, 0xff, 0xff],
    /ext of 4294967295 bytes/,
  );
  assertRejects(
    [0xdc, 0x00, 0x03, 0x01, 0x02],
    /array of 3 elements needs 3 more byte\(s\), 2 left/,
  );
  // A map of n entries needs 2n bytes, even if n would fit.
  assertRejects(
    [0x83, 0xa1, 0x61, 0x01, 0xc0],
    /map of 3 entries needs 6 more byte\(s\), 4 left/,
  );
  assertRejects([0xde, 0x00, 0x02, 0xa0, 0xc0, 0xa0], /map of 2 entries/);
});

Deno.test("decodeValue() fails fast on an array header of 2^32 - 1 elements in a 10-byte input", () => {
  const input = h("dd ff ff ff ff c0 c0 c0 c0 c0");
  const before = Deno.memoryUsage().heapUsed;
  const started = performance.now();
  for (let i = 0; i < 1000; i++) {
    assertRejects(
      input,
      /array of 4294967295 elements needs 4294967295 more byte\(s\), 5 left at byte offset 0/,
    );
  }
  const elapsed = performance.now() - started;
  assert.ok(elapsed < 1000, `took ${elapsed} ms`);
  // Allocating the array even once would take gigabytes.
  assert.ok(Deno.memoryUsage().heapUsed - before < 64 << 20);
  // The same inside a map and an array.
  assertRejects(h("81 a1 61 dd ff ff ff ff c0"), /at byte offset 3/);
  assertRejects(
    h("91 df ff ff ff ff c0 c0 c0"),
    /map of 4294967295 entries .* at byte offset 1/,
  );
});

// ---------------------------------------------------------------------------
// Fuzz

/** mulberry32: a small seeded PRNG, so a failure can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FUZZ_SEED = 0x5eed_c0de;

Deno.test(`decodeValue() on 20 000 random inputs (seed 0x${FUZZ_SEED.toString(16)}) throws nothing but ProtocolError`, () => {
  const random = prng(FUZZ_SEED);
  const int = (n: number) => Math.floor(random() * n);
  const corpus = [
    encodeValue([1, 17, "ops.ts#echo", [null, true, -1, 1.5]]),
    encodeValue({ a: [1, 2, { b: "ü" }], c: new Uint8Array([1, 2, 3]) }),
    encodeValue([
      new Date(1_700_000_000_123),
      undefined,
      2n ** 60n,
      -(2 ** 40),
    ]),
    encodeValue({ "a key longer than sixteen bytes": ["x".repeat(40)] }),
    encodeValue(Array.from({ length: 20 }, (_, i) => ({ [`k${i}`]: i }))),
  ];
  // Bytes that start containers, long lengths and extensions, more often.
  const interesting = [
    0xc1,
    0xd4,
    0xd6,
    0xd7,
    0xc7,
    0xc9,
    0xdc,
    0xdd,
    0xde,
    0xdf,
    0xdb,
    0xc6,
    0xff,
    0x00,
    0x80,
    0x90,
    0xa0,
    0xcf,
    0xd3,
  ];
  const started = performance.now();
  let decoded = 0;
  for (let i = 0; i < 20_000; i++) {
    let input: Uint8Array;
    if (i % 2 === 0) {
      input = new Uint8Array(int(48));
      for (let j = 0; j < input.length; j++) {
        input[j] = random() < 0.3
          ? interesting[int(interesting.length)]
          : int(256);
      }
    } else {
      const bytes = [...corpus[int(corpus.length)]];
      for (let m = 1 + int(4); m > 0; m--) {
        const at = int(bytes.length);
        const what = int(3);
        if (what === 0) bytes[at] = int(256);
        else if (what === 1) bytes.splice(at, 1);
        else bytes.splice(at, 0, interesting[int(interesting.length)]);
      }
      input = new Uint8Array(bytes);
    }
    let value: unknown;
    try {
      value = decodeValue(input);
    } catch (error) {
      if (!(error instanceof ProtocolError)) {
        throw new Error(`input ${i} [${hex(input)}] threw ${error}`);
      }
      continue;
    }
    decoded++;
    // Whatever decodes encodes again, and decodes to the same.
    assert.deepStrictEqual(decodeValue(encodeValue(value)), value, hex(input));
  }
  assert.ok(decoded > 100, `only ${decoded} inputs decoded`);
  assert.ok(performance.now() - started < 20_000, "the fuzz run hung");
});

Deno.test("decodeValue() caps the number of decoded items in one message", () => {
  // 2^20 + 1 empty arrays inside one array32: about 1 MiB on the wire.
  const n = MAX_DECODED_ITEMS;
  const bytes = new Uint8Array(5 + n);
  bytes[0] = 0xdd;
  new DataView(bytes.buffer).setUint32(1, n);
  bytes.fill(0x90, 5);
  assert.throws(() => decodeValue(bytes), (e: unknown) => {
    assert.ok(e instanceof ProtocolError);
    assert.match(e.message, /more than 1048576 array elements and map entries/);
    return true;
  });
  // Just below the cap decodes.
  const ok = new Uint8Array(5 + (n - 2));
  ok[0] = 0xdd;
  new DataView(ok.buffer).setUint32(1, n - 2);
  ok.fill(0xc0, 5);
  assert.equal((decodeValue(ok) as unknown[]).length, n - 2);
});
