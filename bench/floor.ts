// `deno task bench:floor`: the floor under privsep's sequential latency on
// this runtime. A Deno caller talks to a Deno child over the child's stdio
// pipes with the same I/O as privsep (the caller through Deno.Command's web
// streams with a BYOB reader, the child with blocking reads and writes), and
// echoes 24 bytes: no msgpack, no dispatch, no privilege drop. privsep's
// sequential p50 cannot be lower than this.
//
// It runs twice per round, alternately: as the scheduler places the two
// processes, and with both on one CPU (`taskset -c <last CPU>`, which the
// child inherits). On a VM the difference is the cost of waking a process on
// another CPU, which no I/O style avoids (see README, Performance).
//   deno task bench:floor [calls] [rounds]
const SELF = new URL(import.meta.url).pathname;

if (Deno.args[0] === "--child") {
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = Deno.stdin.readSync(buf);
    if (n === null) break;
    let off = 0;
    while (off < n) off += Deno.stdout.writeSync(buf.subarray(off, n));
  }
  Deno.exit(0);
}

if (Deno.args[0] === "--measure") {
  const calls = Number(Deno.args[1]);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-config", SELF, "--child"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  const reader = child.stdout.getReader({ mode: "byob" });
  let buf = new Uint8Array(65536);
  const message = new Uint8Array(24);
  const times: number[] = [];
  for (let i = 0; i < calls + 2_000; i++) {
    const t0 = performance.now();
    await writer.write(message);
    let got = 0;
    while (got < message.length) {
      const { value } = await reader.read(buf);
      if (!value) throw new Error("the child went away");
      got += value.length;
      buf = new Uint8Array(value.buffer);
    }
    if (i >= 2_000) times.push(performance.now() - t0);
  }
  await writer.close();
  await child.status;
  times.sort((a, b) => a - b);
  const at = (p: number) => times[Math.floor(p * times.length)] * 1000;
  console.log(JSON.stringify({ p50: at(0.5), p99: at(0.99) }));
  Deno.exit(0);
}

const calls = Number(Deno.args[0] ?? 20_000);
const rounds = Number(Deno.args[1] ?? 3);
const cpu = Math.max(
  ...(/Cpus_allowed_list:\s*(\S+)/.exec(
    Deno.readTextFileSync("/proc/self/status"),
  )?.[1] ?? "0").split(/[,-]/).map(Number),
);
const placements = {
  "placed by the scheduler": [] as string[],
  [`one CPU (taskset -c ${cpu})`]: ["taskset", "-c", String(cpu)],
};
const results = new Map<string, { p50: number; p99: number }[]>();
for (let round = 0; round < rounds; round++) {
  for (const [name, prefix] of Object.entries(placements)) {
    const argv = [...prefix, Deno.execPath(), "run", "-A", "--no-config"];
    const out = await new Deno.Command(argv[0], {
      args: [...argv.slice(1), SELF, "--measure", String(calls)],
      stderr: "inherit",
    }).output();
    if (!out.success) {
      throw new Error(
        `${argv.join(" ")} failed${
          prefix.length
            ? ' (taskset comes with util-linux: "apt-get install util-linux")'
            : ""
        }`,
      );
    }
    const r = JSON.parse(new TextDecoder().decode(out.stdout));
    results.set(name, [...results.get(name) ?? [], r]);
  }
}
const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1];
for (const [name, rs] of results) {
  console.log(
    `Deno-to-Deno stdio round trip, 24 bytes, ${calls} calls, ${name}: p50 ${
      median(rs.map((r) => r.p50)).toFixed(0)
    } µs, p99 ${
      median(rs.map((r) => r.p99)).toFixed(0)
    } µs (median of ${rounds} rounds)`,
  );
}
