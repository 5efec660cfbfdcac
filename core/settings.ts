/**
 * A context's options and how they resolve into its settings: the options
 * given to `new PrivContext()`, the process-wide defaults set by `init()`,
 * and the TOML section applied on top. The caller and the daemon's first
 * stage both resolve through here, so they agree.
 *
 * @module
 */

import { parseCapabilities } from "../caps/parse.ts";
import {
  type ContextSettings,
  DOT_DOT_CHECKED,
  loadConfigSection,
  type PermissionsSetting,
  SETTING_DEFAULTS,
} from "./config.ts";

/**
 * How the daemon gains root before it drops to the context: `"auto"` (direct
 * when the caller is root, sudo otherwise), `"sudo"` (through the helper
 * command), `"direct"` (the daemon command itself), or `"unprivileged"` (as
 * the current user, without capabilities; the testing kit's).
 *
 * @example
 * ```ts
 * import { PrivContext, type StartMethod } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * const startMethod: StartMethod = "sudo";
 * const ctx = new PrivContext({
 *   module: "file:///virtual/start-method/privsep/mod.ts", // import.meta in real code
 *   name: "ctx",
 *   capabilities: [],
 *   startMethod,
 *   helperCommand: ["sudo", "-n"],
 * });
 * assert.deepEqual(ctx.command().slice(0, 2), ["sudo", "-n"]);
 * ```
 */
export type StartMethod = "auto" | "sudo" | "direct" | "unprivileged";

/**
 * Options of a {@linkcode PrivContext}. Only `module`, `name` and
 * `capabilities` are required; a TOML section (`cfgSection`) overrides the
 * others.
 *
 * @example
 * ```ts
 * import { caps, PrivContext, type PrivContextOptions } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * const options: PrivContextOptions = {
 *   module: "file:///virtual/options/privsep/mod.ts", // import.meta in real code
 *   name: "netAdmin",
 *   capabilities: [caps.CAP_NET_ADMIN, "net_raw"],
 *   cfgSection: "app_net_admin",
 *   permissions: { run: ["/usr/sbin/ip"] },
 *   concurrency: 4,
 *   timeout: 5_000,
 *   onStuck: "recycle",
 * };
 * const netAdmin = new PrivContext(options);
 * assert.equal(netAdmin.id, "file:///virtual/options/privsep/mod.ts#netAdmin");
 * assert.equal(netAdmin.prefix, "file:///virtual/options/privsep/");
 * ```
 */
export interface PrivContextOptions {
  /**
   * The module that defines the context: pass `import.meta`. With `name` it
   * is how the daemon finds the context (oslo's `pypath`).
   */
  module: ImportMeta | URL | string;
  /** The name under which the module exports the context. */
  name: string;
  /**
   * The capabilities the daemon keeps, by name (`"CAP_CHOWN"`, `"chown"`) or
   * number. Required; there is no way to ask for all of them.
   */
  capabilities: readonly (string | number)[];
  /** The TOML section with this context's settings (oslo's `cfg_section`). */
  cfgSection?: string;
  /**
   * The directory below which every entrypoint's module must live; the
   * directory of `module` by default. Every module below it is loaded by the
   * daemon at start.
   */
  prefix?: URL | string;
  /** The user the daemon runs as (name or uid); `"root"` by default. */
  user?: string;
  /** The group the daemon runs as; the user's primary group by default. */
  group?: string;
  /**
   * The Deno permissions of the serving daemon; none by default. `"all"`
   * must be asked for explicitly (needed for `/proc`, `/sys`, most `/dev`).
   */
  permissions?: PermissionsSetting;
  /** Calls the daemon runs at once (oslo's `thread_pool_size`); CPUs by default. */
  concurrency?: number;
  /** Milliseconds a call may take before it rejects with `PrivsepTimeout`. */
  timeout?: number;
  /**
   * Milliseconds a cancelled (timed-out or aborted) call may keep running
   * before it counts as stuck; 2000 by default.
   */
  cancelGraceMs?: number;
  /**
   * What a stuck call does: `"recycle"` (default) stops the daemon (calls in
   * flight on it reject) and the next call starts a fresh one, so the service
   * never silently loses capacity; `"report"` only logs it.
   */
  onStuck?: "recycle" | "report";
  /** Calls that may wait for a free slot before new ones are refused; 1000 by default. */
  queueLimit?: number;
  /**
   * How the daemon waits for the next call when it has nothing to do.
   * `"event-loop"` (default): an asynchronous read, so that work an
   * entrypoint left running (a promise waiting on I/O, a listener, a fetch)
   * goes on between calls. `"blocking"`: a blocking read, which answers a
   * call sooner (docs/performance.md) but runs nothing between calls except
   * timers (a pending timer keeps the read asynchronous); for contexts whose
   * entrypoints finish all their work before they return.
   */
  idleRead?: "event-loop" | "blocking";
  /** The LogTape category of forwarded daemon logs, dotted; `"privsep.daemon"` by default. */
  loggerName?: string;
  /**
   * Send the daemon's stack traces with errors, and log the error's name and
   * stack frames (never its message, which may quote an argument); default
   * `false`.
   */
  logDaemonTraceback?: boolean;
  /**
   * The lowest level of the log records the daemon sends its caller (its
   * entrypoints', their imports' and `console`'s); `"info"` by default. The
   * service account reads every record sent, whatever its own LogTape
   * configuration keeps: lower it to `"debug"` only while debugging.
   */
  logLevel?: "trace" | "debug" | "info" | "warning" | "error" | "fatal";
  /**
   * Check, after each start, that every thread of the daemon has exactly the
   * context's credentials (`/proc/<pid>/task/<tid>/status`); `true` by
   * default. Deno 2.9 reads `/proc` only with `--allow-all`: a caller without
   * it refuses to use the daemon (`FailedToDropPrivileges`) unless this is
   * `false`, which skips the check and logs a warning at every start.
   */
  verify?: boolean;
  /**
   * Warm a new daemon up before its first real call: `true` (default) makes
   * about 2400 calls of the daemon's own (they run nothing of the
   * application) through the channel after the daemon's hello, so that the
   * code of both processes is compiled for real calls before the first one;
   * about 0.1 s more of each start (docs/performance.md, "The warm-up").
   * `false` starts sooner, and the first few thousand calls pay for that
   * compilation in tail latency.
   */
  warmUp?: boolean;
  /**
   * The command that gains root, `["sudo", "-n"]` by default (oslo's
   * `root_helper`); the context's launcher is its one argument.
   */
  helperCommand?: readonly string[];
  /**
   * Where the context's launcher lives (`/usr/local/libexec/privsep` by
   * default): the root-owned script that the sudoers rule allows.
   */
  launcherDir?: string;
  /** `"auto"` (default): direct when the caller is root, sudo otherwise. */
  startMethod?: StartMethod;
  /** TOML files with the `cfgSection` (absolute paths), added to {@linkcode init}'s. */
  configFiles?: readonly string[];
  /** The application's `deno.json` for the daemon; found upwards from `module` by default; `false` for none. */
  denoConfig?: string | false;
  /** Hard maximum size of one message, both ways (16 MiB by default). */
  maxFrameBytes?: number;
  /**
   * The kernel sandbox (Landlock rules from `permissions`, a seccomp
   * filter): `"best-effort"` (default) applies what the kernel supports and
   * warns about the rest, `"required"` refuses to start without all of it,
   * `"off"` applies none. See docs/security/sandbox.md.
   */
  confinement?: "required" | "best-effort" | "off";
  /**
   * Changes to the default system call filter, applied in order:
   * `"+@keyring"` allows a group, `"-@mount"` denies one even when a kept
   * capability would allow it; single calls by name (`"+ptrace"`) too.
   */
  syscallFilter?: readonly string[];
}

/**
 * A context's settings after its TOML section is applied, from
 * {@linkcode PrivContext.settings} or {@linkcode resolveSettings}.
 *
 * @example
 * ```ts
 * import { PrivContext, type ResolvedSettings } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * const ctx = new PrivContext({
 *   module: "file:///virtual/resolved-settings/privsep/mod.ts", // import.meta in real code
 *   name: "ctx",
 *   capabilities: ["net_admin", "CAP_CHOWN"],
 *   user: "app-priv",
 *   concurrency: 2,
 * });
 * const settings: ResolvedSettings = ctx.settings();
 * assert.deepEqual(settings.capabilities, [0, 12]);
 * assert.equal(settings.user, "app-priv");
 * assert.equal(settings.concurrency, 2);
 * assert.equal(settings.queueLimit, 1000);
 * assert.deepEqual(settings.loggerName, ["privsep", "daemon"]);
 * ```
 */
export interface ResolvedSettings {
  /** Capability numbers, sorted. */
  capabilities: number[];
  /** Target user. */
  user: string;
  /** Target group, when set. */
  group?: string;
  /** Deno permissions of the serving stage. */
  permissions: PermissionsSetting;
  /** Calls run at once. */
  concurrency: number;
  /** Per-call timeout in ms. */
  timeoutMs?: number;
  /** Grace for a cancelled call before it counts as stuck, in ms. */
  cancelGraceMs: number;
  /** What a stuck call does to its daemon. */
  onStuck: "recycle" | "report";
  /** Calls that may wait for a slot. */
  queueLimit: number;
  /** How an idle daemon waits for the next call. */
  idleRead: "event-loop" | "blocking";
  /** LogTape category of forwarded logs. */
  loggerName: string[];
  /** Whether stack traces travel and are logged. */
  logDaemonTraceback: boolean;
  /** The lowest level of the log records the daemon sends. */
  logLevel: "trace" | "debug" | "info" | "warning" | "error" | "fatal";
  /** Whether the caller checks the daemon's credentials in /proc. */
  verify: boolean;
  /** Whether the caller warms a new daemon up before its first call. */
  warmUp: boolean;
  /** Helper command for the sudo start method. */
  helperCommand: string[];
  /** Stage-2 DENO_DIR, when set. */
  denoDir?: string;
  /** The directory of the context's launcher. */
  launcherDir: string;
  /** libcap to load (name or absolute path), when not the default. */
  libcap?: string;
  /** How the kernel sandbox is applied. */
  confinement: "required" | "best-effort" | "off";
  /** Changes to the default system call filter. */
  syscallFilter: string[];
}

/** The process-wide defaults that {@linkcode init} sets. */
export const globals: { helperCommand: string[]; configFiles: string[] } = {
  helperCommand: ["sudo", "-n"],
  configFiles: [],
};

/**
 * Sets process-wide defaults, like oslo's `priv_context.init(root_helper=…)`
 * and its `--config-file` options.
 *
 * @example
 * ```ts
 * import { init } from "@privsep/privsep";
 * init({ helperCommand: ["sudo", "-n"], configFiles: ["/etc/app/privsep.toml"] });
 * ```
 */
export function init(
  options: {
    helperCommand?: readonly string[];
    configFiles?: readonly string[];
  },
): void {
  if (options.helperCommand) {
    globals.helperCommand = [...options.helperCommand];
  }
  if (options.configFiles) globals.configFiles = [...options.configFiles];
}

/** `permissions` from code, with the check the config file's get for "..". */
function checkedPermissions(
  p: PermissionsSetting | undefined,
): PermissionsSetting | undefined {
  if (p === undefined || p === "all") return p;
  for (const kind of DOT_DOT_CHECKED) {
    for (const [i, path] of (p[kind] ?? []).entries()) {
      if (path.split("/").includes("..")) {
        throw new TypeError(
          `PrivContext option permissions.${kind}[${i}] is "${path}": a path with ".." (Deno resolves it in the text, the kernel's sandbox on the disk); write the path it leads to`,
        );
      }
    }
  }
  return p;
}

/**
 * Applies a context's TOML section (from `configFiles`) over its options.
 * Both the caller and the daemon use this, so they agree.
 *
 * @example
 * ```ts
 * import { PrivContext, resolveSettings } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * const sysAdmin = new PrivContext({
 *   module: "file:///virtual/resolve-settings/privsep/mod.ts", // import.meta in real code
 *   name: "sysAdmin",
 *   cfgSection: "app_sys_admin",
 *   capabilities: ["CAP_CHOWN"],
 *   concurrency: 2,
 * });
 * const file = await Deno.makeTempFile({ suffix: ".toml" });
 * try {
 *   await Deno.writeTextFile(
 *     file,
 *     '[app_sys_admin]\nuser = "app-priv"\ncapabilities = ["CAP_CHOWN", "net_admin"]\n',
 *   );
 *   const settings = resolveSettings(sysAdmin, [file]);
 *   assert.deepEqual(settings.capabilities, [0, 12]); // from the file
 *   assert.equal(settings.user, "app-priv"); // from the file
 *   assert.equal(settings.concurrency, 2); // from the options
 * } finally {
 *   await Deno.remove(file);
 * }
 * ```
 */
export function resolveSettings(
  ctx: {
    readonly cfgSection?: string;
    readonly options: Readonly<PrivContextOptions>;
  },
  configFiles: readonly string[],
): ResolvedSettings {
  const o = ctx.options;
  const file: ContextSettings = ctx.cfgSection && configFiles.length
    ? loadConfigSection(configFiles, ctx.cfgSection)
    : {};
  return {
    capabilities: parseCapabilities(file.capabilities ?? o.capabilities),
    user: file.user ?? o.user ?? SETTING_DEFAULTS.user,
    group: file.group ?? o.group,
    permissions: file.permissions ?? checkedPermissions(o.permissions) ?? {},
    concurrency: file.concurrency ?? o.concurrency ??
      navigator.hardwareConcurrency ?? 1,
    timeoutMs: file.timeoutMs ?? o.timeout,
    cancelGraceMs: file.cancelGraceMs ?? o.cancelGraceMs ??
      SETTING_DEFAULTS.cancelGraceMs,
    onStuck: file.onStuck ?? o.onStuck ?? SETTING_DEFAULTS.onStuck,
    queueLimit: file.queueLimit ?? o.queueLimit ?? SETTING_DEFAULTS.queueLimit,
    idleRead: file.idleRead ?? o.idleRead ?? SETTING_DEFAULTS.idleRead,
    loggerName: (file.loggerName ?? o.loggerName ?? SETTING_DEFAULTS.loggerName)
      .split("."),
    logDaemonTraceback: file.logDaemonTraceback ?? o.logDaemonTraceback ??
      SETTING_DEFAULTS.logDaemonTraceback,
    logLevel: file.logLevel ?? o.logLevel ?? SETTING_DEFAULTS.logLevel,
    verify: file.verify ?? o.verify ?? SETTING_DEFAULTS.verify,
    warmUp: file.warmUp ?? o.warmUp ?? SETTING_DEFAULTS.warmUp,
    helperCommand: [
      ...(file.helperCommand ?? o.helperCommand ?? globals.helperCommand),
    ],
    denoDir: file.denoDir,
    launcherDir: file.launcherDir ?? o.launcherDir ??
      SETTING_DEFAULTS.launcherDir,
    libcap: file.libcap,
    confinement: file.confinement ?? o.confinement ??
      SETTING_DEFAULTS.confinement,
    syscallFilter: [...(file.syscallFilter ?? o.syscallFilter ?? [])],
  };
}
