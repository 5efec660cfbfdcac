// Where a large call's time goes, by direction (issue 17's 1 MiB rows). Run
// as root (the daemon starts directly and drops to nobody):
//   deno run -A bench/large.ts [daemons] [calls]
// For each of `daemons` fresh daemons (default 3), `calls` (default 15) of
// each: echo(1 MiB) (call and reply large), size(1 MiB) (the call large),
// make(1 MiB) (the reply large), the same 1 MiB buffer as argument every
// time, each result dropped as the bench drops it. Prints per daemon and
// kind the p50, the mean of the first five, and the minor page faults per
// call in the caller and in the daemon (/proc/<pid>/stat, field 10): on
// this VM a fault costs ~12 µs, and memory the process never touched
// costs one per 4 KiB.
import { init } from "../mod.ts";
import { echo, largeCtx, make, size } from "./large/mod.ts";

const daemons = Number(Deno.args[0] ?? 3);
const calls = Number(Deno.args[1] ?? 15);

// The config must be root-owned, in a directory nobody else can write.
const dir = await Deno.makeTempDir({
  dir: "/var/lib",
  prefix: "privsep-large-",
});
await Deno.chmod(dir, 0o755);
await Deno.writeTextFile(
  `${dir}/privsep.toml`,
  "[privsep_large]\ncapabilities = []\n",
);
init({ configFiles: [`${dir}/privsep.toml`] });

/** Minor page faults of a process so far. */
function faults(pid: number | "self"): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[7]);
}

const mib = new Uint8Array(1 << 20).fill(1);
const kinds: [string, () => Promise<unknown>][] = [
  ["echo(1 MiB)", () => echo(mib)],
  ["size(1 MiB)", () => size(mib)],
  ["make(1 MiB)", () => make(1 << 20)],
];
try {
  for (let d = 0; d < daemons; d++) {
    await echo(null);
    const daemon = largeCtx.daemon!.pid;
    for (const [name, call] of kinds) {
      const times: number[] = [];
      let caller = 0;
      let inDaemon = 0;
      for (let i = 0; i < calls; i++) {
        const c0 = faults("self");
        const d0 = faults(daemon);
        const t0 = performance.now();
        await call();
        times.push(performance.now() - t0);
        caller += faults("self") - c0;
        inDaemon += faults(daemon) - d0;
      }
      const first5 = times.slice(0, 5).reduce((a, b) => a + b, 0) / 5;
      times.sort((a, b) => a - b);
      console.log(
        `daemon ${d + 1}, ${name}: p50 ${
          times[Math.floor((calls - 1) / 2)].toFixed(2)
        } ms, first five ${
          first5.toFixed(2)
        } ms; page faults per call: caller ${
          (caller / calls).toFixed(0)
        }, daemon ${(inDaemon / calls).toFixed(0)}`,
      );
    }
    await largeCtx.stop();
  }
} finally {
  await largeCtx.stop();
  await Deno.remove(dir, { recursive: true });
}
