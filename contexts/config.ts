// Copyright the privsep authors. Apache-2.0 license.

/**
 * Per-context configuration read from TOML files, the counterpart of
 * oslo.privsep's `cfg_section`.
 *
 * Each privilege context may name a section; the section's keys override the
 * values the context was declared with. A section looks like this:
 *
 * ```toml
 * [nova_sys_admin]
 * user = "nova"
 * group = "nova"
 * capabilities = ["CAP_CHOWN", "CAP_NET_ADMIN"]
 * concurrency = 4              # alias: thread_pool_size
 * helper_command = ["/usr/bin/sudo", "-n", "/usr/local/bin/privsep-helper"]
 * logger_name = "nova.privsep.daemon"
 * log_daemon_traceback = true
 * verify = true               # false skips the /proc check (logged)
 * timeout_ms = 30000
 * deno_dir = "/var/cache/nova/privsep-deno"
 *
 * [nova_sys_admin.permissions]  # or: permissions = "all"
 * read = ["/etc/nova"]
 * write = ["/var/lib/nova"]
 * net = true                    # true means unscoped (--allow-net)
 * ```
 *
 * Kernel sandbox keys: `confinement = "best-effort"` (or `"required"`,
 * `"off"`) and `syscall_filter = ["+@keyring", "-@mount"]`.
 *
 * Other sections of the file are ignored, so one file can hold the sections of
 * several contexts.
 *
 * @example Read a context's section from layered files
 * ```ts ignore
 * import { loadConfigSection } from "./config.ts"; // not exported by the package
 *
 * const settings = loadConfigSection(
 *   ["/etc/app/privsep.toml", "/etc/app/privsep.d/local.toml"],
 *   "app_sys_admin",
 * );
 * console.log(settings.user, settings.capabilities);
 * ```
 *
 * @module
 */

import { parse } from "smol-toml";
import { expandSyscallEntry } from "../caps/_seccomp.ts";

/**
 * A list of Deno permission values, such as paths for `read` or host names for
 * `net`. An empty list means the permission is granted unscoped (for example
 * `--allow-net` with no value).
 *
 * @example
 * ```ts
 * import type { PermissionList } from "@privsep/privsep";
 *
 * const paths: PermissionList = ["/etc/app", "/var/lib/app"];
 * const unscoped: PermissionList = [];
 * ```
 */
export type PermissionList = readonly string[];

/**
 * The Deno permissions granted to a context's serving daemon, by kind. A kind
 * that is absent is not granted at all; a kind set to an empty list is granted
 * unscoped.
 *
 * @example
 * ```ts
 * import type { DenoPermissions } from "@privsep/privsep";
 *
 * const permissions: DenoPermissions = {
 *   read: ["/etc/app"],
 *   write: ["/var/lib/app/state.json"],
 *   net: [], // unscoped
 * };
 * ```
 */
export interface DenoPermissions {
  /** Paths the daemon may read (`--allow-read`). */
  read?: PermissionList;
  /** Paths the daemon may write (`--allow-write`). */
  write?: PermissionList;
  /** Hosts, or host:port pairs, the daemon may reach (`--allow-net`). */
  net?: PermissionList;
  /** Environment variables the daemon may read (`--allow-env`). */
  env?: PermissionList;
  /** System information the daemon may query (`--allow-sys`). */
  sys?: PermissionList;
  /** Programs the daemon may start (`--allow-run`). */
  run?: PermissionList;
  /** Libraries the daemon may load (`--allow-ffi`). */
  ffi?: PermissionList;
  /** Hosts the daemon may import code from (`--allow-import`). */
  import?: PermissionList;
}

/**
 * A context's Deno permissions: either an explicit set by kind, or `"all"`
 * for `--allow-all`, which a context must ask for visibly.
 *
 * @example
 * ```ts
 * import type { PermissionsSetting } from "@privsep/privsep";
 *
 * const narrow: PermissionsSetting = { read: ["/etc/app"] };
 * const everything: PermissionsSetting = "all";
 * ```
 */
export type PermissionsSetting = DenoPermissions | "all";

/**
 * The settings of one privilege context as read from a config section. Every
 * field is optional: a field that is absent keeps the value the context was
 * declared with.
 *
 * @example
 * ```ts
 * import type { ContextSettings } from "@privsep/privsep";
 *
 * const settings: ContextSettings = {
 *   user: "nova",
 *   capabilities: ["CAP_CHOWN"],
 *   concurrency: 4,
 *   timeoutMs: 30_000,
 * };
 * ```
 */
export interface ContextSettings {
  /** The user the daemon runs as: a name or a numeric uid as a string. */
  user?: string;
  /** The group the daemon runs as: a name or a numeric gid as a string. */
  group?: string;
  /**
   * The capabilities the daemon keeps, as written in the file (names such as
   * `"CAP_CHOWN"` or numbers); they are validated later, when the context
   * resolves them.
   */
  capabilities?: (string | number)[];
  /**
   * How many calls the daemon runs at once, an integer of at least 1 (TOML
   * key `concurrency`, or its oslo alias `thread_pool_size`).
   */
  concurrency?: number;
  /**
   * The command that starts the daemon (TOML key `helper_command`), as an
   * argument vector.
   */
  helperCommand?: string[];
  /** The logger category daemon log records are forwarded to (TOML key `logger_name`). */
  loggerName?: string;
  /**
   * Whether the daemon's stack trace is logged when a privileged call fails
   * (TOML key `log_daemon_traceback`).
   */
  logDaemonTraceback?: boolean;
  /**
   * Whether the caller checks the daemon's credentials in /proc after it
   * starts (TOML key `verify`); `false` skips it, with a warning at every
   * start.
   */
  verify?: boolean;
  /** The default per-call timeout in milliseconds (TOML key `timeout_ms`). */
  timeoutMs?: number;
  /**
   * How long a cancelled call may keep running before it counts as stuck, in
   * milliseconds (TOML key `cancel_grace_ms`).
   */
  cancelGraceMs?: number;
  /** What a stuck call does to its daemon (TOML key `on_stuck`). */
  onStuck?: "recycle" | "report";
  /** Calls that may wait for a free slot in the daemon (TOML key `queue_limit`). */
  queueLimit?: number;
  /**
   * How an idle daemon waits for the next call (TOML key `idle_read`):
   * `"event-loop"` or `"blocking"`.
   */
  idleRead?: "event-loop" | "blocking";
  /** libcap to load, by name or absolute path (TOML key `libcap`). */
  libcap?: string;
  /** The absolute DENO_DIR the serving daemon uses (TOML key `deno_dir`). */
  denoDir?: string;
  /**
   * The root-owned directory that holds the context's launcher, the one
   * program its sudoers rule allows (TOML key `launcher_dir`).
   */
  launcherDir?: string;
  /** The Deno permissions of the serving daemon. */
  permissions?: PermissionsSetting;
  /**
   * How the kernel sandbox (Landlock, seccomp) is applied (TOML key
   * `confinement`): `"required"`, `"best-effort"` or `"off"`.
   */
  confinement?: "required" | "best-effort" | "off";
  /**
   * Changes to the default system call filter (TOML key `syscall_filter`):
   * `"+@group"` or `"+name"` allows, `"-@group"` or `"-name"` denies.
   */
  syscallFilter?: string[];
}

/** Options for constructing a {@linkcode ConfigError}. */
export interface ConfigErrorOptions extends ErrorOptions {
  /** The config file, or the source name, the error was found in. */
  file?: string;
  /** The config section the error was found in. */
  section?: string;
  /** The key whose value is invalid. */
  key?: string;
}

/**
 * Raised when a privsep config file cannot be read, is not valid TOML, or has
 * a section with an unknown key or a value of the wrong type.
 *
 * @example
 * ```ts
 * import { ConfigError, PrivContext } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * const file = await Deno.makeTempFile({ suffix: ".toml" });
 * try {
 *   await Deno.writeTextFile(file, "[app_admin]\nconcurrency = 0\n");
 *   const admin = new PrivContext({
 *     module: "file:///virtual/config-error/privsep/mod.ts", // import.meta in real code
 *     name: "admin",
 *     cfgSection: "app_admin",
 *     capabilities: [],
 *     configFiles: [file],
 *   });
 *   const error = (() => {
 *     try {
 *       admin.settings(); // also when the first call starts the daemon
 *     } catch (error) {
 *       return error;
 *     }
 *   })();
 *   assert(error instanceof ConfigError);
 *   assert.equal(error.file, file);
 *   assert.equal(error.section, "app_admin");
 *   assert.equal(error.key, "concurrency");
 * } finally {
 *   await Deno.remove(file);
 * }
 * ```
 */
export class ConfigError extends Error {
  /** The error's name, `"ConfigError"`. */
  override name = "ConfigError";
  /** The config file, or the source name, the error was found in. */
  readonly file?: string;
  /** The config section the error was found in. */
  readonly section?: string;
  /** The key whose value is invalid, when the error is about one key. */
  readonly key?: string;

  /**
   * Constructs a new instance.
   *
   * @param message The full, human-readable description of the problem.
   * @param options Where the problem was found, and its cause.
   */
  constructor(message: string, options: ConfigErrorOptions = {}) {
    super(message, options.cause === undefined ? {} : { cause: options.cause });
    if (options.file !== undefined) this.file = options.file;
    if (options.section !== undefined) this.section = options.section;
    if (options.key !== undefined) this.key = options.key;
  }
}

/** The kinds of Deno permission a context can declare, in flag order. */
export const PERMISSION_KINDS = [
  "read",
  "write",
  "net",
  "env",
  "sys",
  "run",
  "ffi",
  "import",
] as const;

type PermissionKind = typeof PERMISSION_KINDS[number];

const SECTION_KEYS = [
  "user",
  "group",
  "capabilities",
  "concurrency",
  "thread_pool_size",
  "helper_command",
  "logger_name",
  "log_daemon_traceback",
  "verify",
  "timeout_ms",
  "cancel_grace_ms",
  "on_stuck",
  "queue_limit",
  "idle_read",
  "deno_dir",
  "launcher_dir",
  "libcap",
  "permissions",
  "confinement",
  "syscall_filter",
] as const;

/** The largest delay `setTimeout` honours; larger ones fire at once. */
const MAX_TIMEOUT_MS = 2_147_483_647;
/** The largest valid uid or gid; 2^32 - 1 means "no change" to the kernel. */
const MAX_ID = 4_294_967_294;

type Table = Record<string, unknown>;

/** Where a value was found, for error messages. */
interface Place {
  source: string | undefined;
  section: string;
}

function where(place: Place): string {
  const file = place.source === undefined ? "TOML text" : `"${place.source}"`;
  return `Invalid privsep config in ${file}, section [${place.section}]`;
}

function errorOptions(place: Place, key?: string): ConfigErrorOptions {
  const options: ConfigErrorOptions = { section: place.section };
  if (place.source !== undefined) options.file = place.source;
  if (key !== undefined) options.key = key;
  return options;
}

function isTable(value: unknown): value is Table {
  return typeof value === "object" && value !== null &&
    !Array.isArray(value) &&
    (Object.getPrototypeOf(value) === null ||
      Object.getPrototypeOf(value) === Object.prototype);
}

/** Renders a TOML value for an error message, shortened when long. */
function render(value: unknown, depth = 0): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (
    typeof value === "number" || typeof value === "boolean" ||
    typeof value === "bigint"
  ) {
    return String(value);
  }
  if (Array.isArray(value)) {
    if (depth > 1) return "[...]";
    return `[${value.map((item) => render(item, depth + 1)).join(", ")}]`;
  }
  if (isTable(value)) {
    if (depth > 1) return "{...}";
    const entries = Object.keys(value).map((key) =>
      `${key} = ${render(value[key], depth + 1)}`
    );
    return `{ ${entries.join(", ")} }`;
  }
  return String(value);
}

function kindOf(value: unknown): string {
  if (typeof value === "string") return "a string";
  if (typeof value === "number") {
    return Number.isInteger(value) ? "an integer" : "a float";
  }
  if (typeof value === "boolean") return "a boolean";
  if (Array.isArray(value)) return "an array";
  if (isTable(value)) return "a table";
  return "a date-time";
}

/** Describes a value as `<rendering> (<kind>)`, at most about 100 characters. */
function describe(value: unknown): string {
  let text = render(value);
  if (text.length > 100) text = `${text.slice(0, 97)}...`;
  return `${text} (${kindOf(value)})`;
}

/** Normalizes a key for typo matching: `timeoutMs` ~ `timeout_ms` ~ `timeout-ms`. */
function squash(key: string): string {
  return key.toLowerCase().replaceAll(/[_\-\s]/g, "");
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        substitution,
      );
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** Finds the valid key closest to a mistyped one, if any is close enough. */
function closest(key: string, valid: readonly string[]): string | undefined {
  const squashed = squash(key);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of valid) {
    const distance = editDistance(squashed, squash(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const limit = Math.max(2, Math.floor(squashed.length / 3));
  if (bestDistance <= limit) return best;
  // A truncated key, such as "thread_pool" for "thread_pool_size".
  if (squashed.length >= 4) {
    return valid.find((candidate) => squash(candidate).startsWith(squashed));
  }
  return undefined;
}

function unknownKeyError(
  place: Place,
  key: string,
  valid: readonly string[],
  prefix = "",
): ConfigError {
  const suggestion = closest(key, valid);
  const hint = suggestion === undefined
    ? ""
    : ` (did you mean "${prefix}${suggestion}"?)`;
  return new ConfigError(
    `${where(place)}: unknown key "${prefix}${key}"${hint}; valid keys${
      prefix === "" ? "" : ` of "${prefix.slice(0, -1)}"`
    } are: ${valid.join(", ")}`,
    errorOptions(place, `${prefix}${key}`),
  );
}

function typeError(
  place: Place,
  key: string,
  value: unknown,
  expected: string,
  remedy: string,
): ConfigError {
  return new ConfigError(
    `${where(place)}: "${key}" must be ${expected}, got ${
      describe(value)
    }; ${remedy}`,
    errorOptions(place, key),
  );
}

function parseId(place: Place, key: string, value: unknown): string {
  const remedy =
    `set it to a ${key} name such as "nobody" or a numeric id such as "65534"`;
  if (typeof value === "number") {
    if (Number.isInteger(value) && value >= 0 && value <= MAX_ID) {
      return String(value);
    }
    throw typeError(
      place,
      key,
      value,
      `a name or an id from 0 to ${MAX_ID}`,
      remedy,
    );
  }
  if (typeof value !== "string") {
    throw typeError(place, key, value, "a string", remedy);
  }
  if (/^[0-9]+$/.test(value)) {
    if (Number(value) > MAX_ID) {
      throw typeError(
        place,
        key,
        value,
        `a numeric id from 0 to ${MAX_ID}`,
        remedy,
      );
    }
    return value;
  }
  if (value === "" || value.startsWith("-") || /[\s:\/\0]/.test(value)) {
    throw typeError(
      place,
      key,
      value,
      "a non-empty name without whitespace, ':' or '/' that does not start with '-'",
      remedy,
    );
  }
  return value;
}

function parseCapabilities(
  place: Place,
  value: unknown,
): (string | number)[] {
  const key = "capabilities";
  const remedy =
    'list capability names or numbers, for example ["CAP_CHOWN", "CAP_NET_ADMIN"], or [] for none';
  if (!Array.isArray(value)) {
    throw typeError(place, key, value, "an array", remedy);
  }
  return value.map((item: unknown, index) => {
    if (typeof item === "string" && item.trim() !== "") return item;
    if (typeof item === "number" && Number.isInteger(item) && item >= 0) {
      return item;
    }
    throw typeError(
      place,
      `${key}[${index}]`,
      item,
      "a capability name or a non-negative integer",
      remedy,
    );
  });
}

function parsePositiveInteger(
  place: Place,
  key: string,
  value: unknown,
  max: number,
  remedy: string,
): number {
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < 1 ||
    value > max
  ) {
    throw typeError(
      place,
      key,
      value,
      `an integer from 1 to ${max}`,
      remedy,
    );
  }
  return value;
}

function parseHelperCommand(place: Place, value: unknown): string[] {
  const key = "helper_command";
  const remedy =
    'give the argument vector, for example ["/usr/bin/sudo", "-n", "/usr/local/bin/privsep-helper"]';
  if (typeof value === "string") {
    const words = value.trim().split(/\s+/).filter((word) => word !== "");
    if (words.length === 0) {
      throw typeError(place, key, value, "a non-empty command", remedy);
    }
    return words;
  }
  if (!Array.isArray(value)) {
    throw typeError(
      place,
      key,
      value,
      "an array of strings or a string",
      remedy,
    );
  }
  if (value.length === 0) {
    throw typeError(place, key, value, "a non-empty array", remedy);
  }
  return value.map((item: unknown, index) => {
    if (typeof item !== "string") {
      throw typeError(place, `${key}[${index}]`, item, "a string", remedy);
    }
    return item;
  });
}

function parseNonEmptyString(
  place: Place,
  key: string,
  value: unknown,
  remedy: string,
): string {
  if (typeof value !== "string" || value.trim() === "") {
    throw typeError(place, key, value, "a non-empty string", remedy);
  }
  return value;
}

function parseAbsoluteDir(
  place: Place,
  key: "deno_dir" | "launcher_dir",
  value: unknown,
  example: string,
): string {
  const remedy = `give an absolute path such as "${example}"`;
  if (typeof value !== "string") {
    throw typeError(place, key, value, "a string", remedy);
  }
  if (!value.startsWith("/") || /[\s\0]/.test(value)) {
    throw typeError(
      place,
      key,
      value,
      "an absolute path without white space",
      remedy,
    );
  }
  return value;
}

function parsePermissionList(
  place: Place,
  kind: PermissionKind,
  value: unknown,
): string[] {
  const key = `permissions.${kind}`;
  const remedy =
    `give a non-empty array of strings such as ["/etc/app"], true for unscoped access, or remove "${kind}" to grant none`;
  if (value === true) return [];
  if (!Array.isArray(value) || value.length === 0) {
    throw typeError(
      place,
      key,
      value,
      "a non-empty array of strings or true",
      remedy,
    );
  }
  return value.map((item: unknown, index) => {
    if (typeof item !== "string" || item === "") {
      throw typeError(
        place,
        `${key}[${index}]`,
        item,
        "a non-empty string",
        remedy,
      );
    }
    if (item.includes(",") || item.includes("\0")) {
      throw typeError(
        place,
        `${key}[${index}]`,
        item,
        "a value without ',' or NUL (Deno splits permission flags on ',')",
        "rename the path or grant its parent directory",
      );
    }
    return item;
  });
}

function parsePermissions(place: Place, value: unknown): PermissionsSetting {
  const remedy =
    `write permissions = "all", or a [${place.section}.permissions]` +
    ` table whose keys are ${PERMISSION_KINDS.join(", ")}`;
  if (value === "all") return "all";
  if (!isTable(value)) {
    throw typeError(place, "permissions", value, '"all" or a table', remedy);
  }
  const permissions: DenoPermissions = {};
  for (const kind of Object.keys(value)) {
    if (!(PERMISSION_KINDS as readonly string[]).includes(kind)) {
      throw unknownKeyError(place, kind, PERMISSION_KINDS, "permissions.");
    }
    const permissionKind = kind as PermissionKind;
    permissions[permissionKind] = parsePermissionList(
      place,
      permissionKind,
      value[kind],
    );
  }
  return permissions;
}

function parseSectionTable(table: Table, place: Place): ContextSettings {
  const settings: ContextSettings = {};
  for (const key of Object.keys(table)) {
    if (!(SECTION_KEYS as readonly string[]).includes(key)) {
      throw unknownKeyError(place, key, SECTION_KEYS);
    }
  }
  const has = (key: string): boolean => Object.hasOwn(table, key);

  if (has("user")) settings.user = parseId(place, "user", table.user);
  if (has("group")) settings.group = parseId(place, "group", table.group);
  if (has("capabilities")) {
    settings.capabilities = parseCapabilities(place, table.capabilities);
  }
  if (has("concurrency") && has("thread_pool_size")) {
    throw new ConfigError(
      `${
        where(place)
      }: both "concurrency" and its alias "thread_pool_size" are set (${
        render(table.concurrency)
      } and ${render(table.thread_pool_size)}); keep only "concurrency"`,
      errorOptions(place, "thread_pool_size"),
    );
  }
  for (const key of ["concurrency", "thread_pool_size"]) {
    if (has(key)) {
      settings.concurrency = parsePositiveInteger(
        place,
        key,
        table[key],
        Number.MAX_SAFE_INTEGER,
        "set it to how many calls the daemon may run at once, for example 4",
      );
    }
  }
  if (has("helper_command")) {
    settings.helperCommand = parseHelperCommand(place, table.helper_command);
  }
  if (has("logger_name")) {
    settings.loggerName = parseNonEmptyString(
      place,
      "logger_name",
      table.logger_name,
      'give a logger category such as "app.privsep.daemon"',
    );
  }
  if (has("log_daemon_traceback")) {
    const value = table.log_daemon_traceback;
    if (typeof value !== "boolean") {
      throw typeError(
        place,
        "log_daemon_traceback",
        value,
        "a boolean",
        "write true or false without quotes",
      );
    }
    settings.logDaemonTraceback = value;
  }
  if (has("verify")) {
    const value = table.verify;
    if (typeof value !== "boolean") {
      throw typeError(
        place,
        "verify",
        value,
        "a boolean",
        "write true or false without quotes",
      );
    }
    settings.verify = value;
  }
  if (has("timeout_ms")) {
    settings.timeoutMs = parsePositiveInteger(
      place,
      "timeout_ms",
      table.timeout_ms,
      MAX_TIMEOUT_MS,
      "give the timeout in whole milliseconds, for example 30000",
    );
  }
  if (has("cancel_grace_ms")) {
    settings.cancelGraceMs = parsePositiveInteger(
      place,
      "cancel_grace_ms",
      table.cancel_grace_ms,
      MAX_TIMEOUT_MS,
      "give the grace period in whole milliseconds, for example 2000",
    );
  }
  if (has("on_stuck")) {
    const value = table.on_stuck;
    if (value !== "recycle" && value !== "report") {
      throw typeError(
        place,
        "on_stuck",
        value,
        '"recycle" or "report"',
        'write on_stuck = "recycle" (restart the daemon) or "report" (only log)',
      );
    }
    settings.onStuck = value;
  }
  if (has("idle_read")) {
    const value = table.idle_read;
    if (value !== "event-loop" && value !== "blocking") {
      throw typeError(
        place,
        "idle_read",
        value,
        '"event-loop" or "blocking"',
        'write idle_read = "event-loop" (background work runs between calls) or "blocking" (a little lower latency; nothing runs between calls)',
      );
    }
    settings.idleRead = value;
  }
  if (has("queue_limit")) {
    settings.queueLimit = parsePositiveInteger(
      place,
      "queue_limit",
      table.queue_limit,
      1_000_000,
      "give the number of calls that may wait for a free slot, for example 1000",
    );
  }
  if (has("deno_dir")) {
    settings.denoDir = parseAbsoluteDir(
      place,
      "deno_dir",
      table.deno_dir,
      "/var/cache/app/privsep-deno",
    );
  }
  if (has("launcher_dir")) {
    settings.launcherDir = parseAbsoluteDir(
      place,
      "launcher_dir",
      table.launcher_dir,
      "/usr/local/libexec/privsep",
    );
  }
  if (has("libcap")) settings.libcap = parseLibcap(place, table.libcap);
  if (has("permissions")) {
    settings.permissions = parsePermissions(place, table.permissions);
  }
  if (has("confinement")) {
    const value = table.confinement;
    if (value !== "required" && value !== "best-effort" && value !== "off") {
      throw typeError(
        place,
        "confinement",
        value,
        '"required", "best-effort" or "off"',
        'write confinement = "best-effort" (the default: apply what the kernel supports), "required" (refuse to start without it) or "off"',
      );
    }
    settings.confinement = value;
  }
  if (has("syscall_filter")) {
    const value = table.syscall_filter;
    const remedy =
      'give entries such as ["+@keyring", "-@mount"] ("+" allows, "-" denies a group or a system call)';
    if (!Array.isArray(value)) {
      throw typeError(place, "syscall_filter", value, "an array", remedy);
    }
    settings.syscallFilter = value.map((item: unknown, index) => {
      const key = `syscall_filter[${index}]`;
      if (typeof item !== "string") {
        throw typeError(place, key, item, "a string", remedy);
      }
      try {
        expandSyscallEntry(item);
      } catch (error) {
        throw new ConfigError(
          `${where(place)}: ${(error as Error).message}`,
          errorOptions(place, key),
        );
      }
      return item;
    });
  }
  return settings;
}

/**
 * `libcap`: a bare library name, which the dynamic loader looks up in its
 * search path, or a normalised absolute path. A relative path with a slash
 * would make root load the library from the daemon's working directory
 * (dlopen(3) treats any name with a slash as a path).
 */
function parseLibcap(place: Place, value: unknown): string {
  const valid = typeof value === "string" && /^[^\s\0]+$/.test(value) && (
    value.startsWith("/")
      ? value.split("/").slice(1).every((s) => s && s !== "." && s !== "..")
      : !value.includes("/") && value !== "." && value !== ".."
  );
  if (!valid) {
    const relative = typeof value === "string" && value.includes("/") &&
      !value.startsWith("/");
    throw typeError(
      place,
      "libcap",
      value,
      'a library name without a slash such as "libcap.so.2", or a normalised absolute path',
      relative
        ? `a relative path would be loaded, as root, from the directory the daemon was started in; write libcap = "libcap.so.2" (the loader's search path) or an absolute path such as libcap = "/usr/lib/${value}"`
        : 'write libcap = "libcap.so.2" (the loader\'s search path) or an absolute path such as libcap = "/usr/lib/x86_64-linux-gnu/libcap.so.2"',
    );
  }
  return value;
}

/**
 * Parses one context's section out of a TOML document and validates it.
 *
 * The section is looked up as a top-level table whose name is exactly
 * `section` (write `["a.b"]` in TOML for a name with a dot). A missing section
 * gives `{}`. Other sections are not examined, but the whole document must be
 * valid TOML.
 *
 * Key by key:
 * - `user`, `group`: a name, or a numeric id as a string or integer (stored as
 *   a string).
 * - `capabilities`: an array of names or non-negative integers, kept as given.
 * - `concurrency` (alias `thread_pool_size`): an integer of at least 1.
 * - `helper_command`: an array of strings, or a string split on whitespace.
 * - `logger_name`: a non-empty string.
 * - `log_daemon_traceback`: a boolean.
 * - `verify`: a boolean.
 * - `timeout_ms`: an integer from 1 to 2147483647.
 * - `cancel_grace_ms`: an integer from 1 to 2147483647.
 * - `on_stuck`: `"recycle"` or `"report"`.
 * - `queue_limit`: an integer from 1 to 1000000.
 * - `idle_read`: `"event-loop"` or `"blocking"`.
 * - `deno_dir`, `launcher_dir`: an absolute path without white space.
 * - `libcap`: a library name without a slash (looked up in the loader's
 *   search path) or a normalised absolute path; never a relative path.
 * - `permissions`: `"all"`, or a table whose keys are `read`, `write`, `net`,
 *   `env`, `sys`, `run`, `ffi`, `import`, each a non-empty array of strings,
 *   or `true` for unscoped access (stored as an empty list).
 * - `confinement`: `"required"`, `"best-effort"` or `"off"`.
 * - `syscall_filter`: an array of `"+@group"`, `"-@group"`, `"+name"`,
 *   `"-name"` entries (see docs/security/sandbox.md).
 *
 * @param tomlText The TOML document.
 * @param section The name of the context's section.
 * @param source The file name or other source shown in error messages.
 * @returns The section's settings, as plain objects and arrays.
 * @throws {ConfigError} If the document is not valid TOML, the section is not
 * a table, a key is unknown, or a value has the wrong type or range.
 *
 * @example Parse a section
 * ```ts
 * import { parseConfigSection } from "./config.ts"; // not exported by the package
 * import assert from "node:assert/strict";
 *
 * const settings = parseConfigSection(
 *   `
 * [app_admin]
 * user = "app"
 * capabilities = ["CAP_CHOWN"]
 * thread_pool_size = 2
 *
 * [app_admin.permissions]
 * read = ["/etc/app"]
 * net = true
 * `,
 *   "app_admin",
 * );
 * assert.deepEqual(settings, {
 *   user: "app",
 *   capabilities: ["CAP_CHOWN"],
 *   concurrency: 2,
 *   permissions: { read: ["/etc/app"], net: [] },
 * });
 * ```
 */
export function parseConfigSection(
  tomlText: string,
  section: string,
  source?: string,
): ContextSettings {
  const place: Place = { source, section };
  let document: Table;
  try {
    document = parse(tomlText);
  } catch (error) {
    const file = source === undefined ? "TOML text" : `"${source}"`;
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError(
      `Cannot parse privsep config ${file} as TOML: ${reason}`,
      { ...errorOptions(place), cause: error },
    );
  }
  if (!Object.hasOwn(document, section)) return {};
  const table = document[section];
  if (!isTable(table)) {
    throw new ConfigError(
      `${where(place)}: the section must be a table, got ${
        describe(table)
      }; write the settings under a [${section}] header`,
      errorOptions(place),
    );
  }
  return parseSectionTable(table, place);
}

/**
 * Reads one context's section from several TOML files, in order. A key set in
 * a later file replaces the same key from an earlier file as a whole
 * (`permissions` included); `concurrency` and `thread_pool_size` are the same
 * key. A file without the section contributes nothing, but every file must
 * exist and be valid TOML.
 *
 * The files are read synchronously, so this can run while a context is being
 * constructed.
 *
 * @param files The config files, lowest precedence first.
 * @param section The name of the context's section.
 * @returns The merged settings.
 * @throws {ConfigError} If a file cannot be read, or for anything that
 * {@linkcode parseConfigSection} rejects; the error names the file.
 *
 * @example Layer a local override on top of the packaged defaults
 * ```ts
 * import { loadConfigSection } from "./config.ts"; // not exported by the package
 * import assert from "node:assert/strict";
 *
 * const dir = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(`${dir}/base.toml`, '[ctx]\nuser = "app"\ntimeout_ms = 1000\n');
 * Deno.writeTextFileSync(`${dir}/local.toml`, "[ctx]\ntimeout_ms = 5000\n");
 *
 * const settings = loadConfigSection(
 *   [`${dir}/base.toml`, `${dir}/local.toml`],
 *   "ctx",
 * );
 * assert.deepEqual(settings, { user: "app", timeoutMs: 5000 });
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export function loadConfigSection(
  files: readonly string[],
  section: string,
): ContextSettings {
  let merged: ContextSettings = {};
  for (const file of files) {
    let text: string;
    try {
      text = Deno.readTextFileSync(file);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new ConfigError(
        `Cannot read privsep config file "${file}": ${reason}; check that the file exists and is readable, or remove it from the list of config files`,
        { file, section, cause: error },
      );
    }
    merged = { ...merged, ...parseConfigSection(text, section, file) };
  }
  return merged;
}
