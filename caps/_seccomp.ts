/**
 * A seccomp system-call filter built by hand as classic BPF (seccomp(2),
 * `struct sock_filter`), installed with `prctl(PR_SET_SECCOMP)` on the
 * calling thread. The daemon's first stage installs it on the main thread
 * right before `execve`: the filter survives the exec and is inherited by
 * every thread and child of the serving stage, and no process can remove it.
 *
 * Policy: everything is allowed except the named system calls, which fail
 * with `EPERM` (never a kill, so that an entrypoint gets an error it can
 * report). Calls of another architecture's ABI (32-bit x86 through
 * `int 0x80`, x32) fail with `EPERM` as a whole: their numbers differ, so a
 * deny list of native numbers could not hold for them.
 *
 * @module
 */

import { check, openLibc } from "./_ffi.ts";

/** One system call the filter knows: its numbers and who may keep it. */
interface SyscallInfo {
  /** Number on x86_64, if the call exists there. */
  x64?: number;
  /** Number on aarch64, if the call exists there. */
  a64?: number;
  /**
   * Capabilities, any of which makes the call useful: a context that keeps
   * one is allowed the call by default.
   */
  caps: readonly number[];
}

const CAP_SYS_MODULE = 16;
const CAP_SYS_RAWIO = 17;
const CAP_SYS_PTRACE = 19;
const CAP_SYS_PACCT = 20;
const CAP_SYS_ADMIN = 21;
const CAP_SYS_BOOT = 22;
const CAP_SYS_TIME = 25;
const CAP_SYS_TTY_CONFIG = 26;
const CAP_SYSLOG = 34;
const CAP_PERFMON = 38;
const CAP_BPF = 39;

/** The system calls the filter can deny, by name. */
export const SYSCALLS: Readonly<Record<string, SyscallInfo>> = {
  init_module: { x64: 175, a64: 105, caps: [CAP_SYS_MODULE] },
  finit_module: { x64: 313, a64: 273, caps: [CAP_SYS_MODULE] },
  delete_module: { x64: 176, a64: 106, caps: [CAP_SYS_MODULE] },
  kexec_load: { x64: 246, a64: 104, caps: [CAP_SYS_BOOT] },
  kexec_file_load: { x64: 320, a64: 294, caps: [CAP_SYS_BOOT] },
  reboot: { x64: 169, a64: 142, caps: [CAP_SYS_BOOT] },
  swapon: { x64: 167, a64: 224, caps: [CAP_SYS_ADMIN] },
  swapoff: { x64: 168, a64: 225, caps: [CAP_SYS_ADMIN] },
  settimeofday: { x64: 164, a64: 170, caps: [CAP_SYS_TIME] },
  clock_settime: { x64: 227, a64: 112, caps: [CAP_SYS_TIME] },
  clock_adjtime: { x64: 305, a64: 266, caps: [CAP_SYS_TIME] },
  adjtimex: { x64: 159, a64: 171, caps: [CAP_SYS_TIME] },
  mount: { x64: 165, a64: 40, caps: [CAP_SYS_ADMIN] },
  umount2: { x64: 166, a64: 39, caps: [CAP_SYS_ADMIN] },
  pivot_root: { x64: 155, a64: 41, caps: [CAP_SYS_ADMIN] },
  open_tree: { x64: 428, a64: 428, caps: [CAP_SYS_ADMIN] },
  move_mount: { x64: 429, a64: 429, caps: [CAP_SYS_ADMIN] },
  fsopen: { x64: 430, a64: 430, caps: [CAP_SYS_ADMIN] },
  fsconfig: { x64: 431, a64: 431, caps: [CAP_SYS_ADMIN] },
  fsmount: { x64: 432, a64: 432, caps: [CAP_SYS_ADMIN] },
  fspick: { x64: 433, a64: 433, caps: [CAP_SYS_ADMIN] },
  mount_setattr: { x64: 442, a64: 442, caps: [CAP_SYS_ADMIN] },
  unshare: { x64: 272, a64: 97, caps: [CAP_SYS_ADMIN] },
  setns: { x64: 308, a64: 268, caps: [CAP_SYS_ADMIN] },
  // Denied with ENOSYS (the C library falls back to clone, whose flags the
  // filter can read), and clone itself with a CLONE_NEW* flag with EPERM.
  clone3: { x64: 435, a64: 435, caps: [CAP_SYS_ADMIN] },
  ptrace: { x64: 101, a64: 117, caps: [CAP_SYS_PTRACE] },
  process_vm_readv: { x64: 310, a64: 270, caps: [CAP_SYS_PTRACE] },
  process_vm_writev: { x64: 311, a64: 271, caps: [CAP_SYS_PTRACE] },
  kcmp: { x64: 312, a64: 272, caps: [CAP_SYS_PTRACE] },
  perf_event_open: {
    x64: 298,
    a64: 241,
    caps: [CAP_PERFMON, CAP_SYS_ADMIN, CAP_SYS_PTRACE],
  },
  add_key: { x64: 248, a64: 217, caps: [] },
  request_key: { x64: 249, a64: 218, caps: [] },
  keyctl: { x64: 250, a64: 219, caps: [] },
  bpf: { x64: 321, a64: 280, caps: [CAP_BPF, CAP_SYS_ADMIN] },
  userfaultfd: { x64: 323, a64: 282, caps: [] },
  // Only with another process's pid and a new limit: a process's own limits
  // (pid 0, as the C library's setrlimit passes) stay. The daemon's keeper
  // has the daemon's uid, and a CPU-time or open-file limit of 0 ended it
  // without a signal (found by a review). Whatever the capabilities: with
  // CAP_SYS_RESOURCE kept, the daemon's programs gave the keeper a 1 s
  // CPU-time limit and fed it lines until the kernel killed it (an
  // eighteenth review), and could set any host process's limits; a
  // context's own limits (setrlimit) do not need it. `+prlimit64` in
  // syscall_filter allows it whole.
  prlimit64: { x64: 302, a64: 261, caps: [] },
  iopl: { x64: 172, caps: [CAP_SYS_RAWIO] },
  ioperm: { x64: 173, caps: [CAP_SYS_RAWIO] },
  io_uring_setup: { x64: 425, a64: 425, caps: [] },
  io_uring_enter: { x64: 426, a64: 426, caps: [] },
  io_uring_register: { x64: 427, a64: 427, caps: [] },
  acct: { x64: 163, a64: 89, caps: [CAP_SYS_PACCT] },
  quotactl: { x64: 179, a64: 60, caps: [CAP_SYS_ADMIN] },
  quotactl_fd: { x64: 443, a64: 443, caps: [CAP_SYS_ADMIN] },
  vhangup: { x64: 153, a64: 58, caps: [CAP_SYS_TTY_CONFIG] },
  syslog: { x64: 103, a64: 116, caps: [CAP_SYSLOG, CAP_SYS_ADMIN] },
  // The kernel asks for CAP_DAC_READ_SEARCH, but a file opened by its
  // handle is opened on the mount of the descriptor passed with it: a write
  // path's writable mount reached every file of its filesystem, past
  // Landlock (which judges the file by that mount's rule) and the read-only
  // mounts (found by a review). Only a context that keeps CAP_SYS_ADMIN,
  // which has neither, is allowed it by its capabilities.
  open_by_handle_at: { x64: 304, a64: 265, caps: [CAP_SYS_ADMIN] },
  // Only for AF_UNIX. A process outside can hand a unix socket's peer a
  // descriptor (SCM_RIGHTS) of its own mounts, the host's writable ones,
  // where Landlock does not judge a change of mode or owner: a uid-0 daemon
  // made a root-only file world-writable through a descriptor of / (found
  // by a review). Root's services on unix sockets (systemd, D-Bus) trust a
  // uid-0 peer as root whatever its mounts. No capability makes it safe.
  socket: { x64: 41, a64: 198, caps: [] },
  lookup_dcookie: { x64: 212, a64: 18, caps: [] },
  uselib: { x64: 134, caps: [] },
  nfsservctl: { x64: 180, a64: 42, caps: [] },
};

/**
 * Named groups, in the spirit of systemd's `SystemCallFilter=@…`. Every
 * group is denied by default; a context that keeps a capability listed for
 * a call is allowed that call.
 */
export const SYSCALL_GROUPS: Readonly<Record<string, readonly string[]>> = {
  "@module": ["init_module", "finit_module", "delete_module"],
  "@reboot": ["reboot", "kexec_load", "kexec_file_load"],
  "@swap": ["swapon", "swapoff"],
  "@clock": ["settimeofday", "clock_settime", "clock_adjtime", "adjtimex"],
  "@mount": [
    "mount",
    "umount2",
    "pivot_root",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
  ],
  "@namespace": ["unshare", "setns", "clone3"],
  "@debug": [
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "perf_event_open",
  ],
  "@keyring": ["add_key", "request_key", "keyctl"],
  "@bpf": ["bpf"],
  "@raw-io": ["iopl", "ioperm"],
  "@io-uring": ["io_uring_setup", "io_uring_enter", "io_uring_register"],
  "@privileged": [
    "acct",
    "quotactl",
    "quotactl_fd",
    "vhangup",
    "syslog",
    "open_by_handle_at",
    "userfaultfd",
    "prlimit64",
  ],
  "@unix-socket": ["socket"],
  "@obsolete": ["lookup_dcookie", "uselib", "nfsservctl"],
};

/**
 * The calls a filter denies, computed from the context's kept capabilities
 * and its `syscall_filter` entries (`"+@group"`/`"+name"` allows,
 * `"-@group"`/`"-name"` denies whatever the capabilities; later entries win).
 *
 * @example
 * ```ts ignore
 * deniedSyscalls([21], ["+@keyring"]); // everything but @mount, @swap, … and the keyring
 * ```
 */
export function deniedSyscalls(
  keep: readonly number[],
  entries: readonly string[],
): { deny: string[]; allowedByCapability: string[] } {
  const deny = new Set<string>();
  const allowedByCapability: string[] = [];
  for (const [name, info] of Object.entries(SYSCALLS)) {
    if (info.caps.some((c) => keep.includes(c))) {
      allowedByCapability.push(name);
    } else deny.add(name);
  }
  for (const entry of entries) {
    const names = expandSyscallEntry(entry);
    for (const n of names) {
      if (entry.startsWith("+")) deny.delete(n);
      else deny.add(n);
    }
  }
  return {
    deny: Object.keys(SYSCALLS).filter((n) => deny.has(n)),
    allowedByCapability: allowedByCapability.filter((n) => !deny.has(n)),
  };
}

/**
 * The calls a `syscall_filter` entry names; throws a `TypeError` that lists
 * the valid names for anything else.
 *
 * @example
 * ```ts ignore
 * expandSyscallEntry("-@swap"); // ["swapon", "swapoff"]
 * ```
 */
export function expandSyscallEntry(entry: string): readonly string[] {
  const sign = entry[0];
  const name = entry.slice(1);
  if (sign === "+" || sign === "-") {
    if (SYSCALL_GROUPS[name]) return SYSCALL_GROUPS[name];
    if (Object.hasOwn(SYSCALLS, name)) return [name];
  }
  throw new TypeError(
    `not a syscall_filter entry: ${
      JSON.stringify(entry)
    }; write "+" (allow) or "-" (deny) and a group (${
      Object.keys(SYSCALL_GROUPS).join(", ")
    }) or a system call the filter knows (${Object.keys(SYSCALLS).join(", ")})`,
  );
}

// Classic BPF opcodes.
const BPF_LD_W_ABS = 0x20;
const BPF_JEQ_K = 0x15;
const BPF_JGE_K = 0x35;
const BPF_RET_K = 0x06;
const BPF_JSET_K = 0x45;
const ENOSYS = 38;
/** CLONE_NEWNS, _NEWCGROUP, _NEWUTS, _NEWIPC, _NEWUSER, _NEWPID, _NEWNET, _NEWTIME. */
const CLONE_NEW_MASK = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 |
  0x10000000 | 0x20000000 | 0x40000000 | 0x00000080;
const SYS_CLONE = { x64: 56, a64: 220 };
const SECCOMP_RET_ALLOW = 0x7fff0000;
const SECCOMP_RET_ERRNO = 0x00050000;
const EPERM = 1;
const AF_UNIX = 1;
const AUDIT_ARCH_X86_64 = 0xc000003e;
const AUDIT_ARCH_AARCH64 = 0xc00000b7;
const X32_SYSCALL_BIT = 0x40000000;
const PR_SET_SECCOMP = 22;
const SECCOMP_MODE_FILTER = 2;

/** A jump's target: a label, or how many instructions to skip. */
type Target = string | number;

/**
 * The BPF program that denies `names` with EPERM (8 bytes per instruction).
 * Three entries are not whole calls: `clone3` (ENOSYS, so that the C
 * library falls back to clone, whose namespace flags are then refused),
 * `prlimit64` (refused with another process's pid and a new limit) and
 * `socket` (refused for AF_UNIX only).
 */
export function buildFilter(
  names: readonly string[],
  arch: string = Deno.build.arch,
): Uint8Array<ArrayBuffer> {
  const x64 = arch === "x86_64";
  if (!x64 && arch !== "aarch64") {
    throw new RangeError(`no system call table for ${arch}`);
  }
  const nr = (n: string) => x64 ? SYSCALLS[n]?.x64 : SYSCALLS[n]?.a64;
  const cloneNs = names.includes("clone3");
  const prlimitOthers = names.includes("prlimit64");
  const unixSockets = names.includes("socket");
  const partial = ["clone3", "prlimit64", "socket"];
  const numbers = [
    ...new Set(
      names.filter((n) => !partial.includes(n)).map(nr).filter((
        n,
      ): n is number => n !== undefined),
    ),
  ];
  const insns: { code: number; k: number; jt: Target; jf: Target }[] = [];
  const labels = new Map<string, number>();
  const emit = (code: number, k: number, jt: Target = 0, jf: Target = 0) =>
    insns.push({ code, k, jt, jf });
  // Low and high halves of args[i] in struct seccomp_data (little-endian).
  const argLo = (i: number) => 16 + 8 * i;
  emit(BPF_LD_W_ABS, 4);
  emit(BPF_JEQ_K, x64 ? AUDIT_ARCH_X86_64 : AUDIT_ARCH_AARCH64, 1);
  emit(BPF_RET_K, SECCOMP_RET_ERRNO | EPERM);
  emit(BPF_LD_W_ABS, 0);
  if (x64) emit(BPF_JGE_K, X32_SYSCALL_BIT, "EPERM");
  for (const n of numbers) emit(BPF_JEQ_K, n, "EPERM");
  if (prlimitOthers) {
    emit(BPF_JEQ_K, nr("prlimit64")!, 0, "prlimit-end");
    emit(BPF_LD_W_ABS, argLo(0)); // pid: 0 is the caller itself
    emit(BPF_JEQ_K, 0, "ALLOW");
    emit(BPF_LD_W_ABS, argLo(2)); // new_limit: NULL only reads
    emit(BPF_JEQ_K, 0, 0, "EPERM");
    emit(BPF_LD_W_ABS, argLo(2) + 4);
    emit(BPF_JEQ_K, 0, "ALLOW", "EPERM");
    labels.set("prlimit-end", insns.length);
  }
  if (unixSockets) {
    emit(BPF_JEQ_K, nr("socket")!, 0, "socket-end");
    emit(BPF_LD_W_ABS, argLo(0)); // the domain
    emit(BPF_JEQ_K, AF_UNIX, "EPERM", "ALLOW");
    labels.set("socket-end", insns.length);
  }
  if (cloneNs) {
    emit(BPF_JEQ_K, nr("clone3")!, "ENOSYS");
    emit(BPF_JEQ_K, x64 ? SYS_CLONE.x64 : SYS_CLONE.a64, 0, "ALLOW");
    emit(BPF_LD_W_ABS, argLo(0)); // the flags
    emit(BPF_JSET_K, CLONE_NEW_MASK, "EPERM", "ALLOW");
  }
  labels.set("ALLOW", insns.length);
  emit(BPF_RET_K, SECCOMP_RET_ALLOW);
  labels.set("EPERM", insns.length);
  emit(BPF_RET_K, SECCOMP_RET_ERRNO | EPERM);
  labels.set("ENOSYS", insns.length);
  if (cloneNs) emit(BPF_RET_K, SECCOMP_RET_ERRNO | ENOSYS);
  const out = new Uint8Array(insns.length * 8);
  const view = new DataView(out.buffer);
  insns.forEach(({ code, k, jt, jf }, i) => {
    const skip = (t: Target) => {
      const n = typeof t === "number" ? t : labels.get(t)! - (i + 1);
      if (!(n >= 0 && n <= 255)) throw new RangeError(`BPF jump ${n} at ${i}`);
      return n;
    };
    view.setUint16(i * 8, code, true);
    view.setUint8(i * 8 + 2, skip(jt));
    view.setUint8(i * 8 + 3, skip(jf));
    view.setUint32(i * 8 + 4, k >>> 0, true);
  });
  return out;
}

/**
 * Installs the filter that denies `names` on the calling thread (needs
 * no_new_privs or CAP_SYS_ADMIN). Irreversible.
 *
 * @example
 * ```ts ignore
 * installFilter(["ptrace", "bpf"]);
 * ```
 */
export function installFilter(names: readonly string[]): void {
  installProgram(buildFilter(names));
}

/** Installs a BPF `program` as a seccomp filter of the calling thread. */
function installProgram(program: Uint8Array<ArrayBuffer>): void {
  // struct sock_fprog { unsigned short len; struct sock_filter *filter; }
  const fprog = new BigUint64Array(2);
  fprog[0] = BigInt(program.length / 8);
  fprog[1] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(program)));
  check(
    "prctl(PR_SET_SECCOMP)",
    openLibc().prctl(
      PR_SET_SECCOMP,
      BigInt(SECCOMP_MODE_FILTER),
      BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(fprog))),
      0n,
      0n,
    ),
  );
}

const S_ISUID_GID = 0o6000;
/** O_CREAT | __O_TMPFILE: the flags with which open and openat take a mode. */
const O_CREAT_ANY = 0o100 | 0o20000000;

/** Where each call that sets a mode has it: [x86_64 nr, aarch64 nr, mode arg, flags arg]. */
const MODE_CALLS: readonly [number | undefined, number, number, number?][] = [
  [90, -1, 1], // chmod
  [91, 52, 1], // fchmod
  [268, 53, 2], // fchmodat
  [452, 452, 2], // fchmodat2
  [85, -1, 1], // creat
  [83, -1, 1], // mkdir
  [258, 34, 2], // mkdirat
  [133, -1, 1], // mknod
  [259, 33, 2], // mknodat
  [2, -1, 2, 1], // open (mode, flags)
  [257, 56, 3, 2], // openat
];
/** openat2 carries its mode in memory the filter cannot read: ENOSYS, so that the C library uses openat. */
const SYS_OPENAT2 = 437;
/** io_uring's operations (IORING_OP_OPENAT with a mode) never reach seccomp. */
const SYS_IO_URING_SETUP = 425;

/**
 * The BPF program that refuses setuid and setgid bits (EPERM) in every call
 * that sets a file's mode (systemd's RestrictSUIDSGID): chmod, fchmod,
 * fchmodat(2), creat, mkdir(at), mknod(at), and open/openat with O_CREAT or
 * O_TMPFILE; openat2 gets ENOSYS, and io_uring_setup EPERM (its operations
 * never reach seccomp). Another architecture, and x32, get EPERM.
 *
 * @example
 * ```ts ignore
 * buildSuidFilter("x86_64").length % 8; // 0
 * ```
 */
export function buildSuidFilter(
  arch: string = Deno.build.arch,
): Uint8Array<ArrayBuffer> {
  const x64 = arch === "x86_64";
  if (!x64 && arch !== "aarch64") {
    throw new RangeError(`no system call table for ${arch}`);
  }
  type Jump = number | "allow" | "deny" | "enosys" | "next";
  const code: [number, Jump, Jump, number][] = [];
  const blocks: [number, Jump, Jump, number][][] = [];
  const arg = (i: number) => 16 + 8 * i; // low half of args[i]
  for (const [nx, na, mode, flags] of MODE_CALLS) {
    const nr = x64 ? nx : na;
    if (nr === undefined || nr < 0) continue;
    const b: [number, Jump, Jump, number][] = [
      [BPF_JEQ_K, 0, "next", nr],
    ];
    if (flags !== undefined) {
      b.push([BPF_LD_W_ABS, 0, 0, arg(flags)]);
      b.push([BPF_JSET_K, 0, "allow", O_CREAT_ANY]);
    }
    b.push([BPF_LD_W_ABS, 0, 0, arg(mode)]);
    b.push([BPF_JSET_K, "deny", "allow", S_ISUID_GID]);
    blocks.push(b);
  }
  // Another architecture (i386's int 0x80) or x32 is refused here too: the
  // main filter, which also refuses them, is not installed when its deny
  // list is empty.
  code.push([BPF_LD_W_ABS, 0, 0, 4]);
  code.push([
    BPF_JEQ_K,
    0,
    "deny",
    x64 ? AUDIT_ARCH_X86_64 : AUDIT_ARCH_AARCH64,
  ]);
  code.push([BPF_LD_W_ABS, 0, 0, 0]);
  if (x64) code.push([BPF_JGE_K, "deny", 0, X32_SYSCALL_BIT]);
  code.push([BPF_JEQ_K, "enosys", 0, SYS_OPENAT2]);
  code.push([BPF_JEQ_K, "deny", 0, SYS_IO_URING_SETUP]);
  // Each block starts with a jeq on the number, which A holds again only
  // if no load came between: reload it at the start of every block.
  const starts: number[] = [];
  for (const b of blocks) {
    starts.push(code.length);
    code.push([BPF_LD_W_ABS, 0, 0, 0], ...b);
  }
  const end = code.length;
  code.push([BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW]);
  code.push([BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM]);
  code.push([BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | ENOSYS]);
  const target = { allow: end, deny: end + 1, enosys: end + 2 };
  const resolve = (i: number, j: Jump): number => {
    if (typeof j === "number") return j;
    if (j === "next") {
      const next = starts.find((s) => s > i) ?? end;
      return next - (i + 1);
    }
    return target[j] - (i + 1);
  };
  const out = new Uint8Array(code.length * 8);
  const view = new DataView(out.buffer);
  code.forEach(([op, jt, jf, k], i) => {
    const t = resolve(i, jt);
    const f = resolve(i, jf);
    if (t > 255 || f > 255) throw new RangeError("BPF jump too far");
    view.setUint16(i * 8, op, true);
    view.setUint8(i * 8 + 2, t);
    view.setUint8(i * 8 + 3, f);
    view.setUint32(i * 8 + 4, k >>> 0, true);
  });
  return out;
}

/**
 * Installs {@linkcode buildSuidFilter}'s program on the calling thread (needs
 * no_new_privs or CAP_SYS_ADMIN). Irreversible.
 *
 * @example
 * ```ts ignore
 * installSuidFilter();
 * ```
 */
export function installSuidFilter(): void {
  installProgram(buildSuidFilter());
}
