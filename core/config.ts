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

import { getLogLevels } from "@logtape/logtape";
import { parse } from "smol-toml";
import { expandSyscallEntry } from "../caps/_seccomp.ts";
import { DEFAULT_LIBCAP } from "../caps/_ffi.ts";
import { editDistance } from "../_suggest.ts";
import { DEFAULT_DENO_DIR, DEFAULT_LAUNCHER_DIR } from "./command.ts";

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
   * (TOML key `log_daemon_traceback`): the error's name and stack frames, never
   * its message, which may quote an argument.
   */
  logDaemonTraceback?: boolean;
  /**
   * The lowest level of the log records that the daemon sends its caller
   * (TOML key `log_level`): records of the context's entrypoints, of what
   * they import and of `console`. The service account reads every record sent,
   * whatever its own LogTape configuration keeps.
   */
  logLevel?: "trace" | "debug" | "info" | "warning" | "error" | "fatal";
  /**
   * Whether the caller checks the daemon's credentials in /proc after it
   * starts (TOML key `verify`); `false` skips it, with a warning at every
   * start.
   */
  verify?: boolean;
  /**
   * Whether the caller warms a new daemon up with calls of its own before the
   * first real call (TOML key `warm_up`).
   */
  warmUp?: boolean;
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

/**
 * The permission kinds whose paths become the kernel sandbox's rules, where
 * ".." is refused: Deno resolves it in the text, the kernel on the disk.
 */
export const DOT_DOT_CHECKED: readonly PermissionKind[] = [
  "read",
  "write",
  "run",
];

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
    if (
      DOT_DOT_CHECKED.includes(kind) && item.split("/").includes("..")
    ) {
      // Deno resolves ".." in the text, the kernel's Landlock rule on the
      // disk: a directory moved meanwhile would make them differ.
      throw typeError(
        place,
        `${key}[${index}]`,
        item,
        'a path without ".." (Deno resolves it in the text, the kernel on the disk)',
        "write the path it leads to",
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

function parseBoolean(place: Place, key: string, value: unknown): boolean {
  if (typeof value !== "boolean") {
    throw typeError(
      place,
      key,
      value,
      "a boolean",
      "write true or false without quotes",
    );
  }
  return value;
}

function parseSyscallFilter(place: Place, value: unknown): string[] {
  const remedy =
    'give entries such as ["+@keyring", "-@mount"] ("+" allows, "-" denies a group or a system call)';
  if (!Array.isArray(value)) {
    throw typeError(place, "syscall_filter", value, "an array", remedy);
  }
  return value.map((item: unknown, index) => {
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

/** `"a"`, `"a" or "b"`, `"a", "b" or "c"`. */
function choices(values: readonly string[]): string {
  const quoted = values.map((v) => JSON.stringify(v));
  return quoted.length < 2
    ? quoted.join("")
    : `${quoted.slice(0, -1).join(", ")} or ${quoted.at(-1)}`;
}

function oneOf(values: readonly string[], remedy: string): KeyCheck {
  return {
    type: choices(values),
    parse: (place, key, value) => {
      if (typeof value !== "string" || !values.includes(value)) {
        throw typeError(place, key, value, choices(values), remedy);
      }
      return value;
    },
  };
}

function positiveInteger(max: number, remedy: string): KeyCheck {
  return {
    type: max === Number.MAX_SAFE_INTEGER
      ? "an integer of at least 1"
      : `an integer from 1 to ${max}`,
    parse: (place, key, value) =>
      parsePositiveInteger(place, key, value, max, remedy),
  };
}

const BOOLEAN: KeyCheck = { type: "a boolean", parse: parseBoolean };

/** LogTape's levels, lowest first: the values of `log_level`. */
const LOG_LEVELS = getLogLevels();

/**
 * The fixed defaults of the settings that have one, by field: what a context
 * gets when neither its options nor its section set the key.
 */
export const SETTING_DEFAULTS = {
  user: "root",
  cancelGraceMs: 2000,
  onStuck: "recycle",
  queueLimit: 1000,
  idleRead: "event-loop",
  loggerName: "privsep.daemon",
  logDaemonTraceback: false,
  logLevel: "info",
  verify: true,
  warmUp: true,
  launcherDir: DEFAULT_LAUNCHER_DIR,
  confinement: "best-effort",
} as const;

/** A value as the reference shows it: TOML-like, in code font. */
function code(value: unknown): string {
  return `\`${JSON.stringify(value)}\``;
}

/** What a key accepts, and the check that enforces it. */
interface KeyCheck {
  /** What a valid value is, as the reference shows it. */
  readonly type: string;
  /**
   * Checks the value found under `key` (the key or its alias) and returns it
   * as stored; throws a {@linkcode ConfigError} that names the file, the
   * section, the key, the value and what to write instead.
   */
  readonly parse: (place: Place, key: string, value: unknown) => unknown;
}

/**
 * One key of a context's TOML section. {@linkcode CONFIG_KEYS} is the one
 * table that parsing, validation, the reference in docs/configuration.md
 * and `privsep inspect` follow.
 */
export interface ConfigKey extends KeyCheck {
  /** The TOML key. */
  readonly key: string;
  /** Another name of the same key (oslo.privsep's); both set is an error. */
  readonly alias?: string;
  /** The field of {@linkcode ContextSettings} (and of the resolved settings). */
  readonly field: keyof ContextSettings;
  /** The code option(s) it overrides, as the reference shows them; none when config only. */
  readonly option?: string;
  /** The default, as the reference shows it. */
  readonly default: string;
}

/** Every key of a context's section, in the order they are checked. */
export const CONFIG_KEYS: readonly ConfigKey[] = [
  {
    key: "user",
    field: "user",
    option: "`user`",
    default: code(SETTING_DEFAULTS.user),
    type: `a name, or a numeric id from 0 to ${MAX_ID}`,
    parse: parseId,
  },
  {
    key: "group",
    field: "group",
    option: "`group`",
    default: "the user's primary group",
    type: `a name, or a numeric id from 0 to ${MAX_ID}`,
    parse: parseId,
  },
  {
    key: "capabilities",
    field: "capabilities",
    option: "`capabilities` (required)",
    default: "none: each one listed",
    type: "an array of capability names or numbers",
    parse: (place, _key, value) => parseCapabilities(place, value),
  },
  {
    key: "concurrency",
    alias: "thread_pool_size",
    field: "concurrency",
    option: "`concurrency`",
    default: "number of CPUs",
    ...positiveInteger(
      Number.MAX_SAFE_INTEGER,
      "set it to how many calls the daemon may run at once, for example 4",
    ),
  },
  {
    key: "helper_command",
    field: "helperCommand",
    option: "`helperCommand`, `init({ helperCommand })`",
    default: '`["sudo", "-n"]`',
    type: "an array of strings, or a string split on white space",
    parse: (place, _key, value) => parseHelperCommand(place, value),
  },
  {
    key: "logger_name",
    field: "loggerName",
    option: "`loggerName`",
    default: code(SETTING_DEFAULTS.loggerName),
    type: "a non-empty string",
    parse: (place, key, value) =>
      parseNonEmptyString(
        place,
        key,
        value,
        'give a logger category such as "app.privsep.daemon"',
      ),
  },
  {
    key: "log_daemon_traceback",
    field: "logDaemonTraceback",
    option: "`logDaemonTraceback`",
    default: code(SETTING_DEFAULTS.logDaemonTraceback),
    ...BOOLEAN,
  },
  {
    key: "log_level",
    field: "logLevel",
    option: "`logLevel`",
    default: code(SETTING_DEFAULTS.logLevel),
    ...oneOf(
      LOG_LEVELS,
      'write log_level = "info" (or "debug" while you debug: the service account reads every record the daemon sends)',
    ),
  },
  {
    key: "verify",
    field: "verify",
    option: "`verify`",
    default: `${
      code(SETTING_DEFAULTS.verify)
    } (\`false\` is logged at every start)`,
    ...BOOLEAN,
  },
  {
    key: "warm_up",
    field: "warmUp",
    option: "`warmUp`",
    default: code(SETTING_DEFAULTS.warmUp),
    ...BOOLEAN,
  },
  {
    key: "timeout_ms",
    field: "timeoutMs",
    option: "`timeout`",
    default: "none",
    ...positiveInteger(
      MAX_TIMEOUT_MS,
      "give the timeout in whole milliseconds, for example 30000",
    ),
  },
  {
    key: "cancel_grace_ms",
    field: "cancelGraceMs",
    option: "`cancelGraceMs`",
    default: code(SETTING_DEFAULTS.cancelGraceMs),
    ...positiveInteger(
      MAX_TIMEOUT_MS,
      "give the grace period in whole milliseconds, for example 2000",
    ),
  },
  {
    key: "on_stuck",
    field: "onStuck",
    option: "`onStuck`",
    default: code(SETTING_DEFAULTS.onStuck),
    ...oneOf(
      ["recycle", "report"],
      'write on_stuck = "recycle" (restart the daemon) or "report" (only log)',
    ),
  },
  {
    key: "queue_limit",
    field: "queueLimit",
    option: "`queueLimit`",
    default: code(SETTING_DEFAULTS.queueLimit),
    ...positiveInteger(
      1_000_000,
      "give the number of calls that may wait for a free slot, for example 1000",
    ),
  },
  {
    key: "idle_read",
    field: "idleRead",
    option: "`idleRead`",
    default: code(SETTING_DEFAULTS.idleRead),
    ...oneOf(
      ["event-loop", "blocking"],
      'write idle_read = "event-loop" (background work runs between calls) or "blocking" (a little lower latency; nothing runs between calls)',
    ),
  },
  {
    key: "deno_dir",
    field: "denoDir",
    default: `\`${DEFAULT_DENO_DIR}\``,
    type: "an absolute path without white space",
    parse: (place, _key, value) =>
      parseAbsoluteDir(place, "deno_dir", value, "/var/cache/app/privsep-deno"),
  },
  {
    key: "launcher_dir",
    field: "launcherDir",
    option: "`launcherDir`",
    default: `\`${SETTING_DEFAULTS.launcherDir}\``,
    type: "an absolute path without white space",
    parse: (place, _key, value) =>
      parseAbsoluteDir(place, "launcher_dir", value, DEFAULT_LAUNCHER_DIR),
  },
  {
    key: "libcap",
    field: "libcap",
    default: `\`${DEFAULT_LIBCAP}\``,
    type: "a library name without a slash, or a normalised absolute path",
    parse: (place, _key, value) => parseLibcap(place, value),
  },
  {
    key: "permissions",
    field: "permissions",
    option: "`permissions`",
    default: "none (plus reading its own code, and `sys` `uid,gid`)",
    type: `\`"all"\`, or a table of ${
      PERMISSION_KINDS.map((k) => `\`${k}\``).join(", ")
    }`,
    parse: (place, _key, value) => parsePermissions(place, value),
  },
  {
    key: "confinement",
    field: "confinement",
    option: "`confinement`",
    default: `${code(SETTING_DEFAULTS.confinement)} (docs/security/sandbox.md)`,
    ...oneOf(
      ["required", "best-effort", "off"],
      'write confinement = "best-effort" (the default: apply what the kernel supports), "required" (refuse to start without it) or "off"',
    ),
  },
  {
    key: "syscall_filter",
    field: "syscallFilter",
    option: "`syscallFilter`",
    default: "`[]`: the default deny list (security/sandbox.md)",
    type: 'an array of `"+@group"`, `"-@group"`, `"+name"`, `"-name"`',
    parse: (place, _key, value) => parseSyscallFilter(place, value),
  },
];

/** Every valid key of a section, aliases after their key. */
const SECTION_KEYS: readonly string[] = CONFIG_KEYS.flatMap((k) =>
  k.alias === undefined ? [k.key] : [k.key, k.alias]
);

function parseSectionTable(table: Table, place: Place): ContextSettings {
  for (const key of Object.keys(table)) {
    if (!SECTION_KEYS.includes(key)) {
      throw unknownKeyError(place, key, SECTION_KEYS);
    }
  }
  const has = (key: string): boolean => Object.hasOwn(table, key);
  const settings: Record<string, unknown> = {};
  for (const entry of CONFIG_KEYS) {
    if (entry.alias !== undefined && has(entry.key) && has(entry.alias)) {
      throw new ConfigError(
        `${
          where(place)
        }: both "${entry.key}" and its alias "${entry.alias}" are set (${
          render(table[entry.key])
        } and ${render(table[entry.alias])}); keep only "${entry.key}"`,
        errorOptions(place, entry.alias),
      );
    }
    for (const key of [entry.key, entry.alias]) {
      if (key !== undefined && has(key)) {
        settings[entry.field] = entry.parse(place, key, table[key]);
      }
    }
  }
  return settings as ContextSettings;
}

/**
 * The reference table of docs/configuration.md, as rows of cells (markdown):
 * key, value, option in code, default.
 */
export function configReferenceRows(): string[][] {
  return CONFIG_KEYS.map((k) => [
    `\`${k.key}\`${k.alias === undefined ? "" : ` (\`${k.alias}\`)`}`,
    k.type,
    k.option ?? "(config only)",
    k.default,
  ]);
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
 * Every key, what it accepts and its default are in {@linkcode CONFIG_KEYS}
 * (the reference table of docs/configuration.md is checked against it).
 * `concurrency` and `thread_pool_size` are one key; `user` and `group` given
 * as integers are stored as strings; `true` for a permission kind is stored
 * as an empty list (unscoped).
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
