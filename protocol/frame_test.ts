// Copyright the privsep authors. Apache-2.0 license.

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { ProtocolError } from "../errors.ts";
import { concat } from "./_test_util.ts";
import {
  checkMaxFrameBytes,
  concatFrames,
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrame,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  PADDING_FRAME,
  padFrames,
} from "./frame.ts";

/** A body of `n` bytes whose contents depend on `seed`, so frames differ. */
function body(n: number, seed = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 7 + 1) & 0xff;
  return out;
}

/** A raw header announcing `n` bytes, with no body. */
function header(n: number): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES);
  new DataView(out.buffer).setUint32(0, n);
  return out;
}

Deno.test("encodeFrame() writes a u32 big-endian length then the body", () => {
  assert.deepEqual(
    encodeFrame(new Uint8Array([0xc0])),
    new Uint8Array([0, 0, 0, 1, 0xc0]),
  );
  const b = body(0x010203);
  const frame = encodeFrame(b);
  assert.equal(frame.length, FRAME_HEADER_BYTES + b.length);
  assert.deepEqual(
    frame.subarray(0, 4),
    new Uint8Array([0x00, 0x01, 0x02, 0x03]),
  );
  assert.deepEqual(frame.subarray(4), b);
});

Deno.test("encodeFrame() copies the body", () => {
  const b = body(8);
  const frame = encodeFrame(b);
  b.fill(0);
  assert.deepEqual(frame.subarray(4), body(8));
});

Deno.test("encodeFrame() rejects an empty body with RangeError", () => {
  assert.throws(() => encodeFrame(new Uint8Array(0)), RangeError);
});

Deno.test("encodeFrame() rejects a body above maxFrameBytes with ProtocolError", () => {
  assert.equal(encodeFrame(body(16), 16).length, 20);
  assert.throws(() => encodeFrame(body(17), 16), (error: unknown) => {
    assert.ok(error instanceof ProtocolError);
    assert.match(error.message, /17 bytes exceeds maxFrameBytes 16/);
    return true;
  });
});

Deno.test("encodeFrame() defaults to DEFAULT_MAX_FRAME_BYTES", () => {
  assert.equal(DEFAULT_MAX_FRAME_BYTES, 16 * 1024 * 1024);
  assert.throws(
    () => encodeFrame(new Uint8Array(DEFAULT_MAX_FRAME_BYTES + 1)),
    ProtocolError,
  );
});

Deno.test("FrameDecoder.push() returns a frame that arrives in one chunk", () => {
  const decoder = new FrameDecoder();
  const frames = decoder.push(encodeFrame(body(10)));
  assert.deepEqual(frames, [body(10)]);
  assert.equal(decoder.buffered, 0);
});

Deno.test("FrameDecoder.push() reassembles a frame split at every byte boundary", () => {
  const wire = concat(encodeFrame(body(7, 1)), encodeFrame(body(5, 2)));
  for (let i = 0; i <= wire.length; i++) {
    for (let j = i; j <= wire.length; j++) {
      const decoder = new FrameDecoder();
      const frames = [
        ...decoder.push(wire.subarray(0, i)),
        ...decoder.push(wire.subarray(i, j)),
        ...decoder.push(wire.subarray(j)),
      ];
      assert.deepEqual(frames, [body(7, 1), body(5, 2)], `split at ${i}, ${j}`);
      assert.equal(decoder.buffered, 0);
    }
  }
});

Deno.test("FrameDecoder.push() reassembles a frame fed one byte at a time", () => {
  const wire = concat(encodeFrame(body(300, 1)), encodeFrame(body(1, 2)));
  const decoder = new FrameDecoder();
  const frames: Uint8Array[] = [];
  for (let i = 0; i < wire.length; i++) {
    frames.push(...decoder.push(wire.subarray(i, i + 1)));
    if (i < FRAME_HEADER_BYTES + 299) assert.equal(frames.length, 0);
  }
  assert.deepEqual(frames, [body(300, 1), body(1, 2)]);
  assert.equal(decoder.buffered, 0);
});

Deno.test("FrameDecoder.push() returns every frame of a chunk, in order", () => {
  const bodies = Array.from({ length: 100 }, (_, i) => body(1 + i * 3, i));
  const decoder = new FrameDecoder();
  const frames = decoder.push(concat(...bodies.map((b) => encodeFrame(b))));
  assert.deepEqual(frames, bodies);
  assert.equal(decoder.buffered, 0);
});

Deno.test("FrameDecoder.push() keeps a chunk that ends mid-header", () => {
  const wire = concat(encodeFrame(body(3, 1)), encodeFrame(body(4, 2)));
  const decoder = new FrameDecoder();
  // The first frame and two bytes of the second header.
  assert.deepEqual(decoder.push(wire.subarray(0, 7 + 2)), [body(3, 1)]);
  assert.equal(decoder.buffered, 2);
  assert.deepEqual(decoder.push(wire.subarray(9, 10)), []);
  assert.equal(decoder.buffered, 3);
  assert.deepEqual(decoder.push(wire.subarray(10)), [body(4, 2)]);
  assert.equal(decoder.buffered, 0);
});

Deno.test("FrameDecoder.push() rejects a zero-length frame", () => {
  assert.throws(() => new FrameDecoder().push(header(0)), ProtocolError);
  const decoder = new FrameDecoder();
  assert.throws(
    () => decoder.push(concat(encodeFrame(body(2)), header(0))),
    /empty frame/,
  );
  const split = new FrameDecoder();
  assert.deepEqual(split.push(new Uint8Array([0, 0])), []);
  assert.throws(() => split.push(new Uint8Array([0, 0])), ProtocolError);
});

Deno.test("FrameDecoder.push() rejects a length of 0xFFFFFFFF before its body arrives", () => {
  const decoder = new FrameDecoder();
  assert.throws(
    () => decoder.push(new Uint8Array([0xff, 0xff, 0xff, 0xff])),
    (error: unknown) => {
      assert.ok(error instanceof ProtocolError);
      assert.match(error.message, /4294967295 bytes, above maxFrameBytes/);
      return true;
    },
  );
  // Nothing was kept for the announced body.
  assert.ok(decoder.buffered <= FRAME_HEADER_BYTES, `${decoder.buffered}`);

  const split = new FrameDecoder();
  assert.deepEqual(split.push(new Uint8Array([0xff, 0xff])), []);
  assert.equal(split.buffered, 2);
  assert.throws(
    () => split.push(new Uint8Array([0xff, 0xff, 1])),
    ProtocolError,
  );
  assert.ok(split.buffered <= FRAME_HEADER_BYTES + 1, `${split.buffered}`);
});

Deno.test("FrameDecoder.push() rejects a length above maxFrameBytes", () => {
  const decoder = new FrameDecoder(8);
  assert.throws(() => decoder.push(header(9)), ProtocolError);
  assert.ok(decoder.buffered <= FRAME_HEADER_BYTES);
  // Also after a valid frame in the same chunk.
  assert.throws(
    () => new FrameDecoder(8).push(concat(encodeFrame(body(8)), header(9))),
    /9 bytes, above maxFrameBytes 8/,
  );
  // And when the default maximum is exceeded by one byte.
  assert.throws(
    () => new FrameDecoder().push(header(DEFAULT_MAX_FRAME_BYTES + 1)),
    ProtocolError,
  );
});

Deno.test("FrameDecoder.push() accepts exactly maxFrameBytes and rejects one more", () => {
  const decoder = new FrameDecoder(8);
  assert.deepEqual(decoder.push(encodeFrame(body(8))), [body(8)]);
  assert.deepEqual(decoder.push(encodeFrame(body(1))), [body(1)]);
  assert.throws(() => decoder.push(encodeFrame(body(9))), ProtocolError);

  const one = new FrameDecoder(1);
  assert.deepEqual(one.push(new Uint8Array([0, 0, 0, 1, 42])), [
    new Uint8Array([42]),
  ]);
  assert.throws(() => one.push(new Uint8Array([0, 0, 0, 2])), ProtocolError);
});

Deno.test("FrameDecoder.push() returns bodies that do not alias the chunk", () => {
  // A whole frame in one chunk (the decoder reads the chunk in place).
  const decoder = new FrameDecoder();
  const chunk = concat(encodeFrame(body(6, 1)), encodeFrame(body(6, 2)));
  const frames = decoder.push(chunk);
  chunk.fill(0);
  assert.deepEqual(frames, [body(6, 1), body(6, 2)]);
  assert.notEqual(frames[0].buffer, chunk.buffer);

  // A frame completed from the decoder's own buffer.
  const wire = encodeFrame(body(6, 3));
  const first = wire.slice(0, 5);
  const second = wire.slice(5);
  assert.deepEqual(decoder.push(first), []);
  first.fill(0);
  const [frame] = decoder.push(second);
  second.fill(0);
  assert.deepEqual(frame, body(6, 3));

  // The caller's read buffer is reused for the next read.
  const readBuffer = new Uint8Array(64);
  readBuffer.set(encodeFrame(body(6, 4)));
  const [reused] = decoder.push(readBuffer.subarray(0, 10));
  readBuffer.set(encodeFrame(body(6, 5)));
  assert.deepEqual(reused, body(6, 4));
  assert.deepEqual(decoder.push(readBuffer.subarray(0, 10)), [body(6, 5)]);
});

Deno.test("FrameDecoder.push() returns plain Uint8Arrays that do not alias a Buffer chunk", () => {
  const decoder = new FrameDecoder();
  const chunk = Buffer.from(encodeFrame(body(6, 1)));
  const [frame] = decoder.push(chunk);
  chunk.fill(0);
  assert.deepEqual(frame, body(6, 1));
  assert.equal(frame.constructor, Uint8Array);
});

Deno.test("FrameDecoder.push() keeps working after the buffer shrinks from a large frame", () => {
  const big = body(3 * 1024 * 1024, 9);
  const next = body(100, 3);
  const wire = concat(encodeFrame(big), encodeFrame(next));
  const decoder = new FrameDecoder();
  const frames: Uint8Array[] = [];
  // Feed the large frame in 64 KiB chunks, ending 50 bytes into the next one.
  const end = FRAME_HEADER_BYTES + big.length + 50;
  for (let off = 0; off < end; off += 65536) {
    frames.push(
      ...decoder.push(wire.subarray(off, Math.min(off + 65536, end))),
    );
    if (frames.length === 0) {
      assert.equal(decoder.buffered, Math.min(off + 65536, end));
    }
  }
  assert.equal(frames.length, 1);
  assert.deepEqual(frames[0], big);
  // Only the part of the next frame is left.
  assert.equal(decoder.buffered, 50);
  assert.deepEqual(decoder.push(wire.subarray(end)), [next]);
  assert.equal(decoder.buffered, 0);
  // And a split frame still decodes afterwards.
  const small = encodeFrame(body(20, 4));
  assert.deepEqual(decoder.push(small.subarray(0, 3)), []);
  assert.deepEqual(decoder.push(small.subarray(3)), [body(20, 4)]);
  assert.equal(decoder.buffered, 0);
});

Deno.test("checkMaxFrameBytes() accepts integers from 1 to 0xFFFFFFFF", () => {
  assert.equal(checkMaxFrameBytes(1), 1);
  assert.equal(checkMaxFrameBytes(1024), 1024);
  assert.equal(checkMaxFrameBytes(0xffff_ffff), 0xffff_ffff);
  for (const bad of [0, -1, 1.5, NaN, Infinity, 2 ** 32, -0.5]) {
    assert.throws(() => checkMaxFrameBytes(bad), RangeError, String(bad));
    assert.throws(() => new FrameDecoder(bad), RangeError, String(bad));
  }
});

/**
 * Feeds `wire` to `decoder` in steps of `next().size` bytes, through
 * bodyTail() when `next().direct` and it offers a view, else through push().
 */
function feed(
  decoder: FrameDecoder,
  wire: Uint8Array,
  next: () => { size: number; direct: boolean },
): Uint8Array[] {
  const out: Uint8Array[] = [];
  let pos = 0;
  while (pos < wire.length) {
    const { size, direct } = next();
    const tail = direct ? decoder.bodyTail(1) : undefined;
    const n = Math.min(size, wire.length - pos, tail?.length ?? Infinity);
    if (tail) {
      tail.set(wire.subarray(pos, pos + n));
      out.push(...decoder.commit(n));
    } else {
      out.push(...decoder.push(wire.subarray(pos, pos + n)));
    }
    pos += n;
  }
  return out;
}

/** feed() in chunks of `chunk` bytes, through bodyTail() whenever it can. */
const feedDirect = (decoder: FrameDecoder, wire: Uint8Array, chunk: number) =>
  feed(decoder, wire, () => ({ size: chunk, direct: true }));

Deno.test("FrameDecoder.bodyTail() lets a large body be read in place, between pushed frames", () => {
  const frames = [body(10, 1), body(300_000, 2), body(3, 3), body(70_000, 4)];
  const wire = concatFrames(frames.map((f) => encodeFrame(f)));
  for (const chunk of [7, 4096, 65_536, wire.length]) {
    assert.deepEqual(feedDirect(new FrameDecoder(), wire, chunk), frames);
  }
});

Deno.test("FrameDecoder.bodyTail() grows a body above 4 MiB as it is filled", () => {
  const big = body(9 << 20, 5);
  const got = feedDirect(new FrameDecoder(), encodeFrame(big), 1 << 20);
  assert.equal(got.length, 1);
  assert.deepEqual(got[0], big);
});

Deno.test("FrameDecoder.bodyTail() returns undefined with no body pending or too little of it missing", () => {
  const decoder = new FrameDecoder();
  assert.equal(decoder.bodyTail(), undefined);
  decoder.push(encodeFrame(body(1000)).subarray(0, 10));
  assert.equal(decoder.bodyTail(), undefined);
  assert.equal(decoder.bodyTail(994)?.length, 994);
});

Deno.test("FrameDecoder.commit() rejects a count beyond the view with RangeError", () => {
  const decoder = new FrameDecoder();
  assert.throws(() => decoder.commit(1), RangeError);
  decoder.push(encodeFrame(body(100_000)).subarray(0, 4));
  const tail = decoder.bodyTail()!;
  assert.throws(() => decoder.commit(tail.length + 1), RangeError);
  assert.throws(() => decoder.commit(-1), RangeError);
  assert.deepEqual(decoder.commit(tail.length - 1), []);
  assert.equal(decoder.buffered, FRAME_HEADER_BYTES + 99_999);
});

Deno.test("FrameDecoder.commit() follows a body whose memory a BYOB read moved", async () => {
  const frames = [body(5, 1), body(200_000, 2), body(9, 3)];
  const wire = concatFrames(frames.map((f) => encodeFrame(f)));
  let pos = 0;
  const stream = new ReadableStream({
    type: "bytes",
    pull(controller) {
      const view = controller.byobRequest!.view! as Uint8Array;
      const n = Math.min(view.length, 50_000, wire.length - pos);
      view.set(wire.subarray(pos, pos + n));
      pos += n;
      controller.byobRequest!.respond(n);
      if (pos === wire.length) controller.close();
    },
  });
  const reader = stream.getReader({ mode: "byob" });
  const decoder = new FrameDecoder();
  const got: Uint8Array[] = [];
  let buf = new Uint8Array(1024);
  for (;;) {
    const tail = decoder.bodyTail();
    const { value, done } = await reader.read(tail ?? buf);
    if (done || !value) break;
    if (tail) {
      assert.equal(tail.length, 0, "the read moved the tail's memory");
      got.push(...decoder.commit(value.length, value));
    } else {
      got.push(...decoder.push(value));
      buf = new Uint8Array(value.buffer as ArrayBuffer);
    }
  }
  assert.deepEqual(got, frames);
});

Deno.test("FrameDecoder.commit() rejects a moved view that is not the tail's", () => {
  const decoder = new FrameDecoder();
  decoder.push(encodeFrame(body(100_000)).subarray(0, 4));
  decoder.bodyTail();
  assert.throws(
    () => decoder.commit(10, new Uint8Array(100_000)),
    RangeError,
  );
});

Deno.test("FrameDecoder.push() refuses while a view from bodyTail() awaits its commit()", () => {
  const decoder = new FrameDecoder();
  const wire = encodeFrame(body(100_000));
  decoder.push(wire.subarray(0, 4));
  const tail = decoder.bodyTail()!;
  assert.throws(() => decoder.push(new Uint8Array(1)), TypeError);
  tail.set(wire.subarray(4));
  assert.equal(decoder.commit(tail.length).length, 1);
  assert.deepEqual(decoder.push(encodeFrame(body(3))), [body(3)]);
});

Deno.test("FrameDecoder decodes any mix of push() and bodyTail() at random split points", () => {
  // A small deterministic PRNG (mulberry32), so that a failure repeats.
  let seed = 0x9e3779b9;
  const rand = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const sizes = [1, 2, 3, 100, 65_535, 65_536, 300_000, (4 << 20) + 5];
  for (let round = 0; round < 40; round++) {
    const frames = Array.from(
      { length: 1 + Math.floor(rand() * 5) },
      (_, i) => body(sizes[Math.floor(rand() * sizes.length)], round * 8 + i),
    );
    const wire = concatFrames(frames.map((f) => encodeFrame(f)));
    const decoder = new FrameDecoder();
    const got = feed(decoder, wire, () => ({
      size: 1 + Math.floor(rand() ** 3 * (1 << 20)),
      direct: rand() < 0.5,
    }));
    assert.equal(got.length, frames.length, `round ${round}`);
    got.forEach((g, i) => assert.deepEqual(g, frames[i], `round ${round}`));
    assert.equal(decoder.buffered, 0);
  }
});

Deno.test("FrameDecoder drops padding frames, whole or split, pushed or in place", () => {
  const a = body(3, 1);
  const b = body(70_000, 2);
  const wire = concatFrames([
    PADDING_FRAME,
    encodeFrame(a),
    PADDING_FRAME,
    encodeFrame(b),
    PADDING_FRAME,
  ]);
  for (const chunk of [1, 2, 5, 7, 4096, wire.length]) {
    const decoder = new FrameDecoder();
    const got: Uint8Array[] = [];
    for (let pos = 0; pos < wire.length; pos += chunk) {
      got.push(...decoder.push(wire.subarray(pos, pos + chunk)));
    }
    assert.deepEqual(got, [a, b], `chunks of ${chunk}`);
    assert.deepEqual(feedDirect(new FrameDecoder(), wire, chunk), [a, b]);
  }
});

Deno.test("padFrames() appends a padding frame only when a newline byte is not last", () => {
  const plain = encodeFrame(new Uint8Array([1, 2, 3]));
  assert.equal(padFrames(plain), plain);
  const endsInNewline = encodeFrame(new Uint8Array([1, 0x0a]));
  assert.equal(padFrames(endsInNewline), endsInNewline);
  const inner = encodeFrame(new Uint8Array([0x0a, 1]));
  const padded = padFrames(inner);
  assert.deepEqual(padded, concatFrames([inner, PADDING_FRAME]));
  assert.equal(padded.lastIndexOf(0x0a), padded.length - 1);
  assert.deepEqual(new FrameDecoder().push(padded), [
    new Uint8Array([0x0a, 1]),
  ]);
});

Deno.test("FrameDecoder.push() takes only the first length bytes of a reused buffer, and copies them", () => {
  const decoder = new FrameDecoder();
  const buf = new Uint8Array(64).fill(0xee);
  const one = encodeFrame(new Uint8Array([1, 2, 3]));
  buf.set(one);
  const [body] = decoder.push(buf, one.length);
  assert.deepEqual(body, new Uint8Array([1, 2, 3]));
  assert.equal(body.constructor, Uint8Array);
  buf.fill(0);
  assert.deepEqual(body, new Uint8Array([1, 2, 3]), "not a view of buf");
  // The rest of the buffer was not read: nothing is pending.
  assert.equal(decoder.buffered, 0);
  for (const bad of [-1, 1.5, NaN]) {
    assert.throws(() => decoder.push(buf, bad), RangeError);
  }
  // A length beyond the buffer reads the buffer.
  buf.set(encodeFrame(new Uint8Array([9])));
  assert.deepEqual(decoder.push(buf.subarray(0, 5), 99), [new Uint8Array([9])]);
});
