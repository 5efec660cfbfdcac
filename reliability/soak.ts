// `deno task soak` (1 000 000 calls) / `deno task soak:ci` (50 000): many
// calls at 64 in flight against one real daemon, with random payloads (0 B –
// 1 MiB, mostly small) and a mix of echo, error-raising and slow
// entrypoints. Every reply is checked against its request: zero lost, zero
// duplicated, zero mismatched. Caller and daemon RSS and the daemon's open
// fds are sampled every second.
//
// --calls=N --in-flight=N --seed=N --json=PATH
// --via=raw (default): our own wire client, which sees every frame (so a
//   duplicated reply is counted); --via=api: the public API (PrivContext and
//   DaemonClient), where a duplicate could not be seen (the client drops
//   replies it does not wait for) but lost and wrong replies can.
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { callWith, init, RemoteError } from "../mod.ts";
import { encodeMessage, Kind } from "../protocol/messages.ts";
import { testCtx } from "../tests/fixtures/privsep/mod.ts";
import * as stress from "../tests/fixtures/privsep/stress.ts";
import { requireRoot, scratchDir, writeConfig } from "../tests/_helpers.ts";
import { Rng } from "./_gen.ts";
import { fdCount, procKb, RawDaemon, type Received } from "./_raw.ts";
import { concatFrames } from "../protocol/frame.ts";

const { values: opt } = parseArgs({
  args: Deno.args,
  options: {
    calls: { type: "string", default: "1000000" },
    "in-flight": { type: "string", default: "64" },
    seed: { type: "string" },
    via: { type: "string", default: "raw" },
    json: { type: "string" },
  },
  strict: true,
});
requireRoot();
const N = Number(opt.calls);
const IN_FLIGHT = Number(opt["in-flight"]);
const seed = opt.seed !== undefined ? Number(opt.seed) : (Date.now() >>> 0);
const via = opt.via;
console.log(
  `soak: ${N} calls, ${IN_FLIGHT} in flight, via ${via}, seed ${seed}`,
);

type Op = "echo" | "fail" | "slow";
interface Req {
  op: Op;
  payload?: Uint8Array | string;
  ms?: number;
}

const rng = new Rng(seed);
/** Payload size: mostly small, sometimes up to 1 MiB. */
function size(): number {
  const c = rng.int(1000);
  if (c < 700) return rng.int(65); // 0–64 B
  if (c < 900) return rng.range(65, 4096);
  if (c < 990) return rng.range(4097, 65536);
  return rng.range(65537, 1 << 20); // 1 %: up to 1 MiB
}
function request(id: number): Req {
  const c = rng.int(100);
  if (c < 80) {
    const n = size();
    if (rng.chance(0.2)) {
      return { op: "echo", payload: `${id}:`.padEnd(n, "s") };
    }
    const b = new Uint8Array(n);
    let x = id * 2654435761 >>> 0;
    for (let i = 0; i < n; i += 64) {
      b[i] = (x = (x * 1103515245 + 12345) >>> 0) & 255;
    }
    if (n >= 4) new DataView(b.buffer).setUint32(0, id);
    return { op: "echo", payload: b };
  }
  if (c < 90) return { op: "fail" };
  return { op: "slow", ms: rng.int(21) };
}
function sameBytes(a: unknown, b: Uint8Array | string | undefined): boolean {
  if (typeof b === "string") return a === b;
  if (!(a instanceof Uint8Array) || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const counts = new Uint8Array(N + 1);
let mismatched = 0;
let duplicated = 0;
let unexpected = 0;
let done = 0;
let bytesOut = 0;
const problems: string[] = [];
const problem = (s: string) => {
  if (problems.length < 20) problems.push(s);
};
function check(id: number, req: Req, ok: boolean, value: unknown): void {
  if (id < 1 || id > N) {
    unexpected++;
    problem(`reply for unknown id ${id}`);
    return;
  }
  if (counts[id] > 0) {
    duplicated++;
    problem(`duplicate reply for ${id}`);
    return;
  }
  counts[id] = 1;
  done++;
  let good: boolean;
  if (req.op === "echo") {
    good = ok && Array.isArray(value) && value[0] === id &&
      sameBytes(value[1], req.payload);
  } else if (req.op === "fail") {
    const e = value as { name?: string; code?: string; data?: { id?: number } };
    good = !ok && e?.name === "SoakError" && e?.code === "E_SOAK" &&
      e?.data?.id === id;
  } else good = ok && value === id;
  if (!good) {
    mismatched++;
    problem(`wrong reply for ${id} (${req.op})`);
  }
}

// Samples.
const samples: { t: number; caller: number; daemon?: number; fds?: number }[] =
  [];
let daemonPid = 0;
function sample(t0: number): void {
  samples.push({
    t: Math.round(performance.now() - t0),
    caller: Deno.memoryUsage().rss / 1024,
    daemon: procKb(daemonPid, "VmRSS"),
    fds: fdCount(daemonPid),
  });
}

const dir = await scratchDir();
const config = await writeConfig(dir, {
  e2e: { user: "root", capabilities: [], concurrency: 64, queue_limit: 1000 },
});
init({ configFiles: [config] });
let exitCode = 0;
const t0 = performance.now();
let sampler: ReturnType<typeof setInterval> | undefined;
let status: unknown;
try {
  if (via === "raw") {
    const d = new RawDaemon(testCtx.command());
    daemonPid = (await d.handshake()).pid;
    d.keep = false;
    const pending = new Map<number, Req>();
    let next = 1;
    let lastReply = performance.now();
    let wake: (() => void) | undefined;
    let outbox: Uint8Array[] = [];
    let writing = false;
    const flush = async () => {
      writing = true;
      while (outbox.length) {
        const batch = outbox;
        outbox = [];
        const all = concatFrames(batch);
        bytesOut += all.length;
        await d.write(all);
      }
      writing = false;
    };
    const issue = () => {
      while (pending.size < IN_FLIGHT && next <= N) {
        const id = next++;
        const req = request(id);
        pending.set(id, req);
        outbox.push(
          req.op === "echo"
            ? encodeMessage([Kind.Call, id, "stress.ts#tagged", [
              id,
              req.payload,
            ]])
            : req.op === "fail"
            ? encodeMessage([Kind.Call, id, "stress.ts#taggedFail", [id]])
            : encodeMessage([Kind.Call, id, "stress.ts#taggedSlow", [
              id,
              req.ms,
            ]]),
        );
      }
      if (!writing && outbox.length) {
        flush().catch((e) => problem(`write: ${e}`));
      }
    };
    d.onMessage = (m: Received) => {
      if (m.kind === Kind.Result || m.kind === Kind.Error) {
        lastReply = performance.now();
        const req = pending.get(m.id);
        if (!req) {
          if (m.id >= 1 && m.id <= N && counts[m.id]) {
            duplicated++;
            problem(`duplicate reply for ${m.id}`);
          } else {
            unexpected++;
            problem(`reply for unknown id ${m.id}`);
          }
          return;
        }
        pending.delete(m.id);
        check(
          m.id,
          req,
          m.kind === Kind.Result,
          m.kind === Kind.Result ? m.value : m.error,
        );
        issue();
        if (done === N) wake?.();
      } else if (m.kind !== Kind.Log) {
        problem(`unexpected frame ${JSON.stringify(m).slice(0, 200)}`);
        wake?.();
      }
    };
    sample(t0);
    sampler = setInterval(() => sample(t0), 1000);
    issue();
    while (done < N) {
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 1000);
      });
      if (d.status) {
        problem(`the daemon exited: ${JSON.stringify(d.status)} ${d.stderr}`);
        break;
      }
      if (performance.now() - lastReply > 30_000) {
        problem(`no reply for 30 s with ${pending.size} calls in flight`);
        break;
      }
    }
    sample(t0);
    // The daemon's own count.
    d.onMessage = undefined;
    d.keep = true;
    await d.write(encodeMessage([Kind.Status, N + 1]));
    const st = await d.waitFor(
      (m) => m.kind === Kind.Result && m.id === N + 1,
      10_000,
      "status",
    );
    status = (st as { value: unknown }).value;
    await d.kill();
  } else {
    const info = await testCtx.start();
    daemonPid = info.pid;
    let next = 1;
    sample(t0);
    sampler = setInterval(() => sample(t0), 1000);
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next <= N) {
          const id = next++;
          const req = request(id);
          try {
            const value = await callWith(
              { timeout: 60_000 },
              () =>
                req.op === "echo"
                  ? stress.tagged(id, req.payload)
                  : req.op === "fail"
                  ? stress.taggedFail(id)
                  : stress.taggedSlow(id, req.ms!),
            );
            check(id, req, true, value);
          } catch (e) {
            if (e instanceof RemoteError) {
              check(id, req, false, {
                name: e.remoteName,
                code: e.code,
                data: e.data,
              });
            } else {
              problem(`call ${id}: ${e}`);
            }
          }
        }
      }),
    );
    sample(t0);
    status = await testCtx.status();
    await testCtx.stop();
  }
} finally {
  clearInterval(sampler);
  init({ configFiles: [] });
  await Deno.remove(dir, { recursive: true });
}
const seconds = (performance.now() - t0) / 1000;
let lost = 0;
for (let id = 1; id <= N; id++) if (!counts[id]) lost++;
const mib = (kb: number | undefined) =>
  kb === undefined ? undefined : Math.round(kb / 1024);
const series = (k: "caller" | "daemon" | "fds") =>
  samples.map((s) => s[k]).filter((x): x is number => x !== undefined);
const callerS = series("caller");
const daemonS = series("daemon");
const fdS = series("fds");
const figures = {
  via,
  seed,
  calls: N,
  inFlight: IN_FLIGHT,
  seconds: Number(seconds.toFixed(1)),
  callsPerSecond: Math.round(done / seconds),
  mibSent: via === "raw" ? Math.round(bytesOut / 2 ** 20) : undefined,
  answered: done,
  lost,
  duplicated,
  mismatched,
  unexpected,
  callerRssMiB: {
    start: mib(callerS[0]),
    peak: mib(Math.max(...callerS)),
    end: mib(callerS.at(-1)),
  },
  daemonRssMiB: {
    start: mib(daemonS[0]),
    peak: mib(Math.max(...daemonS)),
    end: mib(daemonS.at(-1)),
  },
  daemonFds: {
    start: fdS[0],
    afterWarmUp: fdS[Math.min(2, fdS.length - 1)],
    max: Math.max(...fdS),
    end: fdS.at(-1),
    series: fdS.length > 40 ? undefined : fdS,
  },
  daemonStatus: status,
  problems,
};
console.log(JSON.stringify(figures, null, 2));
if (opt.json) {
  await Deno.mkdir(dirname(opt.json), { recursive: true });
  await Deno.writeTextFile(opt.json, JSON.stringify(figures, null, 2) + "\n");
}
// Deno opens a few descriptors lazily in its first seconds (thread pools):
// growth is counted from the sample taken 2 s in.
const fdGrowth = (fdS.at(-1) ?? 0) - (figures.daemonFds.afterWarmUp ?? 0);
if (
  lost || duplicated || mismatched || unexpected || problems.length ||
  fdGrowth > 2 || (figures.daemonRssMiB.peak ?? 0) > 1024
) {
  console.error(
    `soak: FAILED (lost ${lost}, duplicated ${duplicated}, mismatched ${mismatched}, unexpected ${unexpected}, fd growth ${fdGrowth})`,
  );
  exitCode = 1;
} else {
  console.log(
    `soak: ok: ${done} calls in ${
      seconds.toFixed(1)
    } s (${figures.callsPerSecond}/s), 0 lost, 0 duplicated, 0 mismatched`,
  );
}
Deno.exit(exitCode);
