// The caller's codec on the first call that brings new value types, in one
// process (no daemon, no I/O: robust to a busy machine). Each child encodes
// and decodes 2000 echo(null) calls and replies, as a caller that has only
// made those, then times each stage of a call with chown's arguments (a
// path of more than 32 characters, two numbers) and its `undefined` reply,
// three times. Children run alternately without and with warmCodec()
// (protocol/_warm.ts) first; then each makes 1 000 000 more echo(null) calls
// and replies, timing the first 200 000 and the last 200 000. Prints the medians over children.
//   deno run -A bench/first_call_codec.ts [children per variant]
import { decodeMessage, encodeMessage, Kind } from "../protocol/messages.ts";
import { warmCodec } from "../protocol/_warm.ts";

const STAGES = ["encode call", "decode call", "encode reply", "decode reply"];

if (Deno.args[0] === "--child") {
  let warmMs = 0;
  if (Deno.args[1] === "warm") {
    const t = performance.now();
    warmCodec();
    warmMs = performance.now() - t;
  }
  let id = 1;
  for (let i = 0; i < 2000; i++) {
    const call = encodeMessage([Kind.Call, id, "mod.ts#echo", [null]]);
    const m = decodeMessage(call.subarray(4)) as { args: unknown[] };
    const reply = encodeMessage([Kind.Result, id++, m.args[0]]);
    decodeMessage(reply.subarray(4));
  }
  const path = "/var/lib/privsep-bench/secret/target";
  const rounds: number[][] = [];
  for (let r = 0; r < 3; r++) {
    const t = [performance.now()];
    const call = encodeMessage([Kind.Call, id, "mod.ts#noop", [path, 0, 0]]);
    t.push(performance.now());
    decodeMessage(call.subarray(4));
    t.push(performance.now());
    const reply = encodeMessage([Kind.Result, id++, undefined]);
    t.push(performance.now());
    decodeMessage(reply.subarray(4));
    t.push(performance.now());
    rounds.push(t.slice(1).map((x, i) => (x - t[i]) * 1000));
  }
  // The steady state afterwards: does the warm-up's wider type feedback slow
  // the common call?
  // 1 000 000 rounds: the first 200 000 timed (V8's tiers still moving),
  // and the last 200 000 (settled).
  const round = () => {
    const call = encodeMessage([Kind.Call, id, "mod.ts#echo", [null]]);
    const m = decodeMessage(call.subarray(4)) as { args: unknown[] };
    const reply = encodeMessage([Kind.Result, id++, m.args[0]]);
    decodeMessage(reply.subarray(4));
  };
  const N = 200_000;
  let t = performance.now();
  for (let i = 0; i < N; i++) round();
  const earlyNs = (performance.now() - t) * 1e6 / N;
  for (let i = 0; i < 600_000; i++) round();
  t = performance.now();
  for (let i = 0; i < N; i++) round();
  const steadyNs = (performance.now() - t) * 1e6 / N;
  console.log(JSON.stringify({ warmMs, rounds, earlyNs, steadyNs }));
  Deno.exit(0);
}

const children = Number(Deno.args[0] ?? 10);
type Run = {
  warmMs: number;
  rounds: number[][];
  earlyNs: number;
  steadyNs: number;
};
const runs: Record<string, Run[]> = { cold: [], warm: [] };
for (let i = 0; i < children; i++) {
  for (const variant of ["cold", "warm"]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL(import.meta.url).pathname,
        "--child",
        variant,
      ],
      stderr: "inherit",
    }).output();
    runs[variant].push(JSON.parse(new TextDecoder().decode(out.stdout)));
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
console.log(`| call | stage | without warm-up | with warm-up |`);
console.log(`| --- | --- | ---: | ---: |`);
for (let r = 0; r < 3; r++) {
  for (let s = 0; s < STAGES.length; s++) {
    const [a, b] = ["cold", "warm"].map((v) =>
      median(runs[v].map((run) => run.rounds[r][s])).toFixed(0)
    );
    console.log(`| ${r + 1} | ${STAGES[s]} | ${a} µs | ${b} µs |`);
  }
}
for (
  const [what, field] of [
    ["the next 200 000 echo(null) calls and replies, each", "earlyNs"],
    ["after 800 000 more, the next 200 000, each", "steadyNs"],
  ] as const
) {
  const [a, b] = ["cold", "warm"].map((v) =>
    median(runs[v].map((run) => run[field])).toFixed(0)
  );
  console.log(`| then | ${what} | ${a} ns | ${b} ns |`);
}
const warmMs = runs.warm.map((run) => run.warmMs);
console.log(
  `warmCodec() itself: median ${median(warmMs).toFixed(1)} ms ` +
    `(${children} children per variant, alternating, medians)`,
);
