// How the sequential tail depends on how long caller and daemon have run
// (issue 17; bench/HISTORY.md, 2026-12-04 evening). Run as root (the daemon
// starts directly and drops to nobody):
//   deno run -A bench/tail.ts [--warmup=N] [--calls=N] [--fresh-daemon=N]
//     [--idle-read=blocking] [--in-flight=K] [--no-warm-up] [--marker]
// One daemon answers N warm-up `echo(null)` calls (default 300, as the quick
// profile), then `calls` measured ones (default 2000). With --fresh-daemon=M
// the warmed caller then stops that daemon, starts another and warms it with
// M calls before measuring: the daemon's share of the tail. Prints p50, p90,
// p99, p99.9 and max, the caller's CPU and JS allocation per call
// (node:v8's total_allocated_bytes), and per thread of the caller and the
// daemon the CPU ticks and involuntary context switches during the measured
// calls (/proc/<pid>/task/*/stat and status): preemption by V8's worker
// threads shows there. First, the time from the first call to its reply,
// the daemon's start included (with --no-warm-up, `warm_up = false`: the
// daemon is not warmed up through the channel, docs/performance.md).
import { getHeapStatistics } from "node:v8";
import process from "node:process";
import { parseArgs } from "node:util";
import { init } from "../mod.ts";
import { echo, tailCtx } from "./tail/mod.ts";

const { values: o } = parseArgs({
  args: Deno.args,
  options: {
    warmup: { type: "string", default: "300" },
    calls: { type: "string", default: "2000" },
    "fresh-daemon": { type: "string" },
    "idle-read": { type: "string" },
    "in-flight": { type: "string", default: "1" },
    "no-warm-up": { type: "boolean" },
    marker: { type: "boolean" },
  },
});
const warmup = Number(o.warmup);
const lanes = Number(o["in-flight"]);
// With --in-flight=K, K lanes of sequential calls at once (the bench's
// "K in flight" rows): the latencies are those of every call of every lane.
const calls = Math.floor(Number(o.calls) / lanes) * lanes;

// The config must be root-owned, in a directory nobody else can write.
const dir = await Deno.makeTempDir({
  dir: "/var/lib",
  prefix: "privsep-tail-",
});
await Deno.chmod(dir, 0o755);
const config = `${dir}/privsep.toml`;
await Deno.writeTextFile(
  config,
  "[privsep_tail]\ncapabilities = []\n" +
    (o["idle-read"] ? `idle_read = "${o["idle-read"]}"\n` : "") +
    (o["no-warm-up"] ? "warm_up = false\n" : ""),
);
init({ configFiles: [config] });

const startAt = performance.now();
await echo(null);
const startMs = performance.now() - startAt;
for (let i = 0; i < warmup; i++) await echo(null);
if (o["fresh-daemon"] !== undefined) {
  await tailCtx.stop();
  await echo(null);
  for (let i = 0; i < Number(o["fresh-daemon"]); i++) await echo(null);
}

/** CPU ticks and involuntary switches of every thread of both processes. */
function threads(): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  for (
    const [who, pid] of [["caller", Deno.pid], [
      "daemon",
      tailCtx.daemon!.pid,
    ]] as const
  ) {
    for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
      const base = `/proc/${pid}/task/${t.name}`;
      const stat = Deno.readTextFileSync(`${base}/stat`);
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const switches = /nonvoluntary_ctxt_switches:\s+(\d+)/.exec(
        Deno.readTextFileSync(`${base}/status`),
      )![1];
      out.set(`${who} ${name} (${t.name})`, [
        Number(f[11]) + Number(f[12]),
        Number(switches),
      ]);
    }
  }
  return out;
}
const allocated = () =>
  (getHeapStatistics() as unknown as { total_allocated_bytes: number })
    .total_allocated_bytes;

// With --marker, lines around the measured calls: for V8's --trace-* output
// on the same stdout (run under `stdbuf -oL` so that its lines keep order).
if (o.marker) console.log("== measured calls begin");
const before = threads();
const cpu0 = process.cpuUsage();
const bytes0 = allocated();
const times = new Float64Array(calls);
let done = 0;
await Promise.all(Array.from({ length: lanes }, async () => {
  for (let i = 0; i < calls / lanes; i++) {
    const t0 = performance.now();
    await echo(null);
    times[done++] = (performance.now() - t0) * 1000;
  }
}));
const cpu = process.cpuUsage(cpu0);
const bytes = allocated() - bytes0;
if (o.marker) console.log("== measured calls end");
const after = threads();

times.sort();
const at = (p: number) => times[Math.floor(p * (calls - 1))].toFixed(0);
console.log(
  `start to first reply ${startMs.toFixed(0)} ms; ${calls} calls${
    lanes > 1 ? ` ${lanes} in flight` : ""
  } after ${warmup}${
    o["fresh-daemon"] !== undefined
      ? ` (then a fresh daemon, warmed by ${o["fresh-daemon"]})`
      : ""
  }: p50 ${at(0.5)} µs, p90 ${at(0.9)}, p99 ${at(0.99)}, p99.9 ${
    at(0.999)
  }, max ${times[calls - 1].toFixed(0)}; caller CPU ${
    ((cpu.user + cpu.system) / calls).toFixed(1)
  } µs and ${(bytes / calls).toFixed(0)} bytes of JS allocated per call`,
);
for (const [thread, [ticks, switches]] of after) {
  const [t0, s0] = before.get(thread) ?? [0, 0];
  if (ticks > t0 || switches > s0) {
    console.log(
      `  ${thread}: ${ticks - t0} CPU ticks, ${
        switches - s0
      } involuntary switches`,
    );
  }
}
await tailCtx.stop();
await Deno.remove(dir, { recursive: true });
