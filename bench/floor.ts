// `deno task bench:floor`: the floor under privsep's sequential latency on
// this runtime. A Deno caller talks to a Deno child over the child's stdio
// pipes with the same I/O as privsep (the caller through node:child_process
// pipes, stdout read into one reused buffer, as contexts/_child.ts; the child
// with blocking reads and writes), and echoes 24 bytes: no msgpack, no
// dispatch, no privilege drop. privsep's sequential latency cannot be lower
// than this. A second child reads as the daemon does by default (idle_read
// "event-loop"): through its event loop, which turns once per message; the
// difference is that turn's cost, which only the blocking read (idle_read
// "blocking") avoids. A third pair is the second with the caller's I/O as
// privsep's was until 2026-12-04 (Deno.Command's web streams, a BYOB reader).
//
// Each pair is measured as the bench's profiles measure privsep: a fresh
// pair, 300 calls, then 2000 measured (the quick profile: the measured calls
// are the ones during which V8 compiles both processes' code, which is where
// the quick profile's p99 comes from), and 2000 calls then `calls` measured.
//
// Then the quick profile's in-flight rows on the event-loop child: 8 calls
// in flight after 2300 sequential ones, then 64 (one stall of either process
// holds up every call in flight, which is what the rows' p99 is made of);
// and the same with a daemon's codec work on both sides, done by msgpackr,
// the reference JavaScript msgpack library (whose functions V8 compiles
// during those calls, as it does privsep's codec).
//
// Then the 1 MiB echo of the same pair, each reply into a new buffer (as
// privsep must hand the application one) and into a reused one, with the
// caller's page faults; the first call of Deno.chownSync in a fresh
// Deno process against its second call (the chown row's p99 over 100 calls
// is its slowest call, the daemon's first); and, in a warm pair, the round
// trip of the first message that makes the child run Deno.chownSync in a
// function it has not run before, against the 99 after it (the quick
// profile's chown phase, without privsep), and the 10th slowest of 1000
// such calls after 21 000 (the full profile's chown phase).
//
// It runs twice per round, alternately: as the scheduler places the two
// processes, and with both on one CPU (`taskset -c <last CPU>`, which the
// child inherits). On a VM the difference is the cost of waking a process on
// another CPU, which no I/O style avoids (see docs/performance.md): the same
// echo between two Python processes (os.read/os.write, no event loop at all)
// runs beside it for comparison.
//
// Then the memory floor: the resident memory of a Deno process that runs
// nothing, that imports one Node builtin (the daemon needs
// node:async_hooks for callSignal()), and that imports @logtape/logtape (an
// npm package, which brings Node compatibility whole), before any privsep
// code or JIT-compiled code; and the peak of the same echo child as above,
// with and without those imports, once it has answered `calls` messages
// (its hot loop compiled by V8's optimizing compiler, as a serving daemon's
// is).
//
// It prints its report and writes it to bench/results/floor.md, or to
// bench/results/floor-haltpoll-<N>.md on a VM whose haltpoll governor polls
// for N ns (docs/performance.md cites both).
//   deno task bench:floor [calls] [rounds]

const SELF = new URL(import.meta.url).pathname;

/** VmHWM, RssAnon and RssFile of this process, in MiB, space-separated. */
function memoryLine(): string {
  const s = Deno.readTextFileSync("/proc/self/status");
  return ["VmHWM", "RssAnon", "RssFile"].map((k) =>
    (Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)![1]) / 1024).toFixed(1)
  ).join(" ");
}

/** The reference JavaScript msgpack library (npm msgpackr), from node_modules. */
const MSGPACKR = new URL("../node_modules/msgpackr/index.js", import.meta.url)
  .href;

/** `body` behind its 4-byte big-endian length. */
function lengthPrefixed(body: Uint8Array): Uint8Array {
  const frame = new Uint8Array(4 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, 4);
  return frame;
}

/**
 * Splits `data` into whole length-prefixed frames; calls `each` with every
 * body (a view, valid only during the call) and returns the bytes of an
 * unfinished frame, copied.
 */
function frames(
  data: Uint8Array,
  each: (body: Uint8Array) => void,
): Uint8Array {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let off = 0;
  while (data.length - off >= 4) {
    const len = view.getUint32(off);
    if (data.length - off - 4 < len) break;
    each(data.subarray(off + 4, off + 4 + len));
    off += 4 + len;
  }
  return data.slice(off);
}

/**
 * Reads fd 0 as the daemon does with idle_read "event-loop"
 * (daemon/_idle_read.ts): a node:net socket over it, read by the event
 * loop's epoll into `buf`, `onRead(n)` for every read; resolves at EOF.
 */
async function eventLoopReads(
  buf: Uint8Array,
  onRead: (n: number) => void,
): Promise<void> {
  const { Socket } = await import("node:net");
  await new Promise<void>((resolve) => {
    const socket = new Socket(
      {
        fd: 0,
        readable: true,
        writable: false,
        onread: { buffer: buf, callback: onRead },
      } as ConstructorParameters<typeof Socket>[0],
    );
    socket.on("end", () => resolve());
    socket.on("close", () => resolve());
  });
}

if (Deno.args[0] === "--child-msgpack") {
  // The echo child of the in-flight rows doing a daemon's codec work with
  // the reference library: each call ([kind, id, name, args]) decoded with
  // msgpackr, its result ([kind, id, value]) encoded with it, length-
  // prefixed; read through the event loop as --child --event-loop.
  const { pack, unpack } = await import(MSGPACKR);
  const buf = new Uint8Array(65536);
  let rest: Uint8Array = new Uint8Array(0);
  await eventLoopReads(buf, (n) => {
    const data = rest.length
      ? new Uint8Array([...rest, ...buf.subarray(0, n)])
      : buf.subarray(0, n);
    const out: Uint8Array[] = [];
    rest = frames(data, (body) => {
      const [, id, , args] = unpack(body);
      out.push(lengthPrefixed(pack([2, id, args[0]])));
    });
    const reply = out.length === 1
      ? out[0]
      : new Uint8Array(out.flatMap((f) => [...f]));
    let off = 0;
    while (off < reply.length) {
      off += Deno.stdout.writeSync(reply.subarray(off));
    }
  });
  Deno.exit(0);
}

if (Deno.args[0] === "--child") {
  // With --imports: what the daemon must import, loaded first.
  if (Deno.args.includes("--imports")) {
    const { AsyncLocalStorage } = await import("node:async_hooks");
    const { getLogger } = await import("@logtape/logtape");
    new AsyncLocalStorage();
    getLogger(["x"]);
  }
  const buf = new Uint8Array(65536);
  // With --chown-file=<path>: a message whose first byte is 1 runs
  // Deno.chownSync on it first (the owner it has), in a function the child
  // runs for the first time with the first such message.
  const chownFile = Deno.args.find((a) => a.startsWith("--chown-file="))
    ?.slice("--chown-file=".length);
  const owner = chownFile ? Deno.statSync(chownFile) : undefined;
  const chownTarget = () => Deno.chownSync(chownFile!, owner!.uid, owner!.gid);
  if (Deno.args.includes("--event-loop")) {
    // The event loop turns for every message.
    await eventLoopReads(buf, (n) => {
      if (chownFile && buf[0] === 1) chownTarget();
      let off = 0;
      while (off < n) off += Deno.stdout.writeSync(buf.subarray(off, n));
    });
  } else {
    for (;;) {
      const n = Deno.stdin.readSync(buf);
      if (n === null) break;
      let off = 0;
      while (off < n) off += Deno.stdout.writeSync(buf.subarray(off, n));
    }
  }
  // At EOF, for the memory floor: its peak after serving.
  const to = Deno.args.find((a) => a.startsWith("--memory-to="));
  if (to) Deno.writeTextFileSync(to.slice("--memory-to=".length), memoryLine());
  Deno.exit(0);
}

/** Minor page faults of this process so far (/proc/self/stat, field 10). */
function minorFaults(): number {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[7]);
}

const MIB = 1 << 20;

if (Deno.args[0] === "--chown-first") {
  // A fresh Deno process with a write permission scoped to one file, as
  // the bench's daemon: its first Deno.chownSync against its second (the
  // file system API already used once, as the daemon has at start).
  const file = Deno.args[1];
  const { uid, gid } = Deno.statSync(file);
  const t0 = performance.now();
  Deno.chownSync(file, uid, gid);
  const t1 = performance.now();
  Deno.chownSync(file, uid, gid);
  const t2 = performance.now();
  console.log(
    JSON.stringify({ first: (t1 - t0) * 1000, second: (t2 - t1) * 1000 }),
  );
  Deno.exit(0);
}

if (Deno.args[0] === "--child-mib") {
  // The 1 MiB echo's child: reads each MiB into one buffer and writes it
  // back, both blocking (the daemon's large-call path, whose buffers its
  // malloc settings keep mapped).
  const buf = new Uint8Array(MIB);
  for (;;) {
    let got = 0;
    while (got < MIB) {
      const n = Deno.stdin.readSync(buf.subarray(got));
      if (n === null) Deno.exit(0);
      got += n;
    }
    let off = 0;
    while (off < MIB) off += Deno.stdout.writeSync(buf.subarray(off));
  }
}

/** A caller's side of a pair: writes to the child's stdin, reads its stdout. */
interface Pipes {
  /** Writes `data`; resolves once written. */
  write(data: Uint8Array): Promise<void>;
  /**
   * Reads exactly `into.length` bytes into `into`; resolves with the
   * buffer that holds them (a BYOB read moves `into` to a new one).
   */
  read(into: Uint8Array): Promise<Uint8Array>;
  /** Closes stdin and waits for the child's exit. */
  close(): Promise<void>;
}

/**
 * Spawns `args` with Deno's binary, the caller's side as privsep's
 * (`node`: contexts/_child.ts itself, node:child_process pipes with stdout
 * read into one reused buffer) or as privsep's was
 * before (`web`: Deno.Command's web streams with a BYOB reader).
 */
async function pipes(
  kind: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<Pipes> {
  if (kind === "web") {
    const child = new Deno.Command(Deno.execPath(), {
      args,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const writer = child.stdin.getWriter();
    const reader = child.stdout.getReader({ mode: "byob" });
    return {
      write: (data) => writer.write(data),
      async read(into) {
        let got = 0;
        while (got < into.length) {
          const { value } = await reader.read(into.subarray(got));
          if (!value) throw new Error("the child went away");
          got += value.length;
          into = new Uint8Array(value.buffer);
        }
        return into;
      },
      async close() {
        await writer.close();
        await child.status;
      },
    };
  }
  // privsep's own caller side (contexts/_child.ts), not a copy of it.
  const { DaemonProcess } = await import("../contexts/_child.ts");
  let target: Uint8Array | undefined;
  let got = 0;
  let done: ((filled: Uint8Array) => void) | undefined;
  const child = new DaemonProcess(Deno.execPath(), args, {
    ...Deno.env.toObject(),
    ...env,
  }, {
    // The reused read buffer and the count read, as privsep's caller gets
    // them: copied without a view when small, as its decoder does.
    data: (chunk, n = chunk.length) => {
      if (n <= 64) { for (let i = 0; i < n; i++) target![got + i] = chunk[i]; }
      else target!.set(chunk.subarray(0, n), got);
      got += n;
      if (got === target!.length) done!(target!);
    },
    end: () => {},
    stderr: (chunk) => Deno.stderr.writeSync(chunk),
    spawnFailed: (error) => {
      throw error;
    },
  });
  return {
    write: (data) =>
      new Promise((resolve, reject) =>
        child.write(data, (e) => e ? reject(e) : resolve())
      ),
    read: (into) =>
      new Promise((resolve) => {
        target = into;
        got = 0;
        done = resolve;
      }),
    async close() {
      child.endInput();
      await child.exited;
    },
  };
}

if (Deno.args[0] === "--measure-mib") {
  // 1 MiB out and back through the child's stdio, the caller's side as
  // privsep's (see pipes(); the last argument picks it). `fresh`: every reply lands in a
  // new 1 MiB buffer, as a result handed to the application must (it is the
  // application's to keep); `reused`: in one buffer, which no caller of a
  // function that returns bytes can do. The child is new each time: the
  // first five calls are a fresh daemon's.
  const calls = Number(Deno.args[1]);
  const fresh = Deno.args[2] === "fresh";
  const io = await pipes(Deno.args[3] ?? "node", [
    "run",
    "--no-config",
    SELF,
    "--child-mib",
  ]);
  const message = new Uint8Array(MIB).fill(1);
  let reused: Uint8Array = new Uint8Array(MIB);
  const times: number[] = [];
  const faults0 = minorFaults();
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    const written = io.write(message);
    const filled = await io.read(fresh ? new Uint8Array(MIB) : reused);
    if (!fresh) reused = filled;
    await written;
    times.push(performance.now() - t0);
  }
  const faultsPerCall = (minorFaults() - faults0) / calls;
  await io.close();
  const first5 = times.slice(0, 5).reduce((a, b) => a + b, 0) / 5;
  const rest = times.slice(5).sort((a, b) => a - b);
  console.log(JSON.stringify({
    first5,
    p50: rest[rest.length >> 1],
    faultsPerCall,
  }));
  Deno.exit(0);
}

if (Deno.args[0] === "--measure") {
  const calls = Number(Deno.args[1]);
  // --memory: the child runs as the daemon does (its V8 flags, the project's
  // config, its imports) and the result is the child's memory after serving.
  const memory = Deno.args.includes("--memory");
  const imports = Deno.args.includes("--imports");
  const option = (name: string, fallback: string) =>
    Deno.args.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ??
      fallback;
  // Calls before the measured ones: as many as the bench's profile makes.
  const warmup = Number(option("warmup", "2000"));
  const config = new URL("../deno.json", import.meta.url).pathname;
  const { DAEMON_V8_FLAGS } = await import("../core/command.ts");
  const childStderr = memory ? await Deno.makeTempFile() : undefined;
  const io = await pipes(
    option("caller", "node"),
    memory
      ? [
        "run",
        "-A",
        DAEMON_V8_FLAGS,
        `--config=${config}`,
        SELF,
        "--child",
        `--memory-to=${childStderr}`,
        ...(imports ? ["--imports"] : []),
      ]
      : [
        "run",
        "--no-config",
        SELF,
        "--child",
        ...(Deno.args.includes("--event-loop") ? ["--event-loop"] : []),
      ],
  );
  let buf: Uint8Array = new Uint8Array(24);
  const message = new Uint8Array(24);
  const times: number[] = [];
  // getrusage, in µs (the caller's CPU per call, as the bench's row).
  const { cpuUsage } = await import("node:process");
  const cpuUs = () => {
    const u = cpuUsage();
    return u.user + u.system;
  };
  let cpu0 = 0;
  for (let i = 0; i < calls + warmup; i++) {
    if (i === warmup) cpu0 = cpuUs();
    const t0 = performance.now();
    await io.write(message);
    buf = await io.read(buf);
    if (i >= warmup) times.push(performance.now() - t0);
  }
  const cpuPerCall = (cpuUs() - cpu0) / calls;
  await io.close();
  if (childStderr) {
    console.log(Deno.readTextFileSync(childStderr).trim());
    Deno.removeSync(childStderr);
    Deno.exit(0);
  }
  times.sort((a, b) => a - b);
  const at = (p: number) => times[Math.floor(p * times.length)] * 1000;
  console.log(JSON.stringify({ p50: at(0.5), p99: at(0.99), cpuPerCall }));
  Deno.exit(0);
}

if (Deno.args[0] === "--measure-first-op") {
  // A warm pair (the child reading in its event loop), then `n` calls that
  // each run Deno.chownSync in the child: the first of them runs a function
  // and a Deno API the child has not run before, as a daemon's first call of
  // an entrypoint does. The quick profile's chown p99 is the slowest of its
  // 100 calls: the first. With "daemon-flags", the child runs with the
  // serving daemon's V8 flags (core/command.ts: DAEMON_V8_FLAGS, and
  // serveV8Flags() in its environment, as the first stage passes them).
  // With `mib` > 0, that many 1 MiB echoes (3 + the quick profile's 20),
  // each reply into a new buffer, come right before the chown calls, as
  // the bench's 1 MiB phase does (the child echoes each read as it comes;
  // their bytes are 2, so that no read starts a chown).
  const [warmup, n] = Deno.args.slice(1, 3).map(Number);
  const file = Deno.args[3];
  const daemonFlags = Deno.args[4] === "daemon-flags";
  const mib = Number(Deno.args[5] ?? "0");
  const { DAEMON_V8_FLAGS, serveV8Flags } = await import(
    "../core/command.ts"
  );
  const io = await pipes("node", [
    "run",
    "--no-config",
    ...(daemonFlags ? [DAEMON_V8_FLAGS] : []),
    `--allow-read=${file}`,
    `--allow-write=${file}`,
    SELF,
    "--child",
    "--event-loop",
    `--chown-file=${file}`,
  ], daemonFlags ? { DENO_V8_FLAGS: serveV8Flags() } : {});
  let buf: Uint8Array = new Uint8Array(24);
  const echo = new Uint8Array(24);
  const chown = new Uint8Array(24);
  chown[0] = 1;
  for (let i = 0; i < warmup; i++) {
    await io.write(echo);
    buf = await io.read(buf);
  }
  const large = new Uint8Array(MIB).fill(2);
  for (let i = 0; i < mib; i++) {
    // The read first: the echo starts coming back before the write is done.
    const back = io.read(new Uint8Array(MIB));
    await io.write(large);
    await back;
  }
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await io.write(chown);
    buf = await io.read(buf);
    times.push((performance.now() - t0) * 1000);
  }
  await io.close();
  const first = times[0];
  const slowestAt = times.indexOf(Math.max(...times));
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({
    slowestAt,
    first,
    p50: times[times.length >> 1],
    p99: times[Math.min(times.length - 1, Math.floor(0.99 * times.length))],
  }));
  Deno.exit(0);
}

if (Deno.args[0] === "--measure-inflight") {
  // K lanes of calls at once over one fresh pair, after `warmup` sequential
  // ones, as the bench's "K in flight" rows (bench/drivers/_common.ts): each
  // lane waits for its own reply. The echo child answers in order, so the
  // replies go to the waiting calls first in, first out.
  // With "msgpack": calls and results encoded and decoded on both sides with
  // msgpackr, the reference JavaScript library (--child-msgpack), as
  // privsep's caller and daemon do with its own codec.
  const [lanes, calls, warmup] = Deno.args.slice(1, 4).map(Number);
  const msgpack = Deno.args[4] === "msgpack";
  const { pack, unpack } = msgpack
    ? await import(MSGPACKR)
    : { pack: undefined, unpack: undefined };
  const { DaemonProcess } = await import("../contexts/_child.ts");
  const waiting: (() => void)[] = [];
  const byId = new Map<number, () => void>();
  let nextId = 0;
  let rest: Uint8Array = new Uint8Array(0);
  let next = 0;
  let got = 0;
  const child = new DaemonProcess(
    Deno.execPath(),
    [
      "run",
      "--no-config",
      "--allow-read",
      SELF,
      ...(msgpack ? ["--child-msgpack"] : ["--child", "--event-loop"]),
    ],
    Deno.env.toObject(),
    {
      data: (chunk, n = chunk.length) => {
        if (msgpack) {
          const data = rest.length
            ? new Uint8Array([...rest, ...chunk.subarray(0, n)])
            : chunk.subarray(0, n);
          rest = frames(data, (body) => {
            const [, id] = unpack(body);
            const done = byId.get(id)!;
            byId.delete(id);
            done();
          });
          return;
        }
        for (got += n; got >= 24; got -= 24) waiting[next++]();
        if (next === waiting.length) waiting.length = next = 0;
      },
      end: () => {},
      stderr: (chunk) => Deno.stderr.writeSync(chunk),
      spawnFailed: (error) => {
        throw error;
      },
    },
  );
  const message = new Uint8Array(24);
  const call = () =>
    new Promise<void>((resolve, reject) => {
      if (msgpack) {
        const id = nextId++;
        byId.set(id, resolve);
        child.write(
          lengthPrefixed(pack([1, id, "echo", [null]])),
          (e) => e && reject(e),
        );
        return;
      }
      waiting.push(resolve);
      child.write(message, (e) => e && reject(e));
    });
  for (let i = 0; i < warmup; i++) await call();
  const times: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      for (let i = 0; i < Math.floor(calls / lanes); i++) {
        const s = performance.now();
        await call();
        times.push(performance.now() - s);
      }
    }),
  );
  const callsPerSec = times.length / ((performance.now() - t0) / 1000);
  child.endInput();
  await child.exited;
  times.sort((a, b) => a - b);
  const at = (p: number) => times[Math.floor(p * times.length)] * 1000;
  console.log(JSON.stringify({ p50: at(0.5), p99: at(0.99), callsPerSec }));
  Deno.exit(0);
}

// Imported here, not at the top: the child must load nothing else.
const { DAEMON_V8_FLAGS } = await import("../core/command.ts");
const { cpuidle, HALT_POLL, lastAllowedCpu } = await import(
  "./drivers/_common.ts"
);
/** The report's lines: printed, then written to bench/results/. */
const lines: string[] = [];
function say(line: string): void {
  console.log(line);
  lines.push(line);
}
// Halt polling decides the cost of a wake-up across CPUs on a VM (docs/performance.md,
// Performance).
say(`${Deno.osRelease()}, ${cpuidle()}, Deno ${Deno.version.deno}`);

// The Python pair: the parent prints {"p50", "p99"} in µs.
const PYTHON_PAIR = `
import json, os, subprocess, sys, time
calls = int(sys.argv[1])
warmup = int(sys.argv[2])
child = subprocess.Popen([sys.executable, "-c", """
import os
while True:
    b = os.read(0, 65536)
    if not b:
        break
    os.write(1, b)
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
w, r = child.stdin.fileno(), child.stdout.fileno()
msg = bytes(24)
times = []
cpu0 = 0
for i in range(calls + warmup):
    if i == warmup:
        cpu0 = time.process_time()
    t0 = time.perf_counter()
    os.write(w, msg)
    got = 0
    while got < 24:
        got += len(os.read(r, 65536))
    if i >= warmup:
        times.append(time.perf_counter() - t0)
child.stdin.close()
child.wait()
times.sort()
cpu = (time.process_time() - cpu0) / calls * 1e6
print(json.dumps({"p50": times[len(times) // 2] * 1e6, "p99": times[int(len(times) * 0.99)] * 1e6, "cpuPerCall": cpu}))
`;

const calls = Number(Deno.args[0] ?? 20_000);
const rounds = Number(Deno.args[1] ?? 3);
const cpu = lastAllowedCpu();
const placements = {
  "placed by the scheduler": [] as string[],
  [`one CPU (taskset -c ${cpu})`]: ["taskset", "-c", String(cpu)],
};
/** This file's parent side, which starts the echo child and measures. */
const MEASURE = [
  Deno.execPath(),
  "run",
  "-A",
  "--no-config",
  SELF,
  "--measure",
];
/**
 * How many calls warm a pair up and how many are measured: as the bench's
 * profiles do (bench/bench.ts), where `quick` measures V8's first tiers in
 * both processes, then `calls` after 2000.
 */
const protocols = {
  "fresh pair, 300 calls then 2000 measured (the quick profile's)": [300, 2000],
  [`2000 calls then ${calls} measured`]: [2000, calls],
};
const pairs: Record<string, (warmup: number, calls: number) => string[]> = {
  "Deno-to-Deno stdio round trip, blocking child": (w, n) => [
    ...MEASURE,
    String(n),
    `--warmup=${w}`,
  ],
  "Deno-to-Deno stdio round trip, the child reading in its event loop (node:net socket on fd 0)":
    (w, n) => [...MEASURE, String(n), `--warmup=${w}`, "--event-loop"],
  "Deno-to-Deno stdio round trip, the child reading in its event loop, the caller through Deno.Command's web streams":
    (w, n) => [
      ...MEASURE,
      String(n),
      `--warmup=${w}`,
      "--event-loop",
      "--caller=web",
    ],
  "Python-to-Python pipe round trip": (w, n) => [
    "/usr/bin/python3",
    "-c",
    PYTHON_PAIR,
    String(n),
    String(w),
  ],
};

async function output(argv: string[]): Promise<string> {
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stderr: "inherit",
  }).output();
  if (!out.success) {
    throw new Error(
      `${argv.slice(0, 4).join(" ")} … failed${
        argv[0] === "taskset"
          ? ' (taskset comes with util-linux: "apt-get install util-linux")'
          : ""
      }`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

/**
 * Runs one of this file's measurements (`--measure-…` and its arguments) in
 * a process of its own, all permissions, started with `prefix` (a placement),
 * and returns the JSON it prints.
 */
async function measure<T>(prefix: string[], ...args: string[]): Promise<T> {
  return JSON.parse(
    await output([
      ...prefix,
      Deno.execPath(),
      "run",
      "-A",
      "--no-config",
      SELF,
      ...args,
    ]),
  );
}

const results = new Map<
  string,
  { p50: number; p99: number; cpuPerCall: number }[]
>();
for (let round = 0; round < rounds; round++) {
  for (const [protocol, [warmup, n]] of Object.entries(protocols)) {
    for (const [pair, argv] of Object.entries(pairs)) {
      for (const [placement, prefix] of Object.entries(placements)) {
        const name = `${pair}, 24 bytes, ${protocol}, ${placement}`;
        const r = JSON.parse(await output([...prefix, ...argv(warmup, n)]));
        results.set(name, [...results.get(name) ?? [], r]);
      }
    }
  }
}
const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1];
for (const [name, rs] of results) {
  say(
    `${name}: p50 ${median(rs.map((r) => r.p50)).toFixed(0)} µs, p99 ${
      median(rs.map((r) => r.p99)).toFixed(0)
    } µs, caller CPU ${
      median(rs.map((r) => r.cpuPerCall)).toFixed(0)
    } µs per call (median of ${rounds} rounds)`,
  );
}

// The in-flight rows' floor, in the quick profile's order: 300 + 2000
// sequential calls, then 8000 calls 8 in flight; then (after those) 16 000
// calls 64 in flight. On one CPU every stall of either process (a
// collection, a compilation) holds up every call in flight at once.
const inFlightProtocols = {
  "8 in flight, 2300 calls then 8000 measured (the quick profile's)": [
    8,
    8000,
    2300,
  ],
  "64 in flight, 10 300 calls then 16 000 measured (the quick profile's)": [
    64,
    16_000,
    10_300,
  ],
};
const inFlightResults = new Map<
  string,
  { p50: number; p99: number; callsPerSec: number }[]
>();
for (let round = 0; round < rounds; round++) {
  for (
    const [protocol, [lanes, n, warmup]] of Object.entries(inFlightProtocols)
  ) {
    for (const codec of ["", "msgpack"]) {
      for (const [placement, prefix] of Object.entries(placements)) {
        const name =
          `Deno-to-Deno stdio, ${protocol}, the child reading in its event loop, ${
            codec
              ? "each call and result encoded and decoded with msgpackr (the reference JavaScript msgpack library) on both sides"
              : "24 bytes"
          }, fresh pair, ${placement}`;
        const r = await measure<{
          p50: number;
          p99: number;
          callsPerSec: number;
        }>(
          prefix,
          "--measure-inflight",
          String(lanes),
          String(n),
          String(warmup),
          codec,
        );
        inFlightResults.set(name, [...inFlightResults.get(name) ?? [], r]);
      }
    }
  }
}
for (const [name, rs] of inFlightResults) {
  say(
    `${name}: p50 ${median(rs.map((r) => r.p50)).toFixed(0)} µs, p99 ${
      median(rs.map((r) => r.p99)).toFixed(0)
    } µs, ${
      median(rs.map((r) => r.callsPerSec)).toFixed(0)
    } calls/s (median of ${rounds} rounds)`,
  );
}

// The 1 MiB echo's floor: what a bare Deno pair pays for the same bytes,
// with each reply in a new buffer (as privsep must) and in a reused one.
// The difference is the caller's page faults: V8 frees a buffer the
// application dropped only at its next collection, so each new reply is
// memory the process never touched, zeroed by the kernel page by page.
const MIB_CALLS = 25;
const mibModes = {
  "reply into a new buffer per call": ["fresh", "node"],
  "reply into a reused buffer": ["reused", "node"],
  "reply into a new buffer per call, the caller through Deno.Command's web streams":
    ["fresh", "web"],
};
const mibResults = new Map<
  string,
  { first5: number; p50: number; faultsPerCall: number }[]
>();
for (let round = 0; round < rounds; round++) {
  for (const [name, [mode, caller]] of Object.entries(mibModes)) {
    mibResults.set(name, [
      ...mibResults.get(name) ?? [],
      await measure(
        [],
        "--measure-mib",
        String(MIB_CALLS),
        mode,
        caller,
      ),
    ]);
  }
}
for (const [name, rs] of mibResults) {
  say(
    `Deno-to-Deno stdio 1 MiB echo, ${name}, fresh child: first 5 calls ${
      median(rs.map((r) => r.first5)).toFixed(2)
    } ms (mean), then p50 ${median(rs.map((r) => r.p50)).toFixed(2)} ms; ${
      median(rs.map((r) => r.faultsPerCall)).toFixed(0)
    } page faults per call in the caller (median of ${rounds} rounds)`,
  );
}

// The memory floor, with the daemon's V8 flags and the project's config.
const config = new URL("../deno.json", import.meta.url).pathname;
const report =
  'const s = Deno.readTextFileSync("/proc/self/status"); console.log(["VmRSS", "RssAnon", "RssFile"].map((k) => (Number(new RegExp(k + ":\\\\s+(\\\\d+)").exec(s)![1]) / 1024).toFixed(1)).join(" "));';
const programs = {
  "runs nothing": "",
  "imports node:async_hooks":
    'import { AsyncLocalStorage } from "node:async_hooks"; new AsyncLocalStorage();',
  "imports @logtape/logtape":
    'import { getLogger } from "@logtape/logtape"; getLogger(["x"]);',
};
for (const [what, code] of Object.entries(programs)) {
  const dir = await Deno.makeTempDir({ prefix: "privsep-floor-" });
  try {
    const file = `${dir}/probe.ts`;
    await Deno.writeTextFile(file, `${code}\n${report}\n`);
    const argv = [
      Deno.execPath(),
      "run",
      "-A",
      DAEMON_V8_FLAGS,
      `--config=${config}`,
      file,
    ];
    await output(argv); // once to fill the cache, as the daemon finds it
    const [rss, anon, file_] = (await output(argv)).trim().split(" ");
    say(
      `A Deno process that ${what}: ${rss} MiB resident (${anon} MiB its own, ${file_} MiB pages of the deno binary and other files)`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
for (const imports of [false, true]) {
  const argv = [
    ...MEASURE,
    String(calls),
    "--memory",
    ...(imports ? ["--imports"] : []),
  ];
  const [hwm, anon, file_] = (await output(argv)).trim().split(" ");
  say(
    `The Deno echo child${
      imports ? " importing both" : ""
    }, after ${calls} calls: peak ${hwm} MiB resident (${anon} MiB its own, ${file_} MiB pages of the deno binary and other files)`,
  );
}

// The first call of a Deno API in a process, and of a function and that API
// in a warm pair: the chown row's p99 (over 100 calls, the slowest one) is
// the daemon's first Deno.chownSync.
{
  const dir = await Deno.makeTempDir({ prefix: "privsep-floor-" });
  try {
    const file = `${dir}/target`;
    await Deno.writeTextFile(file, "x");
    const firsts: { first: number; second: number }[] = [];
    for (let round = 0; round < Math.max(rounds, 5); round++) {
      firsts.push(JSON.parse(
        await output([
          Deno.execPath(),
          "run",
          "--no-config",
          `--allow-read=${file}`,
          `--allow-write=${file}`,
          SELF,
          "--chown-first",
          file,
        ]),
      ));
    }
    say(
      `Deno.chownSync in a fresh Deno process: first call ${
        median(firsts.map((r) => r.first)).toFixed(0)
      } µs, second ${
        median(firsts.map((r) => r.second)).toFixed(0)
      } µs (median of ${firsts.length} processes)`,
    );

    // A warm pair, then `n` calls that each run Deno.chownSync in the child
    // (--measure-first-op), five pairs per placement at least.
    const chownCalls = async (
      warmup: number,
      n: number,
      flags = "",
      mib = 0,
    ) => {
      const byPlacement = new Map<
        string,
        { first: number; p50: number; p99: number }[]
      >();
      for (let round = 0; round < Math.max(rounds, 5); round++) {
        for (const [placement, prefix] of Object.entries(placements)) {
          const r = await measure<
            { first: number; p50: number; p99: number }
          >(
            prefix,
            "--measure-first-op",
            String(warmup),
            String(n),
            file,
            flags,
            String(mib),
          );
          byPlacement.set(placement, [...byPlacement.get(placement) ?? [], r]);
        }
      }
      return byPlacement;
    };
    // The first call of an entrypoint in a warm daemon: the quick
    // profile's chown p99 (the slowest of 100 calls) is the first chown
    // call, after 2300 sequential calls and the in-flight and 1 MiB phases.
    const byPlacement = await chownCalls(2300, 100);
    // The same with the serving daemon's V8 flags (predictable mode, no
    // optimizing compiler, small young generation): what the first call of a
    // privsep daemon's entrypoint costs on the runtime the daemon runs.
    const flaggedByPlacement = await chownCalls(2300, 100, "daemon-flags");
    // ... and after the bench's 1 MiB phase (3 + 20 echoes), as the quick
    // profile's chown phase comes.
    const afterMibByPlacement = await chownCalls(
      2300,
      100,
      "daemon-flags",
      23,
    );
    // The full profile's chown p99: the 10th slowest of 1000 calls after
    // 21 000 (the first one, the compilation of the function and of Deno's
    // code under Deno.chownSync, and the young collections among them).
    const fullByPlacement = await chownCalls(21_000, 1000);
    // ... and with the daemon's flags after the full profile's 1 MiB phase
    // (3 + 100 echoes), as its chown phase comes.
    const fullAfterMib = await chownCalls(21_000, 1000, "daemon-flags", 103);
    for (
      const [what, runs] of [
        ["", fullByPlacement],
        [
          ", the child with the serving daemon's V8 flags, after 103 1 MiB echoes (the full profile's 1 MiB phase)",
          fullAfterMib,
        ],
      ] as const
    ) {
      for (const [placement, rs] of runs) {
        say(
          `Deno-to-Deno stdio, the child reading in its event loop, 24 bytes, fresh pair, 21 000 calls${what}, then 1000 that each run Deno.chownSync in the child, ${placement}: p99 (the full profile's chown p99) ${
            median(rs.map((r) => r.p99)).toFixed(0)
          } µs (${Math.min(...rs.map((r) => r.p99)).toFixed(0)}-${
            Math.max(...rs.map((r) => r.p99)).toFixed(0)
          }), p50 ${
            median(rs.map((r) => r.p50)).toFixed(0)
          } µs (median of ${rs.length} pairs)`,
        );
      }
    }
    for (
      const [flags, runs] of [
        ["", byPlacement],
        [", with the serving daemon's V8 flags", flaggedByPlacement],
        [
          ", with the serving daemon's V8 flags, after 23 1 MiB echoes (the quick profile's 1 MiB phase)",
          afterMibByPlacement,
        ],
      ] as const
    ) {
      for (const [placement, rs] of runs) {
        say(
          `Deno-to-Deno stdio, the child reading in its event loop${flags}, 24 bytes, fresh pair, 2300 calls, then 100 that each run Deno.chownSync in the child (the first runs a function and a Deno API the child has not run before), ${placement}: first call ${
            median(rs.map((r) => r.first)).toFixed(0)
          } µs, the slowest of the 100 (the quick profile's chown p99) ${
            median(rs.map((r) => r.p99)).toFixed(0)
          } µs, p50 ${
            median(rs.map((r) => r.p50)).toFixed(0)
          } µs (median of ${rs.length} pairs)`,
        );
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

let haltPoll: string | undefined;
try {
  haltPoll = Deno.readTextFileSync(HALT_POLL).trim();
} catch { /* not a KVM guest with the haltpoll governor */ }
const out = new URL(
  `results/floor${haltPoll === undefined ? "" : `-haltpoll-${haltPoll}`}.md`,
  import.meta.url,
);
await Deno.writeTextFile(
  out,
  `${
    new Date().toISOString().slice(0, 10)
  }, \`deno task bench:floor ${calls} ${rounds}\`:\n\n${
    lines.map((l) => `- ${l}`).join("\n")
  }\n`,
);
// Formatted the way `deno fmt --check` (deno task check) wants it.
await output([
  Deno.execPath(),
  "fmt",
  "--quiet",
  `--config=${config}`,
  out.pathname,
]);
console.log(`wrote ${out.pathname}`);
