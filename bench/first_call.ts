// Where the first call of an entrypoint goes (issue 17's chown p99). Run as
// root (the daemon starts directly, drops to nobody with CAP_CHOWN):
//   deno run -A bench/first_call.ts [daemons]
// For each fresh daemon: a no-op call starts it, 2000 echo(null) calls warm
// the call path as the bench's sequential rows do, then the first and second
// calls of two no-op entrypoints with chown's arguments (a path, two
// numbers; the reply is `undefined`), then of two chown entrypoints with the
// same body. noopA's first call is the first of those value types, noopB's
// the first of another entrypoint with them, chownA's the first
// Deno.chownSync, chownB's the first of another entrypoint doing it. Prints, per
// step, the median over daemons of the caller's round trip and of the
// daemon's own time (the audit record's durationMs: lookup, invoke, the
// function, the reply's encoding).
import { configure, type LogRecord } from "@logtape/logtape";
import { init } from "../mod.ts";
import {
  chownA,
  chownB,
  echo,
  firstCallCtx,
  noopA,
  noopB,
} from "./first_call/mod.ts";

const daemons = Number(Deno.args[0] ?? 10);
const dir = await Deno.makeTempDir({
  dir: "/var/lib",
  prefix: "privsep-first-call-",
});
await Deno.chmod(dir, 0o755);
const target = `${dir}/target`;
await Deno.writeTextFile(target, "x\n");
const config = `${dir}/privsep.toml`;
await Deno.writeTextFile(
  config,
  [
    "[privsep_first_call]",
    'capabilities = ["CAP_CHOWN"]',
    "[privsep_first_call.permissions]",
    `write = [${JSON.stringify(target)}]`,
    "",
  ].join("\n"),
);
init({ configFiles: [config] });

const audits: number[] = [];
await configure({
  sinks: {
    audit: (r: LogRecord) => audits.push(r.properties.durationMs as number),
  },
  loggers: [
    { category: ["privsep", "audit"], sinks: ["audit"], lowestLevel: "info" },
    { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
  ],
});

type Step = [string, () => Promise<unknown>];
const twice = (name: string, f: typeof noopA): Step[] => [
  [`${name} 1st`, () => f(target, 0, 0)],
  [`${name} 2nd`, () => f(target, 0, 0)],
];
const steps: Step[] = [
  ...twice("noopA", noopA),
  ...twice("noopB", noopB),
  ...twice("chownA", chownA),
  ...twice("chownB", chownB),
];

const caller = new Map<string, number[]>();
const daemon = new Map<string, number[]>();
const add = (m: Map<string, number[]>, k: string, v: number) =>
  m.set(k, [...(m.get(k) ?? []), v]);
for (let d = 0; d < daemons; d++) {
  const t0 = performance.now();
  await echo(null);
  add(caller, "start (echo 1st)", performance.now() - t0);
  let t = performance.now();
  await echo(null);
  add(caller, "echo 2nd", performance.now() - t);
  for (let i = 0; i < 2000; i++) await echo(null);
  for (const [name, f] of steps) {
    audits.length = 0;
    t = performance.now();
    await f();
    add(caller, name, performance.now() - t);
    if (audits.length) add(daemon, name, audits[0]);
  }
  await firstCallCtx.stop();
}
await Deno.remove(dir, { recursive: true });

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
};
const f = (ms: number) => `${(ms * 1000).toFixed(0)} µs`;
console.log(`| step | caller round trip | daemon (audit) |`);
console.log(`| --- | ---: | ---: |`);
const names = [
  ...["start (echo 1st)", "echo 2nd"],
  ...steps.map(([n]) => n),
];
for (const n of names) {
  const c = caller.get(n)!;
  const dm = daemon.get(n);
  console.log(
    `| ${n} | ${f(median(c))} | ${dm ? f(median(dm)) : "-"} |`,
  );
}
console.log(`(${daemons} fresh daemons, medians)`);
