import assert from "node:assert/strict";
import {
  concatFrames,
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrame,
  PADDING_FRAME,
} from "../protocol/frame.ts";
import { encodeMessage, Kind } from "../protocol/messages.ts";
import {
  encodeMessageParts,
  FrameParts,
  PARTS_MIN_BYTES,
} from "../protocol/_parts.ts";
import { concat } from "../protocol/_test_util.ts";
import { type FrameWriter, Outbox, SYNC_WRITE_MAX } from "./_outbox.ts";

/** A writer whose asynchronous writes finish when the test says so. */
class FakeWriter implements FrameWriter {
  syncWrites: Uint8Array[] = [];
  asyncWrites: Uint8Array[] = [];
  #finish: (() => void)[] = [];
  fail = false;
  writeSync(data: Uint8Array): number {
    if (this.fail) throw new Error("EPIPE");
    this.syncWrites.push(data.slice());
    return data.length;
  }
  write(data: Uint8Array): Promise<number> {
    if (this.fail) return Promise.reject(new Error("EPIPE"));
    this.asyncWrites.push(data.slice());
    return new Promise((resolve) =>
      this.#finish.push(() => resolve(data.length))
    );
  }
  /** Finishes the oldest asynchronous write, and lets the outbox go on. */
  async finishOne(): Promise<void> {
    this.#finish.shift()!();
    for (let i = 0; i < 5; i++) await Promise.resolve();
  }
}

/** A frame of `n` body bytes without a newline byte. */
function frame(n: number, fill = 7): Uint8Array {
  return encodeFrame(new Uint8Array(n).fill(fill));
}

Deno.test("Outbox.send() writes a small frame at once when nothing is queued", () => {
  const w = new FakeWriter();
  const out = new Outbox(w);
  const f = frame(11); // (a length of 10 would be a newline byte)
  out.send(f);
  assert.deepEqual(w.syncWrites, [f]);
  assert.deepEqual(w.asyncWrites, []);
  assert.equal(out.idle, true);
  assert.equal(out.pending, 0);
});

Deno.test("Outbox.send() pads a small frame that holds a newline byte", () => {
  const w = new FakeWriter();
  const out = new Outbox(w);
  const f = encodeFrame(new Uint8Array([0x0a, 1, 2]));
  out.send(f);
  assert.deepEqual(w.syncWrites, [concatFrames([f, PADDING_FRAME])]);
});

Deno.test("Outbox.send() queues a large frame unless the daemon is alone", async () => {
  const w = new FakeWriter();
  const out = new Outbox(w);
  const big = frame(SYNC_WRITE_MAX + 1);
  out.send(big, true);
  assert.equal(w.syncWrites.length, 1, "alone: written at once");
  out.send(big);
  assert.equal(w.syncWrites.length, 1);
  assert.equal(w.asyncWrites.length, 1, "not alone: written asynchronously");
  assert.equal(out.idle, false);
  assert.equal(out.pending, big.length);
  await w.finishOne();
  assert.equal(out.idle, true);
  assert.equal(out.pending, 0);
});

Deno.test("Outbox batches the small frames that pile up during a write, a large one alone", async () => {
  const w = new FakeWriter();
  const out = new Outbox(w);
  const big = frame(SYNC_WRITE_MAX + 1);
  out.send(big); // an asynchronous write starts
  const a = frame(3, 1), b = frame(4, 2), c = frame(5, 3);
  const big2 = frame(SYNC_WRITE_MAX + 2);
  const d = frame(6, 4);
  for (const f of [a, b, c, big2, d]) out.send(f);
  assert.equal(w.syncWrites.length, 0, "nothing overtakes the queue");
  assert.equal(
    out.pending,
    big.length + a.length + b.length + c.length +
      big2.length + d.length,
  );
  await w.finishOne();
  await w.finishOne();
  await w.finishOne();
  await w.finishOne();
  assert.deepEqual(w.asyncWrites, [big, concatFrames([a, b, c]), big2, d]);
  assert.equal(out.idle, true);
});

Deno.test("Outbox.below() resolves once the queue has drained below the limit", async () => {
  const w = new FakeWriter();
  const out = new Outbox(w);
  const big = frame(SYNC_WRITE_MAX + 1);
  assert.equal(out.below(1), undefined, "nothing queued");
  out.send(big);
  const wait = out.below(big.length);
  assert.ok(wait instanceof Promise);
  let resolved = false;
  wait.then(() => resolved = true);
  await Promise.resolve();
  assert.equal(resolved, false);
  await w.finishOne();
  assert.equal(resolved, true);
});

Deno.test("Outbox calls onGone when a write fails (the caller is gone)", async () => {
  const w = new FakeWriter();
  const out = new Outbox(w);
  let gone = 0;
  out.onGone = () => gone++;
  w.fail = true;
  out.send(frame(11));
  assert.equal(gone, 1, "synchronous write");
  out.send(frame(SYNC_WRITE_MAX + 1));
  for (let i = 0; i < 5; i++) await Promise.resolve();
  assert.equal(gone, 2, "asynchronous write");
});

Deno.test("Outbox.send() writes a frame's parts at once when alone, and copies them into one frame when it must queue", async () => {
  const body = new Uint8Array(PARTS_MIN_BYTES).fill(3);
  const reply = () =>
    encodeMessageParts([Kind.Result, 1, body], DEFAULT_MAX_FRAME_BYTES);
  const whole = encodeMessage([Kind.Result, 1, body]);
  const w = new FakeWriter();
  const out = new Outbox(w);
  const parts = reply();
  assert.ok(parts instanceof FrameParts);
  out.send(parts, true);
  // Part by part: the result's own buffer is one of the writes.
  assert.equal(w.syncWrites.length, parts.parts.length);
  assert.deepEqual(concat(...w.syncWrites), whole);
  assert.equal(out.idle, true);

  out.send(frame(SYNC_WRITE_MAX + 1)); // queued: a write is now pending
  const queued = reply();
  out.send(queued, true);
  // Copied when queued: what the entrypoint does with its buffer afterwards
  // does not change the reply.
  body.fill(9);
  await w.finishOne();
  await w.finishOne();
  assert.equal(w.asyncWrites.length, 2);
  assert.deepEqual(w.asyncWrites[1], whole);
});

Deno.test("Outbox.cork() holds small frames until uncork() sends them as one write", () => {
  const w = new FakeWriter();
  const out = new Outbox(w);
  const a = frame(3, 1), b = frame(4, 2), c = frame(5, 3);
  out.cork();
  for (const f of [a, b, c]) out.send(f);
  assert.equal(w.syncWrites.length, 0);
  assert.equal(out.idle, false, "held frames are not idle");
  out.uncork();
  assert.deepEqual(w.syncWrites, [concatFrames([a, b, c])]);
  assert.equal(out.idle, true);
  // Not corked any more: the next frame goes at once.
  out.send(a);
  assert.equal(w.syncWrites.length, 2);
});

Deno.test("Outbox.sendHeld() writes what is held and goes on holding", () => {
  const w = new FakeWriter();
  const out = new Outbox(w);
  const a = frame(3, 1), b = frame(4, 2), c = frame(5, 3);
  out.cork();
  out.send(a);
  out.send(b);
  out.sendHeld();
  assert.deepEqual(w.syncWrites, [concatFrames([a, b])]);
  out.send(c);
  assert.equal(w.syncWrites.length, 1, "still held");
  out.sendHeld();
  out.sendHeld(); // nothing held: no empty write
  out.uncork();
  assert.deepEqual(w.syncWrites, [concatFrames([a, b]), c]);
});

Deno.test("Outbox.cork() holds at most SYNC_WRITE_MAX bytes, each batch a blocking write", () => {
  const w = new FakeWriter();
  const out = new Outbox(w);
  out.cork();
  // 6000 replies of 1 KiB: a caller that does not read must stop the daemon
  // in a blocking write, not have 6 MB queued.
  for (let i = 0; i < 6000; i++) out.send(frame(1020, 5));
  out.uncork();
  assert.deepEqual(w.asyncWrites, []);
  assert.equal(out.pending, 0);
  assert.ok(w.syncWrites.every((d) => d.length <= SYNC_WRITE_MAX));
  assert.equal(
    w.syncWrites.reduce((n, d) => n + d.length, 0),
    6000 * 1024,
  );
});

Deno.test("Outbox.cork() sends what it holds before a large frame, and holds again after it", () => {
  const w = new FakeWriter();
  const out = new Outbox(w);
  const a = frame(3, 1), b = frame(4, 2);
  const big = frame(SYNC_WRITE_MAX + 1);
  out.cork();
  out.send(a);
  out.send(big, true);
  out.send(b);
  assert.deepEqual(w.syncWrites, [a, big]);
  out.uncork();
  assert.deepEqual(w.syncWrites, [a, big, b]);
  // Large results as parts too.
  const parts = encodeMessageParts(
    [Kind.Result, 1, new Uint8Array(PARTS_MIN_BYTES)],
    DEFAULT_MAX_FRAME_BYTES,
  );
  assert.ok(parts instanceof FrameParts);
  out.cork();
  out.send(a);
  out.send(parts, true);
  out.uncork();
  assert.deepEqual(w.syncWrites.slice(3, 4), [a]);
  assert.deepEqual(concat(...w.syncWrites.slice(4)), concat(...parts.parts));
});

Deno.test("Outbox.cork() queues what it holds behind a write in progress", async () => {
  const w = new FakeWriter();
  const out = new Outbox(w);
  const big = frame(SYNC_WRITE_MAX + 1);
  out.send(big); // an asynchronous write starts
  const a = frame(3, 1), b = frame(4, 2);
  out.cork();
  out.send(a);
  out.send(b);
  out.uncork();
  assert.equal(w.syncWrites.length, 0, "nothing overtakes the queue");
  await w.finishOne();
  await w.finishOne();
  assert.deepEqual(w.asyncWrites, [big, concatFrames([a, b])]);
  assert.equal(out.idle, true);
});

Deno.test("Outbox.writtenTo() resolves once what was queued up to a position is written, not what came after", async () => {
  const w = new FakeWriter();
  const out = new Outbox(w);
  const big = frame(SYNC_WRITE_MAX + 1);
  assert.equal(out.busy, false);
  out.send(big); // queued: an asynchronous write starts
  assert.equal(out.busy, true);
  const position = out.queuedTo;
  assert.equal(out.hasWritten(position), false);
  let resolved = false;
  out.writtenTo(position)!.then(() => resolved = true);
  out.send(frame(3, 1)); // queued after it
  await w.finishOne();
  assert.equal(resolved, true, "resolved once the big frame was written");
  assert.equal(out.hasWritten(position), true);
  assert.equal(out.writtenTo(position), undefined);
  assert.equal(
    out.busy,
    true,
    "the frame queued after it is still being written",
  );
  await w.finishOne();
  assert.equal(out.busy, false);
});

Deno.test("Outbox.seal() drops what is sent after it and still writes what was queued", async () => {
  const w = new FakeWriter();
  const out = new Outbox(w);
  const large = frame(SYNC_WRITE_MAX + 1);
  out.send(large); // queued: written asynchronously
  const fatal = frame(11, 3);
  out.send(fatal);
  out.seal();
  out.send(frame(11, 5)); // a reply after the Fatal
  await w.finishOne();
  await w.finishOne();
  assert.deepEqual(
    concat(...w.syncWrites, ...w.asyncWrites),
    concat(large, fatal),
  );
  assert.equal(out.idle, true);
});
