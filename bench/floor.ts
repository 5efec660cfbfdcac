// `deno task bench:floor`: the floor under privsep's sequential latency on
// this runtime. A Deno caller talks to a Deno child over the child's stdio
// pipes with the same I/O as privsep (the caller through Deno.Command's web
// streams with a BYOB reader, the child with blocking reads and writes), and
// echoes 24 bytes: no msgpack, no dispatch, no privilege drop. privsep's
// sequential p50 cannot be lower than this.
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

const calls = Number(Deno.args[0] ?? 20_000);
const child = new Deno.Command(Deno.execPath(), {
  args: ["run", "--no-config", new URL(import.meta.url).pathname, "--child"],
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
const at = (p: number) =>
  (times[Math.floor(p * times.length)] * 1000).toFixed(0);
console.log(
  `Deno-to-Deno stdio round trip, 24 bytes, ${calls} calls: p50 ${
    at(0.5)
  } µs, p99 ${at(0.99)} µs`,
);
