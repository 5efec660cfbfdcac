// Copyright the privsep authors. Apache-2.0 license.

// Tests of the msgpack wire format in both directions: each type's
// encodings round-trip, and msgpackr reads what we write and we read what it
// writes.

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { pack } from "msgpackr/pack";
import { unpack } from "msgpackr/unpack";
import { decodeValue } from "./decode.ts";
import { encodeValue } from "./encode.ts";
import { h, hex, roundTrip } from "./_test_util.ts";

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

// ---------------------------------------------------------------------------
// Each type's encodings, both ways

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

Deno.test("undefined travels as fixext 1 type 0 (d4 00 00)", () => {
  assert.equal(hex(encodeValue(undefined)), "d4 00 00");
  assert.equal(decodeValue(h("d4 00 00")), undefined);
  assert.deepEqual(roundTrip([undefined, 1]), [undefined, 1]);
  const back = roundTrip({ u: undefined }) as Record<string, unknown>;
  assert.ok(Object.hasOwn(back, "u"));
  assert.equal(back.u, undefined);
});

// ---------------------------------------------------------------------------
// Cross-compatibility with msgpackr

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
