/**
 * The per-context kernel sandbox: what the context's settings say becomes
 * Landlock rules (filesystem paths, TCP ports, signal and abstract-socket
 * scoping) and a seccomp filter, applied by the daemon's first stage on the
 * main thread right before the `execve` of the serving stage, so that the
 * serving stage, all its threads and every program it starts inherit them.
 *
 * {@linkcode planConfinement} is pure (the CLI shows the plan);
 * {@linkcode prepareConfinement} builds the ruleset while the first stage may
 * still open every path, and its `apply()` confines the thread after the
 * privilege drop (no_new_privs is set by then).
 *
 * @module
 */

import {
  type FsAccess,
  landlockAbi,
  missingWritePathDirectory,
  RedirectablePath,
  Ruleset,
  type RulesetSpec,
} from "../caps/_landlock.ts";
import {
  check,
  cString,
  describeDescriptor,
  openLibc,
  readFileViaLibc,
  readLinkViaLibc,
  SystemCallError,
} from "../caps/_ffi.ts";
import {
  deniedSyscalls,
  installFilter,
  installSuidFilter,
} from "../caps/_seccomp.ts";
import type { PermissionsSetting } from "../core/config.ts";
import { type Preflight, StartError } from "./preflight.ts";

/** How strictly the sandbox is applied. */
export type ConfinementMode = "required" | "best-effort" | "off";

/** The rights that change the filesystem (all handled where writes are confined). */
export const WRITE_ACCESS: readonly FsAccess[] = [
  "write_file",
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
  "truncate",
];
/**
 * The rights a write rule grants: every one of {@linkcode WRITE_ACCESS} but
 * `make_sym`, `make_block` and `make_char`. No confined daemon makes a
 * symbolic link (nor renames one into place): a uid-0 daemon's link would be
 * root's, in a root-owned directory, which is what the next start trusts
 * when it opens a path for its rules (`openUnredirected()`); one planted at
 * a write path that did not exist yet led the next daemon's rule and writes
 * to another application's config (found by a review). Nor a device node:
 * with CAP_MKNOD, a block device node in a write path is the host's disk for
 * whoever may open it, past Landlock and the read-only mounts (a seventeenth
 * review wrote a root-only file through one).
 */
export const WRITE_GRANTED: readonly FsAccess[] = WRITE_ACCESS.filter((a) =>
  a !== "make_sym" && a !== "make_block" && a !== "make_char"
);
/** The rights that read or execute. */
export const READ_ACCESS: readonly FsAccess[] = [
  "read_file",
  "read_dir",
  "execute",
];

/** What the serving stage itself needs to read, when reads are confined. */
const SYSTEM_READ = [
  "/usr",
  "/bin",
  "/sbin",
  "/lib",
  "/lib64",
  "/etc/ld.so.cache",
  "/etc/localtime",
  "/etc/nsswitch.conf",
  "/etc/passwd",
  "/etc/group",
  "/etc/hosts",
  "/etc/host.conf",
  "/etc/resolv.conf",
  "/etc/gai.conf",
  "/etc/ssl/certs",
  "/etc/ssl/openssl.cnf",
  "/proc",
  "/sys/devices/system/cpu",
  "/sys/fs/cgroup",
  "/dev/null",
  "/dev/zero",
  "/dev/full",
  "/dev/random",
  "/dev/urandom",
];
/** What the serving stage (and its programs) may always write. */
const SYSTEM_WRITE = ["/dev/null"];

const CAP_FSETID = 4;
const S_IFMT = 0o170000;
const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFSOCK = 0o140000;
/** `statfs.f_type` of the kernel's pipe filesystem (anonymous pipes). */
const PIPEFS_MAGIC = 0x50495045;
/** What prctl(PR_SET_SECCOMP) fails with on a kernel without seccomp filters. */
const EINVAL = 22;
const CAP_KILL = 5;
const CAP_SYS_ADMIN = 21;

/** One path rule of a plan. */
export interface PathRule {
  /** The path, as it will be opened. */
  path: string;
  /** `"read"` (read, list, execute) or `"write"` (read and change). */
  access: "read" | "write";
  /** Why it is there. */
  why: string;
}

/** What a context's sandbox consists of (before the kernel is asked). */
export interface ConfinementPlan {
  /** The mode the plan is applied in. */
  mode: ConfinementMode;
  /** Landlock filesystem rules; `undefined`: the filesystem is not confined. */
  fs?: {
    /** Whether writes are confined (a scoped or no `write` list). */
    writes: boolean;
    /** Whether reads are confined too (a scoped `read` list). */
    reads: boolean;
    /** Paths below which access is allowed. */
    rules: PathRule[];
  };
  /** TCP ports that may be bound and connected to; `undefined`: not confined. */
  tcpPorts?: number[];
  /** Landlock scopes. */
  scope: ("signal" | "abstract_unix_socket")[];
  /** System calls that fail with EPERM. */
  deny: string[];
  /** Calls of the default deny list allowed because a capability is kept. */
  allowedByCapability: string[];
  /**
   * Whether setuid and setgid bits are refused in every call that sets a
   * mode (unless the context keeps `CAP_FSETID`).
   */
  noSuid?: boolean;
  /** What is left unconfined on purpose, and why. */
  notes: string[];
}

/** The facts stage 1 knows; the CLI leaves them out and gets placeholders. */
export interface ConfinementFacts {
  codeRoots?: readonly string[];
  configFiles?: readonly string[];
  denoConfig?: string;
  denoDir?: string;
  execPath?: string;
  keeperFifo?: string;
  libcap?: string;
}

/** The settings the plan depends on. */
export interface ConfinementSettings {
  capabilities: readonly number[];
  permissions: PermissionsSetting;
  confinement: ConfinementMode;
  syscallFilter: readonly string[];
}

/** The TCP port an `--allow-net` value names, or undefined (any port). */
export function netPort(value: string): number | undefined {
  const m = /^(?:\[[^\]]*\]|[^:\[\]]*):(\d{1,5})$/.exec(value);
  if (!m) return undefined;
  const port = Number(m[1]);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/**
 * The sandbox a context's settings ask for. Pure: nothing is opened.
 *
 * @example
 * ```ts ignore
 * planConfinement({ capabilities: [], permissions: { write: ["/var/lib/x"] },
 *   confinement: "best-effort", syscallFilter: [] }, {});
 * ```
 */
export function planConfinement(
  s: ConfinementSettings,
  facts: ConfinementFacts,
): ConfinementPlan {
  const plan: ConfinementPlan = {
    mode: s.confinement,
    scope: [],
    deny: [],
    allowedByCapability: [],
    notes: [],
  };
  if (s.confinement === "off") {
    plan.notes.push(
      'confinement = "off": no Landlock rules, no seccomp filter',
    );
    return plan;
  }
  const { deny, allowedByCapability } = deniedSyscalls(
    s.capabilities,
    s.syscallFilter,
  );
  plan.deny = deny;
  plan.allowedByCapability = allowedByCapability;
  // A file the daemon made setuid (a uid-0 daemon owns root's files) would
  // run as its owner for any user who reaches it.
  plan.noSuid = !s.capabilities.includes(CAP_FSETID);
  plan.scope.push("abstract_unix_socket");
  const p = s.permissions;
  const all = p === "all";
  if (!s.capabilities.includes(CAP_KILL) && !all && p.run?.length !== 0) {
    plan.scope.push("signal");
  } else {
    plan.notes.push(
      "signals are not scoped: the context keeps CAP_KILL, or may run any program",
    );
  }
  if (all) {
    plan.notes.push(
      'permissions "all": no Landlock filesystem or TCP rules (only the seccomp filter and abstract-socket scoping)',
    );
    return plan;
  }
  const place = (value: string | undefined, label: string) =>
    value ?? `<${label}>`;
  const rules: PathRule[] = [];
  // Landlock refuses every mount change to a thread whose domain handles
  // file access, and a context that keeps CAP_SYS_ADMIN is there to mount
  // (ip netns, ip -n) and could not be confined by paths anyway.
  const sysAdmin = s.capabilities.includes(CAP_SYS_ADMIN);
  if (sysAdmin) {
    plan.notes.push(
      "the context keeps CAP_SYS_ADMIN: no Landlock filesystem rules (Landlock would refuse every mount, which such a context needs)",
    );
  }
  const writesConfined = !sysAdmin &&
    (p.write === undefined || p.write.length > 0);
  const readsConfined = !sysAdmin && p.read !== undefined &&
    p.read.length > 0;
  if (!writesConfined && !sysAdmin) {
    plan.notes.push("unscoped write permission: writes are not confined");
  }
  if (!readsConfined && !sysAdmin) {
    plan.notes.push(
      "no scoped read list: reads are not confined by Landlock (Deno's --allow-read still applies to the daemon itself)",
    );
  }
  if (writesConfined) {
    for (const w of p.write ?? []) {
      rules.push({ path: w, access: "write", why: "permissions.write" });
    }
    for (const w of SYSTEM_WRITE) {
      rules.push({ path: w, access: "write", why: "system" });
    }
    rules.push({
      path: place(facts.keeperFifo, "keeper FIFO"),
      access: "write",
      why: "the process keeper's FIFO",
    });
  }
  if (readsConfined) {
    for (const r of p.read ?? []) {
      rules.push({ path: r, access: "read", why: "permissions.read" });
    }
    for (const r of p.run ?? []) {
      rules.push({ path: r, access: "read", why: "permissions.run" });
    }
    for (const r of facts.codeRoots ?? ["<code roots>"]) {
      rules.push({ path: r, access: "read", why: "the daemon's code" });
    }
    rules.push(
      {
        path: place(facts.denoDir, "DENO_DIR"),
        access: "read",
        why: "the cache",
      },
      {
        path: place(facts.execPath, "deno binary"),
        access: "read",
        why: "the runtime",
      },
    );
    for (
      const f of [
        ...(facts.configFiles ?? []),
        ...(facts.denoConfig ? [facts.denoConfig] : []),
        ...(facts.libcap?.startsWith("/") ? [facts.libcap] : []),
      ]
    ) {
      rules.push({ path: f, access: "read", why: "configuration" });
    }
    for (const r of SYSTEM_READ) {
      rules.push({ path: r, access: "read", why: "system" });
    }
    if (!writesConfined) {
      plan.notes.push(
        "reads are confined but writes are not: every path stays writable",
      );
    }
  }
  if (writesConfined || readsConfined) {
    plan.fs = { writes: writesConfined, reads: readsConfined, rules };
    if (!plan.deny.includes("socket")) {
      plan.notes.push(
        "unix sockets are allowed (syscall_filter): a process outside can hand the daemon descriptors of the host's mounts (SCM_RIGHTS), through which owner and mode change past the read-only mounts, and root's services (systemd, D-Bus) act for a uid-0 daemon",
      );
    }
    if (!plan.deny.includes("open_by_handle_at")) {
      plan.notes.push(
        "open_by_handle_at is allowed (syscall_filter): a file handle opens any file of a filesystem the daemon can reach, past the Landlock rules and the read-only mounts",
      );
    }
  }
  if (p.net === undefined) {
    plan.tcpPorts = [];
  } else if (p.net.length === 0) {
    plan.notes.push("unscoped net permission: TCP is not confined");
  } else {
    const ports = p.net.map(netPort);
    if (ports.every((x) => x !== undefined)) {
      plan.tcpPorts = [...new Set(ports as number[])].sort((a, b) => a - b);
    } else {
      plan.notes.push(
        `net permission ${
          JSON.stringify(p.net)
        } names a host without a port: TCP ports are not confined (write host:port to confine them)`,
      );
    }
  }
  return plan;
}

/**
 * What of `plan` a kernel with Landlock ABI `abi`, seccomp or not, and
 * `fs.protected_hardlinks` on or not, cannot enforce.
 *
 * @example
 * ```ts ignore
 * gaps(plan, 3, true, true); // ["Landlock ABI 3 < 4: TCP ports are not confined", …]
 * ```
 */
export function gaps(
  plan: ConfinementPlan,
  abi: number,
  seccomp: boolean,
  hardlinks: boolean = hardlinksProtected(),
): string[] {
  const out: string[] = [];
  if (plan.fs && abi >= 1 && !hardlinks) {
    out.push(
      "fs.protected_hardlinks is not 1: a user who may write below an allowed directory can hard-link any file there, root's included, and the rule then covers it; set fs.protected_hardlinks = 1 (sysctl)",
    );
  }
  if (plan.fs && abi < 1) {
    out.push(
      "Landlock is not available: filesystem rules are not enforced by the kernel",
    );
  }
  if (plan.fs && abi >= 1 && abi < 2) {
    out.push(
      "Landlock ABI < 2: files can never be renamed or linked across directories",
    );
  }
  if (plan.fs && abi >= 1 && abi < 3) {
    out.push("Landlock ABI < 3: truncation is not confined");
  }
  if (plan.tcpPorts && abi < 4) {
    out.push(`Landlock ABI ${abi} < 4: TCP ports are not confined`);
  }
  if (plan.scope.length && abi < 6) {
    out.push(
      `Landlock ABI ${abi} < 6: signals and abstract unix sockets are not scoped`,
    );
  }
  if (plan.deny.length && !seccomp) {
    out.push("seccomp filters are not available: no system call is denied");
  }
  return out;
}

/**
 * The plan of `settings` as the CLI shows it (paths stage 1 learns are
 * placeholders), with what this kernel cannot enforce; `kernel` says
 * "unknown" when Landlock could not be queried (no FFI permission).
 *
 * @example
 * ```ts ignore
 * const { plan, unenforced } = confinementReport(ctx.settings());
 * ```
 */
export function confinementReport(
  settings: ConfinementSettings,
): { plan: ConfinementPlan; landlockAbi?: number; unenforced: string[] } {
  const plan = planConfinement(settings, {});
  let abi: number | undefined;
  try {
    abi = landlockAbi();
  } catch {
    return {
      plan,
      unenforced: [
        "unknown: Landlock could not be queried (run with --allow-ffi)",
      ],
    };
  }
  return {
    plan,
    landlockAbi: abi,
    unenforced: plan.mode === "off" ? [] : unenforced(plan, abi),
  };
}

/**
 * What of `plan` the running kernel cannot enforce (empty: everything).
 *
 * @example
 * ```ts ignore
 * unenforced(plan); // ["Landlock ABI 3 < 4: TCP ports are not confined"]
 * ```
 */
export function unenforced(
  plan: ConfinementPlan,
  abi: number = landlockAbi(),
): string[] {
  return gaps(plan, abi, seccompAvailable());
}

/**
 * Whether the kernel refuses hard links to files the linking user does not
 * own (`fs.protected_hardlinks = 1`; most distributions set it).
 */
function hardlinksProtected(): boolean {
  try {
    const text = new TextDecoder().decode(
      readFileViaLibc("/proc/sys/fs/protected_hardlinks", 64),
    );
    return text.trim() === "1";
  } catch {
    return false;
  }
}

function seccompAvailable(): boolean {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    return /\nSeccomp:\t/.test(status);
  } catch {
    return true;
  }
}

/** A ruleset built before the drop, applied after it. */
export interface PreparedConfinement {
  /** The plan. */
  plan: ConfinementPlan;
  /** What the kernel cannot enforce (best-effort only; required threw). */
  unenforced: string[];
  /** Confines the calling thread: Landlock, then the seccomp filter. */
  apply(): void;
}

/**
 * Builds the Landlock ruleset of `plan` (opening its paths now). With mode
 * "required", throws an `Error` naming what the kernel cannot enforce.
 *
 * @example
 * ```ts ignore
 * const c = prepareConfinement(plan);
 * dropPrivileges(...);
 * c.apply();
 * execve(...);
 * ```
 */
export function prepareConfinement(
  plan: ConfinementPlan,
  abi: number = landlockAbi(),
): PreparedConfinement {
  if (plan.mode === "off") {
    return { plan, unenforced: [], apply() {} };
  }
  const missing: string[] = [];
  const required = plan.mode === "required";
  const fail = (what: string) => {
    if (required) {
      throw new Error(
        `confinement = "required" but ${what}; use a kernel with Landlock (ABI 6 or later, lsm=landlock) and seccomp, or set confinement = "best-effort"`,
      );
    }
    missing.push(what);
  };
  for (const gap of gaps(plan, abi, true)) fail(gap);
  let ruleset: Ruleset | undefined;
  // The first layer's scopes again: a signal from the daemon then cannot
  // reach its keeper, which is in the first layer only (found by a review:
  // a command killed the keeper, and nothing killed what had escaped its
  // group when the daemon ended). The parent-death signal does not reach
  // it either: the keeper looks for the daemon in /proc (see _keeper.ts).
  const scope = plan.scope;
  // A ruleset that handles nothing this ABI knows is refused (ENOMSG): a
  // context without file rules on a kernel before ABI 4 (TCP) or 6 (scopes).
  const handled = plan.fs !== undefined ||
    (plan.tcpPorts !== undefined && abi >= 4) || (scope.length > 0 && abi >= 6);
  if (abi >= 1 && handled) {
    const spec: RulesetSpec = {
      fs: plan.fs
        ? [
          ...(plan.fs.writes ? WRITE_ACCESS : []),
          ...(plan.fs.reads ? READ_ACCESS : []),
        ]
        : [],
      net: plan.tcpPorts !== undefined,
      scope,
    };
    ruleset = new Ruleset(spec, abi);
    try {
      for (const rule of plan.fs?.rules ?? []) {
        const access = rule.access === "write"
          ? [...READ_ACCESS, ...WRITE_GRANTED]
          : READ_ACCESS;
        // A path a non-root user could have redirected gets no rule (its
        // link's target would get it): the kernel refuses access there.
        const redirected = (error: RedirectablePath, path = rule.path) =>
          missing.push(
            `${path}: ${error.message}, so a rule would follow it: no ${rule.access} rule for it (the kernel refuses access there; make the path and every directory on the way to it root-owned and not group- or world-writable)`,
          );
        try {
          ruleset.allowPath(rule.path, access);
        } catch (error) {
          if (error instanceof RedirectablePath) {
            redirected(error);
            continue;
          }
          if (!(error instanceof Deno.errors.NotFound)) throw error;
          if (rule.why === "system") continue;
          // A file the context may create: its directory (Landlock cannot
          // name a path that does not exist yet).
          const parent = missingWritePathDirectory(rule.path);
          if (rule.access === "write" && parent !== "/") {
            try {
              ruleset.allowPath(parent, access);
              missing.push(
                `${rule.path} does not exist: its directory ${parent} is writable instead`,
              );
              continue;
            } catch (error) {
              if (error instanceof RedirectablePath) {
                redirected(error, parent);
                continue;
              }
              // else the parent is missing too
            }
          }
          missing.push(
            `${rule.path} does not exist: no ${rule.access} rule for it (the kernel refuses access there)`,
          );
        }
      }
      for (const port of plan.tcpPorts ?? []) {
        ruleset.allowPort(port, ["bind_tcp", "connect_tcp"]);
      }
    } catch (error) {
      ruleset.close();
      throw error;
    }
  }
  return {
    plan,
    unenforced: missing,
    apply() {
      ruleset?.restrictSelf();
      // Only a kernel without seccomp filters (EINVAL) is a kernel that
      // cannot: any other failure (ENOMEM: the filter's memory is charged
      // to the caller's cgroup) refuses the start, best-effort or not.
      const install = (what: string, f: () => void) => {
        try {
          f();
        } catch (error) {
          const unsupported = error instanceof SystemCallError &&
            error.errno === EINVAL;
          if (required || !unsupported) {
            throw new StartError(
              `the ${what} could not be installed: ${(error as Error).message}${
                unsupported
                  ? ""
                  : "; this kernel has seccomp, so the daemon does not start without it"
              }`,
              { cause: error },
            );
          }
          missing.push(
            `the ${what} could not be installed: ${(error as Error).message}`,
          );
        }
      };
      if (plan.deny.length) {
        install("seccomp filter", () => installFilter(plan.deny));
      }
      if (plan.noSuid) {
        install("seccomp filter against setuid files", installSuidFilter);
      }
    },
  };
}

/**
 * Lines that describe `plan` for `privsep inspect`.
 *
 * @example
 * ```ts ignore
 * describePlan(plan).forEach((l) => console.log(l));
 * ```
 */
export function describePlan(plan: ConfinementPlan): string[] {
  const lines = [`confinement ${plan.mode}`];
  if (plan.mode === "off") return lines;
  if (plan.fs) {
    lines.push(
      `  landlock fs: ${
        [
          ...(plan.fs.writes ? ["writes confined (no symbolic links)"] : []),
          ...(plan.fs.reads ? ["reads confined"] : []),
        ].join(", ")
      }; allowed:`,
    );
    for (const r of plan.fs.rules) {
      lines.push(`    ${r.access.padEnd(5)} ${r.path}  (${r.why})`);
    }
  } else lines.push("  landlock fs: not confined");
  lines.push(
    plan.tcpPorts === undefined
      ? "  landlock tcp: not confined"
      : plan.tcpPorts.length
      ? `  landlock tcp: bind/connect only ports ${plan.tcpPorts.join(", ")}`
      : "  landlock tcp: no bind, no connect",
  );
  lines.push(`  landlock scope: ${plan.scope.join(", ") || "none"}`);
  const partly: Record<string, string> = {
    clone3: "clone3 (ENOSYS; clone with a CLONE_NEW* flag: EPERM)",
    prlimit64: "prlimit64 (another process's limits)",
    socket: "socket (AF_UNIX)",
  };
  lines.push(
    `  seccomp: EPERM for ${
      plan.deny.map((n) => partly[n] ?? n).join(", ") || "nothing"
    }`,
  );
  if (plan.allowedByCapability.length) {
    lines.push(
      `  seccomp: allowed by kept capabilities: ${
        plan.allowedByCapability.join(", ")
      }`,
    );
  }
  for (const n of plan.notes) lines.push(`  note: ${n}`);
  return lines;
}

/**
 * Refuses a channel (descriptors 0-2) that is not an anonymous pipe or
 * `/dev/null`, and returns those that are `/dev/null` (which `apply()`
 * opens anew: on the host's `/dev`, a uid-0 daemon could change its mode). A
 * socket's other end could hand the daemon descriptors of its own mounts
 * (`SCM_RIGHTS`), as a unix socket the daemon made itself could, which the
 * seccomp filter refuses unless `sockets` (the context allows them). Any
 * other descriptor is one of a file on the caller's (the host's) mounts:
 * through `/proc/self/fd/<n>`, past the read-only mounts, the daemon could
 * change its owner or mode, and of every file below it for a directory.
 * privsep's callers give it pipes; sudo hands 0-2 through as they are.
 */
function checkChannel(sockets: boolean): number[] {
  const devNull: number[] = [];
  for (const fd of [0, 1, 2]) {
    // From the descriptor itself: its path may be unreadable (longer than
    // a page: readlink fails) or name another file by now.
    let info: ReturnType<typeof describeDescriptor>;
    try {
      info = describeDescriptor(fd);
    } catch (error) {
      throw new StartError(
        `the daemon's descriptor ${fd} cannot be examined (${
          (error as Error).message
        }); start the daemon through privsep's client, which gives it pipes`,
      );
    }
    if (info === undefined) continue; // not open: nothing comes through it
    const type = info.mode & S_IFMT;
    if (type === S_IFIFO && info.fsType === PIPEFS_MAGIC) continue;
    if (type === S_IFCHR && info.rdev[0] === 1 && info.rdev[1] === 3) {
      devNull.push(fd);
      continue;
    }
    let target = "";
    try {
      target = readLinkViaLibc(`/proc/self/fd/${fd}`);
    } catch (error) {
      target = `unnamed: ${(error as Error).message}`;
    }
    const shown = JSON.stringify(target).slice(1, -1);
    if (type === S_IFSOCK) {
      if (sockets) continue;
      throw new StartError(
        `the daemon's descriptor ${fd} is a socket (${shown}): the process at its other end could pass the daemon descriptors of its own (SCM_RIGHTS), which the context refuses; start the daemon with pipes (Deno.Command's "piped", as privsep's own callers do), or allow unix sockets with syscall_filter = ["+socket"]`,
      );
    }
    throw new StartError(
      `the daemon's descriptor ${fd} is ${shown} (not a pipe): through /proc/self/fd/${fd} the daemon could change the owner or mode of that file on the caller's mounts, past its sandbox; start the daemon through privsep's client, which gives it pipes`,
    );
  }
  return devNull;
}

/** Replaces descriptor `fd` with `/dev/null` opened here. */
function reopenDevNull(fd: number): void {
  const libc = openLibc();
  const O_RDWR = 2;
  const O_CLOEXEC = 0o2000000;
  const opened = libc.open(cString("/dev/null"), O_RDWR | O_CLOEXEC);
  check("open(/dev/null)", opened);
  try {
    // dup2 leaves the copy without close-on-exec: it crosses the exec.
    check(`dup2(/dev/null, ${fd})`, libc.dup2(opened, fd));
  } finally {
    libc.close(opened);
  }
}

/**
 * Stage 1's call site, in three steps.
 *
 * 1. `confineFor()` plans the context's sandbox; a root first stage
 *    (CAP_SYS_ADMIN, so no no_new_privs needed yet) confines its thread at
 *    once with a first Landlock layer that holds only the scopes, so that
 *    the process keeper it starts next is inside that layer: the keeper
 *    signals nothing outside the daemon.
 * 2. `prepare(keeperFifo)` builds the second layer (paths, ports and the
 *    scopes again) while the thread may still open every path.
 * 3. `apply()`, after the drop, restricts the thread to that layer, so that
 *    nothing of the daemon can signal the keeper (nor does its parent-death
 *    signal reach it: the keeper looks in /proc, see _keeper.ts), and
 *    installs the seccomp filter; each part the kernel cannot enforce adds
 *    `--unconfined=<what>` to the serving stage's arguments (it logs them).
 *
 * A "required" sandbox the kernel cannot enforce is a {@linkcode StartError}.
 *
 * @example
 * ```ts ignore
 * const confine = confineFor(settings, facts, serveArgv);
 * const fifo = await startKeeper(uid, gid);
 * confine.prepare(fifo);
 * dropPrivileges(plan);
 * confine.apply();
 * execve(...);
 * ```
 */
export function confineFor(
  settings: ConfinementSettings & { libcap?: string },
  facts: Preflight,
  serveArgv: string[],
): { prepare(keeperFifo?: string): void; apply(): void } {
  const planWith = (keeperFifo?: string) =>
    planConfinement(settings, {
      codeRoots: facts.codeRoots,
      configFiles: facts.configFiles,
      denoConfig: facts.config,
      denoDir: facts.denoDir,
      execPath: Deno.execPath(),
      keeperFifo,
      libcap: settings.libcap,
    });
  const early = planWith();
  const devNull = early.mode === "off"
    ? []
    : checkChannel(!early.deny.includes("socket"));
  const wrap = <T>(what: string, f: () => T): T => {
    try {
      return f();
    } catch (error) {
      throw new StartError(
        `${what}${(error as Error).message}`,
        { cause: error },
      );
    }
  };
  if (
    facts.uid === 0 && early.mode !== "off" && early.scope.length &&
    landlockAbi() >= 6
  ) {
    wrap("the kernel sandbox could not be applied: ", () => {
      new Ruleset({ fs: [], net: false, scope: early.scope }).restrictSelf();
    });
  }
  let prepared: PreparedConfinement | undefined;
  return {
    prepare(keeperFifo?: string) {
      const plan = planWith(keeperFifo);
      prepared = wrap("", () => prepareConfinement(plan));
    },
    apply() {
      // In the daemon's own mount namespace by now (read-only /dev).
      for (const fd of devNull) wrap("", () => reopenDevNull(fd));
      const p = prepared ?? wrap("", () => prepareConfinement(early));
      wrap("the kernel sandbox could not be applied: ", () => p.apply());
      for (const what of p.unenforced) {
        serveArgv.push(`--unconfined=${what}`);
      }
    },
  };
}
