// `deno task bench`: this project's own figures, measured as root with the
// daemon started directly (no sudo). Prints a markdown table and writes
// bench/results/latest.json. Medians and percentiles over many calls; the
// machine is shared and noisy, so compare ratios measured in one run.
import { benchCtx, echo } from "./privsep/mod.ts";

const quick = Deno.args.includes("--quick");
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
};
const results: Record<string, number> = {};

// Cold start: spawn, drop, exec, hello, verification, first reply.
const starts: number[] = [];
for (let i = 0; i < (quick ? 3 : 7); i++) {
  const t0 = performance.now();
  await echo(null);
  starts.push(performance.now() - t0);
  await benchCtx.stop();
}
results.coldStartMs = pct(starts, 0.5);

// Sequential no-op calls.
await echo(null);
const seq: number[] = [];
const n = quick ? 2_000 : 20_000;
for (let i = 0; i < n; i++) {
  const t0 = performance.now();
  await echo(null);
  seq.push(performance.now() - t0);
}
results.seqP50Us = pct(seq, 0.5) * 1000;
results.seqP99Us = pct(seq, 0.99) * 1000;
results.seqCallsPerSec = n / (seq.reduce((a, b) => a + b, 0) / 1000);

// Calls in flight.
for (const inFlight of [8, 64]) {
  const total = quick ? 10_000 : 100_000;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next++ < total) await echo(null);
    }),
  );
  results[`inFlight${inFlight}CallsPerSec`] = total /
    ((performance.now() - t0) / 1000);
}

// 1 MiB echo.
const mib = new Uint8Array(1 << 20).fill(1);
const big: number[] = [];
for (let i = 0; i < (quick ? 20 : 100); i++) {
  const t0 = performance.now();
  await echo(mib);
  big.push(performance.now() - t0);
}
results.echo1MiBMs = pct(big, 0.5);

// Daemon peak RSS (VmHWM) after all of the above.
const status = await Deno.readTextFile(`/proc/${benchCtx.daemon!.pid}/status`);
results.daemonPeakRssMiB = Number(/VmHWM:\s+(\d+)/.exec(status)![1]) / 1024;
await benchCtx.stop();

const rows = [
  [
    "cold start to first reply (direct, median)",
    `${results.coldStartMs.toFixed(0)} ms`,
  ],
  [
    "sequential no-op call p50 / p99",
    `${results.seqP50Us.toFixed(0)} µs / ${results.seqP99Us.toFixed(0)} µs`,
  ],
  ["sequential calls/s", results.seqCallsPerSec.toFixed(0)],
  ["8 in flight, calls/s", results.inFlight8CallsPerSec.toFixed(0)],
  ["64 in flight, calls/s", results.inFlight64CallsPerSec.toFixed(0)],
  ["1 MiB Uint8Array echo (median)", `${results.echo1MiBMs.toFixed(2)} ms`],
  ["daemon peak RSS", `${results.daemonPeakRssMiB.toFixed(0)} MiB`],
];
console.log(
  `| what | figure |\n|---|---|\n${
    rows.map(([a, b]) => `| ${a} | ${b} |`).join("\n")
  }`,
);
await Deno.mkdir(new URL("./results/", import.meta.url), { recursive: true });
await Deno.writeTextFile(
  new URL("./results/latest.json", import.meta.url),
  JSON.stringify(
    { date: new Date().toISOString(), deno: Deno.version.deno, quick, results },
    null,
    2,
  ) + "\n",
);
