/**
 * The daemon's first stage. It runs as root (through sudo, or directly),
 * checks that everything it will load is root-owned, loads the context,
 * applies its config section, reduces the main thread to the context's
 * capabilities and user, and `execve`s the serving stage with an explicit
 * environment and exactly the context's Deno permissions.
 *
 * @module
 */

import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { dropPrivileges, execve, restrictUnprivileged } from "../caps/_drop.ts";
import {
  closeOnExecFrom,
  getenvViaLibc,
  lookupGroup,
  lookupUser,
  lstatViaLibc,
  openLibc,
  readFileViaLibc,
  readLinkViaLibc,
  setPipeSize,
} from "../caps/_ffi.ts";
import { PERMISSION_KINDS, type PermissionsSetting } from "../core/config.ts";
import { DAEMON_V8_FLAGS, serveV8Flags } from "../core/command.ts";
import { EXACT_BODY_BYTES } from "../protocol/_body.ts";
import { findContext } from "../core/_registry.ts";
import { resolveSettings } from "../core/settings.ts";
import { type Preflight, StartError } from "./preflight.ts";
import { onlyWritable, protectTrustedPaths } from "./_readonly.ts";
import { confineFor } from "./_confine.ts";
import { muteConsole } from "./_log_bridge.ts";
import { landlockAbi } from "../caps/_landlock.ts";
import { capabilityName } from "../caps/table.ts";
import {
  missingWritePath,
  ROOT_LIKE_CAPS,
  trustedPaths,
  writePathAboveCode,
} from "../core/_write_above.ts";

/** CAP_SYS_ADMIN: a daemon that keeps it could undo any mount. */
const CAP_SYS_ADMIN = 21;
/**
 * The process that asked for this daemon, as the kernel knows it: the parent,
 * past sudo's own processes. Its pid and real uid go into audit records.
 * When that process is gone (it exited after running sudo, which was then
 * reparented), and only when our parent really is sudo (its executable),
 * the uid is sudo's `SUDO_UID` and the pid is unknown, with the reason.
 */
function callerIdentity():
  | { pid: number; uid: number }
  | { pid: undefined; uid: number; pidUnknown: string }
  | undefined {
  // sudo's own processes are recognised by their executable (a process can
  // name itself "sudo", it cannot change what /proc/<pid>/exe points to).
  const sudoExe = resolveSudo();
  let pid = Deno.ppid;
  let hops = 0;
  const gone = () => {
    // Started by sudo (hops > 0: our parent was sudo's executable), which
    // set SUDO_UID to the uid it authenticated: that much is still known.
    const sudoUid = getenvViaLibc("SUDO_UID");
    return sudoExe && hops > 0 && sudoUid && /^\d+$/.test(sudoUid)
      ? {
        pid: undefined,
        uid: Number(sudoUid),
        pidUnknown:
          "the process that ran sudo had exited before the daemon started; callerUid is sudo's SUDO_UID",
      }
      : undefined;
  };
  for (; hops < 4 && pid > 1; hops++) {
    let status: string;
    let exe = "";
    try {
      status = new TextDecoder().decode(readFileViaLibc(`/proc/${pid}/status`));
      exe = readLinkViaLibc(`/proc/${pid}/exe`);
    } catch {
      return gone();
    }
    const field = (name: string) =>
      /^(\S*)/.exec(status.split(`\n${name}:\t`)[1] ?? "")?.[1];
    if (exe !== sudoExe) {
      // Through sudo, the uid sudo authenticated is the one that counts.
      const sudoUid = getenvViaLibc("SUDO_UID");
      return {
        pid,
        uid: sudoExe && sudoUid && /^\d+$/.test(sudoUid) && hops > 0
          ? Number(sudoUid)
          : Number(field("Uid")),
      };
    }
    pid = Number(field("PPid"));
  }
  // Reparented to init: the caller is gone.
  return pid <= 1 ? gone() : undefined;
}

/** Where sudo is (what its processes' /proc/<pid>/exe point to). */
function resolveSudo(): string | undefined {
  for (
    const candidate of ["/usr/bin/sudo", "/bin/sudo", "/usr/local/bin/sudo"]
  ) {
    try {
      const target = readLinkViaLibc(candidate);
      return target.startsWith("/") ? target : candidate;
    } catch {
      // Not a link: the file itself, if it exists.
      try {
        if (lstatViaLibc(candidate).isFile) return candidate;
      } catch { /* not there */ }
    }
  }
  return undefined;
}

/** Kernel buffer size of the channel's pipes. */
const PIPE_BYTES = 1 << 20;

/**
 * glibc malloc settings for the serving stage (mallopt(3)). Message bodies
 * up to 4 MiB are allocated once at their size (FrameDecoder); by default
 * glibc gives such blocks back to the kernel when they are freed (an mmap, or
 * a trim of the heap's top), so every large call faulted its buffers in
 * again, zeroed page by page: 40-500 page faults per 1 MiB echo, measured
 * with /proc/<pid>/stat. Served from the heap and kept up to 8 MiB of free
 * top, the same echo takes 5-9 faults and ~0.3 ms less. A block above 4 MiB
 * is still mapped and unmapped on its own, so at most 8 MiB per malloc arena
 * stay resident beyond what the daemon uses. Both are set: setting only the
 * trim threshold turns off glibc's dynamic mmap threshold, and every 1 MiB
 * body was mapped afresh (2.3-2.5 ms per 1 MiB echo).
 *
 * One arena: the daemon's JavaScript runs on one thread, and the free memory
 * that each of V8's compiler threads left in an arena of its own (up to the
 * trim threshold each) was ~6 MiB of the daemon's own memory after its
 * warm-up (daemon/_warm_session.ts); with one arena the main thread reuses
 * it. The peak through the quick profile's phases went from 74.5-76 to 71-72
 * MiB (bench/memory.ts), the tail unchanged (bench/HISTORY.md, 2026-12-04
 * last).
 */
const MALLOC_ENV = {
  MALLOC_MMAP_THRESHOLD_: String(EXACT_BODY_BYTES + 1),
  MALLOC_TRIM_THRESHOLD_: String(8 << 20),
  MALLOC_ARENA_MAX: "1",
};

function permissionFlags(
  permissions: PermissionsSetting,
  codeRoots: readonly string[],
): string[] {
  if (permissions === "all") return ["--allow-all"];
  const flags: string[] = [];
  for (const kind of PERMISSION_KINDS) {
    let list = permissions[kind];
    if (kind === "read") {
      // The daemon may always read (import) its own code.
      list = list && list.length === 0 ? [] : [...codeRoots, ...(list ?? [])];
    } else if (kind === "sys") {
      // ... and tell the caller which uid and gid it really runs with.
      list = list && list.length === 0
        ? []
        : [...new Set(["uid", "gid", ...(list ?? [])])];
    }
    if (list === undefined) continue;
    for (const item of list) {
      if (item.includes(",")) {
        throw new StartError(
          `a ${kind} permission cannot contain ",": "${item}"`,
        );
      }
    }
    flags.push(
      list.length ? `--allow-${kind}=${list.join(",")}` : `--allow-${kind}`,
    );
  }
  return flags;
}

/**
 * Runs the first stage. Never returns: it either `execve`s the serving stage
 * or throws {@linkcode StartError}.
 *
 * @example
 * ```ts ignore
 * await startDaemon("file:///opt/app/privsep/mod.ts#sysAdmin", facts);
 * ```
 */
export async function startDaemon(
  contextId: string | undefined,
  facts: Preflight,
): Promise<never> {
  if (!contextId || !/^file:\/\/\/\S+#[A-Za-z_$][\w$]*$/.test(contextId)) {
    throw new StartError(
      `--context=file:///abs/module.ts#exportName is required, got ${
        JSON.stringify(contextId)
      }`,
    );
  }
  const { codeRoots, configFiles, denoDir } = facts;
  const daemonPath = fileURLToPath(new URL("../daemon.ts", import.meta.url));
  const flags = { config: facts.config };
  const [moduleUrl, name] = contextId.split("#");
  // The context module's top-level code runs here, as root, and again in the
  // serving stage: its console output goes to the caller from there only,
  // at the context's log level. Here stdout is already the channel.
  muteConsole();
  await import(moduleUrl);
  const ctx = findContext(contextId);
  if (!ctx) {
    throw new StartError(
      `${moduleUrl} defines no PrivContext named "${name}" (check the context's name option)`,
    );
  }
  const resolved = resolveSettings(ctx, configFiles);
  // Unprivileged (testing kit): this user, no capabilities, no sudo.
  const settings = facts.unprivileged
    ? {
      ...resolved,
      capabilities: [],
      user: String(facts.uid),
      group: String(facts.gid),
    }
    : resolved;
  const user = lookupUser(settings.user) ??
    (facts.unprivileged
      ? { name: settings.user, id: facts.uid, gid: facts.gid, home: "/" }
      : undefined);
  if (!user) {
    throw new StartError(
      `the context's user "${settings.user}" does not exist; create it (useradd --system ${settings.user}) or change "user"`,
    );
  }
  const group = settings.group === undefined
    ? { name: String(user.gid), id: user.gid! }
    : lookupGroup(settings.group) ??
      (facts.unprivileged
        ? { name: settings.group, id: facts.gid }
        : undefined);
  if (!group) {
    throw new StartError(
      `the context's group "${settings.group}" does not exist; create it (groupadd --system ${settings.group}) or change "group"`,
    );
  }

  const caller = callerIdentity();
  const serveArgv = [
    Deno.execPath(),
    "run",
    "--no-prompt",
    "--cached-only",
    "--no-lock",
    DAEMON_V8_FLAGS,
    flags.config ? `--config=${flags.config}` : "--no-config",
    ...permissionFlags(settings.permissions, codeRoots),
    daemonPath,
    "--stage=serve",
    `--context=${contextId}`,
    ...(caller?.pid !== undefined
      ? [`--caller-pid=${caller.pid}`]
      : caller
      ? [`--caller-pid-unknown=${caller.pidUnknown}`]
      : []),
    ...(caller ? [`--caller-uid=${caller.uid}`] : []),
    `--concurrency=${settings.concurrency}`,
    `--queue-limit=${settings.queueLimit}`,
    `--cancel-grace-ms=${settings.cancelGraceMs}`,
    `--idle-read=${settings.idleRead}`,
    `--log-level=${settings.logLevel}`,
    `--uid=${user.id}`,
    `--gid=${group.id}`,
    `--capabilities=${settings.capabilities.join(",")}`,
    ...(settings.logDaemonTraceback ? ["--log-daemon-traceback"] : []),
  ];
  const env = {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: user.home ?? "/",
    DENO_DIR: denoDir,
    DENO_NO_UPDATE_CHECK: "1",
    NO_COLOR: "1",
    LANG: "C.UTF-8",
    ...MALLOC_ENV,
    // Not on the command line: the seed is the daemon's (core/command.ts).
    DENO_V8_FLAGS: serveV8Flags(),
  };
  if (settings.libcap?.startsWith("/")) {
    const { assertTrusted } = await import("../core/trust.ts");
    assertTrusted(settings.libcap);
  }
  // The channel's pipes (shared with the caller): 1 MiB instead of 64 KiB,
  // so that a large message needs few wake-ups. Only root may exceed
  // /proc/sys/fs/pipe-max-size; failure (not a pipe) is harmless.
  setPipeSize(0, PIPE_BYTES);
  setPipeSize(1, PIPE_BYTES);
  // The kernel sandbox: its scopes now, so that the keeper shares them.
  const confine = confineFor(settings, facts, serveArgv);
  if (facts.uid === 0) {
    // Kills what the daemon started when the daemon ends (see _keeper.ts).
    const { KEEPER_SHELL, SETPRIV, startKeeper } = await import(
      "./_keeper.ts"
    );
    const { assertTrusted } = await import("../core/trust.ts");
    assertTrusted(SETPRIV);
    assertTrusted(KEEPER_SHELL);
    // ... and the daemon's cgroup, which catches what leaves its group.
    const { createCgroup, joinCgroup, KeeperHomeError, pickKeeperHome } =
      await import("./_cgroup.ts");
    const created = createCgroup();
    // A caller's cgroup delegated to its user: the keeper starts in a
    // root-owned cgroup out of that user's reach (_cgroup.ts,
    // pickKeeperHome), or the daemon does not start: whatever keeps it from
    // there, that user may have caused.
    const keeper = "keeper" in created ? created.keeper : undefined;
    let fifo: string;
    try {
      fifo = await startKeeper(
        user.id,
        group.id,
        "path" in created ? created.path : "",
        keeper && {
          path: pickKeeperHome(keeper.homes, keeper.back, keeper.mount),
          mount: keeper.mount,
          back: keeper.back,
        },
      );
    } catch (error) {
      if (error instanceof KeeperHomeError) throw new StartError(error.message);
      throw error;
    }
    const cgroup = joinCgroup(created);
    if (
      "missing" in cgroup && cgroup.expected &&
      settings.confinement === "required"
    ) {
      throw new StartError(
        `confinement = "required" but the daemon's cgroup could not be made: ${cgroup.missing}; without it a process that its commands start and that leaves its process group outlives the daemon. Fix the cause (privsep doctor), or set confinement = "best-effort"`,
      );
    }
    serveArgv.push(
      `--keeper=${fifo}`,
      "path" in cgroup
        ? `--cgroup=${cgroup.path}`
        : `--cgroup-missing=${cgroup.missing}`,
    );
    const at = serveArgv.findIndex((a) => a.startsWith("--allow-write"));
    if (settings.permissions !== "all" && serveArgv[at] !== "--allow-write") {
      if (at < 0) {
        serveArgv.splice(
          serveArgv.indexOf(daemonPath),
          0,
          `--allow-write=${fifo}`,
        );
      } else serveArgv[at] += `,${fifo}`;
    }
    // What this stage trusted and ran (and the next first stage will run)
    // becomes read-only for the serving stage, whatever its uid and DAC
    // capabilities: a uid-0 daemon owns every root-owned file.
    const writes = settings.permissions === "all"
      ? undefined
      : settings.permissions.write;
    const trusted = trustedPaths({
      denoDir,
      codeRoots,
      deno: Deno.execPath(),
      config: flags.config,
      configFiles,
      libcap: settings.libcap,
      launcherDir: settings.launcherDir,
    });
    const rootLikeKept = settings.capabilities
      .filter((c) => ROOT_LIKE_CAPS.includes(c)).map(capabilityName).join(", ");
    const rootLike = user.id === 0 || rootLikeKept !== "";
    // The write-path refusals hold where writes are confined, for a context
    // that can write as root (core/_write_above.ts).
    const held = settings.confinement !== "off" && rootLike
      ? writes
      : undefined;
    const above = held &&
      writePathAboveCode(held, [
        ...trusted,
        ...(flags.config ? [dirname(flags.config)] : []),
      ]);
    if (above) {
      throw new StartError(
        `the write path ${above.write} holds ${above.root}, which the root first stage trusts (code, its cache, deno, the config, the launchers): a daemon of uid ${user.id}${
          user.id === 0 ? "" : ` with ${rootLikeKept}`
        } could put files beside it that Deno reads on its way up, or rebuild it once the host removes it. Narrow permissions.write to the directories the context writes (none holding ${above.root})`,
      );
    }
    const missing = held && missingWritePath(held);
    if (missing) {
      throw new StartError(
        `the write path ${missing.write} does not exist: the kernel sandbox would give its directory ${missing.directory} the rule (Landlock names existing files only), and a daemon of uid ${user.id}${
          user.id === 0 ? "" : ` with ${rootLikeKept}`
        } could then write anything there (/etc/sudoers.d, for /etc/app.conf): create ${missing.write} first (as root: install -m 600 /dev/null ${missing.write}, or mkdir for a directory), or declare its directory in permissions.write if the context may write all of it`,
      );
    }
    if (!settings.capabilities.includes(CAP_SYS_ADMIN)) {
      const protectedPaths = protectTrustedPaths(trusted);
      // Where Landlock confines writes, the mounts do too: owner, mode and
      // extended attributes change only below the write paths.
      const p = settings.permissions;
      if (
        settings.confinement !== "off" && p !== "all" &&
        (p.write === undefined || p.write.length > 0) && landlockAbi() >= 1
      ) {
        const { unsupported } = onlyWritable(p.write ?? [], protectedPaths);
        if (unsupported) {
          if (settings.confinement === "required") {
            throw new StartError(
              `confinement = "required" but ${unsupported}; use Linux 5.12 or later, or set confinement = "best-effort"`,
            );
          }
          serveArgv.push(`--unconfined=${unsupported}`);
        }
      }
    }
    confine.prepare(fifo);
    dropPrivileges({
      libcap: settings.libcap,
      keep: settings.capabilities,
      uid: user.id,
      gid: group.id,
    });
  } else {
    // A non-root user has no capabilities to drop (and may not touch its
    // bounding set): only no_new_privs, so that nothing it runs gains any.
    confine.prepare();
    restrictUnprivileged();
  }
  // The kernel sandbox (Landlock, seccomp), on this thread, for the exec.
  confine.apply();
  // Only the channel crosses the exec: a root caller's descriptors (direct
  // start; sudo closes them) and stage 1's own must not reach the context.
  closeOnExecFrom(3);
  // The caller's umask back (this stage ran with 022: preflight()).
  openLibc().umask(facts.servingUmask);
  return execve(Deno.execPath(), serveArgv, env);
}
