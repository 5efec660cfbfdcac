// `deno task bench` (quick profile) and `deno task bench --full` (docs/performance.md's
// figures): privsep side by side with oslo.privsep and with `sudo -n <cmd>`
// per call, in the same run, each driven by an unprivileged user through real
// sudo with exact sudoers rules. Runs as root: it creates the user
// privsep-bench, the fixtures under /var/lib/privsep-bench (root-owned, not
// below a world-writable directory) and /etc/sudoers.d/privsep-bench-*, and
// removes all of them at the end, also on failure or Ctrl-C.
//
// The three systems run alternately (privsep, oslo, sudo, privsep, …) for
// several rounds; every figure is the median of the rounds (cold starts: of
// all samples), so drift on a shared, noisy machine cancels out. Each round
// also runs the two daemons with their caller started on one CPU (taskset),
// which sudo and the daemon inherit: on a VM a wake-up across CPUs costs
// more than the whole call (see docs/performance.md).
//
// The full profile writes bench/results/<date>.json, latest.json, latest.md
// and latest.svg (docs/performance.md's figures), the quick one bench/results/quick.*
// (ignored by git); both print the tables.
//
// --idle-read=blocking (or event-loop, the default) sets the privsep
// context's idle_read (docs/configuration.md) and writes
// bench/results/<stem>-idle-read-<mode>.* instead, so that both modes can be
// compared run by run without replacing the default's files.
//
// --halt-poll-ns=N sets the haltpoll cpuidle governor's guest_halt_poll_ns
// (a KVM guest's: how long an idle vCPU polls before it halts) for the run
// and restores it at the end; the full profile then writes
// bench/results/haltpoll-<N>.{json,md,svg} instead of latest.* (see docs/performance.md,
// Performance: on this machine the boot command line sets it to 0).
//
// --series=privsep,privsep@1cpu (a diagnostic) runs only those series, for
// the profile's rounds (--rounds=N to change), prints each round's latency
// figures and writes no report: the tables need every series of one run.
import { init } from "../mod.ts";
import { benchCtx } from "./privsep/mod.ts";
import {
  cpuidle,
  HALT_POLL,
  lastAllowedCpu,
  type RoundParams,
  type RoundResult,
} from "./drivers/_common.ts";
import {
  type Figures,
  isPinned,
  type Machine,
  markdown,
  METRICS,
  SERIES,
  type Series,
  SERIES_SYSTEM,
  svg,
  type System,
} from "./report.ts";

const full = Deno.args.includes("--full");
const haltPollArg = Deno.args.find((a) => a.startsWith("--halt-poll-ns="))
  ?.slice("--halt-poll-ns=".length);
if (
  haltPollArg !== undefined &&
  !(/^\d{1,8}$/.test(haltPollArg) && Number(haltPollArg) <= 10_000_000)
) {
  throw new RangeError(
    `--halt-poll-ns takes 0 to 10000000 nanoseconds (an idle vCPU spins that long before it halts), such as --halt-poll-ns=200000 (Linux's default); got "${haltPollArg}"`,
  );
}
const idleReadArg = Deno.args.find((a) => a.startsWith("--idle-read="))
  ?.slice("--idle-read=".length);
if (
  idleReadArg !== undefined && idleReadArg !== "event-loop" &&
  idleReadArg !== "blocking"
) {
  throw new RangeError(
    `--idle-read takes "event-loop" or "blocking" (the privsep context's idle_read), got "${idleReadArg}"`,
  );
}
/** guest_halt_poll_ns before the run, restored at the end. */
let haltPollBefore: string | undefined;
const PROFILE = full ? "full" : "quick";
const USER = "privsep-bench";
const BASE = "/var/lib/privsep-bench";
const HOME = `${BASE}/home`;
const OSLO = `${BASE}/oslo`;
const SECRET = `${BASE}/secret`;
const TARGET = `${SECRET}/target`;
const SOCKDIR = `${HOME}/oslo-sock`;
const SUDOERS = ["privsep", "oslo", "sudo"].map((s) =>
  `/etc/sudoers.d/${USER}-${s}`
);
const HERE = new URL(".", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const DENO = Deno.execPath();
const PYTHON = "/usr/bin/python3";
const RESULTS = `${HERE}results`;
/** The CPU of the pinned series. */
const PINNED_CPU = lastAllowedCpu();

/** Rounds, cold starts per round and calls per scenario, by profile. */
const PLAN = full
  ? {
    rounds: 9,
    timeoutMs: 300_000,
    daemon: {
      coldStarts: 3,
      warmup: 1000,
      seq: 20_000,
      inflight: { "8": 40_000, "64": 64_000 },
      mib: 100,
      chown: 1000,
    },
    sudo: {
      coldStarts: 5,
      warmup: 5,
      seq: 400,
      inflight: { "8": 400, "64": 640 },
      mib: 50,
      chown: 200,
    },
  }
  : {
    rounds: 5,
    timeoutMs: 90_000,
    daemon: {
      coldStarts: 2,
      warmup: 300,
      seq: 2000,
      inflight: { "8": 8000, "64": 16_000 },
      mib: 20,
      chown: 100,
    },
    sudo: {
      coldStarts: 3,
      warmup: 3,
      seq: 40,
      inflight: { "8": 48, "64": 128 },
      mib: 8,
      chown: 20,
    },
  };

const log = (msg: string) => console.error(`[bench] ${msg}`);
const notes: string[] = [];

async function run(
  cmd: string[],
  opts: { allowFail?: boolean; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: opts.env,
  }).output();
  const r = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  if (!opts.allowFail && r.code !== 0) {
    throw new Error(`${cmd.join(" ")} exited ${r.code}: ${r.stderr}`);
  }
  return r;
}

// ---------------------------------------------------------------- set-up

let caller = { uid: -1, gid: -1 };
let pthFile: string | undefined;
let current: Deno.ChildProcess | undefined;
let cleaned = false;

async function ensureOslo(): Promise<void> {
  const have = await run(
    ["dpkg-query", "-W", "-f=${Status}", "python3-oslo.privsep"],
    { allowFail: true },
  );
  if (have.stdout.includes("install ok installed")) return;
  const msg =
    "python3-oslo.privsep is not installed: installing it with apt-get (Debian's package, for /usr/bin/python3)";
  log(msg);
  notes.push(msg);
  const env = { ...Deno.env.toObject(), DEBIAN_FRONTEND: "noninteractive" };
  const first = await run(
    ["apt-get", "install", "-y", "python3-oslo.privsep"],
    {
      allowFail: true,
      env,
    },
  );
  if (first.code !== 0) {
    await run(["apt-get", "update"], { env });
    await run(["apt-get", "install", "-y", "python3-oslo.privsep"], { env });
  }
}

function sudoersEscape(arg: string): string {
  if (/\s/.test(arg) || arg === "") {
    throw new Error(`cannot write ${JSON.stringify(arg)} into a sudoers rule`);
  }
  return arg.replace(/[\\,:=]/g, (c) => `\\${c}`);
}

async function installRule(path: string, rule: string): Promise<void> {
  const tmp = `${BASE}/rule-${crypto.randomUUID()}`;
  await Deno.writeTextFile(tmp, rule.endsWith("\n") ? rule : rule + "\n", {
    mode: 0o440,
  });
  await run(["visudo", "-cf", tmp]);
  await run(["install", "-m", "0440", "-o", "root", "-g", "root", tmp, path]);
  await Deno.remove(tmp);
}

async function writeTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true, mode: 0o755 });
  await Deno.chmod(to, 0o755);
  for await (const e of Deno.readDir(from)) {
    if (e.name === "__pycache__") continue;
    if (e.isDirectory) await writeTree(`${from}/${e.name}`, `${to}/${e.name}`);
    else if (e.isFile) {
      await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
      await Deno.chmod(`${to}/${e.name}`, 0o644);
    }
  }
}

function spawnAsCaller(argv: string[]): Deno.ChildProcess {
  return new Deno.Command("setpriv", {
    args: [
      `--reuid=${caller.uid}`,
      `--regid=${caller.gid}`,
      "--init-groups",
      "--",
      ...argv,
    ],
    env: {
      HOME,
      USER,
      LOGNAME: USER,
      PATH: "/usr/local/bin:/usr/bin:/bin",
      DENO_DIR: `${HOME}/.cache/deno`,
      LANG: "C.UTF-8",
      NO_COLOR: "1",
    },
    clearEnv: true,
    cwd: HOME,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Runs a caller as the bench user; its last stdout line is JSON. */
async function asCaller<T>(argv: string[], what: string): Promise<T> {
  const child = spawnAsCaller(argv);
  current = child;
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, PLAN.timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  current = undefined;
  const stdout = new TextDecoder().decode(out.stdout).trim();
  const stderr = new TextDecoder().decode(out.stderr).trim();
  if (out.code !== 0) {
    throw new Error(
      `${what} exited ${out.code}${
        out.signal ? ` (${out.signal}, timeout ${PLAN.timeoutMs} ms?)` : ""
      }:\n${stderr.slice(-4000)}`,
    );
  }
  try {
    return JSON.parse(stdout.slice(stdout.lastIndexOf("\n") + 1));
  } catch {
    throw new Error(`${what} printed no JSON:\n${stdout}\n${stderr}`);
  }
}

async function setUp(): Promise<{ privsepConfig: string; osloConf: string }> {
  if (Deno.uid() !== 0) {
    throw new Error(
      "deno task bench must run as root: it creates the bench user, fixtures and sudoers rules (and removes them)",
    );
  }
  if ((await run(["taskset", "-V"], { allowFail: true })).code !== 0) {
    throw new Error(
      'deno task bench needs taskset for its one-CPU rounds: install util-linux ("apt-get install util-linux")',
    );
  }
  await ensureOslo();
  await Deno.remove(BASE, { recursive: true }).catch(() => {});
  await Deno.mkdir(BASE, { mode: 0o755 });
  await Deno.chmod(BASE, 0o755);

  if ((await run(["id", "-u", USER], { allowFail: true })).code !== 0) {
    await run([
      "useradd",
      "--system",
      "--user-group",
      "--shell",
      "/usr/sbin/nologin",
      "--home-dir",
      HOME,
      USER,
    ]);
  }
  caller = {
    uid: Number((await run(["id", "-u", USER])).stdout.trim()),
    gid: Number((await run(["id", "-g", USER])).stdout.trim()),
  };
  await Deno.mkdir(HOME, { mode: 0o700 });
  await Deno.chown(HOME, caller.uid, caller.gid);

  // The narrow operation's file: root-owned, in a 0700 root directory.
  await Deno.mkdir(SECRET, { mode: 0o700 });
  await Deno.chmod(SECRET, 0o700);
  await Deno.writeTextFile(TARGET, "bench\n", { mode: 0o644 });

  // privsep: the context's section (user, capabilities, Deno permissions).
  const privsepConfig = `${BASE}/privsep.toml`;
  await Deno.writeTextFile(
    privsepConfig,
    [
      "[privsep_bench]",
      'user = "nobody"',
      'capabilities = ["CAP_CHOWN", "CAP_DAC_OVERRIDE"]',
      `launcher_dir = ${JSON.stringify(`${BASE}/libexec`)}`,
      ...(idleReadArg ? [`idle_read = ${JSON.stringify(idleReadArg)}`] : []),
      "[privsep_bench.permissions]",
      `write = [${JSON.stringify(TARGET)}]`,
      "",
    ].join("\n"),
    { mode: 0o644 },
  );
  init({ configFiles: [privsepConfig] });
  // What privsep install does: the context's launcher, root-owned, and the
  // rule that lets the bench user run it with no arguments.
  await Deno.mkdir(`${BASE}/libexec`, { mode: 0o755 });
  await Deno.writeTextFile(benchCtx.launcher(), benchCtx.launcherScript(), {
    mode: 0o755,
  });
  await installRule(SUDOERS[0], benchCtx.sudoersRule(USER));

  // oslo.privsep: the package where root's python3 finds it (a .pth file in
  // site-packages, as if installed), its config section, its exact rule.
  await writeTree(`${HERE}oslo`, OSLO);
  const osloConf = `${OSLO}/bench.conf`;
  await Deno.writeTextFile(
    osloConf,
    [
      "[privsep_bench]",
      "user = nobody",
      // No `group`: oslo.privsep 3.0.1 calls setuid() before setgid(), so
      // a non-root group fails with "Failed to set gid" (the daemon has no
      // CAP_SETGID by then); its daemon keeps gid 0.
      "capabilities = CAP_CHOWN,CAP_DAC_OVERRIDE",
      "",
    ].join("\n"),
    { mode: 0o644 },
  );
  await run([PYTHON, "-m", "compileall", "-q", OSLO]);
  const site = (await run([
    PYTHON,
    "-c",
    "import site; print(site.getsitepackages()[0])",
  ])).stdout.trim();
  await Deno.mkdir(site, { recursive: true });
  pthFile = `${site}/privsep-bench.pth`;
  await Deno.writeTextFile(pthFile, `${OSLO}\n`, { mode: 0o644 });
  const helperArgv = await asCaller<string[]>(
    [PYTHON, `${OSLO}/driver.py`, "command", osloConf, SOCKDIR],
    "oslo driver (command)",
  );
  if (helperArgv[0] !== "sudo" || helperArgv[1] !== "-n") {
    throw new Error(`unexpected oslo helper command ${helperArgv.join(" ")}`);
  }
  const helper = (await run([
    "sh",
    "-c",
    `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin command -v ${
      helperArgv[2]
    }`,
  ])).stdout.trim();
  await installRule(
    SUDOERS[1],
    `${USER} ALL=(root) NOPASSWD: ${
      [helper, ...helperArgv.slice(3)].map(sudoersEscape).join(" ")
    }`,
  );

  // sudo per call: exactly these commands ("" = no arguments at all).
  const own = `${caller.uid}:${caller.gid}`;
  await installRule(
    SUDOERS[2],
    `${USER} ALL=(root) NOPASSWD: /usr/bin/true "", /usr/bin/cat "", ` +
      `/usr/bin/chown ${sudoersEscape(own)} ${sudoersEscape(TARGET)}, ` +
      `/usr/bin/chown 0\\:0 ${sudoersEscape(TARGET)}`,
  );
  return { privsepConfig, osloConf };
}

async function cleanUp(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  const problems: string[] = [];
  const attempt = async (what: string, f: () => Promise<unknown>) => {
    try {
      await f();
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        problems.push(`${what}: ${(e as Error).message}`);
      }
    }
  };
  if (haltPollBefore !== undefined) {
    await attempt(
      HALT_POLL,
      () => Deno.writeTextFile(HALT_POLL, haltPollBefore!),
    );
  }
  for (const path of SUDOERS) await attempt(path, () => Deno.remove(path));
  if (pthFile) await attempt(pthFile, () => Deno.remove(pthFile!));
  if ((await run(["id", "-u", USER], { allowFail: true })).code === 0) {
    const del = await run(["userdel", "--remove", USER], { allowFail: true });
    // Exit 12 is only "could not remove the home directory" (done below).
    if (del.code !== 0 && del.code !== 12) {
      problems.push(`userdel ${USER}: ${del.stderr.trim()}`);
    }
  }
  await attempt(BASE, () => Deno.remove(BASE, { recursive: true }));
  if (problems.length) log(`clean-up problems:\n- ${problems.join("\n- ")}`);
  else log(`removed ${USER}, ${BASE} and ${SUDOERS.join(", ")}`);
}

for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  Deno.addSignalListener(sig, async () => {
    log(`${sig}: cleaning up`);
    try {
      current?.kill("SIGKILL");
    } catch { /* gone */ }
    await cleanUp();
    Deno.exit(130);
  });
}

// ---------------------------------------------------------------- rounds

function callerArgv(
  series: Series,
  cfg: { privsepConfig: string; osloConf: string },
  params: RoundParams,
): string[] {
  const argv = systemArgv(SERIES_SYSTEM[series], cfg, params);
  return isPinned(series)
    ? ["taskset", "-c", String(PINNED_CPU), ...argv]
    : argv;
}

function systemArgv(
  system: System,
  cfg: { privsepConfig: string; osloConf: string },
  params: RoundParams,
): string[] {
  const json = JSON.stringify(params);
  const denoDriver = (file: string, ...args: string[]) => [
    DENO,
    "run",
    "-A",
    "--no-prompt",
    "--no-lock",
    `--config=${ROOT}/deno.json`,
    `${HERE}drivers/${file}`,
    ...args,
  ];
  switch (system) {
    case "privsep":
      return denoDriver("privsep_caller.ts", cfg.privsepConfig, json);
    case "oslo":
      return [PYTHON, `${OSLO}/driver.py`, "run", cfg.osloConf, SOCKDIR, json];
    case "sudo":
      return denoDriver("sudo_caller.ts", json);
  }
}

function paramsFor(series: Series, scale = 1): RoundParams {
  const base = SERIES_SYSTEM[series] === "sudo" ? PLAN.sudo : PLAN.daemon;
  const n = (x: number) => Math.max(1, Math.round(x * scale));
  return {
    coldStarts: n(base.coldStarts),
    warmup: n(base.warmup),
    seq: n(base.seq),
    inflight: {
      "8": Math.max(8, n(base.inflight["8"])),
      "64": Math.max(64, n(base.inflight["64"])),
    },
    mib: n(base.mib),
    chown: n(base.chown),
    target: TARGET,
    uid: caller.uid,
    gid: caller.gid,
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function machine(date: string, rounds: number): Promise<Machine> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
  const py = await run([
    PYTHON,
    "-c",
    "import platform; print(platform.python_version())",
  ]);
  const oslo = await run(
    ["dpkg-query", "-W", "-f=${Version}", "python3-oslo.privsep"],
    { allowFail: true },
  );
  const sudo = await run(["sudo", "-V"], { allowFail: true });
  return {
    date,
    profile: PROFILE,
    rounds,
    nproc: Number((await run(["nproc"])).stdout.trim()),
    model: /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1].trim() ?? "unknown CPU",
    kernel: `Linux ${Deno.osRelease()}`,
    cpuidle: cpuidle(),
    deno: Deno.version.deno,
    python: py.stdout.trim(),
    oslo: oslo.stdout.trim().replace(/-[^-]*$/, "") || "?",
    sudo: sudo.stdout.split("\n")[0].replace(/^Sudo version /, "sudo ") ||
      "sudo",
    pinnedCpu: PINNED_CPU,
  };
}

function brief(r: RoundResult): string {
  const f = (x: number) => x.toFixed(0);
  return `cold ${r.coldStartMs.map(f).join("/")} ms, seq p50 ${
    f(r.seqP50Us)
  } µs, 64 in flight ${f(r.inFlight64CallsPerSec)}/s, 1 MiB ${
    r.echo1MiBMs.toFixed(2)
  } ms, chown ${r.chownP50Ms.toFixed(2)} ms`;
}

/** A round's tail figures (--series). */
function tails(r: RoundResult): string {
  const f = (x: number | undefined) => x === undefined ? "-" : x.toFixed(0);
  return `seq p99 ${f(r.seqP99Us)} µs, 8 in flight p99 ${
    f(r.inFlight8P99Us)
  } µs, 64 in flight p99 ${f(r.inFlight64P99Us)} µs, chown p99 ${
    f(r.chownP99Ms * 1000)
  } µs, 1 MiB ${r.echo1MiBMs.toFixed(2)} ms, first 5 large ${
    r.echo1MiBFresh5Ms?.toFixed(2)
  } ms, peak RSS ${r.daemonPeakRssMiB?.toFixed(1)} MiB`;
}

const onlySeries = Deno.args.find((a) => a.startsWith("--series="))
  ?.slice("--series=".length).split(",");
const roundsArg = Deno.args.find((a) => a.startsWith("--rounds="))
  ?.slice("--rounds=".length);
for (const s of onlySeries ?? []) {
  if (!(SERIES as readonly string[]).includes(s)) {
    throw new Error(
      `--series takes a comma-separated list of ${
        SERIES.join(", ")
      }; got "${s}"`,
    );
  }
}

async function main(): Promise<void> {
  const started = performance.now();
  const date = new Date().toISOString();
  if (haltPollArg !== undefined) {
    try {
      haltPollBefore = (await Deno.readTextFile(HALT_POLL)).trim();
    } catch {
      throw new Error(
        `--halt-poll-ns: ${HALT_POLL} does not exist: this kernel runs no haltpoll cpuidle governor (a KVM guest's), so there is nothing to set`,
      );
    }
    await Deno.writeTextFile(HALT_POLL, haltPollArg);
    log(`guest_halt_poll_ns ${haltPollBefore} -> ${haltPollArg} for this run`);
  }
  const cfg = await setUp();
  log(
    `${PROFILE} profile: ${PLAN.rounds} rounds of ${
      SERIES.join(", ")
    }; caller ${USER} (uid ${caller.uid})`,
  );

  if (onlySeries) {
    const rounds = Number(roundsArg ?? PLAN.rounds);
    for (const s of onlySeries as Series[]) {
      await asCaller<RoundResult>(
        callerArgv(s, cfg, paramsFor(s, 0.05)),
        `${s} warm-up`,
      );
    }
    for (let round = 1; round <= rounds; round++) {
      for (const s of onlySeries as Series[]) {
        const r = await asCaller<RoundResult>(
          callerArgv(s, cfg, paramsFor(s)),
          `${s} round ${round}`,
        );
        log(`round ${round}/${rounds} ${s}: ${tails(r)}`);
      }
    }
    return;
  }

  // One small untimed round each: caches, page cache, bytecode.
  for (const s of SERIES) {
    await asCaller<RoundResult>(
      callerArgv(s, cfg, paramsFor(s, 0.05)),
      `${s} warm-up`,
    );
  }
  log(`warm-up done (${((performance.now() - started) / 1000).toFixed(0)} s)`);

  const raw = Object.fromEntries(
    SERIES.map((s) => [s, []]),
  ) as unknown as Record<
    Series,
    RoundResult[]
  >;
  for (let round = 1; round <= PLAN.rounds; round++) {
    for (const s of SERIES) {
      const r = await asCaller<RoundResult>(
        callerArgv(s, cfg, paramsFor(s)),
        `${s} round ${round}`,
      );
      raw[s].push(r);
      log(`round ${round}/${PLAN.rounds} ${s}: ${brief(r)}`);
    }
  }

  // The daemons really ran dropped: not root, exactly the two capabilities.
  const info = raw.privsep.at(-1)!.daemon as {
    uid: number;
    capabilities: number[];
    verified: boolean;
  };
  for (const s of ["privsep", "privsep@1cpu"] as const) {
    const d = raw[s].at(-1)!.daemon as typeof info;
    if (d.uid === 0 || d.verified !== true || d.capabilities.join() !== "0,1") {
      throw new Error(`unexpected privsep daemon ${JSON.stringify(d)}`);
    }
  }
  const oslo = raw.oslo.at(-1)!.daemon as { uid: number; capEff: string };
  for (const s of ["oslo", "oslo@1cpu"] as const) {
    const d = raw[s].at(-1)!.daemon as typeof oslo;
    if (d.uid === 0 || BigInt(`0x${d.capEff}`) !== 3n) {
      throw new Error(`unexpected oslo.privsep daemon ${JSON.stringify(d)}`);
    }
  }
  const st = await Deno.stat(TARGET);
  if (st.uid !== 0 || st.gid !== 0) {
    throw new Error(`${TARGET} ended owned by ${st.uid}:${st.gid}`);
  }

  const figures = {} as Figures;
  for (const s of SERIES) {
    figures[s] = {};
    for (const { key } of METRICS) {
      const xs = key === "coldStartMs"
        ? raw[s].flatMap((r) => r.coldStartMs)
        : raw[s].map((r) => (r as unknown as Record<string, number>)[key])
          .filter((x) => typeof x === "number");
      figures[s][key] = xs.length ? median(xs) : undefined;
    }
  }
  const childCpu = raw.sudo.map((r) => r.childCpuUsPerCall!);

  const m = await machine(date, PLAN.rounds);
  const md = markdown(figures, m);
  const json = JSON.stringify(
    {
      date,
      profile: PROFILE,
      machine: m,
      notes,
      setup: {
        caller:
          `${USER}, an unprivileged user; every daemon starts through sudo -n with an exact rule`,
        privsep:
          `daemon as nobody with CAP_CHOWN + CAP_DAC_OVERRIDE (TOML section privsep_bench), concurrency 64, idle_read ${
            idleReadArg ?? "event-loop (default)"
          }`,
        oslo:
          "privsep-helper through sudo -n, daemon as nobody (gid stays 0: oslo 3.0.1 cannot drop to a non-root group, it calls setuid before setgid) with CAP_CHOWN + CAP_DAC_OVERRIDE, default thread_pool_size (CPUs); client threads for calls in flight",
        sudo:
          "sudo -n /usr/bin/true (no-op), /usr/bin/cat (echo), /usr/bin/chown (narrow op), one process per call",
        oneCpu:
          `privsep@1cpu and oslo@1cpu: the same callers started under taskset -c ${PINNED_CPU}; sudo and the daemon inherit the CPU mask`,
      },
      plan: PLAN,
      medians: figures,
      sudoChildCpuUsPerCallMedian: median(childCpu),
      privsepDaemon: info,
      osloDaemon: oslo,
      rounds: raw,
      runtimeSeconds: (performance.now() - started) / 1000,
    },
    null,
    2,
  ) + "\n";
  // The full profile's files are docs/performance.md's figures; a quick run goes to
  // quick.* (not committed), so that it never replaces them.
  // With --halt-poll-ns, haltpoll-<N>.* instead of latest.*.
  const base = !full
    ? "quick"
    : haltPollArg === undefined
    ? "latest"
    : `haltpoll-${haltPollArg}`;
  const stem = idleReadArg === undefined
    ? base
    : `${base === "latest" ? "full" : base}-idle-read-${idleReadArg}`;
  const files: Record<string, string> = stem === "latest"
    ? { [`${date.slice(0, 10)}.json`]: json, "latest.json": json }
    : { [`${stem}.json`]: json };
  files[`${stem}.md`] = md;
  files[`${stem}.svg`] = svg(figures, m);
  await Deno.mkdir(RESULTS, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${RESULTS}/${name}`, text);
  }
  // Formatted the way `deno fmt --check` (deno task check) wants them.
  await run([
    DENO,
    "fmt",
    "--quiet",
    `--config=${ROOT}/deno.json`,
    ...Object.keys(files).map((f) => `${RESULTS}/${f}`),
  ]);
  log(
    `wrote bench/results/{${Object.keys(files).join(",")}} in ${
      ((performance.now() - started) / 1000).toFixed(0)
    } s`,
  );
  console.log(md);
}

try {
  await main();
} finally {
  await cleanUp();
}
