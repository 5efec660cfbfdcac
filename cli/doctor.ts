// privsep doctor <module…>: everything that can make the first privileged
// call fail, checked before it is made, each with a one-line fix.
import { dirname } from "node:path";
import { DEFAULT_LIBCAP, lookupGroup, lookupUser } from "../caps/_ffi.ts";
import { kernelLastCap } from "../caps/_drop.ts";
import { capabilitiesToMask, formatCapabilities } from "../caps/parse.ts";
import { readProcessCredentials } from "../caps/proc.ts";
import { capabilityName } from "../caps/table.ts";
import {
  daemonCommand,
  DEFAULT_DENO_DIR,
  layoutProblems,
} from "../core/command.ts";
import type { PrivContext } from "../contexts/priv_context.ts";
import { untrustedReason } from "../core/trust.ts";
import { confinementReport } from "../daemon/_confine.ts";
import { cgroupDir, delegatedAbove } from "../daemon/_cgroup.ts";
import { KEEPER_SHELL, SETPRIV } from "../daemon/_keeper.ts";
import { run } from "./_exec.ts";
import { contextCommandArgs, loadContexts } from "./_load.ts";
import { redirectablePathWarnings, writePathRefusals } from "./_write_paths.ts";

const USAGE =
  `usage: privsep doctor [--json] [--user=<service user>] [--config-file=<abs path>]… <module.ts[#context]>…

Checks, for each context, everything that can make its first call fail or
weaken its boundary: sudo, the launcher, the sudoers rules as sudo applies
them (the launcher with no arguments, never the daemon's command line; as
root also "visudo -c" of the whole configuration), the deno binary, libcap, the
ownership of every file the root daemon loads, the target user and group, the
daemon's cache directory, the config, and whether the kernel and this
process's bounding set allow the capabilities. Run it as the service's user,
or as root with --user=<service user>. Exits 1 if any check fails.`;

/** One check's outcome. */
export interface Check {
  context: string;
  check: string;
  ok: boolean;
  detail: string;
  fix?: string;
  /** A warning: printed as WARN, does not make the doctor fail. */
  warn?: boolean;
}

/**
 * The launcher (installed, root-owned, exactly what this version writes) and
 * the sudoers configuration as a whole, asked of sudo itself: the service's
 * user may run the launcher with no argument, with no argument at all, and
 * not the daemon's command line (a rule naming it can be regrouped).
 */
async function sudoChecks(
  ctx: PrivContext,
  asRoot: boolean,
  user: string | undefined,
  add: (check: string, ok: boolean, detail: string, fix?: string) => void,
): Promise<void> {
  const install = `deno task privsep install --user=${user ?? "<user>"} ${
    ctx.id.replace("file://", "")
  }`;
  const launcher = ctx.launcher();
  let installed: string | undefined;
  try {
    installed = Deno.readTextFileSync(launcher);
  } catch { /* checked below */ }
  const reason = installed === undefined ? null : untrustedReason(launcher);
  add(
    "launcher",
    installed === ctx.launcherScript() && reason === null,
    installed === undefined ? `${launcher} is not installed` : reason ??
      (installed === ctx.launcherScript()
        ? `${launcher} starts this daemon`
        : `${launcher} differs from what this version writes (an older install?)`),
    `as root: ${install}`,
  );
  if (asRoot) {
    const whole = await run(["visudo", "-c", "-q"]);
    add(
      "sudoers files",
      whole.code === 0,
      whole.code === 0
        ? "visudo -c: the whole configuration parses"
        : whole.out,
      "fix the file visudo names (visudo -c lists every file it reads)",
    );
  }
  if (asRoot && !user) {
    add(
      "sudoers rule",
      true,
      "not checked: running as root starts the daemon directly (give --user=<service user> to check the rule)",
    );
    return;
  }
  const list = (argv: string[]) =>
    run(["sudo", "-n", "-l", ...(asRoot ? ["-U", user!] : []), ...argv]);
  const who = asRoot ? user! : "this user";
  const plain = await list([launcher]);
  add(
    "sudoers rule",
    plain.code === 0,
    plain.code === 0
      ? `sudo lets ${who} run ${launcher}`
      : plain.out || `sudo does not let ${who} run ${launcher}`,
    `as root: ${install}`,
  );
  const withArgs = await list([launcher, "run --no-prompt"]);
  add(
    "no arguments",
    withArgs.code !== 0,
    withArgs.code !== 0
      ? "sudo refuses the launcher with arguments"
      : `a rule lets ${who} pass arguments to ${launcher}`,
    'end the launcher\'s rule in "" (privsep install writes it so) and remove broader rules',
  );
  const daemonArgv = ctx.commandSpec();
  const old = await list(
    daemonCommand({ ...daemonArgv, unprivileged: false }),
  );
  add(
    "no daemon command rule",
    old.code !== 0,
    old.code !== 0
      ? "sudo refuses the daemon's own command line"
      : `a rule lets ${who} run the daemon's command line through sudo: its words can be regrouped ("run --no-prompt" as one word runs a file of that name as root)`,
    "remove that rule (privsep 0.1's Cmnd_Alias PRIVSEP_…) and use the launcher's",
  );
}

/** Runs every check for `ctx`. */
export async function diagnose(
  ctx: PrivContext,
  user?: string,
): Promise<Check[]> {
  const checks: Check[] = [];
  const add = (check: string, ok: boolean, detail: string, fix?: string) =>
    checks.push({
      context: ctx.id,
      check,
      ok,
      detail,
      fix: ok ? undefined : fix,
    });

  let settings;
  try {
    settings = ctx.settings();
    add("config", true, `section [${ctx.cfgSection ?? "-"}] read`);
  } catch (error) {
    add(
      "config",
      false,
      (error as Error).message,
      "fix the config file named above",
    );
    return checks;
  }
  const spec = ctx.commandSpec();
  const asRoot = Deno.uid() === 0;
  const serviceUser = user ?? (asRoot ? undefined : Deno.env.get("USER"));

  // sudo, the launcher, and the rules sudo really applies to it.
  const sudo = await run(["sh", "-c", "command -v sudo"]);
  if (sudo.code !== 0) {
    add(
      "sudo",
      asRoot && !user,
      "sudo is not installed",
      "apt-get install sudo (Fedora: dnf install sudo)",
    );
  } else {
    add("sudo", true, sudo.out);
    await sudoChecks(ctx, asRoot, user ?? serviceUser, add);
  }

  // The deno binary and every file the root daemon loads.
  add(
    "deno binary",
    spec.denoPath.startsWith("/") && untrustedReason(spec.denoPath) === null,
    untrustedReason(spec.denoPath) ?? spec.denoPath,
    "install deno root-owned, not group/world-writable, at an absolute path",
  );
  let problems: string[] = [];
  try {
    problems = layoutProblems(spec);
  } catch (error) {
    problems = [(error as Error).message];
  }
  add(
    "file ownership",
    problems.length === 0,
    problems.length
      ? problems.join("; ")
      : `${spec.codeRoots.join(", ")} and ancestors are root-owned`,
    "install the application and privsep afresh as root from their source, root-owned and not group/world-writable, below root-owned directories (not /tmp); do not just chown a tree another user could write: what it holds is that user's",
  );

  // libcap. A path is loaded (its constructors run) only once it is trusted:
  // doctor often runs as root.
  const libcapPath = settings.libcap ?? DEFAULT_LIBCAP;
  const libcapReason = libcapPath.includes("/")
    ? untrustedReason(libcapPath)
    : null;
  if (libcapReason) {
    add(
      "libcap",
      false,
      libcapReason,
      "install libcap root-owned, or give its name (libcap.so.2)",
    );
  } else {try {
      Deno.dlopen(libcapPath, {
        cap_init: { parameters: [], result: "pointer" },
      }).close();
      add("libcap", true, `${settings.libcap ?? DEFAULT_LIBCAP} loads`);
    } catch (error) {
      add(
        "libcap",
        false,
        (error as Error).message,
        "apt-get install libcap2 (Fedora: dnf install libcap; Alpine: apk add libcap2)",
      );
    }}

  // What stage 1 runs as the keeper of a root-started daemon (_keeper.ts).
  const keeperProblems = [SETPRIV, KEEPER_SHELL].flatMap((path) => {
    try {
      Deno.statSync(path);
    } catch {
      return [`${path} is missing`];
    }
    return untrustedReason(path) ?? [];
  });
  add(
    "keeper",
    keeperProblems.length === 0,
    keeperProblems.join("; ") ||
      `${SETPRIV} and ${KEEPER_SHELL}, which stage 1 runs as the daemon's keeper, are root's`,
    "apt-get install util-linux bash (Fedora: dnf install util-linux bash); both must be root-owned and not writable by others",
  );

  // Target user and group.
  const account = lookupUser(settings.user);
  add(
    "user",
    account !== undefined,
    account
      ? `${settings.user} is uid ${account.id}`
      : `no user "${settings.user}"`,
    `useradd --system --no-create-home ${settings.user}`,
  );
  if (settings.group !== undefined) {
    const group = lookupGroup(settings.group);
    add(
      "group",
      group !== undefined,
      group
        ? `${settings.group} is gid ${group.id}`
        : `no group "${settings.group}"`,
      `groupadd --system ${settings.group}`,
    );
  }

  // The daemon's cache: root-owned, read-only to the target.
  const denoDir = spec.denoDir ?? DEFAULT_DENO_DIR;
  let existing = denoDir;
  while (true) {
    try {
      Deno.lstatSync(existing);
      break;
    } catch {
      if (dirname(existing) === existing) break;
      existing = dirname(existing);
    }
  }
  const cacheReason = untrustedReason(existing);
  add(
    "cache directory",
    cacheReason === null,
    existing === denoDir
      ? `${denoDir} is root-owned`
      : `${denoDir} will be created by the daemon below ${existing}`,
    `mkdir -p ${denoDir} && chown root:root ${denoDir} && chmod 755 ${denoDir}`,
  );
  if (cacheReason) checks[checks.length - 1].detail = cacheReason;

  // The kernel and this process's bounding set (sudo and the daemon inherit it).
  const last = kernelLastCap();
  const unknown = settings.capabilities.filter((c) => c > last);
  const self = await readProcessCredentials("self");
  const bounding = self.threads[0].capBnd;
  const missing = formatCapabilities(
    capabilitiesToMask(settings.capabilities) & ~bounding,
  );
  add(
    "capabilities",
    unknown.length === 0 && missing.length === 0,
    unknown.length
      ? `the kernel does not know ${
        unknown.map(capabilityName).join(", ")
      } (highest is ${last})`
      : missing.length
      ? `this process's bounding set lacks ${
        missing.join(", ")
      }: the daemon cannot keep them`
      : `kernel and bounding set allow ${
        settings.capabilities.map(capabilityName).join(", ") || "(none)"
      }`,
    "start the service with a bounding set that includes these capabilities (systemd: CapabilityBoundingSet=; containers: --cap-add)",
  );

  // Allowed paths a non-root user could point elsewhere with a symlink.
  const redirectable = redirectablePathWarnings(settings.permissions);
  add(
    "allowed paths",
    redirectable.length === 0,
    redirectable.join("\n") || "no allowed read or write path is redirectable",
    "chown root:root and chmod go-w each path named above and the directories leading to it, or allow a root-owned path instead",
  );
  if (redirectable.length) checks[checks.length - 1].warn = true;
  const refusals = writePathRefusals(ctx);
  add(
    "write paths",
    refusals.length === 0,
    refusals.map((r) => r.message).join("\n") ||
      "no write path holds what stage 1 trusts or widens to its directory",
    "create each missing write path first (as root, owned by the context's user), or declare the directory; narrow a write path that holds the code, its cache or the config",
  );
  add(
    "verification",
    settings.verify,
    settings.verify
      ? "the caller checks the daemon's credentials in /proc (it must run with --allow-all)"
      : "verify = false: the caller does not check the daemon's credentials in /proc",
    "remove verify = false and run the service with --allow-all",
  );
  if (!settings.verify) checks[checks.length - 1].warn = true;
  const cgroup = cgroupKill();
  add(
    "cgroup",
    cgroup.ok,
    cgroup.detail,
    "run on Linux 5.14+ with the cgroup2 hierarchy mounted (systemd: unified or hybrid layout); without it a process that leaves its group survives its daemon",
  );
  if (!cgroup.ok) checks[checks.length - 1].warn = true;
  const sandbox = confinementReport(settings);
  const gaps = sandbox.unenforced;
  add(
    "kernel sandbox",
    settings.confinement !== "off" && gaps.length === 0,
    settings.confinement === "off"
      ? 'confinement = "off": no Landlock rules, no seccomp filter'
      : gaps.length
      ? `confinement = "${settings.confinement}", Landlock ABI ${
        sandbox.landlockAbi ?? "unknown"
      }; not enforced: ${gaps.join("; ")}`
      : `Landlock ABI ${sandbox.landlockAbi}: every rule of "privsep inspect" is enforced; seccomp denies ${sandbox.plan.deny.length} system calls`,
    settings.confinement === "required"
      ? "the daemon will refuse to start: boot a kernel with Landlock (lsm=...,landlock, ABI 6 or later) and seccomp"
      : 'use a kernel with Landlock ABI 6 or later (lsm=...,landlock), or accept it; confinement = "required" would refuse to start',
  );
  if (settings.confinement !== "required" && !checks[checks.length - 1].ok) {
    checks[checks.length - 1].warn = true;
  }
  return checks;
}

/**
 * Whether a daemon started from here gets a cgroup of its own that
 * `cgroup.kill` empties: a cgroup2 hierarchy, and `cgroup.kill` in this
 * process's cgroup2 cgroup (the daemon's is created below it).
 */
function cgroupKill(): { ok: boolean; detail: string } {
  try {
    const cgroups = Deno.readTextFileSync("/proc/self/cgroup");
    const own = cgroupDir(
      Deno.readTextFileSync("/proc/self/mountinfo"),
      cgroups,
    );
    if (!("path" in own)) return { ok: false, detail: own.missing };
    // The root cgroup has no cgroup.kill; its children do from Linux 5.14.
    const [major, minor] = Deno.osRelease().split(".").map(Number);
    const isRoot = /^0::\/$/m.test(cgroups);
    if (!isRoot || major < 5 || (major === 5 && minor < 14)) {
      Deno.statSync(`${own.path}/cgroup.kill`);
    }
    const delegated = delegatedAbove(own.path, own.mount ?? "", (path) => {
      try {
        const info = Deno.lstatSync(path);
        return { uid: info.uid ?? -1, mode: (info.mode ?? 0) & 0o7777 };
      } catch {
        return undefined;
      }
    });
    if (delegated) {
      return {
        ok: false,
        detail:
          `${delegated}: daemons started from here run without a cgroup of their own (a non-root user could move their processes out); under systemd, leave Delegate= off`,
      };
    }
    return {
      ok: true,
      detail: `daemons get a cgroup of their own below ${own.path}`,
    };
  } catch (error) {
    return {
      ok: false,
      detail: `no cgroup.kill (Linux 5.14+): ${(error as Error).message}`,
    };
  }
}

/** Runs `privsep doctor`; returns the exit code. */
export async function doctorMain(args: string[]): Promise<number> {
  const parsed = contextCommandArgs(args, USAGE);
  if (typeof parsed === "number") return parsed;
  const checks: Check[] = [];
  for (const ctx of await loadContexts(parsed.specs)) {
    checks.push(...await diagnose(ctx, parsed.user));
  }
  if (parsed.json) {
    console.log(JSON.stringify(checks, null, 2));
  } else {
    let last = "";
    for (const c of checks) {
      if (c.context !== last) console.log(`context ${last = c.context}`);
      console.log(
        `  ${c.ok ? "ok  " : c.warn ? "WARN" : "FAIL"} ${
          c.check.padEnd(16)
        } ${c.detail}`,
      );
      if (c.fix) console.log(`       fix: ${c.fix}`);
    }
  }
  return checks.every((c) => c.ok || c.warn) ? 0 : 1;
}
