/**
 * The daemon's cgroup (stage 1 side). Where the kernel has a cgroup2
 * hierarchy, stage 1 (root) creates `privsep-<pid>` below its own cgroup2
 * cgroup, starts the keeper (which stays outside) with that cgroup's
 * `cgroup.kill` open for writing (opened as root: every file of the cgroup
 * stays root's), and moves itself in.
 * Everything the daemon starts, and everything those start, is born in that
 * cgroup and cannot leave it: moving a process needs write access to the
 * `cgroup.procs` of the source's and the destination's common ancestor, and
 * every `cgroup.procs` stays root's. When the daemon ends the keeper writes
 * `cgroup.kill`, which kills the whole cgroup (a process that left its
 * process group or session included). A later stage 1 started in the same
 * cgroup kills and removes what dead daemons left.
 *
 * Best effort: when there is no cgroup2 hierarchy or a step fails, the daemon
 * runs without (process groups only) and says why (`--cgroup-missing`);
 * with confinement "required", a step that fails where the host has what a
 * daemon cgroup needs (`expected`) refuses the start instead.
 *
 * @module
 */

import {
  cString,
  errno,
  lstatViaLibc,
  readFileViaLibc,
  strerror,
} from "../caps/_ffi.ts";
import { procStat } from "./_proc_stat.ts";

const O_WRONLY = 0o1;
const O_CLOEXEC = 0o2000000;
const EEXIST = 17;

const SYMBOLS = {
  mkdir: { parameters: ["buffer", "u32"], result: "i32" },
  rmdir: { parameters: ["buffer"], result: "i32" },
  chown: { parameters: ["buffer", "u32", "u32"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  opendir: { parameters: ["buffer"], result: "pointer" },
  readdir: { parameters: ["pointer"], result: "pointer" },
  closedir: { parameters: ["pointer"], result: "i32" },
  access: { parameters: ["buffer", "i32"], result: "i32" },
  usleep: { parameters: ["u32"], result: "i32" },
  setxattr: {
    parameters: ["buffer", "buffer", "buffer", "usize", "i32"],
    result: "i32",
  },
  getxattr: {
    parameters: ["buffer", "buffer", "buffer", "usize"],
    result: "isize",
  },
} as const;

/**
 * The extended attribute of a daemon's cgroup that holds the daemon's start
 * time (field 22 of /proc/<pid>/stat): a `trusted.` one, which only a process
 * with CAP_SYS_ADMIN may set, on a cgroup2 hierarchy the daemon sees
 * read-only.
 */
const START_XATTR = "trusted.privsep.start";

/** When process `pid` started, unless it is gone or a zombie. */
function startTime(pid: number | string): string | undefined {
  const stat = procStat(pid);
  return !stat || stat.state === "Z" || stat.state === "X"
    ? undefined
    : stat.start;
}

/**
 * Whether the daemon of cgroup `dir` (`privsep-<pid>`) still runs: a live
 * process of that pid whose start time is the one stage 1 recorded on the
 * cgroup. A process that got the pid of a dead daemon (an escaped one may
 * fork until it does) has another start time. A cgroup without the record
 * (made by an older privsep) counts as its pid's while the pid lives.
 */
export function daemonAlive(
  dir: string,
  pid: string,
  recorded: (dir: string) => string | undefined = readStart,
  started: (pid: string) => string | undefined = startTime,
): boolean {
  const now = started(pid);
  if (now === undefined) return false;
  const then = recorded(dir);
  return then === undefined || then === now;
}

function readStart(dir: string): string | undefined {
  const buf = new Uint8Array(32);
  const n = Number(
    libc().getxattr(cString(dir), cString(START_XATTR), buf, BigInt(32)),
  );
  return n > 0 ? new TextDecoder().decode(buf.subarray(0, n)) : undefined;
}

let lib: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] | undefined;
function libc() {
  lib ??= Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  return lib;
}

/** Offset of `d_name` in glibc's `struct dirent` on 64-bit Linux. */
const D_NAME = 19;

/**
 * The daemon's cgroup, or why it has none (`mount`: the cgroup2 hierarchy's
 * root, when known; `expected`: this host has what a daemon cgroup needs,
 * but making it failed, which confinement "required" refuses).
 */
export type DaemonCgroup = { path: string; mount?: string } | {
  missing: string;
  expected?: boolean;
  /**
   * Where the caller's cgroup (`back`) is delegated to a user: the
   * root-owned cgroups the keeper may start in, out of that user's reach
   * ({@linkcode keeperHomes}).
   */
  keeper?: { homes: string[]; back: string; mount: string };
};

/** Writes `text` to an existing file; returns the error text, if any. */
export function writeFile(path: string, text: string): string | undefined {
  const c = libc();
  const fd = c.open(cString(path), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return `open(${path}): ${strerror(errno())}`;
  try {
    const bytes = new TextEncoder().encode(text);
    if (Number(c.write(fd, bytes, BigInt(bytes.length))) !== bytes.length) {
      return `write(${path}): ${strerror(errno())}`;
    }
  } finally {
    c.close(fd);
  }
}

/**
 * A process's cgroup2 cgroup as a directory, from its `/proc/<pid>/mountinfo`
 * (the cgroup2 mount point) and `/proc/<pid>/cgroup` (the `0::` line). Pure:
 * the daemon reads both through libc, `privsep doctor` through Deno.
 */
export function cgroupDir(mountinfo: string, cgroups: string): DaemonCgroup {
  let mount: string | undefined;
  for (const line of mountinfo.split("\n")) {
    const [left, right] = line.split(" - ");
    if (right?.startsWith("cgroup2 ")) {
      mount = left.split(" ")[4]?.replace(
        /\\([0-7]{3})/g,
        (_, o) => String.fromCharCode(parseInt(o, 8)),
      );
      break;
    }
  }
  if (!mount) {
    return {
      missing:
        "this kernel has no cgroup2 hierarchy mounted (cgroup v2; mount one, e.g. systemd's unified or hybrid hierarchy)",
    };
  }
  const own = cgroups.split("\n").find((l) => l.startsWith("0::"))?.slice(3);
  if (!own?.startsWith("/")) {
    return {
      missing:
        `this process is in no cgroup2 cgroup (/proc/self/cgroup has no "0::" line)`,
    };
  }
  return { path: (mount + own).replace(/\/+$/, ""), mount };
}

/** Owner and permission bits of `path` (not following a last link). */
export interface Owner {
  /** The owner's uid. */
  uid: number;
  /** The permission bits. */
  mode: number;
}

function ownerOf(path: string): Owner | undefined {
  try {
    const st = lstatViaLibc(path);
    return { uid: st.uid, mode: st.mode & 0o7777 };
  } catch {
    return undefined;
  }
}

/**
 * Why a user other than root could move processes out of a cgroup made below
 * `parent` (`undefined`: none can). Moving a process needs write access to
 * the `cgroup.procs` of the source's and the destination's common ancestor,
 * and creating a cgroup write access to its parent directory: every cgroup
 * from `parent` up to the hierarchy's root `mount`, and its `cgroup.procs`,
 * must be root's and not group- or world-writable. systemd's `Delegate=yes`
 * with `User=` gives the unit's cgroup to the user. Pure but for `owner`.
 *
 * @example
 * ```ts ignore
 * delegatedAbove("/sys/fs/cgroup/system.slice/app.service", "/sys/fs/cgroup");
 * ```
 */
export function delegatedAbove(
  parent: string,
  mount: string,
  owner: (path: string) => Owner | undefined = ownerOf,
): string | undefined {
  for (let dir = parent;; dir = dir.slice(0, dir.lastIndexOf("/"))) {
    for (const path of [dir, `${dir}/cgroup.procs`]) {
      const o = owner(path);
      if (!o) return `${path} cannot be inspected`;
      if (o.uid !== 0) return `${path} is owned by uid ${o.uid}`;
      if (o.mode & 0o022) {
        return `${path} is writable by ${
          o.mode & 0o002 ? "everyone" : "its group"
        }`;
      }
    }
    if (dir === mount || !dir.startsWith(`${mount}/`)) return undefined;
  }
}

/** This process's cgroup2 cgroup as a directory. */
function currentCgroup(): DaemonCgroup {
  const text = (path: string) =>
    new TextDecoder().decode(readFileViaLibc(path, 1 << 24));
  return cgroupDir(text("/proc/self/mountinfo"), text("/proc/self/cgroup"));
}

/**
 * Kills (`cgroup.kill`) and removes the `privsep-<pid>` cgroups below
 * `parent` whose daemon is gone: what a keeper that was killed could not do.
 */
function sweep(parent: string): void {
  const c = libc();
  const d = c.opendir(cString(parent));
  if (!d) return;
  const stale: string[] = [];
  try {
    for (let e = c.readdir(d); e; e = c.readdir(d)) {
      const name = Deno.UnsafePointerView.getCString(e, D_NAME);
      const pid = /^privsep-(\d+)(?:-\d)?$/.exec(name)?.[1];
      if (
        pid && Number(pid) !== Deno.pid &&
        !daemonAlive(`${parent}/${name}`, pid)
      ) stale.push(`${parent}/${name}`);
    }
  } finally {
    c.closedir(d);
  }
  for (const dir of stale) {
    writeFile(`${dir}/cgroup.kill`, "1");
    // The killed processes leave the cgroup as they exit: wait a little.
    for (let i = 0; i < 20 && c.rmdir(cString(dir)) < 0; i++) {
      c.usleep(5000);
    }
  }
}

/**
 * Stage 1, as root, before it starts the keeper: creates the daemon's cgroup
 * below this process's cgroup2 cgroup. Its files stay root's: a
 * `cgroup.kill` of the daemon's user was the daemon's to chmod where its
 * mounts are writable (found by a review), and the keeper could then not
 * write it. Never throws.
 *
 * @example
 * ```ts ignore
 * const created = createCgroup();
 * ```
 */
export function createCgroup(): DaemonCgroup {
  try {
    const current = currentCgroup();
    if (!("path" in current)) return current;
    const mount = current.mount ?? "";
    const delegated = delegatedAbove(current.path, mount);
    if (delegated) {
      return {
        missing:
          `${delegated}: a user other than root could move the daemon's processes out of a cgroup below ${current.path} (systemd's Delegate=yes gives a unit's cgroup to its User=); run the service without Delegate=yes`,
        keeper: {
          homes: keeperHomes(current.path, mount),
          back: current.path,
          mount,
        },
      };
    }
    sweep(current.path);
    const c = libc();
    const path = makeOwn(current.path);
    if (typeof path !== "string") return path;
    const kill = `${path}/cgroup.kill`;
    if (c.access(cString(kill), 0) < 0) {
      c.rmdir(cString(path));
      return {
        missing:
          `${kill} does not exist: this kernel is older than Linux 5.14 (cgroup.kill)`,
      };
    }
    // Who the cgroup is for: the next stage 1's sweep tells a dead daemon
    // from a process that got its pid (daemonAlive()).
    const start = new TextEncoder().encode(startTime(Deno.pid) ?? "");
    // Without it (a kernel that refuses the attribute) the sweep goes by
    // the pid alone, as before.
    c.setxattr(
      cString(path),
      cString(START_XATTR),
      start,
      BigInt(start.length),
      0,
    );
    return { path };
  } catch (error) {
    return { missing: (error as Error).message, expected: true };
  }
}

/** The cgroup below which keepers of delegated callers run. */
const KEEPERS_CGROUP = "privsep-keepers";

/**
 * A delegated caller's keeper's cgroup (`path`, one of {@linkcode
 * keeperHomes}), the cgroup2 hierarchy's root (`mount`) and the caller's
 * delegated cgroup (`back`).
 */
export interface KeeperHome {
  path: string;
  mount: string;
  back: string;
}

/**
 * Where the keeper of a daemon whose caller's cgroup `current` is delegated
 * to a user may start, nearest first: `privsep-keepers` below each cgroup
 * above `current` that no user but root may write ({@linkcode
 * delegatedAbove}). Started in the caller's cgroup, the keeper was that
 * user's to move into a cgroup of its own and kill (`cgroup.kill`) or
 * freeze, whatever its uid; then what the daemon's commands started
 * outlived the daemon (a twenty-sixth review). Pure but for `owner`.
 */
export function keeperHomes(
  current: string,
  mount: string,
  owner: (path: string) => Owner | undefined = ownerOf,
): string[] {
  const homes: string[] = [];
  for (
    let dir = current.slice(0, current.lastIndexOf("/"));
    dir === mount || dir.startsWith(`${mount}/`);
    dir = dir.slice(0, dir.lastIndexOf("/"))
  ) {
    if (!delegatedAbove(dir, mount, owner)) {
      homes.push(`${dir === "/" ? "" : dir}/${KEEPERS_CGROUP}`);
    }
  }
  return homes;
}

/** Why a delegated caller's keeper could not start out of its user's reach. */
export class KeeperHomeError extends Error {
  override name = "KeeperHomeError";
}

/** How stage 1 makes a keeper's cgroup ready (replaced in tests). */
export interface KeeperHomeSteps {
  /** Makes the cgroup (one that is there already will do). */
  mkdir(path: string): string | undefined;
  /** Why a user other than root could write the cgroup made, if one could. */
  unsafe(path: string): string | undefined;
}

const REAL_STEPS = (mount: string): KeeperHomeSteps => ({
  mkdir: (path) =>
    libc().mkdir(cString(path), 0o755) === 0 || errno() === EEXIST
      ? undefined
      : `mkdir(${path}): ${strerror(errno())}`,
  unsafe: (path) => delegatedAbove(path, mount),
});

/**
 * The first of `homes` ({@linkcode keeperHomes}) that can be made and that
 * only root may write: where the keeper of a daemon whose caller's cgroup
 * `back` is delegated starts (it moves itself there, as root, before it
 * drops: `startKeeper()` in _keeper.ts). Stage 1 itself never leaves the
 * caller's cgroup: when it moved there and back, a user who removed its
 * cgroup meanwhile left it, root, stuck writing its error to a full pipe
 * outside the service's cgroup (a third reading). Throws KeeperHomeError
 * when no home will do: the user may have caused it (a
 * `cgroup.max.descendants` above its cgroup that it filled, found by a
 * second reading).
 */
export function pickKeeperHome(
  homes: readonly string[],
  back: string,
  mount: string,
  steps: KeeperHomeSteps = REAL_STEPS(mount),
): string {
  const why: string[] = [];
  for (const path of homes) {
    const failed = steps.mkdir(path) ?? steps.unsafe(path);
    if (failed === undefined) return path;
    why.push(failed);
  }
  throw new KeeperHomeError(
    `${delegatedMessage(back)} (${
      homes.length === 0
        ? `every cgroup up to ${mount} may be written by a user other than root`
        : why.join("; ")
    }): that user could stop it, and what the daemon's commands start would then outlive the daemon. Run the service without Delegate=yes, or remove the cause`,
  );
}

/** The start of the message of a KeeperHomeError about `back`. */
export function delegatedMessage(back: string): string {
  return `the caller's cgroup ${back} is delegated to a user other than root, and the daemon's keeper could not start out of that user's reach`;
}

/**
 * Makes `privsep-<pid>` below `parent`. One that is there already is a dead
 * daemon's of the same pid (only root can make cgroups here; the sweep
 * missed it because its processes were still dying, or an older version
 * gave its files to its user): killed and removed, and while it will not
 * go, the next free of `privsep-<pid>-1` … `-9` is made instead.
 */
function makeOwn(parent: string): string | DaemonCgroup {
  const c = libc();
  const base = `${parent}/privsep-${Deno.pid}`;
  for (let n = 0; n < 10; n++) {
    const path = n === 0 ? base : `${base}-${n}`;
    if (c.mkdir(cString(path), 0o755) === 0) return path;
    const code = errno();
    if (code !== EEXIST) {
      return {
        missing: `mkdir(${path}): ${strerror(code)}`,
        expected: true,
      };
    }
    writeFile(`${path}/cgroup.kill`, "1");
    for (let i = 0; i < 20 && c.rmdir(cString(path)) < 0; i++) {
      c.usleep(5000);
    }
    if (c.mkdir(cString(path), 0o755) === 0) return path;
  }
  return {
    missing:
      `${base} and privsep-${Deno.pid}-1 to -9 are there already and their processes do not die`,
    expected: true,
  };
}

/**
 * Stage 1, as root, after the keeper started (outside the cgroup, so that
 * `cgroup.kill` does not kill it): moves this process, all its threads, into
 * the cgroup `created`. Returns the daemon's cgroup, or why it has none (the
 * cgroup is then removed). Never throws.
 *
 * @example
 * ```ts ignore
 * const cgroup = joinCgroup(createCgroup(1001));
 * ```
 */
export function joinCgroup(created: DaemonCgroup): DaemonCgroup {
  if (!("path" in created)) return created;
  const failed = writeFile(`${created.path}/cgroup.procs`, String(Deno.pid));
  if (failed === undefined) return created;
  libc().rmdir(cString(created.path));
  return {
    missing:
      `${failed} (the host does not let root move a process into a new cgroup below its own)`,
    expected: true,
  };
}
