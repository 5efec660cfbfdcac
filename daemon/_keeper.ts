/**
 * The daemon's process keeper (stage 1 side). Stage 1, still root, starts a
 * fixed bash script as the context's user with no capabilities and
 * `PR_SET_PDEATHSIG(SIGTERM)` pointing at the daemon (set by `setpriv`, after
 * its uid change, which would clear it). Where the daemon's own Landlock
 * layer scopes signals, neither the daemon nor its commands can signal the
 * keeper (which is in the first layer only), nor does the parent-death
 * signal reach it: the keeper also looks at the daemon every half second
 * (its pid, state and start time in /proc). The serving stage tells it, through
 * a FIFO only it may write, which process groups its commands lead
 * (`track`), which to signal (`TERM`, `KILL`: the serving stage may not
 * signal a group itself, `Deno.kill` needs an unscoped `--allow-run`) and
 * which command finished (`done`: what is left of its group is killed).
 * When the daemon ends, however it ends (SIGKILL included), the kernel sends
 * the keeper SIGTERM and it kills every group still tracked. A SIGTERM while
 * the daemon lives (systemd stopping the unit signals every process of it)
 * lets the daemon leave with its calls' grace first: the keeper kills it and
 * all it started 3-4 s later if it has not (at the next look, ~4.5 s at
 * most).
 *
 * A process that leaves its group (setsid, setpgid) is caught only by the
 * daemon's cgroup, where there is one (`_cgroup.ts`): the keeper then kills
 * the whole cgroup too, and `sweep`s the orphans out of it when no call
 * runs. See docs/security/process_tree.md.
 *
 * @module
 */

import { KEEPER_RUN_DIR } from "../core/_write_above.ts";
import {
  check,
  cString,
  errno,
  openLibc,
  readFileViaLibc,
  strerror,
} from "../caps/_ffi.ts";
import { StartError } from "./preflight.ts";
import { procStat } from "./_proc_stat.ts";
import {
  delegatedMessage,
  type KeeperHome,
  KeeperHomeError,
  writeFile,
} from "./_cgroup.ts";

const O_WRONLY = 0o1;
const O_RDWR = 0o2;
const O_CREAT = 0o100;
const O_EXCL = 0o200;
const O_RDONLY = 0;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const O_NOFOLLOW = 0o400000;
const EEXIST = 17;
const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_EMPTY_PATH = 0x1000;
const STATX_BASIC_STATS = 0x7ff;
const S_IFMT = 0o170000;
const S_IFIFO = 0o010000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

/**
 * Where the per-daemon FIFOs live. It and every `tree-<pid>` directory in it
 * stay root-owned: only the FIFO itself belongs to the context's user, so
 * that no process of that user can replace its name (with a symlink to a
 * root-only file, say) between the uses of the path.
 */
const RUN_DIR = KEEPER_RUN_DIR;
/** The programs the keeper needs. */
export const SETPRIV = "/usr/bin/setpriv";
/** The keeper's shell: bash, whose `read -t` waits without a child process. */
export const KEEPER_SHELL = "/bin/bash";

/** RLIM_INFINITY. */
const UNLIMITED = 0xffff_ffff_ffff_ffffn;
const RLIMIT_CPU = 0;
const RLIMIT_RTPRIO = 14;
const RLIMIT_RTTIME = 15;

/**
 * Runs `start` (the keeper's spawn) with what the keeper should start with,
 * whatever the caller's (sudo hands it through): its scheduling, then its
 * resource limits. The serving stage keeps the caller's.
 */
function withKeeperLimits<T>(start: () => T): T {
  return withKeeperScheduling(() => withKeeperRlimits(start));
}

/** The keeper's timer slack (ns): the kernel's default. */
const KEEPER_TIMER_SLACK = 50_000n;
const PR_SET_TIMERSLACK = 29;

/**
 * Runs `start` (the keeper's spawn) on this thread with the kernel's default
 * timer slack, SCHED_OTHER, nice 0 and every CPU, then puts this thread's
 * back (the serving stage keeps the caller's). All four are per thread and
 * inherited by a child, through sudo too: with the caller's 60 s of timer
 * slack, the keeper's half-second look at the daemon took 58 s (found by a
 * review). The slack is always reset; the others where this root may (they
 * only slow the keeper down, as a daemon that renices it can: see
 * docs/security/process_tree.md).
 */
function withKeeperScheduling<T>(start: () => T): T {
  const c = libc();
  // PR_GET_TIMERSLACK through syscall(): the C library's prctl returns an
  // int, which a slack above 2.1 s would overflow.
  const slack = BigInt(
    openLibc().syscall(
      Deno.build.arch === "aarch64" ? 167n : 157n,
      30n,
      0n,
      0n,
    ),
  );
  const stat = new TextDecoder().decode(
    readFileViaLibc("/proc/thread-self/stat"),
  );
  const nice = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
  const policy = c.sched_getscheduler(0);
  const param = new Uint8Array(4);
  c.sched_getparam(0, param);
  const cpus = new Uint8Array(128);
  const hasCpus = c.sched_getaffinity(0, BigInt(cpus.length), cpus) >= 0;
  check(
    "prctl(PR_SET_TIMERSLACK)",
    openLibc().prctl(PR_SET_TIMERSLACK, KEEPER_TIMER_SLACK, 0n, 0n, 0n),
  );
  c.sched_setscheduler(0, 0, new Uint8Array(4));
  c.setpriority(0, 0, 0);
  c.sched_setaffinity(0, 128n, new Uint8Array(128).fill(0xff));
  try {
    return start();
  } finally {
    openLibc().prctl(PR_SET_TIMERSLACK, slack, 0n, 0n, 0n);
    if (hasCpus) c.sched_setaffinity(0, BigInt(cpus.length), cpus);
    c.setpriority(0, 0, nice);
    if (policy >= 0) c.sched_setscheduler(0, policy, param);
  }
}

/**
 * Runs `start` (the keeper's spawn) with this process's CPU-time and
 * real-time timeout limits unlimited and its real-time priority limit 0,
 * then puts them back: the keeper keeps them. sudo hands the caller's limits
 * through, and a CPU-time limit the caller chose ended a keeper that the
 * daemon kept busy with cheap lines (found by a review); with a real-time
 * priority limit, the daemon (the keeper's uid) could make the keeper
 * real-time, and the real-time timeout end it. Limits are set on this process
 * before the spawn, not on the keeper after it: once setpriv has changed
 * its uid, that needs CAP_SYS_RESOURCE, which a root in a container lacks.
 * Raising a hard limit needs it too: without it, a finite hard CPU-time or
 * real-time timeout limit refuses the start.
 */
function withKeeperRlimits<T>(start: () => T): T {
  const c = libc();
  const get = (resource: number) => {
    const old = new BigUint64Array(2);
    check(
      `prlimit(0, ${resource})`,
      c.prlimit(0, resource, null, Deno.UnsafePointer.of(old)),
    );
    return old;
  };
  const set = (resource: number, soft: bigint, hard: bigint) => {
    const limit = new BigUint64Array([soft, hard]);
    return c.prlimit(0, resource, Deno.UnsafePointer.of(limit), null) === 0;
  };
  const saved = [RLIMIT_CPU, RLIMIT_RTTIME, RLIMIT_RTPRIO].map((r) =>
    [r, get(r)] as const
  );
  try {
    for (
      const [resource, flag, name, systemd] of [
        [RLIMIT_CPU, "-t", "CPU-time", "LimitCPU"],
        [RLIMIT_RTTIME, "-R", "real-time", "LimitRTTIME"],
      ] as const
    ) {
      if (set(resource, UNLIMITED, UNLIMITED)) continue;
      throw new StartError(
        `the caller's hard ${name} limit would reach the daemon's process keeper, which the daemon could make spend it (and then run on without one), and this root may not raise it (prlimit: ${
          strerror(errno())
        }, no CAP_SYS_RESOURCE); start the daemon without one (ulimit ${flag} unlimited before sudo; systemd: ${systemd}=infinity)`,
      );
    }
    const rtprio = saved[2][1];
    check(
      "prlimit(0, RLIMIT_RTPRIO)",
      set(RLIMIT_RTPRIO, 0n, rtprio[1]) ? 0 : -1,
    );
    return start();
  } finally {
    // Back to the caller's for the serving stage (lowering needs no
    // capability, nor raising a soft limit up to its hard one).
    for (const [resource, old] of saved) set(resource, old[0], old[1]);
  }
}

/**
 * Takes the keeper out of the OOM killer's reach, or at least puts it no
 * higher than 0: sudo hands the caller's `oom_score_adj` through, and a
 * caller at 1000 made the kernel kill the keeper first and the daemon's
 * escaped commands outlive it (found by a review). -1000 needs
 * CAP_SYS_RESOURCE; 0 needs none while the caller only raised its own
 * (an `OOMScoreAdjust=` set by a privileged service manager stays).
 */
function protectFromOom(pid: number): void {
  const path = `/proc/${pid}/oom_score_adj`;
  if (writeFile(path, "-1000") === undefined) return;
  let current = 0;
  try {
    current = Number(new TextDecoder().decode(readFileViaLibc(path)).trim());
  } catch {
    return; // gone: the start fails below
  }
  if (current > 0) writeFile(path, "0");
}

/**
 * The keeper: `$1` is its FIFO's path, `$2` the daemon's cgroup (empty
 * without one, see `_cgroup.ts`), `$3` the daemon's start time (stage 1 is
 * the daemon, and its parent, `$PPID`) and `$4` what it serves
 * (`servedProcesses()`). It gets the FIFO open for reading and writing,
 * non-blocking, as descriptor 3 from stage 1 (no EOF while the daemon
 * re-executes itself; a line taken by another reader leaves `read` failing,
 * not waiting) and reads `<op> <pgid>` lines. It
 * acts only on groups it was told to `track` whose leader (alive, or a
 * zombie not yet reaped) leads that group and descends from the daemon
 * (`$PPID`): `TERM`, `KILL` and `done` name any other group in vain, so the
 * daemon cannot have it signal a process it did not start (`kill -- -1`
 * would be every process of its uid). `sweep` (sent when no call runs) kills
 * every process of the cgroup whose parents do not lead to the daemon: what
 * left its command's group and was orphaned. When the daemon dies, every
 * tracked group and then the whole cgroup are killed: when its parent-death
 * signal comes (it finds the daemon gone), or when, after each line and every
 * half second, it finds the daemon gone (no `/proc/<pid>`, a zombie, or
 * another process of the same pid: another start time). A TERM, HUP or INT
 * while the daemon lives (systemd's stop signals the whole unit) waits for
 * the daemon to leave with its grace: 3-4 s by /proc/uptime (a clock no one
 * sets), then the same kill.
 * Stage 1 removes the FIFO and its directory once the daemon is gone
 * (`sweep()` below).
 */
const KEEPER_SCRIPT = `set -f
exec </dev/null
cg=$2 start=$3 watch=$4 groups=
daemon=$PPID
# The fields of /proc/<pid>/stat after the name, in s. The whole file: a
# name may hold a newline, and ") " (the last one ends it).
fields() {
  s=
  IFS= read -r -d '' s <"/proc/$1/stat"
  [ -n "$s" ] || return 1
  s=\${s##*) }
}
# Whether process $1 runs and started at $2.
runs() {
  fields "$1" || return 1
  set -- "$2" $s
  case $2 in Z|X|x) return 1 ;; esac
  [ "\${21}" = "$1" ]
}
# The daemon runs, and so do the processes it serves ("pid:start" each).
alive() {
  runs "$daemon" "$start" || return 1
  for w in $watch; do runs "\${w%%:*}" "\${w#*:}" || return 1; done
}
# Signals group $2 with $1 while a process of the daemon's cgroup is in it:
# a group whose processes all ended gives up its number, which another
# process of the user may take. Without a cgroup, by number alone.
signal() {
  sig=$1 g=$2
  if [ -n "$cg" ]; then
    m=
    while read -r p; do
      fields "$p" || continue
      set -- $s
      [ "$3" = "$g" ] && m=1 && break
    done <"$cg/cgroup.procs"
    [ -n "$m" ] || return 0
  fi
  kill -s "$sig" -- "-$g" 2>/dev/null
}
cleanup() {
  runs "$daemon" "$start" && kill -s KILL "$daemon" 2>/dev/null
  for g in $groups; do signal KILL "$g"; done
  # cgroup.kill, which stage 1 opened as root on 4: every process of the
  # cgroup, those that left their group included.
  [ -z "$cg" ] || echo 1 >&4
  exit 0
}
ours() {
  q=$1 n=0
  while [ "$q" -gt 1 ] && [ "$n" -lt 256 ]; do
    [ "$q" = "$PPID" ] && return 0
    fields "$q" || return 1
    set -- $s
    q=$2 n=$((n + 1))
  done
  return 1
}
leads() {
  l=$1
  fields "$l" || return 1
  set -- $s
  [ "$3" = "$l" ] && ours "$l"
}
tracked() {
  for g in $groups; do [ "$g" = "$1" ] && return 0; done
  return 1
}
# Whole seconds since boot, in up: a clock that no one sets back.
uptime() { read -r up _ </proc/uptime; up=\${up%%.*}; }
# A TERM, HUP or INT: the parent-death signal (the daemon is gone: cleanup
# at once, even in the middle of a sweep), or systemd stopping the unit,
# which signals every process of it, the daemon too, which leaves by itself
# and gives running calls their grace (at most 2 s): cleanup once it is
# gone, or 3-4 s on, whichever comes first.
ending() {
  # Its own s and up: the trap may come between fields() and the use of s
  # in the code it interrupts.
  local s up
  runs "$daemon" "$start" || cleanup
  [ -n "$until" ] || { uptime; until=$((up + 4)); }
}
until=
trap ending TERM HUP INT
while :; do
  # After every line too: any process of the user may write lines.
  op= pg=
  read -t 0.5 -r op pg <&3
  alive || cleanup
  if [ -n "$until" ]; then uptime; [ "$up" -lt "$until" ] || cleanup; fi
  case $pg in ''|*[!0-9]*) continue ;; esac
  case $op in
  track)
    # Not its own group: the keeper leads one (its session), a child of the
    # daemon (a seventeenth review had it KILL itself without a cgroup).
    [ "$pg" -gt 1 ] && [ "$pg" != "$$" ] && ! tracked "$pg" && leads "$pg" &&
      groups="$groups $pg" ;;
  done)
    tracked "$pg" || continue
    signal KILL "$pg"
    left=
    for g in $groups; do [ "$g" = "$pg" ] || left="$left $g"; done
    groups=$left ;;
  TERM|KILL) tracked "$pg" && signal "$op" "$pg" ;;
  sweep) [ -z "$cg" ] || while read -r p; do
      # Gone since the list was read: its number may be another's soon.
      fields "$p" || continue
      ours "$p" || kill -s KILL -- "-$p" "$p" 2>/dev/null
    done <"$cg/cgroup.procs" ;;
  esac
done
cleanup
`;

const SYMBOLS = {
  mkfifo: { parameters: ["buffer", "u32"], result: "i32" },
  mkdir: { parameters: ["buffer", "u32"], result: "i32" },
  rmdir: { parameters: ["buffer"], result: "i32" },
  unlink: { parameters: ["buffer"], result: "i32" },
  lchown: { parameters: ["buffer", "u32", "u32"], result: "i32" },
  chmod: { parameters: ["buffer", "u32"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  openMode: {
    name: "open",
    parameters: ["buffer", "i32", "u32"],
    result: "i32",
  },
  close: { parameters: ["i32"], result: "i32" },
  opendir: { parameters: ["buffer"], result: "pointer" },
  readdir: { parameters: ["pointer"], result: "pointer" },
  closedir: { parameters: ["pointer"], result: "i32" },
  access: { parameters: ["buffer", "i32"], result: "i32" },
  statx: {
    parameters: ["i32", "buffer", "i32", "u32", "buffer"],
    result: "i32",
  },
  posix_spawn: {
    parameters: ["buffer", "buffer", "buffer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_addopen: {
    parameters: ["buffer", "i32", "buffer", "i32", "u32"],
    result: "i32",
  },
  posix_spawn_file_actions_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_init: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_setflags: { parameters: ["buffer", "i16"], result: "i32" },
  posix_spawnattr_setsigdefault: {
    parameters: ["buffer", "buffer"],
    result: "i32",
  },
  posix_spawnattr_setsigmask: {
    parameters: ["buffer", "buffer"],
    result: "i32",
  },
  posix_spawnattr_destroy: { parameters: ["buffer"], result: "i32" },
  sigfillset: { parameters: ["buffer"], result: "i32" },
  kill: { parameters: ["i32", "i32"], result: "i32" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  sigemptyset: { parameters: ["buffer"], result: "i32" },
  prlimit: {
    parameters: ["i32", "i32", "pointer", "pointer"],
    result: "i32",
  },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  rename: { parameters: ["buffer", "buffer"], result: "i32" },
  utimensat: {
    parameters: ["i32", "buffer", "buffer", "i32"],
    result: "i32",
  },
  sched_getscheduler: { parameters: ["i32"], result: "i32" },
  sched_getparam: { parameters: ["i32", "buffer"], result: "i32" },
  sched_setscheduler: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  setpriority: { parameters: ["i32", "u32", "i32"], result: "i32" },
  sched_getaffinity: { parameters: ["i32", "usize", "buffer"], result: "i32" },
  sched_setaffinity: { parameters: ["i32", "usize", "buffer"], result: "i32" },
} as const;

let lib: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] | undefined;
function libc() {
  lib ??= Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  return lib;
}

/** A NULL-terminated table of C strings, and what keeps them alive. */
function table(items: readonly string[]): [Uint8Array, Uint8Array[]] {
  const keep = items.map(cString);
  const t = new BigUint64Array(items.length + 1);
  keep.forEach((s, i) =>
    t[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(s)))
  );
  return [new Uint8Array(t.buffer), keep];
}

/** posix_spawn(3) flags (glibc). */
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const POSIX_SPAWN_SETSID = 0x80;

/**
 * `posix_spawn` (safe in a multi-threaded process, unlike fork), in a
 * session of its own, with every signal at its default action and none
 * blocked. The daemon's process group is in the caller's session: a caller
 * that gives that session a terminal stops the whole group with ^Z, and may
 * send SIGCONT across uids within its session; it continued the daemon
 * alone and closed its stdin, and the daemon ended with its keeper stopped
 * and what it had started running on (a sixteenth review). And a signal the
 * caller ignores stays ignored through sudo and exec: bash cannot trap it,
 * so the keeper's SIGTERM (its parent-death signal) did nothing.
 */
function spawn(
  argv: readonly string[],
  env: Record<string, string>,
  opens: readonly { fd: number; path: string; flags?: number }[] = [],
): number {
  const c = libc();
  const actions = new Uint8Array(256);
  check(
    "posix_spawn_file_actions_init",
    -c.posix_spawn_file_actions_init(actions),
  );
  const attr = new Uint8Array(1024); // posix_spawnattr_t: 336 bytes in glibc
  check("posix_spawnattr_init", -c.posix_spawnattr_init(attr));
  const devNull = cString("/dev/null");
  try {
    const all = new Uint8Array(128); // sigset_t
    const none = new Uint8Array(128);
    check("sigfillset", c.sigfillset(all));
    check("sigemptyset", c.sigemptyset(none));
    for (
      const [name, r] of [
        ["setsigdefault", c.posix_spawnattr_setsigdefault(attr, all)],
        ["setsigmask", c.posix_spawnattr_setsigmask(attr, none)],
        [
          "setflags",
          c.posix_spawnattr_setflags(
            attr,
            POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK,
          ),
        ],
      ] as const
    ) {
      if (r !== 0) throw new Error(`posix_spawnattr_${name}: ${strerror(r)}`);
    }
    for (const fd of [0, 1, 2]) {
      const r = c.posix_spawn_file_actions_addopen(
        actions,
        fd,
        devNull,
        fd === 0 ? O_RDONLY : O_WRONLY,
        0,
      );
      if (r !== 0) {
        throw new Error(`posix_spawn_file_actions_addopen: ${strerror(r)}`);
      }
    }
    // Opened in the child before it runs anything, with this process's
    // credentials (root), whoever the keeper becomes: for writing unless
    // `flags` says otherwise.
    const paths = opens.map((o) => cString(o.path));
    opens.forEach(({ fd, path, flags }, i) => {
      const r = c.posix_spawn_file_actions_addopen(
        actions,
        fd,
        paths[i],
        flags ?? O_WRONLY,
        0,
      );
      if (r !== 0) {
        throw new Error(
          `posix_spawn_file_actions_addopen(${path}): ${strerror(r)}`,
        );
      }
    });
    const pid = new Int32Array(1);
    const [argvT, keepA] = table(argv);
    const [envT, keepE] = table(
      Object.entries(env).map(([k, v]) => `${k}=${v}`),
    );
    const r = c.posix_spawn(
      new Uint8Array(pid.buffer),
      cString(argv[0]),
      actions,
      Deno.UnsafePointer.of(attr),
      argvT,
      envT,
    );
    void keepA, keepE, paths;
    if (r !== 0) {
      throw new Error(`posix_spawn(${argv[0]}) failed: ${strerror(r)}`);
    }
    return pid[0];
  } finally {
    c.posix_spawn_file_actions_destroy(actions);
    c.posix_spawnattr_destroy(attr);
  }
}

/** Offset of `d_name` in glibc's `struct dirent` on 64-bit Linux. */
const D_NAME = 19;

/** What `statx` says of a file: its type and identity. */
interface Ident {
  type: number;
  /** The permission bits (with set-id and sticky). */
  mode: number;
  uid: number;
  dev: string;
  ino: bigint;
}

/** `statx` of `path` (not following a last symlink), or of `fd` when given. */
function ident(path: string, fd = AT_FDCWD): Ident | undefined {
  // struct statx: stx_uid at 20, stx_mode (u16) at 28, stx_ino at 32,
  // stx_dev_major and stx_dev_minor at 136 and 140.
  const buf = new Uint8Array(256);
  const r = libc().statx(
    fd,
    cString(path),
    fd === AT_FDCWD ? AT_SYMLINK_NOFOLLOW : AT_EMPTY_PATH,
    STATX_BASIC_STATS,
    buf,
  );
  if (r < 0) return undefined;
  const v = new DataView(buf.buffer);
  return {
    type: v.getUint16(28, true) & S_IFMT,
    mode: v.getUint16(28, true) & 0o7777,
    uid: v.getUint32(20, true),
    dev: `${v.getUint32(136, true)}:${v.getUint32(140, true)}`,
    ino: v.getBigUint64(32, true),
  };
}

/** Where stage 1 keeps the copy of the keeper's shell that it runs. */
const SHELL_COPY = `${RUN_DIR}/keeper-shell`;

/**
 * The keeper's shell as the keeper runs it: a root-owned copy of
 * {@linkcode KEEPER_SHELL} that others may run but not read (0711), made
 * (or replaced, when it differs) in root's {@linkcode RUN_DIR}. A program
 * that its user cannot read leaves the process not dumpable after its exec,
 * so the kernel gives the keeper's /proc files to root: otherwise the
 * daemon's user could write its `oom_score_adj` (no ptrace check, and
 * raising it needs no capability), and a command that then ran the cgroup
 * out of memory had the OOM killer take the keeper first (found by a
 * review).
 */
function keeperShell(): string {
  const c = libc();
  // The copy carries the source's size and modification time: comparing
  // those (two statx) instead of the bytes keeps 40 ms off every start.
  const version = versionOf(KEEPER_SHELL);
  const have = ident(SHELL_COPY);
  if (
    have?.type === S_IFREG && have.uid === 0 && have.mode === 0o711 &&
    version !== undefined && versionOf(SHELL_COPY)?.join() === version.join()
  ) return SHELL_COPY;
  const source = readFileViaLibc(KEEPER_SHELL, 64 << 20);
  const tmp = `${RUN_DIR}/.keeper-shell-${Deno.pid}`;
  c.unlink(cString(tmp));
  const fd = c.openMode(
    cString(tmp),
    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
    0o700,
  );
  check(`open(${tmp})`, fd);
  try {
    for (let at = 0; at < source.length;) {
      const n = Number(
        c.write(fd, source.subarray(at), BigInt(source.length - at)),
      );
      check(`write(${tmp})`, n);
      at += n;
    }
  } finally {
    c.close(fd);
  }
  if (version) {
    // struct timespec[2]: access and modification time.
    const [, sec, nsec] = version;
    const times = new BigInt64Array([sec, nsec, sec, nsec]);
    check(
      `utimensat(${tmp})`,
      c.utimensat(AT_FDCWD, cString(tmp), new Uint8Array(times.buffer), 0),
    );
  }
  check(`chmod(${tmp})`, c.chmod(cString(tmp), 0o711));
  check(`rename(${tmp})`, c.rename(cString(tmp), cString(SHELL_COPY)));
  return SHELL_COPY;
}

/** A file's size and modification time (seconds, nanoseconds), by statx. */
function versionOf(path: string): [bigint, bigint, bigint] | undefined {
  // struct statx: stx_size at 40, stx_mtime (tv_sec i64, tv_nsec u32) at 112.
  const buf = new Uint8Array(256);
  if (libc().statx(AT_FDCWD, cString(path), 0, STATX_BASIC_STATS, buf) < 0) {
    return undefined;
  }
  const v = new DataView(buf.buffer);
  return [
    v.getBigUint64(40, true),
    v.getBigInt64(112, true),
    BigInt(v.getUint32(120, true)),
  ];
}

/**
 * Removes the keeper directory `dir` of a daemon that is gone: only what a
 * keeper directory holds (the FIFO `keeper`, then the empty directory),
 * never through a symlink. Anything else stays, and so does the directory.
 */
function removeTree(dir: string): void {
  const c = libc();
  if (ident(dir)?.type !== S_IFDIR) return;
  const fifo = `${dir}/keeper`;
  if (ident(fifo)?.type === S_IFIFO) c.unlink(cString(fifo));
  c.rmdir(cString(dir)); // fails unless empty
}

/**
 * Removes what keepers of daemons that are gone left (their FIFO and its
 * directory): the directory is root's, so that its names stay root's
 * choice, and the keeper may not remove it.
 */
function sweep(): void {
  const c = libc();
  const d = c.opendir(cString(RUN_DIR));
  if (!d) return;
  try {
    const stale: string[] = [];
    for (let e = c.readdir(d); e; e = c.readdir(d)) {
      const name = Deno.UnsafePointerView.getCString(e, D_NAME);
      const pid = /^tree-(\d+)$/.exec(name)?.[1];
      if (pid && c.access(cString(`/proc/${pid}`), 0) < 0) stale.push(name);
    }
    for (const name of stale) removeTree(`${RUN_DIR}/${name}`);
  } finally {
    c.closedir(d);
  }
}

/**
 * The processes the daemon serves, as `pid:start` (field 22 of
 * /proc/<pid>/stat) separated by spaces: its parent and, while that is sudo,
 * sudo's parent too. When one of them is gone the keeper kills the daemon
 * and what it started: a daemon that blocks its event loop runs no SIGTERM
 * handler, sudo does not relay the SIGKILL a caller sends it to recycle the
 * daemon, and a caller that is gone leaves an end of input the blocked
 * daemon never reads (found by a review: such daemons ran on, with their
 * credentials, after every recycle).
 */
function servedProcesses(): string {
  const served: string[] = [];
  let pid = Deno.ppid;
  for (let depth = 0; depth < 4 && pid > 1; depth++) {
    const stat = procStat(pid);
    if (!stat) break;
    served.push(`${pid}:${stat.start}`);
    if (stat.name !== "sudo") break;
    pid = stat.ppid;
  }
  return served.join(" ");
}

/**
 * Throws KeeperHomeError unless the keeper `pid` runs in `home.path`, where
 * the service user cannot reach it: it moved itself there as root before it
 * dropped, unless that user stopped it first.
 */
function checkKeeperHome(
  pid: number,
  home: KeeperHome,
): void {
  let line: string | undefined;
  try {
    line = new TextDecoder().decode(readFileViaLibc(`/proc/${pid}/cgroup`))
      .split("\n").find((l) => l.startsWith("0::"));
  } catch { /* gone: said below */ }
  const where = line === undefined ? undefined : home.mount + line.slice(3);
  if (where !== home.path) {
    throw new KeeperHomeError(
      `${delegatedMessage(home.back)}: it runs in ${
        where ?? "no cgroup2 cgroup"
      }, not ${home.path}. Run the service without Delegate=yes`,
    );
  }
}

/**
 * Stage 1, as root and before the drop: starts the daemon's keeper as
 * `uid`/`gid`; it kills the cgroup `cgroup` (if not empty) when the daemon
 * ends. Returns the FIFO the serving stage opens (`--keeper=`), or throws an
 * `Error` that says what failed. The FIFO is the context user's, its
 * directory root's (mode 0711): no process of that user can put another
 * file under the FIFO's name.
 *
 * @example
 * ```ts ignore
 * const fifo = await startKeeper(1001, 1001, "");
 * ```
 */
export async function startKeeper(
  uid: number,
  gid: number,
  cgroup: string,
  home?: KeeperHome,
): Promise<string> {
  const c = libc();
  if (c.mkdir(cString(RUN_DIR), 0o755) < 0 && errno() !== EEXIST) {
    check(`mkdir(${RUN_DIR})`, -1);
  }
  const run = ident(RUN_DIR);
  if (run?.type !== S_IFDIR || run.uid !== 0) {
    throw new Error(
      `${RUN_DIR} is not a root-owned directory; remove it so that the daemon can create it`,
    );
  }
  // Every keeper, whatever its user, goes through it: a mode narrowed by
  // the umask of the stage 1 that made it (before stage 1 set its own) or
  // by hand would stop every daemon with a non-root user.
  if (run.mode !== 0o755) {
    check(`chmod(${RUN_DIR})`, c.chmod(cString(RUN_DIR), 0o755));
  }
  sweep();
  const dir = `${RUN_DIR}/tree-${Deno.pid}`;
  const fifo = `${dir}/keeper`;
  // A daemon of the same pid that died before a sweep.
  removeTree(dir);
  if (c.mkdir(cString(dir), 0o711) < 0) {
    const code = errno();
    throw new Error(
      `mkdir(${dir}) failed: ${strerror(code)}${
        code === EEXIST ? "; it holds more than a keeper FIFO: remove it" : ""
      }`,
    );
  }
  check(`mkfifo(${fifo})`, c.mkfifo(cString(fifo), 0o600));
  const made = ident(fifo);
  if (made?.type !== S_IFIFO) check(`statx(${fifo})`, -1);
  check(`lchown(${fifo})`, c.lchown(cString(fifo), uid, gid));
  const shell = keeperShell();
  const keeper = withKeeperLimits(() =>
    spawn(
      [
        // A delegated caller's keeper moves itself, as root, into its home
        // (_cgroup.ts, pickKeeperHome) before it drops: born in the
        // caller's cgroup, it is that user's to move, kill or freeze until
        // then, which only makes the start fail (below).
        // It dies with this process from its start (SIGKILL, then
        // setpriv's TERM below), and gives up if this process is gone
        // already: a user that froze it, then killed stage 1 (cgroup.kill
        // of a cgroup of its own, where it moved stage 1), pinned it, root,
        // for good (a reading).
        ...(home
          ? [
            SETPRIV,
            "--pdeathsig=KILL",
            "--",
            KEEPER_SHELL,
            "-c",
            '[ "$PPID" = "$1" ] || exit 125; echo $$ >"$2/cgroup.procs" || exit 125; shift 2; exec "$@"',
            "privsep-keeper-home",
            String(Deno.pid),
            home.path,
          ]
          : []),
        SETPRIV,
        `--reuid=${uid}`,
        `--regid=${gid}`,
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--pdeathsig=TERM",
        "--",
        // Through the readable shell first: exec'd straight from setpriv
        // (whose uid change just made it not dumpable), the unreadable
        // copy left the keeper dumpable on this kernel; from a process of
        // the user, it does not (tests/process_tree_test.ts checks).
        KEEPER_SHELL,
        "-c",
        'exec "$0" -c "$1" privsep-keeper "${@:2}"',
        shell,
        KEEPER_SCRIPT,
        fifo,
        cgroup,
        procStat(Deno.pid)?.start ?? "",
        servedProcesses(),
      ],
      { PATH: "/usr/bin:/bin" },
      [
        // Opened here, non-blocking: a process of the daemon's user that
        // reads the FIFO (a command) can take a line between the keeper's
        // wait and its read, and a blocking read() then waited for good
        // (found by a review: what escaped outlived the daemon's SIGKILL).
        // Now that read fails at once, and the keeper looks at its daemon.
        { fd: 3, path: fifo, flags: O_RDWR | O_NONBLOCK | O_NOFOLLOW },
        ...(cgroup ? [{ fd: 4, path: `${cgroup}/cgroup.kill` }] : []),
      ],
    )
  );
  protectFromOom(keeper);
  try {
    return await keeperReady(keeper, fifo, made!, home);
  } catch (error) {
    // This process's own child, not reaped yet: its pid is still its. A
    // keeper (or the root wrapper before it) that did not get where it
    // should is killed, not left behind: the service user could hold a
    // delegated caller's wrapper frozen, as root, for good (a reading).
    c.kill(keeper, 9);
    c.waitpid(keeper, new Uint8Array(4), 0);
    throw error;
  }
}

/**
 * Waits until the keeper `keeper` runs its shell with the FIFO `fifo` (the
 * file `made`) open; for a delegated caller, checks that it runs in its
 * home. Throws otherwise.
 */
async function keeperReady(
  keeper: number,
  fifo: string,
  made: Ident,
  home?: KeeperHome,
): Promise<string> {
  const c = libc();
  // setpriv sets the keeper's parent-death signal, then runs its shell,
  // which runs the copy: from then on the keeper dies with this process.
  const ready = SHELL_COPY.slice(SHELL_COPY.lastIndexOf("/") + 1);
  for (let waited = 0;; waited += 5) {
    const stat = procStat(keeper);
    // An exited setpriv (its exec failed: a zombie until reaped) is gone.
    const name = stat && !"ZXx".includes(stat.state) ? stat.name : undefined;
    if (name === ready) {
      if (home) checkKeeperHome(keeper, home);
      // The keeper's shell runs, the FIFO open: a writer opens it.
      const fd = c.open(
        cString(fifo),
        O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW,
      );
      if (fd < 0) check(`open(${fifo})`, fd);
      const opened = ident("", fd);
      c.close(fd);
      if (
        opened?.type !== S_IFIFO || opened.dev !== made.dev ||
        opened.ino !== made.ino
      ) {
        throw new Error(
          `the daemon's process keeper FIFO ${fifo} was replaced after stage 1 created it; stop what writes to ${
            fifo.slice(0, fifo.lastIndexOf("/"))
          }`,
        );
      }
      return fifo;
    }
    if (name === undefined || waited > 5000) {
      throw home
        ? new KeeperHomeError(
          `${
            delegatedMessage(home.back)
          }: it did not start in ${home.path} (process ${keeper} ${
            name === undefined ? "is gone" : `is still ${name}`
          }): that user may have stopped it. Run the service without Delegate=yes`,
        )
        : new Error(
          `the daemon's process keeper (${SETPRIV} and ${KEEPER_SHELL}) did not start (process ${keeper} ${
            name === undefined ? "is gone" : `is still ${name}`
          }); check that util-linux's setpriv and bash are installed`,
        );
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}
