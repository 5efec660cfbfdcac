/**
 * The daemon's command line, built in one place so that what the caller runs
 * and the sudoers rule an operator installs can never drift apart.
 *
 * @module
 */

import { dirname, isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  assertTrustedTree,
  UntrustedPathError,
  untrustedReason,
} from "../daemon/trust.ts";

/**
 * The DENO_DIR of the daemon when the context sets none: written by the
 * root first stage, only read by the serving stage (never writable by the
 * context's user, whose code would otherwise be able to poison it).
 */
export const DEFAULT_DENO_DIR = "/var/cache/privsep/deno";

/**
 * V8 flags of both daemon stages (the same in both, or stage 2 could not use
 * the code cache stage 1 writes): a small young generation and `gc()`, with
 * which the daemon frees large message buffers soon after use.
 */
export const DAEMON_V8_FLAGS = "--v8-flags=--expose-gc,--max-semi-space-size=1";

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
  /** The daemon's root-owned DENO_DIR ({@linkcode DEFAULT_DENO_DIR} by default). */
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
 * Escapes one command-line word for a sudoers `Cmnd` (sudoers(5)). sudoers
 * drops a backslash before a backslash, `,`, `:`, `=` or `#`, keeps it before
 * `!`, and rejects it before anything else (`(`, `)` and `"` need none); the
 * arguments are then matched with fnmatch(3), where a backslash escapes the
 * next character, so a literal backslash takes four.
 */
function sudoersWord(word: string): string {
  return word.replace(
    /[\\,:=#!]/g,
    (c) => c === "\\" ? "\\\\\\\\" : `\\${c}`,
  );
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
 *   alias: "APP_PRIVSEP",
 *   sha256: "0".repeat(64), // the digest of /usr/bin/deno
 * };
 * const rule = sudoersRule(["/usr/bin/deno", "run", "/opt/d.ts"], options);
 * assert.equal(
 *   rule,
 *   `Cmnd_Alias APP_PRIVSEP = sha256:${"0".repeat(64)} /usr/bin/deno run /opt/d.ts\n` +
 *     "%app ALL=(root) NOPASSWD: APP_PRIVSEP\n",
 * );
 * ```
 */
export interface SudoersRuleOptions {
  /** The user (or `%group`) allowed to start the daemon. */
  user: string;
  /** A `Cmnd_Alias` name (upper case); derived from the context if omitted. */
  alias?: string;
  /** Prefix the command with `sha256:<digest>` of the deno binary. */
  sha256?: string;
}

/**
 * The exact, wildcard-free sudoers lines that let `user` start this one
 * daemon as root without a password, and nothing else.
 *
 * @example
 * ```ts
 * import { sudoersRule } from "@privsep/privsep";
 * const argv = ["/usr/bin/deno", "run", "--no-config", "/opt/d.ts", "--context=file:///opt/m.ts#ctx"];
 * sudoersRule(argv, { user: "app" });
 * // Cmnd_Alias PRIVSEP_CTX = /usr/bin/deno run --no-config /opt/d.ts --context\=file\:///opt/m.ts\#ctx
 * // app ALL=(root) NOPASSWD: PRIVSEP_CTX
 * ```
 */
export function sudoersRule(
  argv: readonly string[],
  options: SudoersRuleOptions,
): string {
  if (!/^%?[a-z_][a-z0-9_.-]*\$?$/i.test(options.user)) {
    throw new TypeError(
      `not a valid user or %group for sudoers: "${options.user}"`,
    );
  }
  if (argv.length === 0 || !isAbsolute(argv[0])) {
    throw new TypeError("the command must start with an absolute program path");
  }
  for (const word of argv) {
    if (/[\s\0*?[\]]/.test(word) || word === "") {
      throw new TypeError(
        `a sudoers command word cannot be empty or contain white space or wildcards: "${word}"`,
      );
    }
  }
  const contextArg = argv.find((w) => w.startsWith("--context="));
  const context = contextArg?.slice(contextArg.lastIndexOf("#") + 1);
  const alias = options.alias ??
    `PRIVSEP_${
      (context ?? "DAEMON").replace(/([a-z])([A-Z])/g, "$1_$2").replace(
        /\W/g,
        "_",
      ).toUpperCase()
    }`;
  if (!/^[A-Z][A-Z0-9_]*$/.test(alias)) {
    throw new TypeError(
      `a Cmnd_Alias name must be upper case letters, digits and _: "${alias}"`,
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
  return [
    `Cmnd_Alias ${alias} = ${digest}${argv.map(sudoersWord).join(" ")}`,
    `${options.user} ALL=(root) NOPASSWD: ${alias}`,
    "",
  ].join("\n");
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
