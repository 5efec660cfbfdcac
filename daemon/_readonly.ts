/**
 * Read-only views, for the serving stage, of everything the first stage
 * trusts and executes: the DENO_DIR cache, the code roots, the deno binary
 * and the config files. A daemon running as uid 0 owns every root-owned file
 * (owner permission bits apply, and an owner may chmod) even without
 * CAP_DAC_OVERRIDE, so file modes cannot keep it from rewriting the
 * transpiled code that the next root first stage runs; a read-only mount can
 * (EROFS, whatever the uid or DAC capabilities).
 *
 * The first stage calls {@linkcode protectTrustedPaths} on its main thread
 * right before the drop: the thread gets a mount namespace of its own (mount
 * namespaces, like credentials, are per thread) and `execve` makes it the
 * whole serving process's. Host mounts still propagate in (a slave of "/"),
 * nothing propagates out.
 *
 * @module
 */

import { lstatViaLibc, readFileViaLibc } from "../caps/_ffi.ts";

const CLONE_NEWNS = 0x00020000;
const MS_RDONLY = 0x1;
const MS_REMOUNT = 0x20;
const MS_BIND = 0x1000;
const MS_REC = 0x4000;
const MS_SLAVE = 0x80000;
/** mount_setattr(2): the same number on every Linux architecture. */
const SYS_MOUNT_SETATTR = 442;
const AT_FDCWD = -100;
const AT_RECURSIVE = 0x8000;
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
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
let lib: Symbols | undefined;

function libc(): Symbols {
  lib ??= Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  return lib;
}

function errno(): number {
  const p = libc().__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32() : 0;
}

function fail(what: string, code = errno()): never {
  const p = libc().strerror(code);
  const text = p ? Deno.UnsafePointerView.getCString(p) : `errno ${code}`;
  const error = new Error(
    `${what} failed: ${text} (errno ${code}); the daemon keeps its cache and code read-only in a mount namespace of its own, which needs a kernel with mount namespaces and a first stage with CAP_SYS_ADMIN`,
  );
  error.name = "SystemCallError";
  throw error;
}

function c(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(text + "\0");
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
  const attr = new BigUint64Array([BigInt(MOUNT_ATTR_RDONLY), 0n, 0n, 0n]);
  const r = l.syscall(
    BigInt(SYS_MOUNT_SETATTR),
    BigInt(AT_FDCWD),
    c(path),
    BigInt(AT_RECURSIVE),
    new Uint8Array(attr.buffer),
    BigInt(attr.byteLength),
  );
  if (r === 0n) return;
  if (errno() !== ENOSYS) fail(`mount_setattr(${path}, MOUNT_ATTR_RDONLY)`);
  // Older kernels: each mount of the bound tree, keeping its other flags.
  for (const point of mountsBelow(path)) {
    const flags = MS_REMOUNT | MS_BIND | MS_RDONLY | keptFlags(point);
    if (l.mount(c("none"), c(point), c(""), BigInt(flags), null) < 0) {
      fail(`mount(${point}, MS_REMOUNT|MS_BIND|MS_RDONLY)`);
    }
  }
}

/**
 * Gives the calling thread a mount namespace of its own in which every path
 * of `paths` (and everything below it) is a read-only bind mount of itself.
 * Paths that do not exist are skipped; a path below another listed one is
 * covered by it. Needs CAP_SYS_ADMIN; call it on the thread that `execve`s,
 * right before the drop, and only for a context that does not keep
 * CAP_SYS_ADMIN (which could undo any mount).
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
  const sorted = [...new Set(paths.map((p) => p.replace(/\/+$/, "") || "/"))]
    .sort();
  const bound: string[] = [];
  for (const path of sorted) {
    if (bound.some((b) => path === b || path.startsWith(b + "/"))) continue;
    try {
      lstatViaLibc(path);
    } catch {
      continue;
    }
    if (
      l.mount(c(path), c(path), null, BigInt(MS_BIND | MS_REC), null) < 0
    ) fail(`mount(${path}, MS_BIND)`);
    makeReadOnly(path);
    bound.push(path);
  }
  return bound;
}
