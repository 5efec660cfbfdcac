// The daemon's call queue is bounded by what its calls cost in memory once
// decoded, not by their wire size: a msgpack `{}` is one byte on the wire
// and ~64 bytes in V8 (see protocol/_decoded_cost.ts for the measurements).
import assert from "node:assert/strict";
import { init } from "../mod.ts";
import { encodeMessage, Kind, type Message } from "../protocol/messages.ts";
import { concatFrames } from "../protocol/frame.ts";
import { testCtx } from "./fixtures/privsep/mod.ts";
import { requireRoot, scratchDir, writeConfig } from "./_helpers.ts";
import { procKb, RawDaemon } from "../reliability/_raw.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** Elements per call: 60 KB on the wire, ~3.8 MB of objects once decoded. */
const ELEMENTS = 60_000;
/** Calls sent while the only slot is busy: 18 MB on the wire in all. */
const CALLS = 300;
/**
 * What the daemon may grow to: its idle size (~45 MB) plus the 64 MiB queue
 * budget, with room for V8's young generation and fragmentation. All 300
 * calls queued would hold ~1.2 GB of objects.
 */
const RSS_LIMIT_KB = 400 * 1024;

Deno.test(
  "tiny-map frames: the queue is bounded by decoded size, excess calls get queue-full",
  opts,
  async () => {
    requireRoot();
    const dir = await scratchDir();
    const config = await writeConfig(dir, {
      e2e: { user: "root", capabilities: [], concurrency: 1 },
    });
    init({ configFiles: [config] });
    const d = new RawDaemon(testCtx.command());
    try {
      await d.handshake();
      const pid = (d.received[0] as Extract<Message, { kind: 0 }>).hello.pid;
      const idleKb = procKb(pid, "VmRSS")!;
      // The only slot sleeps; every call after it queues or is refused.
      await d.write(
        encodeMessage([Kind.Call, 1, "ops.ts#sleep", [8000]], 1 << 24),
      );
      // An array32 header (0xdd, u32 count), then that many empty maps (0x80).
      const args = new Uint8Array(5 + ELEMENTS);
      args[0] = 0xdd;
      new DataView(args.buffer).setUint32(1, ELEMENTS);
      args.fill(0x80, 5);
      const frames: Uint8Array[] = [];
      for (let id = 2; id < 2 + CALLS; id++) {
        // A call message with a placeholder argument, patched below: the
        // encoder would not take 60,000 objects fast enough to matter.
        const head = encodeMessage([Kind.Call, id, "ops.ts#echo", [null]]);
        const body = new Uint8Array(head.length - 1 + args.length);
        body.set(head.subarray(0, head.length - 1));
        body.set(args, head.length - 1);
        new DataView(body.buffer).setUint32(0, body.length - 4);
        frames.push(body);
      }
      let peakKb = idleKb;
      const sampler = setInterval(() => {
        peakKb = Math.max(peakKb, procKb(pid, "VmRSS") ?? 0);
      }, 20);
      try {
        for (let i = 0; i < frames.length; i += 20) {
          await d.write(concatFrames(frames.slice(i, i + 20)));
        }
        // Every call is answered: queued ones after the sleep, the rest at
        // once with a refusal.
        const answered = (m: { kind: unknown; id?: number }) =>
          (m.kind === Kind.Result || m.kind === Kind.Error) && m.id !== 1;
        await d.waitFor(
          () => d.received.filter((m) => answered(m as never)).length >= CALLS,
          30_000,
          "every call's answer",
        );
      } finally {
        clearInterval(sampler);
        peakKb = Math.max(peakKb, procKb(pid, "VmRSS") ?? 0);
      }
      console.log(`daemon RSS: idle ${idleKb} kB, peak ${peakKb} kB`);
      const refused = d.received.filter((m) =>
        m.kind === Kind.Error && m.error.name === "PrivsepQueueFull"
      );
      assert.ok(
        peakKb < RSS_LIMIT_KB,
        `the daemon grew from ${idleKb} kB to ${peakKb} kB (limit ${RSS_LIMIT_KB} kB)`,
      );
      assert.ok(
        refused.length >= CALLS - 10,
        `${refused.length} of ${CALLS} calls were refused as queue-full (peak ${peakKb} kB)`,
      );
      assert.match(
        (refused[0] as Extract<Message, { kind: 3 }>).error.message,
        /the queue is full/,
      );
    } finally {
      await d.kill();
      init({ configFiles: [] });
      await Deno.remove(dir, { recursive: true });
    }
  },
);
