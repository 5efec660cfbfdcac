/**
 * Thin bindings to libc and libcap through `Deno.dlopen`, for the daemon's
 * first stage. Everything here runs on the calling (main) thread and is only
 * meaningful right before an `execve`: Linux credentials are per thread, and
 * only `execve` makes the calling thread's credentials the whole process's
 * (see docs/security.md).
 *
 * Needs `--allow-ffi`.
 *
 * @module
 */

/** Default library names, resolved by the dynamic loader's search path. */
export const DEFAULT_LIBCAP = "libcap.so.2";
/** The C library. */
export const DEFAULT_LIBC = "libc.so.6";

const LIBC_SYMBOLS = {
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
  syscall: { parameters: ["i64", "u64", "u64", "u64"], result: "i64" },
  chdir: { parameters: ["buffer"], result: "i32" },
  execve: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
  getpwnam: { parameters: ["buffer"], result: "pointer" },
  getpwuid: { parameters: ["u32"], result: "pointer" },
  getgrnam: { parameters: ["buffer"], result: "pointer" },
  getgrgid: { parameters: ["u32"], result: "pointer" },
  getenv: { parameters: ["buffer"], result: "pointer" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  geteuid: { parameters: [], result: "u32" },
  getegid: { parameters: [], result: "u32" },
  mkdir: { parameters: ["buffer", "u32"], result: "i32" },
  chown: { parameters: ["buffer", "u32", "u32"], result: "i32" },
  chmod: { parameters: ["buffer", "u32"], result: "i32" },
  umask: { parameters: ["u32"], result: "u32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  dup2: { parameters: ["i32", "i32"], result: "i32" },
  fstatfs: { parameters: ["i32", "buffer"], result: "i32" },
  statx: {
    parameters: ["i32", "buffer", "i32", "u32", "buffer"],
    result: "i32",
  },
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  realpath: { parameters: ["buffer", "buffer"], result: "pointer" },
} as const;

const LIBCAP_SYMBOLS = {
  cap_init: { parameters: [], result: "pointer" },
  cap_free: { parameters: ["pointer"], result: "i32" },
  cap_set_flag: {
    parameters: ["pointer", "i32", "i32", "buffer", "i32"],
    result: "i32",
  },
  cap_set_proc: { parameters: ["pointer"], result: "i32" },
  cap_drop_bound: { parameters: ["i32"], result: "i32" },
  cap_set_ambient: { parameters: ["i32", "i32"], result: "i32" },
  cap_reset_ambient: { parameters: [], result: "i32" },
} as const;

/** The loaded C library. */
export type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"];
/** The loaded libcap. */
export type Libcap = Deno.DynamicLibrary<typeof LIBCAP_SYMBOLS>["symbols"];

/** A failed system call, with the C `errno`. */
export class SystemCallError extends Error {
  /** Always `"SystemCallError"`. */
  override name = "SystemCallError";
  /** The C errno value. */
  readonly errno: number;
  /** Creates the error. */
  constructor(what: string, errno: number, detail: string) {
    super(`${what} failed: ${detail} (errno ${errno})`);
    this.errno = errno;
  }
}

let libc: Libc | undefined;
const libcaps = new Map<string, Libcap>();

/**
 * Opens the C library (once).
 *
 * @example
 * ```ts ignore
 * import { openLibc } from "@privsep/privsep/caps";
 * const libc = openLibc();
 * ```
 */
export function openLibc(): Libc {
  if (!libc) libc = Deno.dlopen(DEFAULT_LIBC, LIBC_SYMBOLS).symbols;
  return libc;
}

/**
 * Opens libcap (once per name or path). A missing library throws an `Error`
 * that names the package to install (or, for an absolute path, the setting
 * to check); a relative path with a slash (which dlopen would resolve
 * against the working directory) a `TypeError`.
 *
 * @example
 * ```ts ignore
 * import { openLibcap } from "@privsep/privsep/caps";
 * const cap = openLibcap(); // libcap.so.2 from the loader's search path
 * ```
 */
export function openLibcap(nameOrPath: string = DEFAULT_LIBCAP): Libcap {
  // Checked here too, not only by the config parser: dlopen would resolve
  // a relative path with a slash against the working directory, as root.
  if (!/^[^\0]+$/.test(nameOrPath) || /^[^/].*\//.test(nameOrPath)) {
    throw new TypeError(
      `refusing to load libcap from ${
        JSON.stringify(nameOrPath)
      }: give a library name without a slash such as "libcap.so.2", or an absolute path`,
    );
  }
  let lib = libcaps.get(nameOrPath);
  if (lib) return lib;
  try {
    lib = Deno.dlopen(nameOrPath, LIBCAP_SYMBOLS).symbols;
  } catch (error) {
    // A path was chosen in the config (`libcap`): installing the package
    // would not put a library there.
    const fix = nameOrPath.startsWith("/")
      ? `Check the context's \`libcap\` setting: it must be the path of an installed libcap, or be left out for "${DEFAULT_LIBCAP}" from the loader's search path`
      : `Install it: Debian/Ubuntu "apt-get install libcap2", Fedora/RHEL "dnf install libcap", Alpine "apk add libcap2"`;
    throw new Error(
      `cannot load libcap ("${nameOrPath}"): ${
        (error as Error).message
      }. ${fix}`,
      { cause: error },
    );
  }
  libcaps.set(nameOrPath, lib);
  return lib;
}

/** Reads the calling thread's errno. */
export function errno(): number {
  const p = openLibc().__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32() : 0;
}

/** The C library's text for an errno value. */
export function strerror(code: number): string {
  const p = openLibc().strerror(code);
  return p ? Deno.UnsafePointerView.getCString(p) : `errno ${code}`;
}

/** Throws {@linkcode SystemCallError} when `result` is negative. */
export function check(what: string, result: number | bigint): void {
  if (Number(result) < 0) {
    const code = errno();
    throw new SystemCallError(what, code, strerror(code));
  }
}

/** A NUL-terminated C string. */
export function cString(text: string): Uint8Array<ArrayBuffer> {
  if (text.includes("\0")) {
    throw new TypeError(
      `a C string cannot contain NUL: ${JSON.stringify(text)}`,
    );
  }
  return new TextEncoder().encode(text + "\0");
}

/** Raw system call numbers that differ per architecture. */
export const SYS: Readonly<
  { setgroups: number; setresuid: number; setresgid: number }
> = Deno.build.arch === "aarch64"
  ? { setgroups: 159, setresuid: 147, setresgid: 149 }
  : { setgroups: 116, setresuid: 117, setresgid: 119 };

/** A user account as the system's name service reports it. */
export interface Account {
  /** Login name. */
  name: string;
  /** Numeric id. */
  id: number;
  /** Primary group id (users only). */
  gid?: number;
  /** Home directory (users only). */
  home?: string;
}

/**
 * Looks up a user by name or numeric string through `getpwnam`/`getpwuid`
 * (so NSS sources such as LDAP work too). Returns `undefined` when unknown.
 *
 * @example
 * ```ts ignore
 * import { lookupUser } from "@privsep/privsep/caps";
 * lookupUser("root"); // { name: "root", id: 0, gid: 0, home: "/root" }
 * ```
 */
export function lookupUser(user: string): Account | undefined {
  const c = openLibc();
  const p = /^\d+$/.test(user)
    ? c.getpwuid(Number(user))
    : c.getpwnam(cString(user));
  if (!p) return undefined;
  // struct passwd { char *pw_name; char *pw_passwd; uid_t pw_uid; gid_t pw_gid;
  //                 char *pw_gecos; char *pw_dir; char *pw_shell; }
  const v = new Deno.UnsafePointerView(p);
  const name = Deno.UnsafePointerView.getCString(v.getPointer(0)!);
  const dir = v.getPointer(32);
  return {
    name,
    id: v.getUint32(16),
    gid: v.getUint32(20),
    home: dir ? Deno.UnsafePointerView.getCString(dir) : "/",
  };
}

/**
 * Looks up a group by name or numeric string through `getgrnam`/`getgrgid`.
 *
 * @example
 * ```ts ignore
 * import { lookupGroup } from "@privsep/privsep/caps";
 * lookupGroup("root"); // { name: "root", id: 0 }
 * ```
 */
export function lookupGroup(group: string): Account | undefined {
  const c = openLibc();
  const p = /^\d+$/.test(group)
    ? c.getgrgid(Number(group))
    : c.getgrnam(cString(group));
  if (!p) return undefined;
  // struct group { char *gr_name; char *gr_passwd; gid_t gr_gid; char **gr_mem; }
  const v = new Deno.UnsafePointerView(p);
  return {
    name: Deno.UnsafePointerView.getCString(v.getPointer(0)!),
    id: v.getUint32(16),
  };
}

/**
 * Reads a whole (small) file through libc, bypassing Deno's permission
 * checks: for `/proc/self/cmdline`, which Deno only opens with `--allow-all`.
 *
 * @example
 * ```ts ignore
 * import { readFileViaLibc } from "@privsep/privsep/caps";
 * readFileViaLibc("/proc/self/cmdline");
 * ```
 */
export function readFileViaLibc(path: string, limit = 1 << 20): Uint8Array {
  const c = openLibc();
  const fd = c.open(cString(path), 0);
  check(`open(${path})`, fd);
  try {
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const buf = new Uint8Array(65536);
      const n = Number(c.read(fd, buf, BigInt(buf.length)));
      check(`read(${path})`, n);
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
      if (total > limit) {
        throw new RangeError(`${path} is larger than ${limit} bytes`);
      }
    }
    const out = new Uint8Array(total);
    let off = 0;
    for (const chunk of chunks) {
      out.set(chunk, off);
      off += chunk.length;
    }
    return out;
  } finally {
    c.close(fd);
  }
}

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const STATX_BASIC_STATS = 0x7ff;
const S_IFMT = 0o170000;

/** What {@linkcode lstatViaLibc} reports of one directory entry. */
export interface LibcStat {
  /** Owner uid. */
  uid: number;
  /** Owner gid. */
  gid: number;
  /** Full `st_mode` (type and permission bits). */
  mode: number;
  /** A symbolic link. */
  isSymlink: boolean;
  /** A directory. */
  isDirectory: boolean;
  /** A regular file. */
  isFile: boolean;
}

/**
 * `lstat` through libc's `statx`, bypassing Deno's read permission (the
 * daemon's first stage inspects ancestors of its code it may not read).
 * Throws `Deno.errors.NotFound` for a missing path.
 *
 * @example
 * ```ts ignore
 * import { lstatViaLibc } from "@privsep/privsep/caps";
 * lstatViaLibc("/").uid; // 0
 * ```
 */
export function lstatViaLibc(path: string, follow = false): LibcStat {
  // struct statx: stx_uid at 20, stx_gid at 24, stx_mode (u16) at 28.
  const buf = new Uint8Array(256);
  const r = openLibc().statx(
    AT_FDCWD,
    cString(path),
    follow ? 0 : AT_SYMLINK_NOFOLLOW,
    STATX_BASIC_STATS,
    buf,
  );
  if (r < 0) {
    const code = errno();
    if (code === 2) {
      throw new Deno.errors.NotFound(`No such file or directory: ${path}`);
    }
    throw new SystemCallError(`statx(${path})`, code, strerror(code));
  }
  const view = new DataView(buf.buffer);
  const mode = view.getUint16(28, true);
  const type = mode & S_IFMT;
  return {
    uid: view.getUint32(20, true),
    gid: view.getUint32(24, true),
    mode,
    isSymlink: type === 0o120000,
    isDirectory: type === 0o040000,
    isFile: type === 0o100000,
  };
}

/** What an open descriptor is: its file's type and device, and its filesystem. */
export interface DescriptorInfo {
  /** Full `st_mode` (type and permission bits). */
  mode: number;
  /** The device it is, for a device file: major and minor numbers. */
  rdev: [number, number];
  /** The filesystem's magic number (`statfs.f_type`). */
  fsType: number;
}

/**
 * What descriptor `fd` refers to, from the descriptor itself (`statx` with
 * `AT_EMPTY_PATH`, `fstatfs`), not from a path; `undefined` when it is not
 * open (EBADF). Other failures throw `SystemCallError`.
 *
 * @example
 * ```ts ignore
 * import { describeDescriptor } from "@privsep/privsep/caps";
 * describeDescriptor(0)?.fsType; // 0x50495045 (pipefs) for a pipe
 * ```
 */
export function describeDescriptor(fd: number): DescriptorInfo | undefined {
  const libc = openLibc();
  const F_GETFD = 1;
  const EBADF = 9;
  if (libc.fcntl(fd, F_GETFD, 0) < 0) {
    const code = errno();
    if (code === EBADF) return undefined;
    throw new SystemCallError(`fcntl(${fd}, F_GETFD)`, code, strerror(code));
  }
  const AT_EMPTY_PATH = 0x1000;
  const buf = new Uint8Array(256);
  check(
    `statx(${fd})`,
    libc.statx(fd, cString(""), AT_EMPTY_PATH, STATX_BASIC_STATS, buf),
  );
  const fs = new Uint8Array(256);
  check(`fstatfs(${fd})`, libc.fstatfs(fd, fs));
  // struct statx: stx_mode (u16) at 28, stx_rdev_major/minor at 128/132;
  // struct statfs: f_type (a long) first, on x86_64 and aarch64.
  const view = new DataView(buf.buffer);
  return {
    mode: view.getUint16(28, true),
    rdev: [view.getUint32(128, true), view.getUint32(132, true)],
    fsType: Number(new DataView(fs.buffer).getBigInt64(0, true)),
  };
}

/**
 * `readlink` through libc (see {@linkcode lstatViaLibc}).
 *
 * @example
 * ```ts ignore
 * import { readLinkViaLibc } from "@privsep/privsep/caps";
 * readLinkViaLibc("/bin"); // "usr/bin" on merged-/usr systems
 * ```
 */
export function readLinkViaLibc(path: string): string {
  const buf = new Uint8Array(4096);
  const n = Number(openLibc().readlink(cString(path), buf, BigInt(buf.length)));
  check(`readlink(${path})`, n);
  return new TextDecoder().decode(buf.subarray(0, n));
}

/**
 * The canonical path of `path` (every link resolved) through libc's
 * realpath(3), without Deno's read permission; `undefined` when it cannot be
 * resolved (it does not exist, or a directory on the way cannot be searched).
 *
 * @example
 * ```ts ignore
 * realPathViaLibc("/bin/sh"); // "/usr/bin/dash" on Debian
 * ```
 */
export function realPathViaLibc(path: string): string | undefined {
  const buf = new Uint8Array(4096);
  if (openLibc().realpath(cString(path), buf) === null) return undefined;
  const end = buf.indexOf(0);
  return new TextDecoder().decode(buf.subarray(0, end < 0 ? buf.length : end));
}

/**
 * An environment variable through libc (the first stage has no `--allow-env`).
 *
 * @example
 * ```ts ignore
 * getenvViaLibc("DENO_DIR"); // "/var/cache/privsep/deno" or undefined
 * ```
 */
export function getenvViaLibc(name: string): string | undefined {
  const p = openLibc().getenv(cString(name));
  return p ? Deno.UnsafePointerView.getCString(p) : undefined;
}

const F_SETPIPE_SZ = 1031;

/**
 * Grows the kernel buffer of the pipe on `fd` (if it is a pipe) to `bytes`:
 * fewer wake-ups per large message. Returns the new size, or -1 when `fd` is
 * not a pipe or the size was refused.
 *
 * @example
 * ```ts ignore
 * setPipeSize(1, 1 << 20);
 * ```
 */
export function setPipeSize(fd: number, bytes: number): number {
  return openLibc().fcntl(fd, F_SETPIPE_SZ, bytes);
}

/** close_range(2): one number on every architecture (Linux 5.9 and later). */
const SYS_CLOSE_RANGE = 436;
/** Its flag that marks instead of closing (Linux 5.11 and later). */
const CLOSE_RANGE_CLOEXEC = 4;
const SYS_GETDENTS64 = Deno.build.arch === "aarch64" ? 61 : 217;
const F_SETFD = 2;
const FD_CLOEXEC = 1;
const O_DIRECTORY = 0o200000;
const O_CLOEXEC = 0o2000000;
const ENOSYS = 38;
const EINVAL = 22;

/**
 * Marks every descriptor from `first` up close-on-exec, so that the next
 * `execve` closes them all: the new image starts with descriptors below
 * `first` only. Nothing is closed now, so the threads of this (Deno) process
 * keep their own descriptors until the exec. Uses
 * `close_range(first, ~0U, CLOSE_RANGE_CLOEXEC)`; on kernels without it
 * (before 5.11), marks each descriptor listed in `/proc/self/fd`.
 *
 * @example
 * ```ts ignore
 * closeOnExecFrom(3); // only stdin, stdout and stderr cross the next execve
 * ```
 */
export function closeOnExecFrom(first: number): void {
  if (!Number.isInteger(first) || first < 0) {
    throw new RangeError(`not a descriptor number: ${first}`);
  }
  const c = openLibc();
  const r = c.syscall(
    BigInt(SYS_CLOSE_RANGE),
    BigInt(first),
    0xffffffffn,
    BigInt(CLOSE_RANGE_CLOEXEC),
  );
  if (r >= 0) return;
  const code = errno();
  if (code !== ENOSYS && code !== EINVAL) {
    throw new SystemCallError("close_range", code, strerror(code));
  }
  markCloseOnExecViaProc(first);
}

/**
 * The fallback of {@linkcode closeOnExecFrom} (kernels before 5.11): marks
 * each descriptor from `first` up that `/proc/self/fd` lists.
 *
 * @example
 * ```ts ignore
 * markCloseOnExecViaProc(3);
 * ```
 */
export function markCloseOnExecViaProc(first: number): void {
  const c = openLibc();
  const dir = c.open(cString("/proc/self/fd"), O_DIRECTORY | O_CLOEXEC);
  check("open(/proc/self/fd)", dir);
  try {
    const buf = new Uint8Array(32768);
    const view = new DataView(buf.buffer);
    const ptr = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
    for (;;) {
      const n = Number(
        c.syscall(
          BigInt(SYS_GETDENTS64),
          BigInt(dir),
          ptr,
          BigInt(buf.length),
        ),
      );
      check("getdents64(/proc/self/fd)", n);
      if (n === 0) break;
      // struct linux_dirent64 { u64 ino; i64 off; u16 reclen; u8 type; char name[]; }
      for (let off = 0; off < n;) {
        const reclen = view.getUint16(off + 16, true);
        const end = buf.indexOf(0, off + 19);
        const name = new TextDecoder().decode(buf.subarray(off + 19, end));
        off += reclen;
        if (!/^\d+$/.test(name)) continue;
        const fd = Number(name);
        if (fd < first || fd === dir) continue;
        check(`fcntl(${fd}, F_SETFD)`, c.fcntl(fd, F_SETFD, FD_CLOEXEC));
      }
    }
  } finally {
    c.close(dir);
  }
}
