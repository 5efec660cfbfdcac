/**
 * The privilege drop: reduce the calling thread to exactly a set of
 * capabilities and a user, then `execve` a new program so that every thread
 * of the new process has exactly those credentials (docs/security.md, "The drop").
 *
 * Only the daemon's first stage calls this. Needs `--allow-ffi` and root
 * (CAP_SETPCAP, CAP_SETUID, CAP_SETGID).
 *
 * @module
 */

import {
  check,
  cString,
  DEFAULT_LIBCAP,
  openLibc,
  openLibcap,
  SYS,
  SystemCallError,
} from "./_ffi.ts";

const PR_SET_KEEPCAPS = 8;
const PR_CAPBSET_READ = 23;
const PR_SET_SECUREBITS = 28;
const PR_SET_NO_NEW_PRIVS = 38;

/** SECBIT_NOROOT | _LOCKED, NO_SETUID_FIXUP | _LOCKED, KEEP_CAPS | _LOCKED. */
const SECUREBITS = 0x3f;
const CAP_EFFECTIVE = 0;
const CAP_PERMITTED = 1;
const CAP_INHERITABLE = 2;
const CAP_SET = 1;

/**
 * What to reduce the process to, for {@linkcode dropPrivileges}.
 *
 * @example
 * ```ts ignore
 * import { CAP_NET_ADMIN, dropPrivileges, type DropPlan, execve } from "./_drop.ts";
 *
 * const plan: DropPlan = {
 *   keep: [CAP_NET_ADMIN],
 *   uid: 65534, // nobody
 *   gid: 65534, // nogroup
 *   groups: [],
 *   libcap: "libcap.so.2",
 * };
 *
 * // Root only, and it replaces the process: not run here.
 * function becomeNetAdminNobody(): never {
 *   dropPrivileges(plan);
 *   return execve("/usr/bin/id", ["id"], {});
 * }
 * ```
 */
export interface DropPlan {
  /** Capabilities to keep (effective, permitted, inheritable, ambient, bounding). */
  keep: readonly number[];
  /** Target user id (real, effective, saved). */
  uid: number;
  /** Target group id (real, effective, saved). */
  gid: number;
  /** Supplementary groups; none by default. */
  groups?: readonly number[];
  /** libcap to load, by name or absolute path. */
  libcap?: string;
}

/**
 * Finds the highest capability the running kernel knows, by probing
 * `PR_CAPBSET_READ` until it fails with EINVAL.
 *
 * @example
 * ```ts
 * import { kernelLastCap } from "@privsep/privsep/caps";
 * kernelLastCap(); // 40 on Linux 5.9 and later
 * ```
 */
export function kernelLastCap(): number {
  const libc = openLibc();
  let cap = 0;
  while (
    cap < 64 && libc.prctl(PR_CAPBSET_READ, BigInt(cap), 0n, 0n, 0n) >= 0
  ) {
    cap++;
  }
  return cap - 1;
}

/**
 * Reduces the calling thread to `plan`, in the order that was verified on
 * this platform: securebits, bounding set, groups and ids, capability sets,
 * ambient set, no_new_privs. It does not return the process to a usable
 * state for other threads: call {@linkcode execve} right after.
 *
 * @example
 * ```ts ignore
 * import { dropPrivileges, execve } from "./_drop.ts";
 *
 * // Root only, and it replaces the process: not run here.
 * function becomeNobody(): never {
 *   dropPrivileges({ keep: [12], uid: 65534, gid: 65534 });
 *   return execve("/usr/bin/id", ["id"], {});
 * }
 * ```
 */
export function dropPrivileges(plan: DropPlan): void {
  for (const c of plan.keep) {
    if (!Number.isInteger(c) || c < 0 || c > 63) {
      throw new RangeError(`not a capability number: ${c}`);
    }
  }
  const libc = openLibc();
  const cap = openLibcap(plan.libcap ?? DEFAULT_LIBCAP);
  const last = kernelLastCap();
  for (const c of plan.keep) {
    if (c > last) {
      throw new RangeError(
        `capability ${c} is not known to this kernel (highest is ${last})`,
      );
    }
  }
  const keep = new Set(plan.keep);

  // Securebits: root gets no capabilities at exec, a uid change keeps them.
  // Locked, so that nothing after exec can undo it. Fall back to KEEPCAPS
  // where securebits cannot be set (some containers).
  if (libc.prctl(PR_SET_SECUREBITS, BigInt(SECUREBITS), 0n, 0n, 0n) < 0) {
    check(
      "prctl(PR_SET_KEEPCAPS)",
      libc.prctl(PR_SET_KEEPCAPS, 1n, 0n, 0n, 0n),
    );
  }

  // Bounding set: needs CAP_SETPCAP, so before the uid changes.
  for (let c = 0; c <= last; c++) {
    if (!keep.has(c)) check(`cap_drop_bound(${c})`, cap.cap_drop_bound(c));
  }

  const groups = new Uint32Array(plan.groups ?? []);
  check(
    "setgroups",
    libc.syscall(
      BigInt(SYS.setgroups),
      BigInt(groups.length),
      groups.length
        ? BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(groups)))
        : 0n,
      0n,
    ),
  );
  const gid = BigInt(plan.gid);
  check("setresgid", libc.syscall(BigInt(SYS.setresgid), gid, gid, gid));
  const uid = BigInt(plan.uid);
  check("setresuid", libc.syscall(BigInt(SYS.setresuid), uid, uid, uid));

  const caps = new Int32Array([...keep]);
  const state = cap.cap_init();
  if (!state) throw new SystemCallError("cap_init", 12, "out of memory");
  try {
    if (caps.length) {
      for (const flag of [CAP_EFFECTIVE, CAP_PERMITTED, CAP_INHERITABLE]) {
        check(
          "cap_set_flag",
          cap.cap_set_flag(state, flag, caps.length, caps, CAP_SET),
        );
      }
    }
    check("cap_set_proc", cap.cap_set_proc(state));
  } finally {
    cap.cap_free(state);
  }

  check("cap_reset_ambient", cap.cap_reset_ambient());
  for (const c of keep) {
    check(`cap_set_ambient(${c})`, cap.cap_set_ambient(c, CAP_SET));
  }

  check(
    "prctl(PR_SET_NO_NEW_PRIVS)",
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1n, 0n, 0n, 0n),
  );
  check("chdir(/)", libc.chdir(cString("/")));
}

/**
 * For a process that is not root and keeps no capabilities: sets
 * no_new_privs (so nothing it executes gains privileges) and moves to `/`.
 *
 * @example
 * ```ts ignore
 * import { execve, restrictUnprivileged } from "./_drop.ts";
 *
 * // Irreversible for this process, and it replaces it: not run here.
 * function runRestricted(): never {
 *   restrictUnprivileged();
 *   return execve("/usr/bin/id", ["id"], {});
 * }
 * ```
 */
export function restrictUnprivileged(): void {
  const libc = openLibc();
  check(
    "prctl(PR_SET_NO_NEW_PRIVS)",
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1n, 0n, 0n, 0n),
  );
  check("chdir(/)", libc.chdir(cString("/")));
}

/**
 * Replaces the process image: `path` is run with `argv` and exactly the
 * variables in `env`. Returns only by throwing.
 *
 * @example
 * ```ts ignore
 * import { execve } from "./_drop.ts";
 *
 * // Replaces this process: not run here.
 * function becomeTrue(): never {
 *   return execve("/usr/bin/true", ["true"], { PATH: "/usr/bin:/bin" });
 * }
 * ```
 */
export function execve(
  path: string,
  argv: readonly string[],
  env: Readonly<Record<string, string>>,
): never {
  const keepAlive: Uint8Array[] = [];
  const table = (items: readonly string[]): BigUint64Array<ArrayBuffer> => {
    const t = new BigUint64Array(items.length + 1);
    items.forEach((item, i) => {
      const s = cString(item);
      keepAlive.push(s);
      t[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(s)));
    });
    return t;
  };
  const argvTable = table(argv);
  const envTable = table(Object.entries(env).map(([k, v]) => `${k}=${v}`));
  const result = openLibc().execve(
    cString(path),
    new Uint8Array(argvTable.buffer),
    new Uint8Array(envTable.buffer),
  );
  check(`execve(${path})`, result);
  throw new SystemCallError(`execve(${path})`, 0, "returned");
}
