/**
 * Read-only views, for the serving stage, of everything the first stage
 * trusts and executes: the DENO_DIR cache, the code roots, the deno binary
 * and the config files. A daemon running as uid 0 owns every root-owned file
 * (owner permission bits apply, and an owner may chmod) even without
 * CAP_DAC_OVERRIDE, so file modes cannot keep it from rewriting the
 * transpiled code that the next root first stage runs; a read-only mount can
 * (EROFS, whatever the uid or DAC capabilities).
 *
 * The way to each of these paths must hold too: a uid-0 daemon also owns
 * their parent directories, and renaming one (or a symlink on the way)
 * would move the read-only tree aside on the host and let the daemon put
 * its own at the trusted path. Every directory and symlink on the way is
 * therefore a mount point of its own in the daemon's namespace (a bind of
 * itself): rename, rmdir and unlink of a mount point fail with EBUSY,
 * whatever the uid. `/usr` and `/boot` are read-only as a whole (like
 * systemd's ProtectSystem=yes: libc, the loader, libcap, `/usr/bin/env` and
 * `sh`, which the launcher and the first stage run as root); the symlinks
 * of `/` that lead into `/usr` (`/bin`, `/lib64`: the loader every ELF
 * binary names) are pinned, and where they are real directories they are
 * read-only.
 *
 * The first stage calls {@linkcode protectTrustedPaths} on its main thread
 * right before the drop: the thread gets a mount namespace of its own (mount
 * namespaces, like credentials, are per thread) and `execve` makes it the
 * whole serving process's. Host mounts still propagate in (a slave of "/"),
 * nothing propagates out.
 *
 * @module
 */

import {
  cString as c,
  errno,
  lstatViaLibc,
  readFileViaLibc,
  readLinkViaLibc,
  strerror,
} from "../caps/_ffi.ts";
import {
  missingWritePathDirectory,
  openUnredirected,
  RedirectablePath,
} from "../caps/_landlock.ts";

/**
 * System directories read-only for every protected daemon (ProtectSystem=yes,
 * plus the top-level directories that merged /usr turns into symlinks).
 */
const SYSTEM_PATHS = [
  "/usr",
  "/boot",
  "/efi",
  "/bin",
  "/sbin",
  "/lib",
  "/lib32",
  "/lib64",
  "/libx32",
] as const;

const CLONE_NEWNS = 0x00020000;
const MS_RDONLY = 0x1;
const MS_REMOUNT = 0x20;
const MS_BIND = 0x1000;
const MS_REC = 0x4000;
const MS_SLAVE = 0x80000;
const MS_PRIVATE = 0x40000;
/** mount_setattr(2): the same number on every Linux architecture. */
const SYS_MOUNT_SETATTR = 442;
/** open_tree(2), move_mount(2): likewise (Linux 5.2). */
const SYS_OPEN_TREE = 428;
const SYS_MOVE_MOUNT = 429;
const OPEN_TREE_CLONE = 0x1;
const OPEN_TREE_CLOEXEC = 0o2000000;
const MOVE_MOUNT_F_EMPTY_PATH = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH = 0x40;
const AT_EMPTY_PATH = 0x1000;
const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_RECURSIVE = 0x8000;
const MAX_SYMLINKS = 40;
const MOUNT_ATTR_RDONLY = 0x1;
const ENOSYS = 38;

const SYMBOLS = {
  unshare: { parameters: ["i32"], result: "i32" },
  mount: {
    parameters: ["buffer", "buffer", "buffer", "u64", "buffer"],
    result: "i32",
  },
  syscall: {
    parameters: ["i64", "i64", "buffer", "u64", "buffer", "u64"],
    result: "i64",
  },
  close: { parameters: ["i32"], result: "i32" },
} as const;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
let lib: Symbols | undefined;

function libc(): Symbols {
  lib ??= Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  return lib;
}

function fail(what: string, code = errno()): never {
  const text = strerror(code);
  const error = new Error(
    `${what} failed: ${text} (errno ${code}); the daemon keeps its cache and code read-only in a mount namespace of its own, which needs a kernel with mount namespaces and a first stage with CAP_SYS_ADMIN`,
  );
  error.name = "SystemCallError";
  throw error;
}

/** Mount points at or below `path` in this thread's namespace (mountinfo). */
function mountsBelow(path: string): string[] {
  // This thread's namespace (the others are still in the host's).
  const info = new TextDecoder().decode(
    readFileViaLibc("/proc/thread-self/mountinfo", 1 << 24),
  );
  const out: string[] = [];
  for (const line of info.split("\n")) {
    const point = line.split(" ")[4]?.replace(
      /\\([0-7]{3})/g,
      (_, o) => String.fromCharCode(parseInt(o, 8)),
    );
    if (point && (point === path || point.startsWith(path + "/"))) {
      out.push(point);
    }
  }
  return out;
}

/**
 * Per-mount flags of `point` that a plain read-only remount would clear.
 * Used only where mount_setattr(2) is missing (Linux before 5.12).
 */
function keptFlags(point: string): number {
  // This thread's namespace (the others are still in the host's).
  const info = new TextDecoder().decode(
    readFileViaLibc("/proc/thread-self/mountinfo", 1 << 24),
  );
  let flags = 0;
  for (const line of info.split("\n")) {
    const f = line.split(" ");
    if (f[4] !== point) continue;
    flags = 0;
    const opts = f[5].split(",");
    if (opts.includes("nosuid")) flags |= 0x2;
    if (opts.includes("nodev")) flags |= 0x4;
    if (opts.includes("noexec")) flags |= 0x8;
  }
  return flags;
}

function makeReadOnly(path: string): void {
  const l = libc();
  if (setReadOnly(path)) return;
  // Older kernels: each mount of the bound tree, keeping its other flags.
  for (const point of mountsBelow(path)) {
    const flags = MS_REMOUNT | MS_BIND | MS_RDONLY | keptFlags(point);
    if (l.mount(c("none"), c(point), c(""), BigInt(flags), null) < 0) {
      fail(`mount(${point}, MS_REMOUNT|MS_BIND|MS_RDONLY)`);
    }
  }
}

/**
 * Resolves `path` component by component (symlinks followed, like the
 * kernel does). Returns the resolved path and every directory and symlink
 * met on the way ("/" and the resolved path itself excluded), or undefined
 * when a component does not exist.
 */
function walk(path: string): { resolved: string; way: string[] } | undefined {
  const way: string[] = [];
  const rest = path.split("/").filter((p) => p !== "" && p !== ".");
  let cur = "";
  let links = 0;
  while (rest.length > 0) {
    const name = rest.shift()!;
    if (name === "..") {
      cur = cur.slice(0, cur.lastIndexOf("/"));
      continue;
    }
    const next = `${cur}/${name}`;
    let st;
    try {
      st = lstatViaLibc(next);
    } catch {
      return undefined;
    }
    if (!st.isSymlink) {
      if (rest.length > 0) way.push(next);
      cur = next;
      continue;
    }
    if (++links > MAX_SYMLINKS) return undefined;
    way.push(next);
    const target = readLinkViaLibc(next);
    if (target.startsWith("/")) cur = "";
    rest.unshift(...target.split("/").filter((p) => p !== "" && p !== "."));
  }
  return { resolved: cur || "/", way };
}

/**
 * Makes `path` (a directory or a symlink, not followed) a mount point of
 * itself, with everything mounted below it: the same view, but the kernel
 * refuses to rename, remove or replace a mount point (EBUSY).
 */
function pin(path: string): void {
  const l = libc();
  const fd = Number(l.syscall(
    BigInt(SYS_OPEN_TREE),
    BigInt(AT_FDCWD),
    c(path),
    BigInt(
      OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_SYMLINK_NOFOLLOW,
    ),
    null,
    0n,
  ));
  if (fd < 0) {
    if (errno() !== ENOSYS) fail(`open_tree(${path}, OPEN_TREE_CLONE)`);
    // Linux before 5.2: mount(2) follows a symlink, so only directories.
    if (!lstatViaLibc(path).isDirectory) return;
    if (
      l.mount(c(path), c(path), null, BigInt(MS_BIND | MS_REC), null) < 0
    ) fail(`mount(${path}, MS_BIND|MS_REC)`);
    return;
  }
  try {
    const r = l.syscall(
      BigInt(SYS_MOVE_MOUNT),
      BigInt(fd),
      c(""),
      BigInt(AT_FDCWD),
      c(path),
      BigInt(MOVE_MOUNT_F_EMPTY_PATH),
    );
    if (r < 0n) fail(`move_mount(${path})`);
  } finally {
    l.close(fd);
  }
}

/** Whether `path` is `base` or below it. */
function within(path: string, base: string): boolean {
  return path === base || base === "/" || path.startsWith(base + "/");
}

/**
 * Gives the calling thread a mount namespace of its own in which every path
 * of `paths` (and everything below it) is a read-only bind mount of itself.
 * Paths that do not exist are skipped; a path below another listed one is
 * covered by it. Every directory and symlink on the way to a path becomes a
 * mount point (renaming, removing or replacing it fails with EBUSY), and
 * the system directories (`/usr`, `/boot`, and `/bin`, `/lib`... where they
 * are real directories; pinned where they are symlinks) are read-only too.
 * Returns the read-only mount points. Needs CAP_SYS_ADMIN; call it on the
 * thread that `execve`s, right before the drop, and only for a context that
 * does not keep CAP_SYS_ADMIN (which could undo any mount).
 *
 * @example
 * ```ts ignore
 * protectTrustedPaths(["/var/cache/privsep/deno", "/opt/app", "/usr/local/bin/deno"]);
 * ```
 */
export function protectTrustedPaths(paths: readonly string[]): string[] {
  for (const p of paths) {
    if (!p.startsWith("/") || p.includes("\0")) {
      throw new TypeError(`a protected path must be absolute, got "${p}"`);
    }
  }
  const l = libc();
  if (l.unshare(CLONE_NEWNS) < 0) fail("unshare(CLONE_NEWNS)");
  // Host mounts keep propagating in; nothing of ours propagates out.
  if (
    l.mount(c("none"), c("/"), null, BigInt(MS_REC | MS_SLAVE), null) < 0
  ) fail("mount(/, MS_REC|MS_SLAVE)");
  const targets = new Set<string>();
  const way = new Set<string>();
  for (const path of [...paths, ...SYSTEM_PATHS]) {
    const found = walk(path);
    if (!found) continue;
    targets.add(found.resolved);
    for (const p of found.way) way.add(p);
  }
  // A target below another is covered by it (sorted: parents first).
  const bound: string[] = [];
  for (const path of [...targets].sort()) {
    if (!bound.some((b) => within(path, b))) bound.push(path);
  }
  // Top-down, so that each pin is made through the pins above it; nothing
  // inside a read-only tree needs one (EROFS already).
  const depth = (p: string) => p.split("/").length;
  const pins = [...way]
    .filter((p) => !bound.some((b) => within(p, b)))
    .sort((a, b) => depth(a) - depth(b) || (a < b ? -1 : 1));
  for (const path of pins) pin(path);
  for (const path of bound) {
    if (
      l.mount(c(path), c(path), null, BigInt(MS_BIND | MS_REC), null) < 0
    ) fail(`mount(${path}, MS_BIND)`);
    makeReadOnly(path);
  }
  return bound;
}

/**
 * Makes every mount of the calling thread's namespace (made by
 * {@linkcode protectTrustedPaths}) read-only except the context's write
 * paths. Each write path is opened the way its Landlock rule is
 * (`openUnredirected()`: a path a non-root user could have redirected is
 * left read-only; one that does not exist yet gets its directory, as its
 * rule does), and a clone of the mounts there is taken first, as they are
 * (read-only where the host's or `protectTrustedPaths`' are); then every
 * mount becomes read-only and each clone goes back over its path. Last, the
 * `trusted` mount points (what `protectTrustedPaths` returned) are made
 * read-only again, whichever write path holds them or lies within them.
 *
 * Why: Landlock confines writing files, not changing their owner, mode or
 * extended attributes. A uid-0 daemon owns every root-owned file, and
 * `CAP_FOWNER` or `CAP_CHOWN` reach every file: without this, such a daemon
 * could `chmod` a root-owned program setuid, or another application's code
 * writable, for its service account (found by a review). On a read-only
 * mount those calls fail with EROFS; writing devices and FIFOs still works.
 * Returns the paths left writable, or, on a kernel before Linux 5.12 (no
 * mount_setattr), why nothing was changed.
 *
 * @example
 * ```ts ignore
 * onlyWritable(["/var/lib/app"], protectTrustedPaths(["/opt/app"]));
 * ```
 */
export function onlyWritable(
  writable: readonly string[],
  trusted: readonly string[],
): { writable: string[]; unsupported?: string } {
  // "/" writable: Landlock confines nothing then either; the trusted paths
  // are read-only already (a clone over the root would not be seen).
  if (writable.some((w) => /^\/+$/.test(w))) return { writable: [] };
  const unsupported = (call: string) => ({
    writable: [],
    unsupported:
      `${call} is missing (Linux before 5.12): mounts outside the write paths stay writable, so owners and modes there are not confined`,
  });
  const l = libc();
  // First a clone of the mounts at each write path as they are now (its
  // own mounts read-only where the host's or protectTrustedPaths' are),
  // detached, so that what follows does not touch it.
  const clones: { fd: number; tree: number; path: string }[] = [];
  try {
    for (const path of writable) {
      const found = openWritePath(path);
      if (!found) continue;
      const tree = Number(l.syscall(
        BigInt(SYS_OPEN_TREE),
        BigInt(found.fd),
        c(""),
        BigInt(
          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH,
        ),
        null,
        0n,
      ));
      if (tree < 0) {
        const code = errno();
        l.close(found.fd);
        // Nothing changed yet: the namespace stays as it was.
        if (code === ENOSYS) return unsupported("open_tree(2)");
        fail(`open_tree(${found.path}, OPEN_TREE_CLONE)`, code);
      }
      clones.push({ fd: found.fd, tree, path: found.path });
    }
    // Then every mount read-only, and each clone put back over its path.
    if (!setReadOnly("/")) return unsupported("mount_setattr(2)");
    for (const { fd, tree, path } of clones) {
      const r = l.syscall(
        BigInt(SYS_MOVE_MOUNT),
        BigInt(tree),
        c(""),
        BigInt(fd),
        c(""),
        BigInt(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH),
      );
      if (r < 0n) fail(`move_mount(${path})`);
    }
  } finally {
    for (const { fd, tree } of clones) {
      l.close(tree);
      l.close(fd);
    }
  }
  // What stage 1 trusts stays read-only, whatever write path holds it or
  // lies within it, and takes no mount the host makes later (a slave of the
  // host's would bring it in writable).
  for (const point of trusted) setReadOnly(point, true);
  return { writable: clones.map((x) => x.path) };
}

/**
 * The write path opened as its Landlock rule is (`openUnredirected()`), or
 * its directory when it does not exist yet; undefined when neither can be
 * used (missing, or a non-root user could have redirected it).
 */
function openWritePath(
  path: string,
): { fd: number; path: string } | undefined {
  const open = (p: string) => {
    try {
      return openUnredirected(p);
    } catch (error) {
      if (error instanceof RedirectablePath) return undefined;
      if (error instanceof Deno.errors.NotFound) return null;
      throw error;
    }
  };
  const fd = open(path);
  if (fd !== null) return fd === undefined ? undefined : { fd, path };
  const parent = missingWritePathDirectory(path);
  if (parent === "/") return undefined;
  const pfd = open(parent);
  return pfd ? { fd: pfd, path: parent } : undefined;
}

/**
 * Sets MOUNT_ATTR_RDONLY on every mount at and below `path`, and makes them
 * private when `isolate` is set; false when the kernel has no mount_setattr.
 */
function setReadOnly(path: string, isolate = false): boolean {
  // struct mount_attr { attr_set, attr_clr, propagation, userns_fd }
  const attr = new BigUint64Array([
    BigInt(MOUNT_ATTR_RDONLY),
    0n,
    isolate ? BigInt(MS_PRIVATE) : 0n,
    0n,
  ]);
  const r = libc().syscall(
    BigInt(SYS_MOUNT_SETATTR),
    BigInt(AT_FDCWD),
    c(path),
    BigInt(AT_RECURSIVE),
    new Uint8Array(attr.buffer),
    BigInt(attr.byteLength),
  );
  if (r === 0n) return true;
  // Only the first call can meet a kernel without it (nothing changed yet).
  if (errno() === ENOSYS) return false;
  fail(`mount_setattr(${path}, MOUNT_ATTR_RDONLY)`);
}
