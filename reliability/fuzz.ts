// `deno task fuzz` / `deno task fuzz:long`: protocol fuzzing.
//
//  (a) the frame decoder, msgpack decoder and message validation, in
//      process (in a Worker watched for hangs), with a seeded PRNG;
//  (b) a real serving daemon, started by the normal path (the exact argv of
//      testCtx.command(): direct start as root, first stage, drop, execve),
//      driven with raw bytes over its stdin.
//
// Options: --seed=N (printed; replays a run), --iterations=N (decoder
// inputs), --from=I (first decoder input, to replay one), --sessions=N
// (daemons), --max-seconds=S (stop starting new work after S), --only=decoder
// | --only=daemon, --json=PATH (figures for reliability/REPORT.md),
// --include-known-bugs (also send inputs that trigger the bugs listed in
// reliability/REPORT.md).
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { isDeepStrictEqual } from "node:util";
import { init } from "../mod.ts";
import { FrameDecoder } from "../protocol/frame.ts";
import { ProtocolError } from "../errors.ts";
import {
  decodeMessage,
  encodeMessage,
  Kind,
  type Message,
  PROTOCOL_VERSION,
} from "../protocol/messages.ts";
import { encodeValue } from "../protocol/codec.ts";
import { testCtx } from "../tests/fixtures/privsep/mod.ts";
import { MARKER_FILE } from "../tests/fixtures/privsep/stress.ts";
import { requireRoot, scratchDir, writeConfig } from "../tests/_helpers.ts";
import type { DecoderJob, DecoderProgress } from "./_decoder_worker.ts";
import {
  concat,
  frame,
  hostileBody,
  mutate,
  randomValue,
  Rng,
  u32,
  validBody,
} from "./_gen.ts";
import { procKb, RawDaemon, type Received } from "./_raw.ts";

const { values: opt } = parseArgs({
  args: Deno.args,
  options: {
    seed: { type: "string" },
    iterations: { type: "string", default: "20000" },
    from: { type: "string", default: "0" },
    sessions: { type: "string", default: "12" },
    "max-seconds": { type: "string", default: "50" },
    only: { type: "string" },
    json: { type: "string" },
    "include-known-bugs": { type: "boolean", default: false },
  },
  strict: true,
});
const seed = opt.seed !== undefined
  ? Number(opt.seed)
  : (Date.now() ^ (Math.random() * 2 ** 32)) >>> 0;
const maxMs = Number(opt["max-seconds"]) * 1000;
const started = performance.now();
const elapsed = () => performance.now() - started;
console.log(
  `fuzz: seed ${seed} (replay: deno task fuzz --seed=${seed}${
    opt.only ? ` --only=${opt.only}` : ""
  })`,
);
const failures: string[] = [];
const fail = (what: string) => {
  failures.push(what);
  console.error(`FAIL ${what}`);
};
const figures: Record<string, unknown> = { seed };

// ---------------------------------------------------------------------------
// (a) the decoder, in process

async function fuzzDecoder(): Promise<void> {
  const iterations = Number(opt.iterations);
  const from = Number(opt.from);
  const worker = new Worker(
    new URL("./_decoder_worker.ts", import.meta.url).href,
    { type: "module" },
  );
  let last: DecoderProgress | undefined;
  let lastAt = performance.now();
  const t0 = performance.now();
  const done = new Promise<void>((resolve) => {
    worker.onmessage = (e: MessageEvent<DecoderProgress>) => {
      last = e.data;
      lastAt = performance.now();
      for (const f of e.data.failures) {
        fail(
          `decoder input ${f.i} (replay: --seed=${seed} --from=${f.i} --iterations=1 --only=decoder): ${f.what}; input ${f.input}`,
        );
      }
      if (e.data.type === "done") resolve();
    };
    worker.onerror = (e) => {
      fail(`decoder worker crashed: ${e.message}`);
      e.preventDefault();
      resolve();
    };
  });
  worker.postMessage({ seed, from, iterations } satisfies DecoderJob);
  // Watchdog: a synchronous hang shows as no progress.
  const HANG_MS = 10_000;
  let hung = false;
  while (true) {
    const r = await Promise.race([
      done.then(() => "done"),
      new Promise((r) => setTimeout(() => r("tick"), 250)),
    ]);
    if (r === "done") break;
    if (performance.now() - lastAt > HANG_MS) {
      hung = true;
      fail(
        `decoder made no progress for ${HANG_MS} ms after input ${
          from + (last?.done ?? 0)
        } (replay: --seed=${seed} --from=${
          from + (last?.done ?? 0)
        } --only=decoder)`,
      );
      break;
    }
  }
  worker.terminate();
  const s = (performance.now() - t0) / 1000;
  const p = last!;
  const f = {
    iterations: p?.done ?? 0,
    frames: p?.frames ?? 0,
    bytes: p?.bytes ?? 0,
    decoded: p?.decoded ?? 0,
    rejectedWithProtocolError: p?.rejected ?? 0,
    slowestInputMs: Number((p?.maxMs ?? 0).toFixed(1)),
    slowestInput: p?.maxAt,
    peakRssMiB: Math.round((p?.rssPeak ?? 0) / 2 ** 20),
    seconds: Number(s.toFixed(1)),
    hung,
  };
  figures.decoder = f;
  console.log(
    `decoder: ${f.iterations} inputs (${f.frames} frames, ${
      (f.bytes / 2 ** 20).toFixed(1)
    } MiB) in ${f.seconds} s: ${f.decoded} decoded, ${f.rejectedWithProtocolError} rejected with ProtocolError, slowest ${f.slowestInputMs} ms (#${f.slowestInput}), peak RSS ${f.peakRssMiB} MiB`,
  );
  if (f.peakRssMiB > 1024) fail(`decoder peak RSS ${f.peakRssMiB} MiB`);
}

// ---------------------------------------------------------------------------
// (b) a real daemon

const SAFE = new Set([
  "ops.ts#echo",
  "ops.ts#fail",
  "ops.ts#daemonPid",
  "ops.ts#logMessage",
  "stress.ts#tagged",
  "stress.ts#taggedFail",
  "stress.ts#markerCount",
  "stress.ts#taggedSlow",
]);

/** Names that must never reach a function (NotAnEntrypoint). */
function hostileNames(prefixUrl: string): string[] {
  return [
    "stress.ts#plantMarker",
    "./stress.ts#plantMarker",
    "stress.ts#plantMarker ",
    " stress.ts#plantMarker",
    "stress.ts#plantMarker\0",
    "stress.ts#PlantMarker",
    "STRESS.TS#plantMarker",
    "stress.ts%23plantMarker",
    "stress%2Ets#plantMarker",
    "privsep/stress.ts#plantMarker",
    "../privsep/stress.ts#plantMarker",
    "fixtures/privsep/stress.ts#plantMarker",
    `${prefixUrl}stress.ts#plantMarker`,
    `${prefixUrl}ops.ts#echo`,
    "stress.ts?x=1#plantMarker",
    "stress.ts#plantMarker#tagged",
    "stress.ts#tagged#plantMarker",
    "stress.ts#MARKER_FILE",
    "ops.ts#helper",
    "other/other.ts#otherOp",
    "other.ts#otherOp",
    "mod.ts#testCtx",
    "mod.ts#otherCtx",
    "../../../mod.ts#init",
    "../../../daemon.ts#main",
    "/etc/passwd",
    "stress.ts",
    "#plantMarker",
    "stress.ts#",
    "#",
    "",
    "stress.ts#__proto__",
    "__proto__",
    "stress.ts#constructor",
    "constructor",
    "stress.ts#toString",
    "ops.ts#hasOwnProperty",
    "ops.ts#valueOf",
    // The status is a message of its own (Kind.Status), not a name.
    "$status",
    "$status ",
    "$STATUS",
    "$status\0",
    "ops.ts#echo\0",
    "ops.ts#ech\u00f3",
    "ops.ts#еcho", // Cyrillic е
    "ops.ts#echo/..",
    "ops.ts\\#echo",
    "x".repeat(1024),
    "data:text/javascript,Deno.exit(9)#x",
    "npm:msgpackr#pack",
    "jsr:@std/path#join",
    "node:fs#rmSync",
    "http://127.0.0.1:1/x.ts#y",
    "ops.ts#eval",
    "ops.ts#Function",
    "ops.ts#globalThis",
    "slow.ts#hang ",
  ];
}

interface Expect {
  kind: "result" | "error" | "status" | "any";
  value?: unknown;
  name?: string;
  what: string;
}

interface DaemonFigures {
  sessions: number;
  framesSent: number;
  bytesSent: number;
  validCallsAnswered: number;
  refusedNames: number;
  fatalCloses: number;
  eofCloses: number;
  maxHwmGrowthMiB: number;
  maxHwmGrowthSmallMiB: number;
  peakDaemonHwmMiB: number;
  terminal: Record<string, number>;
  seconds?: number;
}

const fig: DaemonFigures = {
  sessions: 0,
  framesSent: 0,
  bytesSent: 0,
  validCallsAnswered: 0,
  refusedNames: 0,
  fatalCloses: 0,
  eofCloses: 0,
  maxHwmGrowthMiB: 0,
  maxHwmGrowthSmallMiB: 0,
  peakDaemonHwmMiB: 0,
  terminal: {},
};

const MAX_FRAME = 16 << 20;

/** What the daemon must do with `wire` (sent after the handshake). */
function oracle(
  wire: Uint8Array,
): { fatal: boolean; calls: Message[]; unsafe: boolean } {
  const d = new FrameDecoder(MAX_FRAME);
  const calls: Message[] = [];
  let unsafe = false;
  try {
    for (const body of d.push(wire)) {
      const m = decodeMessage(body);
      if (m.kind === Kind.Call) {
        if (calls.some((c) => c.kind === Kind.Call && c.id === m.id)) {
          return { fatal: true, calls, unsafe };
        }
        if (!SAFE.has(m.entrypoint) && m.entrypoint.startsWith("ops.ts")) {
          unsafe = true;
        }
        if (
          !SAFE.has(m.entrypoint) && /^(slow|stress)\.ts#/.test(m.entrypoint)
        ) {
          unsafe = true;
        }
        calls.push(m);
      } else if (m.kind === Kind.Status) {
        if (calls.some((c) => c.kind === Kind.Call && c.id === m.id)) {
          return { fatal: true, calls, unsafe };
        }
      } else if (m.kind !== Kind.Cancel) {
        return { fatal: true, calls, unsafe };
      }
    }
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    return { fatal: true, calls, unsafe };
  }
  return { fatal: false, calls, unsafe };
}

async function session(s: number, argv: string[]): Promise<void> {
  const r = Rng.at(seed ^ 0x5eed, s);
  const big = s % 4 === 3;
  const tag = `session ${s} (replay: --seed=${seed} --only=daemon --sessions=${
    s + 1
  })`;
  const d = new RawDaemon(argv, MAX_FRAME);
  fig.sessions++;
  const expects = new Map<number, Expect>();
  const replies = new Map<number, Received[]>();
  let fatalAt = -1;
  let hwmAtFatal: number | undefined;
  d.onMessage = (m) => {
    if (m.kind === Kind.Fatal && fatalAt < 0) {
      fatalAt = d.received.length - 1;
      hwmAtFatal = procKb(d.pid, "VmHWM");
    }
    if ((m.kind === Kind.Result || m.kind === Kind.Error) && "id" in m) {
      const list = replies.get(m.id) ?? [];
      list.push(m);
      replies.set(m.id, list);
    }
  };
  const send = async (bytes: Uint8Array, frames: number) => {
    fig.framesSent += frames;
    fig.bytesSent += bytes.length;
    if (r.chance(0.2) && bytes.length < 4096) {
      // Dribble it in small pieces.
      let off = 0;
      while (off < bytes.length) {
        const n = r.range(1, 32);
        await d.write(bytes.slice(off, off + n));
        off += n;
      }
    } else await d.write(bytes);
  };
  let nextId = 1000;
  try {
    // The first message must be a hello of our version.
    const opening = r.int(20);
    if (opening === 0 || opening === 1) {
      await d.handshake(15_000, false);
      const baseline = procKb(d.pid, "VmHWM");
      const first = opening === 0
        ? encodeMessage([Kind.Call, 1, "stress.ts#plantMarker", []])
        : encodeMessage([Kind.Hello, { v: PROTOCOL_VERSION + 1, pid: 1 }]);
      await send(first, 1);
      await expectFatal(
        d,
        tag,
        () => fatalAt,
        () => hwmAtFatal,
        baseline,
        true,
      );
      const name = opening === 0
        ? "first message not a hello"
        : "wrong version";
      fig.terminal[name] = (fig.terminal[name] ?? 0) + 1;
      return;
    }
    await d.handshake();
    // Warm-up, then the memory baseline.
    const warm = nextId++;
    expects.set(warm, { kind: "result", value: "warm", what: "warm-up" });
    await send(encodeMessage([Kind.Call, warm, "ops.ts#echo", ["warm"]]), 1);
    await d.waitFor(
      (m) => "id" in m && m.id === warm,
      10_000,
      `${tag}: warm-up`,
    );
    const baseline = procKb(d.pid, "VmHWM") ?? 0;
    let largest = 0;

    // Survivable frames, interleaved, in batches.
    const names = hostileNames(testCtx.prefix);
    const entrypoints = new Set(testCtx.entrypoints());
    const n = r.range(20, 60);
    let batch: Uint8Array[] = [];
    let batchFrames = 0;
    const flush = async () => {
      if (!batch.length) return;
      await send(concat(...batch), batchFrames);
      batch = [];
      batchFrames = 0;
    };
    for (let k = 0; k < n; k++) {
      const id = nextId++;
      let msg: unknown[] | undefined;
      let e: Expect | undefined;
      const c = r.int(100);
      if (c < 25) {
        const v = randomValue(r);
        msg = [Kind.Call, id, "ops.ts#echo", [v]];
        e = { kind: "result", value: v, what: "echo" };
      } else if (c < 35) {
        const v = randomValue(r);
        msg = [Kind.Call, id, "stress.ts#tagged", [id, v]];
        e = { kind: "result", value: [id, v], what: "tagged" };
      } else if (c < 60) {
        let name = r.pick(names);
        if (r.chance(0.3)) {
          name = new TextDecoder().decode(
            mutate(r, new TextEncoder().encode(r.pick([...entrypoints]))),
          ).slice(0, 1024);
        }
        if (entrypoints.has(name)) continue;
        msg = [Kind.Call, id, name, r.chance(0.5) ? [] : [randomValue(r)]];
        e = {
          kind: "error",
          name: "NotAnEntrypoint",
          what: `name ${JSON.stringify(name).slice(0, 80)}`,
        };
        fig.refusedNames++;
      } else if (c < 80) {
        const ep = r.pick([...SAFE]);
        const args = Array.from({ length: r.int(6) }, () => randomValue(r));
        msg = [Kind.Call, id, ep, args];
        e = ep === "ops.ts#echo"
          ? { kind: "result", value: args[0], what: "echo, wrong arity" }
          : ep === "stress.ts#markerCount"
          ? { kind: "result", value: 0, what: "markerCount" }
          : { kind: "any", what: `${ep} with ${args.length} args` };
      } else if (c < 83) {
        batch.push(
          encodeMessage([Kind.Cancel, r.pick([id + 1e6, 2 ** 53 - 1, 0])]),
        );
        batchFrames++;
        continue;
      } else if (c < 85) {
        msg = [Kind.Status, id];
        e = { kind: "status", what: "status" };
      } else if (c < 95) {
        const ms = r.int(30);
        msg = [Kind.Call, id, "stress.ts#taggedSlow", [id, ms]];
        e = { kind: "result", value: id, what: "taggedSlow" };
      } else if (big) {
        // Extreme values near the limits.
        const x = r.int(big && opt["include-known-bugs"] ? 6 : 5);
        let args: unknown[];
        if (x === 0) args = ["é".repeat((MAX_FRAME - 200) / 2)];
        else if (x === 1) args = [new Uint8Array(MAX_FRAME - 200).fill(7)];
        else if (x === 2) args = [new Array(1_000_000).fill(0)];
        else if (x === 3) {
          let v: unknown = "deep";
          for (let i = 0; i < 509; i++) v = [v];
          args = [v];
        } else if (x === 4) args = new Array(200_000).fill(1);
        else args = ["x".repeat(MAX_FRAME - 40)];
        const ep = x === 5 ? "ops.ts#fail" : "ops.ts#echo";
        msg = [Kind.Call, id, ep, args];
        e = x === 4 || x === 5
          ? { kind: "any", what: `extreme ${x}` }
          : { kind: "result", value: args[0], what: `extreme ${x}` };
        const f = encodeMessage(msg, MAX_FRAME);
        largest = Math.max(largest, f.length);
        await flush();
        expects.set(id, e);
        await send(f, 1);
        await d.waitFor(
          (m) => "id" in m && m.id === id,
          60_000,
          `${tag}: reply to ${e.what}`,
        );
        continue;
      } else {
        continue;
      }
      expects.set(id, e!);
      batch.push(encodeMessage(msg!, MAX_FRAME));
      batchFrames++;
      if (r.chance(0.3)) await flush();
    }
    await flush();
    // Every call answered, exactly once, correctly.
    const idsLeft = () => [...expects.keys()].filter((id) => !replies.has(id));
    const deadline = performance.now() + 30_000;
    while (idsLeft().length && performance.now() < deadline && !d.status) {
      await d.waitFor(
        () => idsLeft().length === 0,
        Math.max(1, deadline - performance.now()),
        "replies",
        d.received.length,
      ).catch(() => {});
    }
    if (idsLeft().length) {
      fail(
        `${tag}: ${idsLeft().length} calls never answered (${
          idsLeft().slice(0, 5).map((i) => expects.get(i)!.what).join(", ")
        })`,
      );
    }
    for (const [id, e] of expects) {
      const got = replies.get(id) ?? [];
      if (got.length > 1) fail(`${tag}: ${got.length} replies to ${e.what}`);
      const m = got[0];
      if (!m) continue;
      fig.validCallsAnswered++;
      if (e.kind === "result") {
        if (m.kind !== Kind.Result) {
          fail(
            `${tag}: ${e.what}: expected a result, got ${
              JSON.stringify(m).slice(0, 300)
            }`,
          );
        } else if (!isDeepStrictEqual(m.value, wireForm(e.value))) {
          fail(
            `${tag}: ${e.what}: wrong value: sent ${
              Deno.inspect(e.value, { depth: 9 }).slice(0, 400)
            }, got ${Deno.inspect(m.value, { depth: 9 }).slice(0, 400)}`,
          );
        }
      } else if (e.kind === "status") {
        const value = m.kind === Kind.Result
          ? m.value as { pid?: unknown; completed?: unknown }
          : undefined;
        if (
          typeof value?.pid !== "number" ||
          typeof value?.completed !== "number"
        ) {
          fail(
            `${tag}: status: expected the daemon's counters, got ${
              JSON.stringify(m).slice(0, 300)
            }`,
          );
        }
      } else if (e.kind === "error") {
        if (m.kind !== Kind.Error || m.error.name !== e.name) {
          fail(
            `${tag}: ${e.what}: expected ${e.name}, got ${
              JSON.stringify(m).slice(0, 300)
            }`,
          );
        }
      }
    }
    // The non-entrypoint never ran.
    const mk = nextId++;
    await send(encodeMessage([Kind.Call, mk, "stress.ts#markerCount", []]), 1);
    const marker = await d.waitFor(
      (m) => "id" in m && m.id === mk,
      10_000,
      `${tag}: markerCount`,
    );
    if (marker.kind !== Kind.Result || marker.value !== 0) {
      fail(`${tag}: plantMarker ran: ${JSON.stringify(marker)}`);
    }
    const hwm = procKb(d.pid, "VmHWM") ?? 0;
    recordHwm(hwm, baseline, largest === 0);
    if (largest === 0 && hwm - baseline > 64 * 1024) {
      fail(
        `${tag}: daemon VmHWM grew by ${
          ((hwm - baseline) / 1024).toFixed(0)
        } MiB with small frames only`,
      );
    }

    // The terminal input: garbage, bad lengths, wrong shapes...
    let wire: Uint8Array;
    let name: string;
    let o: ReturnType<typeof oracle>;
    for (;;) {
      const t = r.int(12);
      const body = encodeValue([Kind.Call, nextId, "ops.ts#echo", [
        randomValue(r),
      ]]);
      switch (t) {
        case 0:
          [wire, name] = [concat(u32(0), body), "length 0"];
          break;
        case 1:
          [wire, name] = [
            concat(u32(r.pick([MAX_FRAME + 1, 0xffffffff, 0x80000000])), body),
            "length above the limit",
          ];
          break;
        case 2:
          [wire, name] = [
            concat(u32(MAX_FRAME), body),
            "length = limit, body never sent",
          ];
          break;
        case 3:
          [wire, name] = [
            concat(u32(body.length + 1), body, frame(body)),
            "length off by one (+1)",
          ];
          break;
        case 4:
          [wire, name] = [
            concat(u32(body.length - 1), body, frame(body)),
            "length off by one (-1)",
          ];
          break;
        case 5:
          [wire, name] = [
            frame(body).subarray(0, r.range(1, body.length + 3)),
            "truncated frame",
          ];
          break;
        case 6:
          [wire, name] = [frame(r.bytes(r.range(1, 200))), "garbage msgpack"];
          break;
        case 7:
          [wire, name] = [frame(hostileBody(r)), "hostile msgpack"];
          break;
        case 8:
          [wire, name] = [frame(mutate(r, validBody(r))), "mutated message"];
          break;
        case 9:
          [wire, name] = [
            frame(encodeValue(r.pick([
              { kind: 1 },
              "call",
              [],
              [1],
              [1, 1, "ops.ts#echo"],
              [1, 1, "ops.ts#echo", "not an array"],
              [1, 1, 7, []],
              [1, 1, "ops.ts#echo", [], "extra"],
              [9, 1],
              [-1, 1],
              [1.5, 1],
              [null, 1],
              [Kind.Result, 1, "x"],
              [Kind.Error, 1, { name: "E", message: "m" }],
              [Kind.Log, {
                category: [],
                level: "info",
                message: "",
                timestamp: 0,
              }],
              [Kind.Fatal, { name: "E", message: "m" }],
              [Kind.Hello, { v: 1, pid: 1 }],
              [Kind.Call, 1, "x".repeat(1025), []],
            ]))),
            "valid msgpack, wrong shape or kind",
          ];
          break;
        case 10: {
          const id = nextId + 1;
          [wire, name] = [
            concat(
              encodeMessage([Kind.Call, id, "stress.ts#taggedSlow", [id, 500]]),
              encodeMessage([Kind.Call, id, "ops.ts#echo", [1]]),
            ),
            "duplicate id in flight",
          ];
          break;
        }
        default:
          [wire, name] = [r.bytes(r.range(1, 64)), "random bytes"];
      }
      o = oracle(wire);
      if (!o.unsafe) break;
    }
    const pending = o.calls.filter((c) => c.kind === Kind.Call) as Extract<
      Message,
      { kind: 1 }
    >[];
    for (const c of pending) {
      if (!o.fatal) expects.set(c.id, { kind: "any", what: name });
    }
    fig.terminal[name] = (fig.terminal[name] ?? 0) + 1;
    await send(wire, 1);
    if (o.fatal) {
      fig.fatalCloses++;
      await expectFatal(
        d,
        `${tag}: ${name}`,
        () => fatalAt,
        () => hwmAtFatal,
        baseline,
        largest === 0,
      );
    } else {
      fig.eofCloses++;
      for (const c of pending) {
        await d.waitFor(
          (m) => "id" in m && m.id === c.id,
          10_000,
          `${tag}: ${name}: reply`,
        );
      }
      await new Promise((res) => setTimeout(res, 100));
      const h = procKb(d.pid, "VmHWM") ?? 0;
      recordHwm(h, baseline, largest === 0);
      if (largest === 0 && h - baseline > 64 * 1024) {
        fail(
          `${tag}: ${name}: daemon VmHWM grew by ${
            ((h - baseline) / 1024).toFixed(0)
          } MiB`,
        );
      }
      await d.closeStdin();
      const st = await d.waitExit(5_000).catch(() => undefined);
      if (!st) fail(`${tag}: ${name}: no exit within 5 s of EOF`);
      else if (st.code !== 0) {
        fail(
          `${tag}: ${name}: exit code ${st.code} on EOF; stderr ${d.stderr}`,
        );
      }
      if (fatalAt >= 0) fail(`${tag}: ${name}: unexpected Fatal`);
    }
  } catch (error) {
    fail(`${tag}: ${(error as Error).message}`);
  } finally {
    const st = await d.kill(2000);
    if (d.stderr.trim() && !/^$/.test(d.stderr.trim())) {
      fail(
        `${tag}: daemon stderr: ${d.stderr.trim().slice(0, 500)} (${
          JSON.stringify(st)
        })`,
      );
    }
    for (const m of d.received) {
      if (m.kind === "undecodable") {
        fail(`${tag}: daemon sent an undecodable frame: ${m.error}`);
      }
    }
    if (fig.sessions % 10 === 0) {
      console.log(
        `  … ${fig.sessions} sessions, ${fig.framesSent} frames, ${
          (elapsed() / 1000).toFixed(0)
        } s`,
      );
    }
  }
}

/**
 * What a value becomes after a trip over the wire: a bigint within ±(2^53 −
 * 1) arrives as a number (PROTOCOL.md, "Frames").
 */
function wireForm(v: unknown): unknown {
  if (typeof v === "bigint") {
    return v >= -(2n ** 53n - 1n) && v <= 2n ** 53n - 1n ? Number(v) : v;
  }
  if (Array.isArray(v)) return v.map(wireForm);
  if (
    v && typeof v === "object" && !(v instanceof Uint8Array) &&
    !(v instanceof Date)
  ) {
    return Object.fromEntries(
      Object.entries(v).map(([k, x]) => [k, wireForm(x)]),
    );
  }
  return v;
}

function recordHwm(hwm: number, baseline: number, small: boolean): void {
  const growth = (hwm - baseline) / 1024;
  fig.maxHwmGrowthMiB = Math.max(fig.maxHwmGrowthMiB, Math.round(growth));
  if (small) {
    fig.maxHwmGrowthSmallMiB = Math.max(
      fig.maxHwmGrowthSmallMiB,
      Math.round(growth),
    );
  }
  fig.peakDaemonHwmMiB = Math.max(fig.peakDaemonHwmMiB, Math.round(hwm / 1024));
}

async function expectFatal(
  d: RawDaemon,
  what: string,
  fatalAt: () => number,
  hwmAtFatal: () => number | undefined,
  baseline: number | undefined,
  small: boolean,
): Promise<void> {
  try {
    await d.waitFor((m) => m.kind === Kind.Fatal, 5_000, `${what}: Fatal`);
  } catch (error) {
    fail(`${what}: ${(error as Error).message}`);
    return;
  }
  const st = await d.waitExit(3_000).catch(() => undefined);
  if (!st) fail(`${what}: the daemon did not exit within 3 s of its Fatal`);
  else if (st.code !== 3) {
    fail(`${what}: exit code ${st.code} after Fatal, want 3`);
  }
  const after = d.received.slice(fatalAt() + 1).filter((m) =>
    m.kind !== Kind.Log
  );
  if (after.length) fail(`${what}: ${after.length} frames after the Fatal`);
  const h = hwmAtFatal();
  if (h !== undefined && baseline !== undefined) {
    recordHwm(h, baseline, small);
    if (small && h - baseline > 64 * 1024) {
      fail(
        `${what}: daemon VmHWM grew by ${
          ((h - baseline) / 1024).toFixed(0)
        } MiB`,
      );
    }
  }
}

async function fuzzDaemon(): Promise<void> {
  requireRoot();
  const dir = await scratchDir();
  try {
    await Deno.remove(MARKER_FILE).catch(() => {});
    const markerDir = MARKER_FILE.slice(0, MARKER_FILE.lastIndexOf("/"));
    await Deno.mkdir(markerDir, { recursive: true, mode: 0o755 });
    await Deno.chmod(markerDir, 0o755);
    const config = await writeConfig(dir, {
      e2e: {
        user: "root",
        capabilities: [],
        concurrency: 8,
        // Its directory: a uid-0 context refuses a write path that does
        // not exist yet (the kernel sandbox would give it the directory).
        permissions: { write: [markerDir] },
      },
    });
    init({ configFiles: [config] });
    const argv = testCtx.command();
    const sessions = Number(opt.sessions);
    const t0 = performance.now();
    for (let s = 0; s < sessions; s++) {
      if (elapsed() > maxMs) {
        console.log(`daemon: stopping after ${s} sessions (--max-seconds)`);
        break;
      }
      await session(s, argv);
    }
    fig.seconds = Number(((performance.now() - t0) / 1000).toFixed(1));
    if (await Deno.stat(MARKER_FILE).then(() => true, () => false)) {
      fail(`${MARKER_FILE} exists: a non-entrypoint ran`);
    }
  } finally {
    init({ configFiles: [] });
    await Deno.remove(dir, { recursive: true });
  }
  figures.daemon = fig;
  console.log(
    `daemon: ${fig.sessions} daemons, ${fig.framesSent} frames (${
      (fig.bytesSent / 2 ** 20).toFixed(1)
    } MiB) in ${fig.seconds} s: ${fig.validCallsAnswered} calls answered and checked, ${fig.refusedNames} non-entrypoint names refused, ${fig.fatalCloses} Fatal closes, ${fig.eofCloses} EOF closes; daemon VmHWM growth max ${fig.maxHwmGrowthSmallMiB} MiB with small frames, ${fig.maxHwmGrowthMiB} MiB with 16 MiB frames; peak ${fig.peakDaemonHwmMiB} MiB`,
  );
  console.log(`daemon terminal inputs: ${JSON.stringify(fig.terminal)}`);
}

if (opt.only !== "daemon") await fuzzDecoder();
if (opt.only !== "decoder") await fuzzDaemon();
figures.failures = failures;
figures.seconds = Number((elapsed() / 1000).toFixed(1));
if (opt.json) {
  await Deno.mkdir(dirname(opt.json), { recursive: true });
  await Deno.writeTextFile(opt.json, JSON.stringify(figures, null, 2) + "\n");
}
if (failures.length) {
  console.error(`fuzz: ${failures.length} failure(s); seed ${seed}`);
  Deno.exit(1);
}
console.log(`fuzz: ok in ${figures.seconds} s (seed ${seed})`);
Deno.exit(0);
