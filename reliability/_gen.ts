// Seeded generators for the fuzzers: every input is a function of (seed,
// iteration), so `--seed=N --from=I --iterations=1` replays one input.
import { encodeValue } from "../protocol/codec.ts";
import { concatFrames } from "../protocol/frame.ts";

/** A small, fast, seeded PRNG (mulberry32). */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** The PRNG for iteration `i` of run `seed`. */
  static at(seed: number, i: number): Rng {
    let h = (seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
    return new Rng(h ^ (h >>> 16));
  }
  next(): number {
    let t = (this.#s += 0x6d2b79f5);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

const STRINGS = [
  "",
  "a",
  "ünïcødé",
  "\u0000",
  "\ud83d\ude00",
  "\ufeffbom",
  "__proto__x",
  "constructor",
  "x".repeat(40),
];

/** A random value the protocol can carry (what `echo` must return as is). */
export function randomValue(r: Rng, depth = 0, budget = { n: 64 }): unknown {
  budget.n--;
  const leaf = depth > 4 || budget.n <= 0 || r.chance(0.55);
  if (leaf) {
    switch (r.int(16)) {
      case 0:
        return null;
      case 1:
        return r.chance(0.5);
      case 2:
        return r.range(-40, 200);
      case 3:
        return r.pick([
          0,
          -0,
          NaN,
          Infinity,
          -Infinity,
          2 ** 53 - 1,
          -(2 ** 53 - 1),
          2 ** 53,
          1e308,
          5e-324,
          0xffffffff,
          -0x80000000,
          1.5,
        ]);
      case 4:
        return r.pick([
          0n,
          2n ** 63n - 1n,
          -(2n ** 63n),
          2n ** 64n - 1n,
          2n ** 60n,
          -(2n ** 60n),
        ]);
      case 5:
        return r.bytes(r.pick([0, 1, 31, 256, 9000]));
      case 6:
        return new Date(r.pick([0, -1, 8.64e15, -8.64e15, 1_700_000_000_123]));
      case 7:
        return undefined;
      case 8:
        return r.next() * 1e6 - 5e5;
      default:
        return r.chance(0.5) ? r.pick(STRINGS) : String.fromCharCode(
          ...Array.from({ length: r.int(40) }, () => r.range(32, 0x7ff)),
        );
    }
  }
  if (r.chance(0.5)) {
    return Array.from(
      { length: r.int(6) },
      () => randomValue(r, depth + 1, budget),
    );
  }
  const o: Record<string, unknown> = {};
  for (let i = r.int(6); i > 0; i--) {
    o[r.pick(["a", "b", "k", "", "ü", "constructor", "toString", "x y"]) + i] =
      randomValue(r, depth + 1, budget);
  }
  return o;
}

/** Big-endian u32. */
export function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0);
  return b;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  return concatFrames(parts);
}

/** `body` with its u32 length prefix. */
export function frame(body: Uint8Array): Uint8Array {
  return concat(u32(body.length), body);
}

/** Nesting of `n` arrays around `inner` (as raw msgpack). */
export function nested(n: number, inner = new Uint8Array([0xc0])): Uint8Array {
  const out = new Uint8Array(n + inner.length);
  out.fill(0x91, 0, n);
  out.set(inner, n);
  return out;
}

/** Hand-made msgpack bodies that attack the decoder's limits. */
export function hostileBody(r: Rng): Uint8Array {
  const big = r.pick([0xffffffff, 0x7fffffff, 0x1000000, 0x10001, 0xffff]);
  const len32 = u32(big);
  const call = (inner: Uint8Array) =>
    concat(new Uint8Array([0x94, 0x01, 0x01, 0xa1, 0x78, 0x91]), inner);
  switch (r.int(24)) {
    case 0:
      return concat(new Uint8Array([0xdb]), len32, r.bytes(r.int(16))); // str32
    case 1:
      return concat(new Uint8Array([0xc6]), len32, r.bytes(r.int(16))); // bin32
    case 2:
      return concat(new Uint8Array([0xdd]), len32, r.bytes(r.int(16))); // array32
    case 3:
      return concat(new Uint8Array([0xdf]), len32, r.bytes(r.int(16))); // map32
    case 4:
      return concat(new Uint8Array([0xc9]), len32, new Uint8Array([1])); // ext32
    case 5:
      return call(concat(new Uint8Array([0xdb]), len32)); // huge str in args
    case 6:
      return nested(r.pick([511, 512, 513, 600, 5000, 100_000]));
    case 7:
      return call(nested(r.pick([505, 506, 507, 508, 509, 510, 511, 512])));
    case 8: // more decoded items than allowed, within a small frame? no: >= 1 byte each
      return concat(
        new Uint8Array([0xdd]),
        u32(r.pick([(1 << 20) - 2, (1 << 20) + 1])),
        new Uint8Array(r.pick([(1 << 20) - 2, (1 << 20) + 1])).fill(0x90),
      );
    case 9: // invalid UTF-8
      return call(new Uint8Array([0xa3, 0xff, 0xc0, 0x80]));
    case 10: // reserved byte
      return call(new Uint8Array([0xc1]));
    case 11: // an unknown extension type
      return call(new Uint8Array([0xd4, r.range(1, 127), 0]));
    case 12: // __proto__ key
      return call(concat(
        new Uint8Array([0x81, 0xa9]),
        new TextEncoder().encode("__proto__"),
        new Uint8Array([0x01]),
      ));
    case 13: // non-string map key
      return call(new Uint8Array([0x81, 0x01, 0x02]));
    case 14: // trailing bytes
      return concat(encodeValue([4, 1]), r.bytes(r.range(1, 4)));
    case 15: // timestamp out of range / bad nanoseconds
      return call(
        r.chance(0.5)
          ? new Uint8Array([
            0xd7,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
          ])
          : new Uint8Array([
            0xc7,
            12,
            0xff,
            0x7f,
            0xff,
            0xff,
            0xff,
            0x7f,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
          ]),
      );
    case 16: // float32 and int64 beyond 2^53
      return call(
        new Uint8Array([
          0xca,
          0x7f,
          0xc0,
          0,
          0,
          0xd3,
          0x80,
          0,
          0,
          0,
          0,
          0,
          0,
          0,
        ]),
      );
    case 17: // an empty body where a value is needed
      return new Uint8Array([0x94]);
    case 18: // fixext lengths with wrong data for type 0
      return call(new Uint8Array([0xd5, 0x00, 0x01, 0x02]));
    case 19: // a map of n claiming more entries than bytes
      return call(concat(new Uint8Array([0xde]), new Uint8Array([0xff, 0xff])));
    case 20: // str8 longer than the body
      return call(new Uint8Array([0xd9, 0xff, 0x61]));
    case 21: // lone surrogates encoded as CESU
      return call(new Uint8Array([0xa3, 0xed, 0xa0, 0x80]));
    case 22: // negative / fractional / huge ids
      return encodeValue([
        1,
        r.pick([-1, 1.5, 2 ** 53, NaN, "1", null]),
        "ops.ts#echo",
        [],
      ]);
    default:
      return r.bytes(r.range(1, 64));
  }
}

/** A valid message body of a random kind, in either direction. */
export function validBody(r: Rng): Uint8Array {
  const id = r.pick([0, 1, 2 ** 31, 2 ** 53 - 1, r.int(1000)]);
  switch (r.int(7)) {
    case 0:
      return encodeValue([0, { v: 1, pid: r.int(1 << 22), context: "x" }]);
    case 1:
      return encodeValue([1, id, "ops.ts#echo", [randomValue(r)]]);
    case 2:
      return encodeValue([2, id, randomValue(r)]);
    case 3:
      return encodeValue([3, id, { name: "E", message: "m", code: "C" }]);
    case 4:
      return encodeValue([4, id]);
    case 5:
      return encodeValue([5, {
        category: ["a"],
        level: "info",
        message: "x",
        timestamp: 1,
      }]);
    default:
      return encodeValue([6, { name: "E", message: "bye" }]);
  }
}

/** A mutation of `b`: bit flips, byte changes, cuts, splices. */
export function mutate(r: Rng, b: Uint8Array): Uint8Array {
  let out: Uint8Array = new Uint8Array(b);
  for (let k = r.range(1, 4); k > 0; k--) {
    if (out.length === 0) return r.bytes(r.range(1, 8));
    const at = r.int(out.length);
    switch (r.int(6)) {
      case 0:
        out[at] ^= 1 << r.int(8);
        break;
      case 1:
        out[at] = r.pick([0x00, 0x7f, 0x80, 0xc0, 0xc1, 0xd4, 0xdd, 0xff]);
        break;
      case 2:
        out = out.slice(0, at);
        break;
      case 3:
        out = concat(
          out.subarray(0, at),
          r.bytes(r.range(1, 8)),
          out.subarray(at),
        );
        break;
      case 4:
        out = concat(out.subarray(0, at), out.subarray(at + r.range(1, 4)));
        break;
      default:
        out = concat(out, out.subarray(r.int(out.length)));
    }
  }
  return out;
}
