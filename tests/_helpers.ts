// Shared set-up for the privileged end-to-end tests: they run as root against
// the real kernel, real sudo and real users, and clean up after themselves.
//
// Test files run at the same time (`deno test --parallel`, and other
// checkouts' runs on the same machine): every system resource a file creates
// (users, sudoers files, launchers, scratch directories) has a name of that
// file's own, from testUser() and testSudoersFile(), never a name shared with
// another file. See docs/testing.md.
import { createHash } from "node:crypto";
import { configure, type LogRecord } from "@logtape/logtape";
import { capabilitiesToMask } from "../caps/parse.ts";
import { readProcessCredentials } from "../caps/proc.ts";
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

/**
 * Creates a system user (and its group) unless it exists; returns its ids.
 * A user of that name left by a run that was killed is reused, or, when its
 * home is not `home`, removed and created afresh.
 */
export async function ensureUser(
  name: string,
  home?: string,
): Promise<{ uid: number; gid: number }> {
  const entry = await run(["getent", "passwd", name], { allowFail: true });
  if (entry.code === 0 && home && entry.stdout.split(":")[5] !== home) {
    await removeUser(name);
  }
  if (entry.code !== 0 || (home && entry.stdout.split(":")[5] !== home)) {
    for (let attempt = 1;; attempt++) {
      const out = await run([
        "useradd",
        "--system",
        "--user-group",
        "--shell",
        "/bin/sh",
        ...(home
          ? ["--create-home", "--home-dir", home]
          : ["--no-create-home"]),
        name,
      ], { allowFail: true });
      if (out.code === 0) break;
      if (LOCKED.test(out.stderr) && attempt < 50) {
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      throw new Error(`useradd ${name} exited ${out.code}: ${out.stderr}`);
    }
  }
  const uid = Number((await run(["id", "-u", name])).stdout.trim());
  const gid = Number((await run(["id", "-g", name])).stdout.trim());
  return { uid, gid };
}

/** useradd's and userdel's "cannot lock /etc/passwd; try again later". */
const LOCKED = /cannot lock|try again later/;

/**
 * Removes a user created by {@linkcode ensureUser} (and its home). A user
 * that does not exist is fine (an earlier step may have failed before
 * creating it); any other failure of userdel fails the test, after waiting up
 * to `waitMs` for the user's last processes to go (userdel refuses a user
 * that still runs a process, zombies included, and this VM's pid 1 reaps
 * orphans late): a process of the user still running after that is a leak.
 */
export async function removeUser(
  name: string,
  waitMs = 10_000,
): Promise<void> {
  const deadline = performance.now() + waitMs;
  for (;;) {
    const out = await run(["userdel", "--remove", name], { allowFail: true });
    // 0: removed; 6: no such user.
    if (out.code === 0 || out.code === 6) return;
    // 8: a process of the user runs; 1 or 10 with "cannot lock": another
    // useradd/userdel holds /etc/passwd or /etc/group.
    const retry = out.code === 8 || LOCKED.test(out.stderr);
    if (retry && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    const ps = await run(["ps", "-o", "pid,ppid,stat,args", "-u", name], {
      allowFail: true,
    });
    throw new Error(
      `userdel --remove ${name} exited ${out.code}: ${out.stderr.trim()}${
        out.code === 8
          ? `\nits processes after ${waitMs} ms:\n${ps.stdout}`
          : ""
      }`,
    );
  }
}

/** A file's name without directory and `_test.ts`/`.ts`, in [a-z0-9-]. */
function fileStem(meta: ImportMeta): string {
  const base = meta.url.slice(meta.url.lastIndexOf("/") + 1);
  return base.replace(/(_test)?\.[a-z]+$/, "").toLowerCase()
    .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "") || "x";
}

/** 4 hex digits of the file's full URL: this checkout's copy of that file. */
function fileTag(meta: ImportMeta): string {
  return createHash("sha256").update(meta.url).digest("hex").slice(0, 4);
}

/** useradd's limit on a user name (and so on a group name), in bytes. */
const MAX_USER_NAME = 32;

/**
 * The system user named for this test file and `role` ("d" for a daemon's
 * user, "c" for a caller, ...): `privsep-<file>-<tag>-<role>`, where
 * `<file>` is the file's name (shortened to fit useradd's 32 characters) and
 * `<tag>` 4 hex digits of the file's URL. No other test file, nor the same
 * file in another checkout, uses the same name, so files may run in parallel
 * (`deno test --parallel`) and remove their users without racing.
 *
 * @example
 * ```ts ignore
 * testUser(import.meta, "d"); // "privsep-sudo-3fa2-d" in tests/sudo_test.ts
 * ```
 */
export function testUser(meta: ImportMeta, role: string): string {
  if (!/^[a-z][a-z0-9]{0,3}$/.test(role)) {
    throw new TypeError(
      `a test user's role must be 1 to 4 lowercase letters or digits, got "${role}"`,
    );
  }
  const fixed = "privsep-".length + 1 + 4 + 1 + role.length;
  const stem = fileStem(meta).slice(0, MAX_USER_NAME - fixed)
    .replace(/-+$/, "");
  return `privsep-${stem}-${fileTag(meta)}-${role}`;
}

/**
 * The sudoers file of this test file (and `role`, when one file installs
 * more than one): `/etc/sudoers.d/privsep-test-<file>-<tag>[-<role>]`, with
 * no "." (sudo skips such names). Unique to the file like
 * {@linkcode testUser}; remove it in a `finally`.
 */
export function testSudoersFile(meta: ImportMeta, role?: string): string {
  if (role !== undefined && !/^[a-z0-9]+$/.test(role)) {
    throw new TypeError(
      `a sudoers file's role must be lowercase letters or digits, got "${role}"`,
    );
  }
  return `/etc/sudoers.d/privsep-test-${fileStem(meta)}-${fileTag(meta)}${
    role ? `-${role}` : ""
  }`;
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
