// Shared set-up for the privileged end-to-end tests: they run as root against
// the real kernel, real sudo and real users, and clean up after themselves.
import { configure, type LogRecord } from "@logtape/logtape";
import { capabilitiesToMask } from "../caps/parse.ts";
import { readProcessCredentials } from "../caps/proc.ts";

/** The user the serving daemon drops to in non-root tests. */
export const DAEMON_USER = "privsep-e2e-d";
/** The unprivileged user that calls through sudo. */
export const CALLER_USER = "privsep-e2e-c";
/** The repository root. */
export const ROOT: string = new URL("../", import.meta.url).pathname.replace(
  /\/$/,
  "",
);
/** The deno binary that runs this test. */
export const DENO: string = Deno.execPath();

/** Fails loudly unless the test runs as root: these tests never skip silently. */
export function requireRoot(): void {
  if (Deno.uid() !== 0) {
    throw new Error(
      "the privileged end-to-end tests must run as root (CI runs `deno task test` as root); they need real capabilities, users and sudo",
    );
  }
}

/** Runs a command, returns its output; throws with stderr on failure. */
export async function run(
  cmd: string[],
  options: { allowFail?: boolean; env?: Record<string, string>; cwd?: string } =
    {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    env: options.env,
    cwd: options.cwd,
  }).output();
  const result = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  if (!options.allowFail && out.code !== 0) {
    throw new Error(`${cmd.join(" ")} exited ${out.code}: ${result.stderr}`);
  }
  return result;
}

/** Creates a system user (and its group) unless it exists; returns its ids. */
export async function ensureUser(
  name: string,
  home?: string,
): Promise<{ uid: number; gid: number }> {
  const id = await run(["id", "-u", name], { allowFail: true });
  if (id.code !== 0) {
    await run([
      "useradd",
      "--system",
      "--user-group",
      "--shell",
      "/bin/sh",
      ...(home ? ["--create-home", "--home-dir", home] : ["--no-create-home"]),
      name,
    ]);
  }
  const uid = Number((await run(["id", "-u", name])).stdout.trim());
  const gid = Number((await run(["id", "-g", name])).stdout.trim());
  return { uid, gid };
}

/** Removes a user created by {@linkcode ensureUser} (and its home). */
export async function removeUser(name: string): Promise<void> {
  await run(["userdel", "--remove", name], { allowFail: true });
}

type TomlValue = string | number | boolean | (string | number)[];

/** Writes a TOML config (sections of plain keys, `permissions` as a sub-table). */
export async function writeConfig(
  dir: string,
  sections: Record<
    string,
    Record<string, TomlValue | Record<string, TomlValue>>
  >,
): Promise<string> {
  const lines: string[] = [];
  const value = (v: TomlValue): string => JSON.stringify(v);
  for (const [name, keys] of Object.entries(sections)) {
    lines.push(`[${name}]`);
    const tables: [string, Record<string, TomlValue>][] = [];
    for (const [k, v] of Object.entries(keys)) {
      if (v !== null && typeof v === "object" && !Array.isArray(v)) {
        tables.push([k, v]);
      } else lines.push(`${k} = ${value(v)}`);
    }
    for (const [t, entries] of tables) {
      lines.push(`[${name}.${t}]`);
      for (const [k, v] of Object.entries(entries)) {
        lines.push(`${k} = ${value(v)}`);
      }
    }
  }
  const path = `${dir}/privsep-${crypto.randomUUID()}.toml`;
  await Deno.writeTextFile(path, lines.join("\n") + "\n", { mode: 0o644 });
  return path;
}

/**
 * Where the tests put what the daemon loads: root-owned 0755 and not below
 * /tmp (a sticky, world-writable ancestor is refused by the daemon).
 */
export const SCRATCH_ROOT = "/var/lib/privsep-tests";

/** A root-owned scratch directory (mode 0755) below {@linkcode SCRATCH_ROOT}. */
export async function scratchDir(): Promise<string> {
  await Deno.mkdir(SCRATCH_ROOT, { recursive: true, mode: 0o755 });
  await Deno.chmod(SCRATCH_ROOT, 0o755);
  const dir = await Deno.makeTempDir({
    dir: SCRATCH_ROOT,
    prefix: "privsep-e2e-",
  });
  await Deno.chmod(dir, 0o755);
  return dir;
}

/** Asserts that every thread of `pid` has exactly these credentials. */
export async function expectCredentials(
  pid: number,
  want: { uid: number; gid: number; caps: number[] },
): Promise<number> {
  const mask = capabilitiesToMask(want.caps);
  const creds = await readProcessCredentials(pid);
  if (creds.threads.length < 2) {
    throw new Error(
      `expected a multi-threaded daemon, found ${creds.threads.length} thread(s)`,
    );
  }
  for (const t of creds.threads) {
    const problems: string[] = [];
    for (
      const [name, set] of Object.entries({
        CapEff: t.capEff,
        CapPrm: t.capPrm,
        CapInh: t.capInh,
        CapBnd: t.capBnd,
        CapAmb: t.capAmb,
      })
    ) {
      if (set !== mask) {
        problems.push(`${name}=${set.toString(16)}, want ${mask.toString(16)}`);
      }
    }
    if (!t.noNewPrivs) problems.push("NoNewPrivs=0");
    for (
      const [name, ids, expected] of [
        ["Uid", t.uid, want.uid],
        ["Gid", t.gid, want.gid],
      ] as const
    ) {
      if (
        [ids.real, ids.effective, ids.saved, ids.fs].some((v) => v !== expected)
      ) {
        problems.push(
          `${name}=${ids.real}/${ids.effective}/${ids.saved}/${ids.fs}, want ${expected}`,
        );
      }
    }
    if (t.groups.length !== 0) {
      problems.push(`Groups=${t.groups.join(",")}, want none`);
    }
    if (problems.length) {
      throw new Error(
        `thread ${t.tid} of daemon ${pid}: ${problems.join("; ")}`,
      );
    }
  }
  return creds.threads.length;
}

/**
 * Children of `parent`, by scanning /proc; with `cmdline`, only those whose
 * command line (arguments joined by spaces) is exactly that.
 */
export async function childrenOf(
  parent: number,
  cmdline?: string,
): Promise<number[]> {
  const found: number[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${e.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid !== parent) continue;
      if (cmdline !== undefined) {
        const cmd = (await Deno.readTextFile(`/proc/${e.name}/cmdline`))
          .split("\0").join(" ").trim();
        if (cmd !== cmdline) continue;
      }
      found.push(Number(e.name));
    } catch { /* gone */ }
  }
  return found;
}

/** Waits until `pid` is gone; returns milliseconds waited, or throws. */
export async function waitGone(pid: number, limitMs: number): Promise<number> {
  const start = performance.now();
  while (performance.now() - start < limitMs) {
    try {
      const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
      // A zombie has exited; its parent just has not reaped it yet.
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) {
        return performance.now() - start;
      }
    } catch {
      return performance.now() - start;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`process ${pid} still runs after ${limitMs} ms`);
}

/**
 * Sends every LogTape record of `category` (and below) at `lowestLevel` or
 * above into the returned array (LogTape's own meta logger stays quiet).
 */
export async function captureLogs(
  category: string[] = ["privsep"],
  lowestLevel: "trace" | "debug" = "debug",
): Promise<LogRecord[]> {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (r) => records.push(r) },
    loggers: [
      { category, sinks: ["memory"], lowestLevel },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "fatal" },
    ],
  });
  return records;
}

/**
 * Installs, as root, the launchers of `specs` and a sudoers file that lets
 * `user` run them: what an operator does with `privsep install`. Returns the
 * sudoers file, to remove at the end.
 */
export async function installLaunchers(options: {
  user: string;
  configFiles: string[];
  specs: string[];
  sudoersFile: string;
  root?: string;
}): Promise<string> {
  const root = options.root ?? ROOT;
  await run([
    DENO,
    "run",
    "-A",
    `--config=${root}/deno.json`,
    `${root}/cli/privsep.ts`,
    "install",
    `--user=${options.user}`,
    `--sudoers-file=${options.sudoersFile}`,
    ...options.configFiles.map((f) => `--config-file=${f}`),
    ...options.specs,
  ]);
  return options.sudoersFile;
}

/** A module the daemon's first stage loads before it checks anything. */
export const EMIT_VICTIM = `${ROOT}/caps/_ffi.ts`;

/**
 * Code that, run as {@linkcode EMIT_VICTIM}'s module (planted in its emit
 * cache entry), appends the process status of whatever ran it to `marker`.
 */
export function statusPayload(marker: string): string {
  return `
if (import.meta.url === ${JSON.stringify(`file://${EMIT_VICTIM}`)}) {
  try {
    const lib = Deno.dlopen("libc.so.6", {
      open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
      write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
      close: { parameters: ["i32"], result: "i32" },
    }).symbols;
    const status = readFileViaLibc("/proc/self/status");
    // O_WRONLY | O_CREAT | O_APPEND: one status per process that ran this.
    const fd = lib.open(new TextEncoder().encode(${
    JSON.stringify(marker)
  } + "\\0"), 0o2101, 0o644);
    lib.write(fd, status as Uint8Array<ArrayBuffer>, BigInt(status.length));
    lib.close(fd);
  } catch { /* a serving stage without --allow-ffi: stay unnoticed */ }
}`;
}
