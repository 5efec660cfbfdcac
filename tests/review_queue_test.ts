// Security review: how far the daemon grows when queued calls carry values
// whose decoded size the queue's estimate (protocol/_decoded_cost.ts)
// underrates. Measured, per payload kind, with the default limits.
import { init } from "../mod.ts";
import { encodeMessage, Kind, type Message } from "../protocol/messages.ts";
import { concatFrames } from "../protocol/frame.ts";
import { testCtx } from "./fixtures/privsep/mod.ts";
import { requireRoot, scratchDir, writeConfig } from "./_helpers.ts";
import { procKb, RawDaemon } from "../reliability/_raw.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const CALLS = 400;
/** Idle (~45 MB) + the 64 MiB budget + the same slack queue_memory_test allows. */
const RSS_LIMIT_KB = 400 * 1024;

async function peakFor(label: string, arg: unknown): Promise<number> {
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
    await d.write(
      encodeMessage([Kind.Call, 1, "ops.ts#sleep", [8000]], 1 << 24),
    );
    const frames: Uint8Array[] = [];
    for (let id = 2; id < 2 + CALLS; id++) {
      frames.push(
        encodeMessage([Kind.Call, id, "ops.ts#echo", [arg]], 1 << 24),
      );
    }
    let peakKb = idleKb;
    const sampler = setInterval(() => {
      peakKb = Math.max(peakKb, procKb(pid, "VmRSS") ?? 0);
    }, 20);
    try {
      for (let i = 0; i < frames.length; i += 10) {
        await d.write(concatFrames(frames.slice(i, i + 10)));
      }
      await d.waitFor(
        () =>
          d.received.filter((m) =>
            (m.kind === Kind.Result || m.kind === Kind.Error) &&
            (m as { id: number }).id !== 1
          ).length >= CALLS,
        60_000,
        "every call's answer",
      );
    } finally {
      clearInterval(sampler);
      peakKb = Math.max(peakKb, procKb(pid, "VmRSS") ?? 0);
    }
    const refused = d.received.filter((m) =>
      m.kind === Kind.Error && m.error.name === "PrivsepQueueFull"
    ).length;
    console.log(
      `${label}: ${frames[0].length} wire bytes/call, idle ${idleKb} kB, peak ${peakKb} kB, ${refused}/${CALLS} refused`,
    );
    return peakKb;
  } finally {
    await d.kill();
    init({ configFiles: [] });
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("review: queue memory with underrated payloads", opts, async () => {
  requireRoot();
  const ascii = "a".repeat(250_000);
  const peaks = [
    await peakFor("ASCII string 250 kB", ascii),
    await peakFor("ASCII string 250 kB + one U+20AC", ascii + "\u20ac"),
    await peakFor(
      "60k strings of 13 bytes, each + U+20AC (non-ASCII, <=128 bytes)",
      Array.from({ length: 20_000 }, (_, i) => `${i}`.padStart(9, "x") + "\u20ac"),
    ),
    await peakFor(
      "80k one-character non-ASCII strings",
      Array.from({ length: 80_000 }, () => "\u00e9"),
    ),
    await peakFor(
      "20k bigints",
      Array.from({ length: 20_000 }, (_, i) => (1n << 60n) + BigInt(i)),
    ),
  ];
  const worst = Math.max(...peaks);
  if (worst > RSS_LIMIT_KB) {
    throw new Error(`a payload grew the daemon to ${worst} kB`);
  }
});
