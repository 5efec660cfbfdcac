/**
 * The daemon's command line, built in one place so that what the caller runs
 * and the sudoers rule an operator installs can never drift apart.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { dirname, isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ABOVE_CHECK_SH,
  aboveProblem,
  CACHE_CHECK_SH,
  CONFIG_CHECK_SH,
  denoConfigProblem,
  dirsAbove,
  FILES_CHECK_SH,
  PRELOADED_MODULES,
  RAISE_LIMITS_SH,
} from "./_launcher_check.ts";
import {
  assertTrustedTree,
  UntrustedPathError,
  untrustedReason,
} from "./trust.ts";

/**
 * The DENO_DIR of the daemon when the context sets none: written by the
 * root first stage, only read by the serving stage (never writable by the
 * context's user, whose code would otherwise be able to poison it).
 */
export const DEFAULT_DENO_DIR = "/var/cache/privsep/deno";

/**
 * V8 flags of both daemon stages (the same in both, or stage 2 could not use
 * the code cache stage 1 writes): a small young generation and `gc()`, with
 * which the daemon frees large message buffers soon after use;
 * `--optimize-for-size`, with which V8 grows the old generation less before
 * collecting it: after 64 000 calls 64 in flight the daemon held 25-26 MiB of
 * its own memory instead of 35-40 (bench/HISTORY.md, 2026-12-04 night); and
 * `--no-turbofan`: the daemon's code goes no further than Maglev. Each
 * TurboFan compilation of a hot function took 2-8 ms of a CPU, which callers
 * waited for (on one CPU, every call in flight at the time), and the faster
 * code saved nothing measurable on the daemon's short path (bench/HISTORY.md,
 * 2026-12-04 late). The serving stage adds {@linkcode serveV8Flags}.
 */
export const DAEMON_V8_FLAGS =
  "--v8-flags=--expose-gc,--max-semi-space-size=1,--optimize-for-size,--no-turbofan";

/**
 * The serving stage's further V8 flags, which the first stage passes in its
 * environment as `DENO_V8_FLAGS` (Deno adds them to `--v8-flags`).
 *
 * `--predictable`: V8 does its collections and compilations on the main
 * thread, between calls, instead of waking worker threads on the other CPU,
 * and keeps its young generation's pages instead of giving them back whenever
 * it allocates slowly (which a daemon between calls always does) and mapping
 * them again, one every ~100 calls, for 0.2-1 ms each. The full profile's
 * chown p99: 164 µs against 278 (bench/HISTORY.md, 2026-12-05 last). V8's
 * code cache does not check it: stage 1 runs without it.
 *
 * `--random-seed`: `seed` or (when it is undefined or 0, which predictable
 * mode would replace with a fixed seed) one from the system's random source.
 * The seed starts `Math.random()` and places V8's heap in memory, so it is
 * drawn for each daemon and kept off the command line, which every local user
 * can read in /proc; the environment only the daemon's user can.
 *
 * @example
 * ```ts ignore
 * serveV8Flags(); // "--predictable,--random-seed=1283746521"
 * ```
 */
export function serveV8Flags(seed?: number): string {
  while (seed === undefined || seed === 0) {
    seed = crypto.getRandomValues(new Int32Array(1))[0];
  }
  if (!Number.isInteger(seed) || seed !== (seed | 0)) {
    throw new RangeError(
      `a V8 random seed is a non-zero 32-bit integer, got ${seed}`,
    );
  }
  return `--predictable,--random-seed=${seed}`;
}

/** The program that sets DENO_DIR for the daemon (sudo clears DENO_*). */
export const ENV_PROGRAM = "/usr/bin/env";

/**
 * Everything that decides the daemon's command line; a context builds its own
 * with {@linkcode PrivContext.commandSpec}.
 *
 * @example
 * ```ts
 * import { daemonArgv, type DaemonCommandSpec } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * const spec: DaemonCommandSpec = {
 *   denoPath: "/usr/local/bin/deno",
 *   daemonPath: "/opt/app/vendor/privsep/daemon.ts",
 *   denoConfig: "/opt/app/deno.json",
 *   codeRoots: ["/opt/app"],
 *   contextId: "file:///opt/app/privsep/mod.ts#sysAdmin",
 *   configFiles: ["/etc/app/privsep.toml"],
 *   denoDir: "/var/cache/privsep/app",
 * };
 * const argv = daemonArgv(spec);
 * assert.deepEqual(argv.slice(0, 3), [
 *   "/usr/bin/env",
 *   "DENO_DIR=/var/cache/privsep/app",
 *   "/usr/local/bin/deno",
 * ]);
 * assert(argv.includes("--allow-read=/opt/app,/etc/app/privsep.toml"));
 * assert.equal(argv.at(-1), "--config-file=/etc/app/privsep.toml");
 * ```
 */
export interface DaemonCommandSpec {
  /** Absolute path of the `deno` binary (root-owned in production). */
  denoPath: string;
  /** Absolute path of privsep's `daemon.ts`. */
  daemonPath: string;
  /** Absolute path of the application's `deno.json`; `--no-config` without. */
  denoConfig?: string;
  /**
   * Directories (or files) the daemon may load code from. The daemon checks
   * that each one, all its ancestors and everything below it are root-owned
   * and not writable by others before it loads anything.
   */
  codeRoots: readonly string[];
  /** The context, as `file:///…/module.ts#exportName`. */
  contextId: string;
  /** TOML configuration files (absolute paths), in override order. */
  configFiles?: readonly string[];
  /** The helper that gains root, e.g. `["sudo", "-n"]`; empty to run directly. */
  helperCommand?: readonly string[];
  /** The daemon's root-owned DENO_DIR (`/var/cache/privsep/deno` by default). */
  denoDir?: string;
  /**
   * Start without sudo and without capabilities, as the current user (the
   * testing kit's unprivileged daemon).
   */
  unprivileged?: boolean;
}

function requireAbsolute(what: string, path: string): void {
  if (!isAbsolute(path)) {
    throw new TypeError(`${what} must be an absolute path, got "${path}"`);
  }
  if (/[\s\0]/.test(path)) {
    throw new TypeError(
      `${what} must not contain white space (sudoers cannot match it exactly): "${path}"`,
    );
  }
}

/**
 * Builds the daemon's first-stage argv (without the helper command):
 * `/usr/bin/env DENO_DIR=<root-owned cache> deno run …`. The flags pin
 * everything that could change what runs as root: `--no-prompt`,
 * `--cached-only`, `--no-lock`, an absolute `--config` (or `--no-config`),
 * unscoped `--allow-ffi` (needed for the privilege drop) and reads limited to
 * the code roots and config files.
 *
 * @example
 * ```ts
 * import { daemonArgv } from "@privsep/privsep";
 * daemonArgv({
 *   denoPath: "/usr/local/bin/deno",
 *   daemonPath: "/opt/app/vendor/privsep/daemon.ts",
 *   denoConfig: "/opt/app/deno.json",
 *   codeRoots: ["/opt/app"],
 *   contextId: "file:///opt/app/privsep/mod.ts#sysAdmin",
 * });
 * ```
 */
export function daemonArgv(spec: DaemonCommandSpec): string[] {
  requireAbsolute("the deno binary", spec.denoPath);
  requireAbsolute("daemon.ts", spec.daemonPath);
  if (spec.denoConfig) requireAbsolute("the deno config", spec.denoConfig);
  for (const root of spec.codeRoots) requireAbsolute("a code root", root);
  if (spec.codeRoots.length === 0) {
    throw new TypeError(
      "at least one code root is needed (the daemon's own directory)",
    );
  }
  const configFiles = spec.configFiles ?? [];
  for (const file of configFiles) requireAbsolute("a config file", file);
  if (!/^file:\/\/\/\S+#[A-Za-z_$][\w$]*$/.test(spec.contextId)) {
    throw new TypeError(
      `the context id must look like "file:///abs/module.ts#exportName", got "${spec.contextId}"`,
    );
  }
  const denoDir = spec.denoDir ?? DEFAULT_DENO_DIR;
  requireAbsolute("the daemon's DENO_DIR", denoDir);
  const reads = [...new Set([...spec.codeRoots, ...configFiles])];
  for (const path of reads) {
    if (path.includes(",")) {
      throw new TypeError(
        `a code root or config file must not contain a comma (--allow-read splits at commas): "${path}"`,
      );
    }
  }
  return [
    ENV_PROGRAM,
    `DENO_DIR=${denoDir}`,
    spec.denoPath,
    "run",
    "--no-prompt",
    "--cached-only",
    "--no-lock",
    DAEMON_V8_FLAGS,
    spec.denoConfig ? `--config=${spec.denoConfig}` : "--no-config",
    "--allow-ffi",
    `--allow-read=${reads.join(",")}`,
    spec.daemonPath,
    `--context=${spec.contextId}`,
    ...configFiles.map((f) => `--config-file=${f}`),
    ...(spec.unprivileged ? ["--unprivileged"] : []),
  ];
}

/**
 * The whole command the caller spawns: the helper command, then
 * {@linkcode daemonArgv}.
 *
 * @example
 * ```ts
 * import { daemonCommand } from "@privsep/privsep";
 * const argv = daemonCommand({
 *   denoPath: "/usr/local/bin/deno",
 *   daemonPath: "/opt/app/vendor/privsep/daemon.ts",
 *   codeRoots: ["/opt/app"],
 *   contextId: "file:///opt/app/privsep/mod.ts#sysAdmin",
 *   helperCommand: ["sudo", "-n"],
 * });
 * argv[0]; // "sudo"
 * ```
 */
export function daemonCommand(spec: DaemonCommandSpec): string[] {
  return [...(spec.helperCommand ?? []), ...daemonArgv(spec)];
}

/**
 * Where `privsep install` puts the contexts' launchers when the context sets
 * no `launcher_dir`: root-owned, like everything root runs.
 */
export const DEFAULT_LAUNCHER_DIR = "/usr/local/libexec/privsep";

/** What a launcher's path may be made of: nothing sudoers would read specially. */
const LAUNCHER_PATH = /^\/[A-Za-z0-9_.+@\/-]+$/;

/**
 * The launcher of a context: `<launcherDir>/<exportName>-<12 hex digits>`,
 * the digits from the SHA-256 of the context id, so that two applications
 * with a context of the same name never share a launcher (nor a rule).
 *
 * @example
 * ```ts
 * import { launcherPath } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * const path = launcherPath("file:///opt/app/privsep/mod.ts#sysAdmin");
 * assert.match(path, /^\/usr\/local\/libexec\/privsep\/sysAdmin-[0-9a-f]{12}$/);
 * ```
 */
export function launcherPath(
  contextId: string,
  launcherDir: string = DEFAULT_LAUNCHER_DIR,
): string {
  if (!LAUNCHER_PATH.test(launcherDir)) {
    throw new TypeError(
      `the launcher directory must be an absolute path of letters, digits and _ . + @ - /, got "${launcherDir}"`,
    );
  }
  const name = contextId.slice(contextId.lastIndexOf("#") + 1).replace(
    /[^A-Za-z0-9_]/g,
    "_",
  );
  const digest = createHash("sha256").update(contextId).digest("hex");
  return `${launcherDir.replace(/\/+$/, "")}/${name}-${digest.slice(0, 12)}`;
}

/** One word for a POSIX shell, single-quoted. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_./=,:@%+-]+$/.test(word)
    ? word
    : `'${word.replaceAll("'", "'\\''")}'`;
}

/**
 * The launcher script of a daemon: the one program a sudoers rule lets the
 * service's user run, with no arguments. It ignores its arguments, its
 * working directory and its environment: it changes to `/`, refuses a
 * daemon cache that anyone but root could have written, and a deno binary,
 * `deno.json` or first-stage module (`daemon.ts` and its static imports)
 * that anyone but root could change, or any directory on the way to them,
 * and `exec`s
 * exactly {@linkcode daemonArgv} under `env -i` (only sudo's own `SUDO_UID`,
 * `SUDO_GID` and `SUDO_USER` pass, for the audit records). `privsep install`
 * writes it root-owned, mode 0755.
 *
 * @example
 * ```ts
 * import { launcherScript } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * const script = launcherScript({
 *   denoPath: "/usr/local/bin/deno",
 *   daemonPath: "/opt/app/vendor/privsep/daemon.ts",
 *   codeRoots: ["/opt/app"],
 *   contextId: "file:///opt/app/privsep/mod.ts#sysAdmin",
 * });
 * assert.match(script, /^#!\/bin\/sh\n/);
 * assert.match(script, /\ncd \/ \|\| exit 126\n/);
 * assert.match(script, /exec \/usr\/bin\/env -i /);
 * assert.doesNotMatch(script, /"\$@"|\$[*]/); // arguments are never used
 * ```
 */
export function launcherScript(spec: DaemonCommandSpec): string {
  const argv = daemonArgv({ ...spec, unprivileged: false });
  // env's own DENO_DIR=… word stays where daemonArgv puts it, after -i.
  const words = [
    argv[0],
    "-i",
    '"SUDO_UID=${SUDO_UID-}"',
    '"SUDO_GID=${SUDO_GID-}"',
    '"SUDO_USER=${SUDO_USER-}"',
    '"PRIVSEP_UMASK=${privsep_umask}"',
    ...argv.slice(1).map(shellWord),
  ];
  const lines: string[] = [];
  let line = "exec";
  for (const word of words) {
    if (line.length + word.length > 76) {
      lines.push(`${line} \\`);
      line = " ";
    }
    line += ` ${word}`;
  }
  lines.push(line);
  // A comment must stay on its line: no control character of the id in it.
  // deno-lint-ignore no-control-regex
  const id = spec.contextId.replace(/[\0-\x1f\x7f]/g, "?");
  return [
    "#!/bin/sh",
    `# privsep launcher of ${id}`,
    "# Written by `privsep install`. sudo runs it with no arguments (its rule",
    '# ends in ""), and it uses none of its arguments, environment or working',
    "# directory. The sudoers rule pins this file's SHA-256: to change it, run",
    "# `privsep install` again.",
    "unset IFS",
    "cd / || exit 126",
    "# Not the caller's umask either: what deno and stage 1 create (the cache,",
    "# /run/privsep) is for every daemon of the host. The serving stage gets",
    "# the caller's back (PRIVSEP_UMASK, never less than 022).",
    "privsep_umask=$(umask)",
    "umask 022",
    "# Nor the caller's file-size limit: root writes the shared cache (a",
    "# caller's `ulimit -f 0` truncated its files). The hard limit needs",
    "# CAP_SYS_RESOURCE to be raised; without it the start is refused.",
    "ulimit -H -f unlimited 2>/dev/null",
    "ulimit -S -f unlimited 2>/dev/null || {",
    `  echo "privsep: the caller's file-size limit ($(ulimit -H -f) blocks of 512 bytes) would reach what root writes; start the service with ulimit -f unlimited" >&2`,
    "  exit 126",
    "}",
    "# Nor limits too low for deno, which then dies without a word of privsep",
    "# (found by reviews: fewer than ~24 descriptors, an address space below",
    "# ~40 GB, a data segment below ~600 MB, a stack below ~1 MB): each soft",
    "# limit raised toward what deno wants where the hard one allows (raising",
    "# a hard one needs CAP_SYS_RESOURCE), and the start refused below a floor.",
    RAISE_LIMITS_SH.trimEnd(),
    'privsep_raise -n 1024 64 "open-file" || exit 126',
    'privsep_raise -v unlimited 67108864 "address-space (KiB)" || exit 126',
    'privsep_raise -d unlimited 2097152 "data-segment (KiB)" || exit 126',
    'privsep_raise -s 8192 2048 "stack (KiB)" || exit 126',
    "# dash's -p: RLIMIT_NPROC, which counts the context user's processes.",
    'privsep_raise -p unlimited 0 "process" || exit 126',
    "# The cache stage 1 runs its first modules from, checked before deno starts.",
    CACHE_CHECK_SH.trimEnd(),
    `privsep_check_cache ${
      shellWord(spec.denoDir ?? DEFAULT_DENO_DIR)
    } || exit 126`,
    "# And what deno runs and loads before stage 1 checks anything itself.",
    FILES_CHECK_SH.trimEnd(),
    `privsep_check_files ${
      [
        spec.denoPath,
        ...(spec.denoConfig ? [spec.denoConfig] : []),
        ...PRELOADED_MODULES.map((m) => join(dirname(spec.daemonPath), m)),
      ].map(shellWord).join(" ")
    } || exit 126`,
    ...(spec.denoConfig
      ? [
        "# A workspace root (Deno looks above none), with no import map file.",
        CONFIG_CHECK_SH.trimEnd(),
        `privsep_check_config ${shellWord(spec.denoConfig)} || exit 126`,
      ]
      : []),
    "# Nothing above the code that Deno reads on its way up.",
    ABOVE_CHECK_SH.trimEnd(),
    `privsep_check_above ${
      dirsAbove(codeAndConfig(spec)).map(shellWord).join(" ")
    } || exit 126`,
    ...lines,
    "",
  ].join("\n");
}

/**
 * The SHA-256 of a launcher script, in hex: what its sudoers rule pins.
 *
 * @example
 * ```ts
 * import { launcherDigest } from "@privsep/privsep";
 * launcherDigest("#!/bin/sh\n").length; // 64
 * ```
 */
export function launcherDigest(script: string | Uint8Array): string {
  return createHash("sha256").update(script).digest("hex");
}

/**
 * Options of {@linkcode sudoersRule}.
 *
 * @example
 * ```ts
 * import { sudoersRule, type SudoersRuleOptions } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * const options: SudoersRuleOptions = {
 *   user: "%app",
 *   sha256: "0".repeat(64), // launcherDigest() of the launcher script
 * };
 * assert.equal(
 *   sudoersRule("/usr/local/libexec/privsep/sysAdmin-0123456789ab", options),
 *   `%app ALL=(root) CWD=/ NOPASSWD: sha256:${"0".repeat(64)} ` +
 *     '/usr/local/libexec/privsep/sysAdmin-0123456789ab ""\n',
 * );
 * ```
 */
export interface SudoersRuleOptions {
  /** The user (or `%group`) allowed to start the daemon. */
  user: string;
  /** The SHA-256 of the launcher (hex or base64): sudo refuses any other file. */
  sha256?: string;
}

/**
 * The sudoers line that lets `user` run one launcher as root without a
 * password, with no arguments (`""`) and in `/` (`CWD=/`), and nothing
 * else. No `Cmnd_Alias`: a name could clash with another application's.
 *
 * A rule never names the daemon's own command line: sudo compares a rule's
 * arguments with the user's arguments joined by spaces, so the user could
 * regroup words (`"run --no-prompt"` as one word makes Deno run a file of
 * that name as root). A fixed launcher with no arguments leaves nothing to
 * regroup.
 *
 * @example
 * ```ts
 * import { sudoersRule } from "@privsep/privsep";
 * sudoersRule("/usr/local/libexec/privsep/sysAdmin-0123456789ab", { user: "app" });
 * // app ALL=(root) CWD=/ NOPASSWD: /usr/local/libexec/privsep/sysAdmin-0123456789ab ""
 * ```
 */
export function sudoersRule(
  launcher: string,
  options: SudoersRuleOptions,
): string {
  if (!/^%?[a-z_][a-z0-9_.-]*\$?$/i.test(options.user)) {
    throw new TypeError(
      `not a valid user or %group for sudoers: "${options.user}"`,
    );
  }
  if (!LAUNCHER_PATH.test(launcher) || launcher.includes("/../")) {
    throw new TypeError(
      `the launcher must be an absolute path of letters, digits and _ . + @ - (sudoers matches it literally, without escapes), got "${launcher}"`,
    );
  }
  if (
    options.sha256 &&
    !/^(?:[0-9a-fA-F]{64}|[A-Za-z0-9+/]{43}=)$/.test(options.sha256)
  ) {
    throw new TypeError(
      `sha256 must be a SHA-256 digest in hex or base64: "${options.sha256}"`,
    );
  }
  const digest = options.sha256 ? `sha256:${options.sha256} ` : "";
  return `${options.user} ALL=(root) CWD=/ NOPASSWD: ${digest}${launcher} ""\n`;
}

/**
 * Finds the application's `deno.json` or `deno.jsonc`: the nearest one in
 * the directory of `fromFile` or any ancestor.
 *
 * @example
 * ```ts
 * import { findDenoConfig } from "@privsep/privsep";
 * findDenoConfig(new URL(import.meta.url)); // "/…/deno.json" or undefined
 * ```
 */
export function findDenoConfig(fromFile: URL): string | undefined {
  let dir = dirname(fileURLToPath(fromFile));
  for (;;) {
    for (const name of ["deno.json", "deno.jsonc"]) {
      const candidate = join(dir, name);
      try {
        if (Deno.statSync(candidate).isFile) return candidate;
      } catch { /* not here */ }
    }
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** The code roots and the deno.json's directory: what dirsAbove() starts from. */
function codeAndConfig(spec: DaemonCommandSpec): string[] {
  return [
    ...spec.codeRoots,
    ...(spec.denoConfig ? [dirname(spec.denoConfig)] : []),
  ];
}

/**
 * Why the deno.json `config` may not be the root daemon's configuration
 * ({@linkcode denoConfigProblem}), or `null`.
 */
export function configProblem(config: string): string | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(config);
  } catch {
    return null; // untrustedReason() says what is wrong with it
  }
  return denoConfigProblem(config, text) ?? null;
}

/**
 * Everything in a daemon's command that a non-root user could modify: the
 * deno binary, `daemon.ts`, the config, the config files, the code roots (and
 * all below them) and the cache directory's ancestors. Root runs these before
 * anything of them can be checked from inside, so the sudoers rule is only
 * generated for a layout where this list is empty.
 *
 * @example
 * ```ts ignore
 * import { layoutProblems } from "./command.ts"; // not exported by the package
 * layoutProblems(ctx.commandSpec()); // [] when root-owned and not writable by others
 * ```
 */
export function layoutProblems(spec: DaemonCommandSpec): string[] {
  const problems: string[] = [];
  const add = (reason: string | null) => {
    if (reason && !problems.includes(reason)) problems.push(reason);
  };
  for (
    const path of [
      ENV_PROGRAM,
      spec.denoPath,
      spec.daemonPath,
      spec.denoConfig,
      ...(spec.configFiles ?? []),
    ]
  ) {
    if (path) add(untrustedReason(path));
  }
  if (spec.denoConfig) add(configProblem(spec.denoConfig));
  add(
    aboveProblem(dirsAbove(codeAndConfig(spec)), (path) => {
      try {
        Deno.lstatSync(path);
        return true;
      } catch {
        return false;
      }
    }) ?? null,
  );
  for (const root of spec.codeRoots) {
    try {
      assertTrustedTree(root, { skip: (p) => p.endsWith("/.git") });
    } catch (error) {
      if (!(error instanceof UntrustedPathError)) throw error;
      add(error.message);
    }
  }
  // The cache may not exist yet (the daemon creates it): its nearest
  // existing ancestor must be trusted.
  let dir = spec.denoDir ?? DEFAULT_DENO_DIR;
  for (;;) {
    try {
      Deno.lstatSync(dir);
      break;
    } catch {
      const parent = dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  add(untrustedReason(dir));
  return problems;
}
