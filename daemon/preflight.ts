/**
 * What the daemon's first stage checks before it loads anything beyond this
 * file, `core/trust.ts` (with `core/command.ts`) and the libc bindings: that
 * it runs as root, that its own command line carries exactly the pinned
 * flags, and that the deno binary, the config, the cache directory, the
 * config files and every file below its code roots are root-owned and not
 * writable by others. Only then does
 * `daemon.ts` import the rest of privsep and its npm dependencies.
 *
 * @module
 */

import { dirname, isAbsolute } from "node:path";
import {
  check,
  cString,
  getenvViaLibc,
  lstatViaLibc,
  openLibc,
  readFileViaLibc,
  readLinkViaLibc,
} from "../caps/_ffi.ts";
import { DAEMON_V8_FLAGS, DEFAULT_DENO_DIR } from "../core/command.ts";
import {
  aboveProblem,
  denoConfigProblem,
  dirsAbove,
} from "../core/_launcher_check.ts";
import {
  assertTrusted,
  assertTrustedTree,
  useFileProbe,
} from "../core/trust.ts";

/** A start-up failure: printed on stderr, exit code 2. */
export class StartError extends Error {
  /** Always `"StartError"`. */
  override name = "StartError";
}

/** What the first stage established about itself. */
export interface Preflight {
  /** The absolute `--config`, or undefined for `--no-config`. */
  config?: string;
  /** The directories it may load code from (its `--allow-read` minus config files). */
  codeRoots: string[];
  /** The `--config-file` arguments. */
  configFiles: string[];
  /** The root-owned DENO_DIR the serving stage reads its cache from. */
  denoDir: string;
  /** No sudo, no capabilities, the current user (testing kit). */
  unprivileged: boolean;
  /** The uid and gid this stage runs with. */
  uid: number;
  /** The gid this stage runs with. */
  gid: number;
  /**
   * The umask the serving stage gets: the caller's, at least 022 (this stage
   * itself runs with 022).
   */
  servingUmask: number;
}

/** The flags (besides `--allow-read=` and `--config=`) stage 1 accepts. */
const ALLOWED_FLAGS = new Set([
  "--no-prompt",
  "--cached-only",
  "--no-lock",
  "--no-config",
  "--allow-ffi",
  DAEMON_V8_FLAGS,
]);
const REQUIRED_FLAGS = [
  "--no-prompt",
  "--cached-only",
  "--no-lock",
  "--allow-ffi",
];

/** This process's own command line, as the kernel has it. */
function ownCommandLine(): string[] {
  const raw = new TextDecoder().decode(readFileViaLibc("/proc/self/cmdline"));
  return raw.split("\0").slice(0, -1);
}

/**
 * Checks our own deno command line against the allowlist: exactly the flags
 * `daemonArgv()` writes, nothing else (docs/security.md).
 */
export function checkOwnFlags(
  argv: readonly string[],
  daemonPath: string,
): { config?: string; reads: string[] } {
  const end = argv.indexOf(daemonPath);
  if (argv[1] !== "run" || end < 0) {
    throw new StartError(
      `unexpected command line (${
        argv.slice(0, 3).join(" ")
      } …); start the daemon as "deno run <flags> ${daemonPath}", as ctx.command() builds it`,
    );
  }
  const flags = argv.slice(2, end);
  let config: string | undefined;
  const reads: string[] = [];
  for (const flag of flags) {
    if (flag.startsWith("--config=")) {
      if (config !== undefined) throw new StartError("--config is given twice");
      config = flag.slice("--config=".length);
      if (!isAbsolute(config)) {
        throw new StartError(
          `--config must be an absolute path, got "${config}"`,
        );
      }
    } else if (flag.startsWith("--allow-read=")) {
      reads.push(...flag.slice("--allow-read=".length).split(","));
    } else if (!ALLOWED_FLAGS.has(flag)) {
      throw new StartError(
        `refusing the flag "${flag}" on the first stage's command line: it accepts only ${
          [...ALLOWED_FLAGS].join(" ")
        } --config=<abs> --allow-read=<code roots>; use the command from ctx.command() or the generated sudoers rule`,
      );
    }
  }
  for (const flag of REQUIRED_FLAGS) {
    if (!flags.includes(flag)) {
      throw new StartError(
        `refusing to run as root without ${flag}; use the command from ctx.command() or the generated sudoers rule`,
      );
    }
  }
  if (config === undefined && !flags.includes("--no-config")) {
    throw new StartError(
      "refusing to run as root without --no-config or an absolute --config=: a deno.json or package.json above the daemon could change what runs as root",
    );
  }
  if (reads.length === 0) {
    throw new StartError("--allow-read=<code roots> is required");
  }
  for (const r of reads) {
    if (!isAbsolute(r)) {
      throw new StartError(`--allow-read paths must be absolute, got "${r}"`);
    }
  }
  return { config, reads };
}

function ensureCacheDir(path: string): void {
  const libc = openLibc();
  // Created by root, 0755: the serving stage may read it, never write it.
  for (const dir of [path.slice(0, path.lastIndexOf("/")), path]) {
    if (!dir) continue;
    if (libc.mkdir(cString(dir), 0o755) < 0) {
      const st = (() => {
        try {
          return lstatViaLibc(dir);
        } catch {
          return undefined;
        }
      })();
      if (!st?.isDirectory) check(`mkdir(${dir})`, -1);
      // The cache itself, narrowed by the umask of a stage 1 older than the
      // launcher's umask 022: root's, so made readable again (never
      // writable: the trust check below refuses that).
      if (dir === path && st?.uid === 0 && (st.mode & 0o055) !== 0o055) {
        check(
          `chmod(${dir})`,
          libc.chmod(cString(dir), (st.mode | 0o055) & 0o7777),
        );
      }
    }
  }
}

/**
 * Runs every check that must pass before privsep loads its own modules and
 * npm dependencies as root.
 *
 * @example
 * ```ts ignore
 * const facts = preflight(Deno.args, "/opt/app/vendor/privsep/daemon.ts");
 * ```
 */
export function preflight(
  configFiles: readonly string[],
  daemonPath: string,
  unprivileged = false,
): Preflight {
  const libc = openLibc();
  // First: nothing this stage resolves may depend on the directory the
  // caller started it in (dlopen, relative paths, empty LD_LIBRARY_PATH
  // entries all resolve against it).
  check("chdir(/)", libc.chdir(cString("/")));
  // Nor on the caller's umask: sudo passes a stricter one on, and what this
  // stage creates for every daemon of the host (the cache, /run/privsep,
  // cgroups) must stay usable by their users. The serving stage gets the
  // caller's back (the launcher, which sets 022 before deno starts, passes
  // it in PRIVSEP_UMASK): what an entrypoint creates is as private as the
  // caller asked.
  const servingUmask = callerUmask(libc.umask(0o022));
  const uid = libc.geteuid();
  const gid = libc.getegid();
  if (uid !== 0) {
    if (!unprivileged) {
      throw new StartError(
        "the privsep daemon must start as root (through sudo, or directly as root) to drop to its context",
      );
    }
    // A user's own daemon, without capabilities: nothing to protect from
    // that user, so no ownership checks; its own cache.
    const flags = checkOwnFlags(ownCommandLine(), daemonPath);
    return {
      config: flags.config,
      codeRoots: flags.reads.filter((r) => !configFiles.includes(r)),
      configFiles: [...configFiles],
      denoDir: getenvViaLibc("DENO_DIR") || DEFAULT_DENO_DIR,
      unprivileged,
      uid,
      gid,
      servingUmask,
    };
  }
  // Ancestors are inspected through libc: Deno may only read the code roots.
  useFileProbe({
    lstat: lstatViaLibc,
    readLink: readLinkViaLibc,
    stat: (p) => lstatViaLibc(p, true),
  });
  const flags = checkOwnFlags(ownCommandLine(), daemonPath);
  assertTrusted(Deno.execPath());
  if (flags.config) {
    assertTrusted(flags.config);
    const problem = denoConfigProblem(
      flags.config,
      new TextDecoder().decode(readFileViaLibc(flags.config)),
    );
    if (problem) throw new StartError(`refusing to start: ${problem}`);
  }
  for (const file of configFiles) {
    if (!isAbsolute(file)) {
      throw new StartError(
        `--config-file must be an absolute path, got "${file}"`,
      );
    }
    assertTrusted(file);
  }
  const denoDir = getenvViaLibc("DENO_DIR") || DEFAULT_DENO_DIR;
  if (!isAbsolute(denoDir)) {
    throw new StartError(`DENO_DIR must be an absolute path, got "${denoDir}"`);
  }
  ensureCacheDir(denoDir);
  // The cache holds transpiled code: only root may write it (not the tree:
  // it can be large, and everything in it was written by root stage-1 runs).
  assertTrusted(denoDir);
  const codeRoots = flags.reads.filter((r) => !configFiles.includes(r));
  if (
    !codeRoots.some((r) => daemonPath === r || daemonPath.startsWith(r + "/"))
  ) {
    throw new StartError(
      `the daemon ${daemonPath} is not below any --allow-read code root`,
    );
  }
  for (const root of codeRoots) {
    assertTrustedTree(root, { skip: (p) => p.endsWith("/.git") });
  }
  // Nothing above the code that Deno reads on its way up (before the
  // dynamic imports that follow resolve npm packages).
  const above = aboveProblem(
    dirsAbove([
      ...codeRoots,
      ...(flags.config ? [dirname(flags.config)] : []),
    ]),
    (path) => {
      try {
        lstatViaLibc(path);
        return true;
      } catch {
        return false;
      }
    },
  );
  if (above) throw new StartError(`refusing to start: ${above}`);
  return {
    config: flags.config,
    codeRoots,
    configFiles: [...configFiles],
    denoDir,
    unprivileged,
    uid,
    gid,
    servingUmask,
  };
}

/**
 * The serving stage's umask from the one this process started with
 * (`inherited`) or, when the launcher set 022 before deno started, the
 * caller's as the launcher passed it in `PRIVSEP_UMASK` (octal, as the
 * shell's `umask` prints it); never less than 022, and only the
 * permission bits. Anything else there is ignored.
 */
export function callerUmask(
  inherited: number,
  passed: string = getenvViaLibc("PRIVSEP_UMASK") ?? "",
): number {
  const mask = /^[0-7]{1,4}$/.test(passed) ? parseInt(passed, 8) : inherited;
  return (mask | 0o022) & 0o777;
}
