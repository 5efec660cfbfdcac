// The privsep caller of `deno task bench`, run as the unprivileged bench user:
// its daemon starts through real sudo with the rule bench.ts installed.
//   deno run -A privsep_caller.ts <config.toml> <params json>
// Prints one RoundResult as JSON.
import { init } from "../../mod.ts";
import { benchCtx, chown, echo } from "../privsep/mod.ts";
import {
  FRESH_LARGE_CALLS,
  inFlight,
  mean,
  peakRssMiB,
  roundFigures,
  type RoundParams,
  type RoundResult,
  rssAnonMiB,
  sequential,
  timed,
} from "./_common.ts";

const [config, json] = Deno.args;
const p: RoundParams = JSON.parse(json);
init({ configFiles: [config] });

// Cold start: sudo, stage 1, drop, exec, stage 2, hello, checks, first reply.
const coldStartMs: number[] = [];
for (let i = 0; i < p.coldStarts; i++) {
  const t0 = performance.now();
  await echo(null);
  coldStartMs.push(performance.now() - t0);
  await benchCtx.stop();
  await new Promise((r) => setTimeout(r, 50));
}

await echo(null);
for (let i = 0; i < p.warmup; i++) await echo(null);
const seq = await sequential(p.seq, () => echo(null));
const f8 = await inFlight(p.inflight["8"], 8, () => echo(null));
const f64 = await inFlight(p.inflight["64"], 64, () => echo(null));

const mib = new Uint8Array(1 << 20).fill(1);
for (let i = 0; i < 3; i++) await echo(mib);
const big = await timed(p.mib, async () => {
  const r = await echo(mib);
  if (r.length !== mib.length) throw new Error("1 MiB echo came back short");
});

const ch = await timed(
  p.chown,
  (i) => i % 2 === 0 ? chown(p.target, p.uid, p.gid) : chown(p.target, 0, 0),
);
if (p.chown % 2) await chown(p.target, 0, 0);

const daemon = benchCtx.daemon!;
const memory = {
  daemonPeakRssMiB: peakRssMiB(daemon.pid),
  daemonRssAnonMiB: rssAnonMiB(daemon.pid),
};

// The first large calls of a fresh daemon: started by a no-op call, then
// 1 MiB echoes at once, as a service's occasional large call meets it.
await benchCtx.stop();
await new Promise((r) => setTimeout(r, 50));
await echo(null);
const fresh = await timed(FRESH_LARGE_CALLS, () => echo(mib));
await benchCtx.stop();

const result: RoundResult = {
  ...roundFigures({ coldStartMs, seq, f8, f64, big, ch }),
  echo1MiBFresh5Ms: mean(fresh),
  ...memory,
  daemon,
};
console.log(JSON.stringify(result));
