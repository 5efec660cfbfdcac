// Where the chown row's p99 comes from (issue 17; bench/HISTORY.md,
// 2026-12-04 late). Run as root (the daemon starts directly and drops to
// nobody, keeping CAP_CHOWN and CAP_DAC_OVERRIDE as the bench's context):
//   deno run -A bench/chown_tail.ts [quick|full]
// Replays a bench profile's phases on one caller and one daemon (warm-up and
// sequential calls, 8 then 64 in flight, the 1 MiB echoes), then makes the
// chown phase's calls, alternating the owner as the bench does, and prints
// each call slower than 250 µs with its position (unbuffered, so that it
// interleaves with the caller's --trace-gc or --trace-opt output), then p50,
// p99 and max.
import { init } from "../mod.ts";
import { benchCtx, chown, echo } from "./privsep/mod.ts";

const full = Deno.args[0] !== "quick";
// The config must be root-owned, in a directory nobody else can write.
const dir = await Deno.makeTempDir({ dir: "/var/lib", prefix: "privsep-ch-" });
await Deno.chmod(dir, 0o755);
const target = `${dir}/target`;
await Deno.writeTextFile(target, "x");
await Deno.writeTextFile(
  `${dir}/privsep.toml`,
  [
    "[privsep_bench]",
    'user = "nobody"',
    'capabilities = ["CAP_CHOWN", "CAP_DAC_OVERRIDE"]',
    "[privsep_bench.permissions]",
    `write = [${JSON.stringify(target)}]`,
    "",
  ].join("\n"),
);
init({ configFiles: [`${dir}/privsep.toml`] });
const say = (line: string) =>
  Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));

try {
  await echo(null);
  for (let i = 0; i < (full ? 21_000 : 2300); i++) await echo(null);
  const phases = full ? [[8, 40_000], [64, 64_000]] : [[8, 8000], [64, 16_000]];
  for (const [lanes, n] of phases) {
    await Promise.all(
      Array.from({ length: lanes }, async () => {
        for (let i = 0; i < n / lanes; i++) await echo(null);
      }),
    );
  }
  const mib = new Uint8Array(1 << 20).fill(1);
  for (let i = 0; i < (full ? 103 : 23); i++) await echo(mib);
  say("chown phase");
  const n = full ? 1000 : 100;
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await (i % 2 === 0 ? chown(target, 65534, 65534) : chown(target, 0, 0));
    const us = (performance.now() - t0) * 1000;
    times.push(us);
    if (us > 250) say(`slow: call ${i}, ${us.toFixed(0)} µs`);
  }
  times.sort((a, b) => a - b);
  say(
    `chown p50 ${times[n >> 1].toFixed(0)} µs, p99 ${
      times[Math.floor(n * 0.99)].toFixed(0)
    } µs, max ${times[n - 1].toFixed(0)} µs`,
  );
} finally {
  await benchCtx.stop();
  await Deno.remove(dir, { recursive: true });
}
