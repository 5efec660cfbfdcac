// The daemon's memory through the quick profile's phases (issue 17: what the
// daemon's warm-up costs in memory). Run as root (the daemon starts directly
// and drops to nobody):
//   deno run -A bench/memory.ts [out.md]
// One fresh daemon: its first call, then as the quick profile: 2300
// sequential `echo(null)`, 8000 at 8 in flight, 16 000 at 64 in flight, 23
// echoes of 1 MiB. After each phase prints the daemon's VmHWM (peak RSS,
// the bench's "daemon peak RSS") and RssAnon (its own memory) in MiB, from
// /proc/<pid>/status; with `out.md`, also writes them there with the tree's
// commit (bench/results/2026-12-04-memory-*.md were written so).
import { init } from "../mod.ts";
import { echo, tailCtx } from "./tail/mod.ts";

// The config must be root-owned, in a directory nobody else can write.
const dir = await Deno.makeTempDir({
  dir: "/var/lib",
  prefix: "privsep-memory-",
});
await Deno.chmod(dir, 0o755);
await Deno.writeTextFile(
  `${dir}/privsep.toml`,
  "[privsep_tail]\ncapabilities = []\n",
);
init({ configFiles: [`${dir}/privsep.toml`] });

/** VmHWM and RssAnon of `pid`, in MiB. */
function memory(pid: number): string {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const mib = (field: string) =>
    (Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)![1]) / 1024)
      .toFixed(1);
  return `VmHWM ${mib("VmHWM")}, RssAnon ${mib("RssAnon")}`;
}

/** `total` calls from `lanes` sequential loops at once. */
async function lanes(k: number, total: number): Promise<void> {
  await Promise.all(
    Array.from({ length: k }, async () => {
      for (let i = 0; i < total / k; i++) await echo(null);
    }),
  );
}

await echo(null);
const pid = tailCtx.daemon!.pid;
const out = [`first call: ${memory(pid)}`];
for (let i = 0; i < 2300; i++) await echo(null);
out.push(`2300 sequential: ${memory(pid)}`);
await lanes(8, 8000);
out.push(`8 in flight: ${memory(pid)}`);
await lanes(64, 16_000);
out.push(`64 in flight: ${memory(pid)}`);
const mib = new Uint8Array(1 << 20).fill(1);
for (let i = 0; i < 23; i++) await echo(mib);
out.push(`1 MiB echoes: ${memory(pid)}`);
console.log(out.join("\n"));
if (Deno.args[0]) {
  const commit = new TextDecoder().decode(
    (await new Deno.Command("git", {
      args: [
        "-C",
        new URL(".", import.meta.url).pathname,
        "describe",
        "--always",
        "--dirty",
      ],
    }).output()).stdout,
  ).trim();
  await Deno.writeTextFile(
    Deno.args[0],
    `bench/memory.ts on ${
      new Date().toISOString().slice(0, 10)
    }, tree ${commit}: the daemon's memory (MiB) after each phase\n\n${
      out.map((line) => `- ${line}`).join("\n")
    }\n`,
  );
}
await tailCtx.stop();
await Deno.remove(dir, { recursive: true });
