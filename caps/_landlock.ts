/**
 * Landlock through raw system calls (Deno FFI to libc's `syscall`): the
 * kernel's unprivileged access control for the calling thread and everything
 * it executes or starts afterwards (see landlock(7)).
 *
 * A ruleset is built (any thread, no privilege needed), then
 * {@linkcode restrictSelf} confines the calling thread; the daemon's first
 * stage calls it on the main thread right before `execve`, so the whole
 * serving stage, all its threads and every program it runs inherit the
 * domain. Needs `--allow-ffi`, and no_new_privs (or CAP_SYS_ADMIN) for the
 * restriction.
 *
 * @module
 */

import { errno, strerror, SystemCallError } from "./_ffi.ts";

/** The same numbers on every architecture (added after the unification). */
const SYS_LANDLOCK_CREATE_RULESET = 444;
const SYS_LANDLOCK_ADD_RULE = 445;
const SYS_LANDLOCK_RESTRICT_SELF = 446;
const LANDLOCK_CREATE_RULESET_VERSION = 1;
const LANDLOCK_RULE_PATH_BENEATH = 1;
const LANDLOCK_RULE_NET_PORT = 2;
const O_PATH = 0o10000000;
const O_CLOEXEC = 0o2000000;
const O_NOFOLLOW = 0o400000;
const O_DIRECTORY = 0o200000;
const ENOENT = 2;
const ELOOP = 40;
/** As the kernel's path walk: at most 40 symbolic links per path. */
const MAX_LINKS = 40;

/** Filesystem access rights, with the ABI version that introduced each. */
export const FS_ACCESS = {
  execute: { bit: 1n << 0n, abi: 1 },
  write_file: { bit: 1n << 1n, abi: 1 },
  read_file: { bit: 1n << 2n, abi: 1 },
  read_dir: { bit: 1n << 3n, abi: 1 },
  remove_dir: { bit: 1n << 4n, abi: 1 },
  remove_file: { bit: 1n << 5n, abi: 1 },
  make_char: { bit: 1n << 6n, abi: 1 },
  make_dir: { bit: 1n << 7n, abi: 1 },
  make_reg: { bit: 1n << 8n, abi: 1 },
  make_sock: { bit: 1n << 9n, abi: 1 },
  make_fifo: { bit: 1n << 10n, abi: 1 },
  make_block: { bit: 1n << 11n, abi: 1 },
  make_sym: { bit: 1n << 12n, abi: 1 },
  refer: { bit: 1n << 13n, abi: 2 },
  truncate: { bit: 1n << 14n, abi: 3 },
  ioctl_dev: { bit: 1n << 15n, abi: 5 },
} as const;

/** A filesystem access right's name. */
export type FsAccess = keyof typeof FS_ACCESS;

/** The rights that only make sense on a directory. */
const DIR_ONLY: readonly FsAccess[] = [
  "read_dir",
  "remove_dir",
  "remove_file",
  "make_char",
  "make_dir",
  "make_reg",
  "make_sock",
  "make_fifo",
  "make_block",
  "make_sym",
  "refer",
];

/** TCP port rights (ABI 4). */
export const NET_ACCESS = {
  bind_tcp: { bit: 1n, abi: 4 },
  connect_tcp: { bit: 2n, abi: 4 },
} as const;

/** Scopes (ABI 6). */
export const SCOPE = {
  abstract_unix_socket: { bit: 1n, abi: 6 },
  signal: { bit: 2n, abi: 6 },
} as const;

const SYMBOLS = {
  syscall: {
    parameters: ["i64", "u64", "u64", "u64", "u64"],
    result: "i64",
  },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  openat: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  readlinkat: {
    parameters: ["i32", "buffer", "buffer", "usize"],
    result: "isize",
  },
  close: { parameters: ["i32"], result: "i32" },
} as const;

let lib: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] | undefined;
function libc() {
  lib ??= Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  return lib;
}

function address(buf: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/**
 * The Landlock ABI version of the running kernel: 0 when Landlock is not
 * built in or not enabled (`lsm=` boot parameter), else 1 and up.
 *
 * @example
 * ```ts ignore
 * landlockAbi(); // 7 on Linux 6.15
 * ```
 */
export function landlockAbi(): number {
  const r = Number(
    libc().syscall(
      BigInt(SYS_LANDLOCK_CREATE_RULESET),
      0n,
      0n,
      BigInt(LANDLOCK_CREATE_RULESET_VERSION),
      0n,
    ),
  );
  return r < 0 ? 0 : r;
}

/** Sums the bits of `names` in `table`, keeping those the ABI knows. */
function mask<T extends string>(
  table: Record<T, { bit: bigint; abi: number }>,
  names: readonly T[],
  abi: number,
): bigint {
  let m = 0n;
  for (const n of names) if (table[n].abi <= abi) m |= table[n].bit;
  return m;
}

/** What a ruleset handles: anything handled and not allowed by a rule is denied. */
export interface RulesetSpec {
  /** Filesystem rights the ruleset restricts. */
  fs: readonly FsAccess[];
  /** Whether TCP bind and connect are restricted (to the port rules). */
  net: boolean;
  /** Scopes: no signals or abstract-socket connections out of the domain. */
  scope: readonly (keyof typeof SCOPE)[];
}

/**
 * A Landlock ruleset under construction. Rights the kernel's ABI does not
 * know are left out (the caller decides whether that is acceptable).
 *
 * @example
 * ```ts ignore
 * const r = new Ruleset({ fs: ["write_file"], net: true, scope: ["signal"] });
 * r.allowPath("/var/lib/app", ["write_file"]);
 * r.allowPort(8080, ["bind_tcp"]);
 * r.restrictSelf();
 * ```
 */
export class Ruleset {
  readonly #abi: number;
  readonly #handledFs: bigint;
  #fd: number;

  /** Creates the ruleset (a file descriptor, close-on-exec). */
  constructor(spec: RulesetSpec, abi: number = landlockAbi()) {
    if (abi < 1) {
      throw new SystemCallError(
        "landlock_create_ruleset",
        95,
        "Landlock is not available on this kernel",
      );
    }
    this.#abi = abi;
    this.#handledFs = mask(FS_ACCESS, spec.fs, abi);
    // struct landlock_ruleset_attr { u64 handled_access_fs;
    //   u64 handled_access_net; u64 scoped; } (the last two from ABI 4/6)
    const attr = new BigUint64Array(3);
    attr[0] = this.#handledFs;
    attr[1] = spec.net && abi >= 4
      ? mask(NET_ACCESS, ["bind_tcp", "connect_tcp"], abi)
      : 0n;
    attr[2] = mask(SCOPE, spec.scope, abi);
    const size = abi >= 6 ? 24 : abi >= 4 ? 16 : 8;
    const fd = Number(
      libc().syscall(
        BigInt(SYS_LANDLOCK_CREATE_RULESET),
        address(new Uint8Array(attr.buffer)),
        BigInt(size),
        0n,
        0n,
      ),
    );
    if (fd < 0) {
      const code = errno();
      throw new SystemCallError(
        "landlock_create_ruleset",
        code,
        strerror(code),
      );
    }
    this.#fd = fd;
  }

  /**
   * Allows `access` below `path` (a directory) or on it (a file): only the
   * rights this ruleset handles, and for a file only those that apply to
   * files. The rule is made on what {@linkcode openUnredirected} opens.
   * Throws `Deno.errors.NotFound` when the path does not exist, and
   * {@linkcode RedirectablePath} when a non-root user could have put a link
   * on the way to it.
   */
  allowPath(path: string, access: readonly FsAccess[]): void {
    const fd = openUnredirected(path);
    try {
      let allowed = mask(FS_ACCESS, access, this.#abi) & this.#handledFs;
      if (!isDirectory(fdStat(fd))) {
        allowed &= ~mask(FS_ACCESS, DIR_ONLY, this.#abi);
      }
      if (allowed === 0n) return;
      // struct landlock_path_beneath_attr { u64 allowed_access; s32 parent_fd; } packed
      const attr = new Uint8Array(12);
      const view = new DataView(attr.buffer);
      view.setBigUint64(0, allowed, true);
      view.setInt32(8, fd, true);
      this.#addRule(LANDLOCK_RULE_PATH_BENEATH, attr, path);
    } finally {
      libc().close(fd);
    }
  }

  /** Allows TCP `access` (bind, connect) on `port`. */
  allowPort(port: number, access: readonly (keyof typeof NET_ACCESS)[]): void {
    if (this.#abi < 4) return;
    // struct landlock_net_port_attr { u64 allowed_access; u64 port; }
    const attr = new BigUint64Array([
      mask(NET_ACCESS, access, this.#abi),
      BigInt(port),
    ]);
    this.#addRule(
      LANDLOCK_RULE_NET_PORT,
      new Uint8Array(attr.buffer),
      `port ${port}`,
    );
  }

  #addRule(type: number, attr: Uint8Array, what: string): void {
    const r = Number(
      libc().syscall(
        BigInt(SYS_LANDLOCK_ADD_RULE),
        BigInt(this.#fd),
        BigInt(type),
        address(attr),
        0n,
      ),
    );
    if (r < 0) {
      const code = errno();
      throw new SystemCallError(
        `landlock_add_rule(${what})`,
        code,
        strerror(code),
      );
    }
  }

  /**
   * Confines the calling thread (and what it executes and starts) to the
   * ruleset, then closes it. Needs no_new_privs or CAP_SYS_ADMIN.
   */
  restrictSelf(): void {
    const r = Number(
      libc().syscall(
        BigInt(SYS_LANDLOCK_RESTRICT_SELF),
        BigInt(this.#fd),
        0n,
        0n,
        0n,
      ),
    );
    const code = r < 0 ? errno() : 0;
    this.close();
    if (r < 0) {
      throw new SystemCallError("landlock_restrict_self", code, strerror(code));
    }
  }

  /** Closes the ruleset's descriptor (idempotent). */
  close(): void {
    if (this.#fd >= 0) libc().close(this.#fd);
    this.#fd = -1;
  }
}

const SYS_FSTAT = Deno.build.arch === "aarch64" ? 80 : 5;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/** What the walk needs of `struct stat`. */
interface FdStat {
  mode: number;
  uid: number;
  nlink: number;
}

/** `what`(fd, buffer) as a raw system call `nr`: the buffer it filled. */
function fdCall(what: string, nr: number, fd: number, bytes: number): DataView {
  const buf = new Uint8Array(bytes);
  const r = Number(
    libc().syscall(BigInt(nr), BigInt(fd), address(buf), 0n, 0n),
  );
  if (r < 0) {
    const code = errno();
    throw new SystemCallError(what, code, strerror(code));
  }
  return new DataView(buf.buffer);
}

function fdStat(fd: number): FdStat {
  const v = fdCall("fstat", SYS_FSTAT, fd, 256);
  // x86_64: st_nlink u64 at 16, st_mode at 24, st_uid at 28; aarch64 (the
  // generic layout): st_mode at 16, st_nlink u32 at 20, st_uid at 24.
  return Deno.build.arch === "aarch64"
    ? {
      mode: v.getUint32(16, true),
      nlink: v.getUint32(20, true),
      uid: v.getUint32(24, true),
    }
    : {
      mode: v.getUint32(24, true),
      nlink: Number(v.getBigUint64(16, true)),
      uid: v.getUint32(28, true),
    };
}

function isDirectory(st: FdStat): boolean {
  return (st.mode & S_IFMT) === S_IFDIR;
}

const SYS_FSTATFS = Deno.build.arch === "aarch64" ? 44 : 138;
/** Filesystems whose links are not paths to walk (statfs(2) `f_type`). */
const UNWALKABLE: ReadonlyMap<number, string> = new Map([
  // /proc/<pid>/fd/*, cwd, root, exe: "magic" links to open objects, whose
  // text is a path in another process's view (or "pipe:[…]"); /dev/stderr
  // leads there, to the descriptors the caller chose.
  [0x9fa0, "procfs"],
  // Whoever mounted it, or a server, answers for owners and modes.
  [0x65735546, "FUSE"],
  [0x6969, "NFS"],
  [0xff534d42, "CIFS"],
  [0xfe534d42, "SMB"],
  [0x01021997, "9p"],
]);

/** Refuses to walk on from `dir` (a link there, or its `..`) on such a filesystem. */
function walkable(dir: number, what: string): void {
  const fs = UNWALKABLE.get(filesystemOf(dir));
  if (fs !== undefined) {
    throw new RedirectablePath(`${what} on ${fs}, which no rule follows`);
  }
}

/** The kind of filesystem `fd` is on (`f_type`). */
function filesystemOf(fd: number): number {
  return Number(fdCall("fstatfs", SYS_FSTATFS, fd, 128).getBigUint64(0, true));
}

/** Who other than root may add, remove or rename entries in directory `st`. */
function otherWriters(st: FdStat): string | undefined {
  if (st.uid !== 0) return `uid ${st.uid} (its owner)`;
  if (st.mode & 0o002) return "every user";
  if (st.mode & 0o020) return "its group";
  return undefined;
}

/**
 * An allowed path that a non-root user could have pointed elsewhere: a link
 * or a `..` on the way to it that such a user may change, or a link on a
 * filesystem whose owners the kernel does not vouch for. Landlock's rule
 * would be made on wherever it leads.
 */
export class RedirectablePath extends Error {
  override name = "RedirectablePath";
}

/**
 * Opens `path` with `O_PATH`, one entry at a time, without following what a
 * non-root user could have put on the way (`RedirectablePath`):
 *
 * - a symbolic link is followed only when it is root's, in a directory that
 *   is root's and not group- or world-writable (so root made it and nobody
 *   else can replace it), and not on procfs (whose links to open files read
 *   as paths in another process's view) nor on FUSE, NFS, SMB or 9p (whose
 *   owners a mounter or a server reports);
 * - `..` is walked only out of such a directory, and not on those filesystems;
 * - a last entry that is not a directory must have a single link unless its
 *   directory is such a one (a hard link of a root-only file, where
 *   `fs.protected_hardlinks` is off).
 *
 * Each entry is opened relative to the descriptor of the directory before
 * it, so nothing can be swapped between a check and an open. Returns the
 * descriptor (close-on-exec; the caller closes it). Throws
 * `Deno.errors.NotFound` when an entry does not exist.
 *
 * @example
 * ```ts ignore
 * const fd = openUnredirected("/var/lib/app");
 * ```
 */
export function openUnredirected(path: string): number {
  const c = libc();
  const cstr = (s: string) => new TextEncoder().encode(s + "\0");
  const fail = (what: string, code: number): never => {
    if (code === ENOENT) {
      throw new Deno.errors.NotFound(`${path} does not exist`);
    }
    throw new SystemCallError(what, code, strerror(code));
  };
  // A relative path from the working directory, as open(2) would.
  const start = path.startsWith("/") ? "/" : ".";
  let dir = c.open(cstr(start), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) fail(`open(${start})`, errno());
  let walked = "";
  const names = (p: string) =>
    p.split("/").filter((name) => name !== "" && name !== ".");
  const parts = names(path);
  let links = 0;
  try {
    while (parts.length > 0) {
      const name = parts.shift()!;
      if (name === "..") {
        // On the disk, ".." is wherever the directory is now: one that a
        // non-root user may change may have been moved there by that user.
        walkable(dir, `${walked || "."}/..`);
        const writers = otherWriters(fdStat(dir));
        if (writers !== undefined) {
          throw new RedirectablePath(
            `${walked || "."}/.. leaves a directory that ${writers} may change`,
          );
        }
      }
      const fd = c.openat(dir, cstr(name), O_PATH | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) fail(`open(${path})`, errno());
      const entry = `${walked}/${name}`;
      let target: string | undefined;
      try {
        const st = fdStat(fd);
        const link = (st.mode & S_IFMT) === S_IFLNK;
        if (link || (parts.length === 0 && !isDirectory(st) && st.nlink > 1)) {
          const writers = otherWriters(fdStat(dir)) ??
            (link && st.uid !== 0
              ? `uid ${st.uid} (the link's owner)`
              : undefined);
          if (writers !== undefined) {
            throw new RedirectablePath(
              link
                ? `${entry} is a symbolic link in a directory that ${writers} may change`
                : `${entry} has ${st.nlink} hard links and is in a directory that ${writers} may change`,
            );
          }
        }
        if (link) {
          walkable(dir, `${entry} is a symbolic link`);
          if (++links > MAX_LINKS) fail(`open(${path})`, ELOOP);
          target = readLink(fd);
        }
      } catch (error) {
        c.close(fd);
        throw error;
      }
      if (target === undefined) {
        c.close(dir);
        dir = fd;
        walked = name === ".." ? walked.replace(/\/[^/]*$/, "") : entry;
        continue;
      }
      c.close(fd);
      parts.unshift(...names(target));
      if (target.startsWith("/")) {
        const root = c.open(cstr("/"), O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root < 0) fail("open(/)", errno());
        c.close(dir);
        dir = root;
        walked = "";
      }
    }
    const out = dir;
    dir = -1;
    return out;
  } finally {
    if (dir >= 0) c.close(dir);
  }
}

/**
 * The directory that gets a write path's rule (and its writable mount) when
 * the path does not exist yet: Landlock cannot name a missing file.
 *
 * @example
 * ```ts ignore
 * missingWritePathDirectory("/var/lib/app/state.json"); // "/var/lib/app"
 * ```
 */
export function missingWritePathDirectory(path: string): string {
  return path.replace(/\/[^/]+\/?$/, "") || "/";
}

/** The target of the symbolic link opened as `fd` (`O_PATH | O_NOFOLLOW`). */
function readLink(fd: number): string {
  const buf = new Uint8Array(4096);
  const n = Number(
    libc().readlinkat(fd, new Uint8Array([0]), buf, BigInt(buf.length)),
  );
  if (n < 0) {
    const code = errno();
    throw new SystemCallError("readlinkat", code, strerror(code));
  }
  return new TextDecoder().decode(buf.subarray(0, n));
}
