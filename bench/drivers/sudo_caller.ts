// The `sudo -n <cmd>` per call caller of `deno task bench`, run as the
// unprivileged bench user with the exact rules bench.ts installed: a no-op is
// `sudo -n /usr/bin/true`, an echo is `sudo -n /usr/bin/cat`, the narrow
// operation is `sudo -n /usr/bin/chown uid:gid <target>` and back.
//   deno run -A sudo_caller.ts <params json>
// Prints one RoundResult as JSON.
import {
  FRESH_LARGE_CALLS,
  inFlight,
  mean,
  roundFigures,
  type RoundParams,
  type RoundResult,
  sequential,
  timed,
} from "./_common.ts";

const p: RoundParams = JSON.parse(Deno.args[0]);

async function sudo(args: string[], input?: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command("/usr/bin/sudo", {
    args: ["-n", ...args],
    stdin: input ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Read while writing: cat's output would otherwise fill the pipe.
  const output = child.output();
  if (input) {
    const w = child.stdin.getWriter();
    await w.write(input);
    await w.close();
  }
  const out = await output;
  if (out.code !== 0) {
    throw new Error(
      `sudo -n ${args.join(" ")} exited ${out.code}: ${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  return out.stdout;
}
const noop = () => sudo(["/usr/bin/true"]);

// Every call is a cold start: the first calls of the round, timed alone.
const coldStartMs = await timed(p.coldStarts, noop);
for (let i = 0; i < p.warmup; i++) await noop();
const seq = await sequential(p.seq, noop);
const f8 = await inFlight(p.inflight["8"], 8, noop);
const f64 = await inFlight(p.inflight["64"], 64, noop);

const mib = new Uint8Array(1 << 20).fill(1);
const big = await timed(p.mib, async () => {
  const r = await sudo(["/usr/bin/cat"], mib);
  if (r.length !== mib.length) throw new Error("1 MiB echo came back short");
});

const ch = await timed(
  p.chown,
  (i) =>
    sudo([
      "/usr/bin/chown",
      i % 2 === 0 ? `${p.uid}:${p.gid}` : "0:0",
      p.target,
    ]),
);
if (p.chown % 2) await sudo(["/usr/bin/chown", "0:0", p.target]);

const result: RoundResult = {
  ...roundFigures({ coldStartMs, seq, f8, f64, big, ch }),
  // No daemon: every echo starts afresh; the round's first ones.
  echo1MiBFresh5Ms: mean(big.slice(0, FRESH_LARGE_CALLS)),
  childCpuUsPerCall: seq.childCpuUsPerCall,
};
console.log(JSON.stringify(result));
