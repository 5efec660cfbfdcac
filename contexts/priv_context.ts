/**
 * `PrivContext`: a set of Linux capabilities, a user and group, Deno
 * permissions and a timeout, and the narrow privileged functions bound to it.
 * Calling such a function runs it in a daemon that was started through sudo
 * (or directly, when already root) and reduced to exactly that context.
 *
 * @module
 */

import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { getLogger, getLogLevels, isLogLevel } from "@logtape/logtape";
import { capabilitiesToMask, parseCapabilities } from "../caps/parse.ts";
import { readProcessCredentials } from "../caps/proc.ts";
import { expandSyscallEntry } from "../caps/_seccomp.ts";
import { DaemonExitedError, FailedToDropPrivileges } from "../errors.ts";
import { decodeMessage, encodeMessage, Kind } from "../protocol/messages.ts";
import { type CallOptions, currentCallOptions } from "../core/call_scope.ts";
import { isWarmUp, WARM_UP, WARM_UP_TIMEOUT_MS } from "../core/_warm_up.ts";
import {
  checkEntrypointOptions,
  type EntrypointOptions,
} from "../core/schema.ts";
import {
  checkMaxFrameBytes,
  DEFAULT_MAX_FRAME_BYTES,
  FRAME_HEADER_BYTES,
} from "../protocol/frame.ts";
import { invoke, replyFrame } from "../core/invoke.ts";
import { CallAbort } from "../core/_call_abort.ts";
import { callTimeout, replyError } from "./_call_errors.ts";
import {
  daemonCommand,
  type DaemonCommandSpec,
  findDenoConfig,
  launcherDigest,
  launcherPath,
  launcherScript as buildLauncherScript,
  layoutProblems,
  sudoersRule as buildSudoersRule,
} from "../core/command.ts";
import {
  globals,
  type PrivContextOptions,
  type ResolvedSettings,
  resolveSettings,
} from "../core/settings.ts";
import { DaemonClient, settlesWithin } from "./_client.ts";
import { warmUp } from "./_warm_up.ts";
import { ancestry, expectedIds } from "./_verify.ts";
import {
  type EntrypointRecord,
  entrypointsOf,
  type Mode,
  registry,
} from "../core/_registry.ts";

import type { DaemonStatus } from "../protocol/messages.ts";
export type { DaemonStatus };

const log = getLogger(["privsep", "client"]);

/**
 * A running daemon, as verified by the caller: what
 * {@linkcode PrivContext.start} returns and {@linkcode PrivContext.daemon}
 * holds while it runs.
 *
 * @example
 * ```ts
 * import { type DaemonInfo, PrivContext } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * const ctx = new PrivContext({
 *   module: "file:///virtual/daemon-info/privsep/mod.ts", // import.meta in real code
 *   name: "ctx",
 *   capabilities: ["CAP_NET_ADMIN"],
 * });
 * assert.equal(ctx.daemon, undefined); // nothing started yet
 *
 * // Starts a daemon through sudo, so it is not run here.
 * async function startEarly(): Promise<DaemonInfo> {
 *   const info = await ctx.start();
 *   if (!info.verified) console.warn(`could not verify daemon ${info.pid}`);
 *   return info;
 * }
 * ```
 */
export interface DaemonInfo {
  /** The serving daemon's pid. */
  pid: number;
  /** The uid the daemon reported and, when `verified`, the kernel confirmed. */
  uid: number;
  /** The gid, likewise. */
  gid: number;
  /** Capability numbers kept. */
  capabilities: number[];
  /** Whether the caller read `/proc/<pid>/task/*` and found exactly these credentials. */
  verified: boolean;
}

/**
 * Chooses where entrypoints run in this process: `true` (the default) sends
 * calls to the daemon; `false` runs them in-process, for unit tests (oslo's
 * `set_client_mode(False)`). Arguments and results still go through the
 * msgpack codec, so a test catches values the wire cannot carry.
 *
 * @example
 * ```ts
 * import { PrivContext, setClientMode } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * const ops = new PrivContext({
 *   module: "file:///virtual/set-client-mode/privsep/mod.ts", // import.meta in real code
 *   name: "ops",
 *   capabilities: [],
 * });
 * const echo = ops.entrypoint(
 *   "file:///virtual/set-client-mode/privsep/echo.ts",
 *   function echo(value: unknown): unknown {
 *     return value;
 *   },
 * );
 *
 * setClientMode(false);
 * try {
 *   assert.deepEqual(await echo({ when: new Date(0) }), { when: new Date(0) });
 *   // a function cannot cross the wire, in-process neither
 *   await assert.rejects(echo(() => 1), TypeError);
 * } finally {
 *   setClientMode(true);
 * }
 * ```
 */
export function setClientMode(enabled: boolean): void {
  const reg = registry();
  if (reg.mode === "daemon") {
    throw new Error("setClientMode() cannot be used inside the privsep daemon");
  }
  reg.mode = enabled ? "client" : "in-process";
}

function moduleUrl(module: ImportMeta | URL | string, what: string): string {
  const url = typeof module === "string"
    ? module
    : module instanceof URL
    ? module.href
    : module?.url;
  if (typeof url !== "string" || !URL.canParse(url)) {
    throw new TypeError(
      `${what} must be import.meta or a module URL, got ${String(url)}`,
    );
  }
  return new URL(url).href;
}

/**
 * A privilege context. Define one per set of privileges, export it, and bind
 * narrow privileged functions to it with {@linkcode PrivContext.entrypoint}.
 *
 * @example
 * ```ts
 * // app/privsep/mod.ts
 * import { caps, PrivContext } from "@privsep/privsep";
 *
 * export const sysAdmin = new PrivContext({
 *   module: import.meta,
 *   name: "sysAdmin",
 *   cfgSection: "app_sys_admin",
 *   capabilities: [caps.CAP_CHOWN, caps.CAP_DAC_OVERRIDE, caps.CAP_DAC_READ_SEARCH,
 *                  caps.CAP_FOWNER, caps.CAP_NET_ADMIN, caps.CAP_SYS_ADMIN],
 * });
 * ```
 */
export class PrivContext {
  /** `module#name`: how the daemon finds this context. */
  readonly id: string;
  /** The export name. */
  readonly name: string;
  /** The defining module's URL. */
  readonly moduleUrl: string;
  /** The directory URL below which entrypoints live (ends with `/`). */
  readonly prefix: string;
  /** The config section, if any. */
  readonly cfgSection?: string;
  /** The options as given. */
  readonly options: Readonly<PrivContextOptions>;
  #client: DaemonClient | undefined;
  /** The new daemon's client while the warm-up's calls run (#spawn). */
  #warming: DaemonClient | undefined;
  #warmUpWrappers:
    | Map<string, (...args: unknown[]) => Promise<unknown>>
    | undefined;
  #starting: Promise<DaemonClient> | undefined;
  /** The last daemon started: a new one starts once it has exited. */
  #last: DaemonClient | undefined;
  #hadDaemon = false;
  #settings: ResolvedSettings | undefined;
  #info: DaemonInfo | undefined;

  /** Declares a context; checks its options, starts nothing. */
  constructor(options: PrivContextOptions) {
    if (options === null || typeof options !== "object") {
      throw new TypeError("PrivContext needs an options object");
    }
    this.moduleUrl = moduleUrl(options.module, "options.module");
    if (
      typeof options.name !== "string" ||
      !/^[A-Za-z_$][\w$]*$/.test(options.name)
    ) {
      throw new TypeError(
        `options.name must be the context's export name (an identifier), got ${
          JSON.stringify(options.name)
        }`,
      );
    }
    if (!Array.isArray(options.capabilities)) {
      throw new TypeError(
        "options.capabilities is required: list every capability the context keeps (an empty list keeps none)",
      );
    }
    parseCapabilities(options.capabilities);
    if (options.maxFrameBytes !== undefined) {
      checkMaxFrameBytes(options.maxFrameBytes);
    }
    checkPositiveInt("options.concurrency", options.concurrency);
    checkPositiveInt("options.timeout", options.timeout);
    checkPositiveInt("options.cancelGraceMs", options.cancelGraceMs);
    checkPositiveInt("options.queueLimit", options.queueLimit);
    if (
      options.confinement !== undefined &&
      !["required", "best-effort", "off"].includes(options.confinement)
    ) {
      throw new TypeError(
        `options.confinement must be "required", "best-effort" or "off", got ${
          JSON.stringify(options.confinement)
        }`,
      );
    }
    if (options.syscallFilter !== undefined) {
      if (!Array.isArray(options.syscallFilter)) {
        throw new TypeError(
          'options.syscallFilter must be an array such as ["+@keyring", "-@mount"]',
        );
      }
      options.syscallFilter.forEach(expandSyscallEntry);
    }
    if (
      options.idleRead !== undefined && options.idleRead !== "event-loop" &&
      options.idleRead !== "blocking"
    ) {
      throw new TypeError(
        `options.idleRead must be "event-loop" or "blocking", got ${
          JSON.stringify(options.idleRead)
        }`,
      );
    }
    if (
      options.logLevel !== undefined &&
      (typeof options.logLevel !== "string" || !isLogLevel(options.logLevel))
    ) {
      throw new TypeError(
        `options.logLevel must be one of ${
          getLogLevels().map((l) => JSON.stringify(l)).join(", ")
        }, got ${JSON.stringify(options.logLevel)}`,
      );
    }
    if (
      options.onStuck !== undefined && options.onStuck !== "recycle" &&
      options.onStuck !== "report"
    ) {
      throw new TypeError(
        `options.onStuck must be "recycle" or "report", got ${
          JSON.stringify(options.onStuck)
        }`,
      );
    }
    this.name = options.name;
    this.id = `${this.moduleUrl}#${this.name}`;
    const prefix = new URL(
      options.prefix === undefined ? "./" : String(options.prefix),
      this.moduleUrl,
    ).href;
    this.prefix = prefix.endsWith("/") ? prefix : `${prefix}/`;
    this.cfgSection = options.cfgSection;
    this.options = Object.freeze({ ...options });
    const reg = registry();
    if (reg.contexts.has(this.id)) {
      throw new TypeError(`a PrivContext named ${this.id} is already defined`);
    }
    reg.contexts.set(this.id, this);
  }

  /**
   * Binds a privileged function to this context. The function's module must
   * live below the context's prefix, the function must have a name, and it
   * can belong to one context only. Returns the function the service calls:
   * same parameters, always async.
   *
   * @example
   * ```ts
   * import { PrivContext } from "@privsep/privsep";
   * import assert from "node:assert/strict";
   *
   * // app/privsep/mod.ts
   * const sysAdmin = new PrivContext({
   *   module: "file:///virtual/entrypoint/privsep/mod.ts", // import.meta in real code
   *   name: "sysAdmin",
   *   capabilities: ["CAP_DAC_OVERRIDE"],
   * });
   *
   * // app/privsep/motd.ts
   * const updateMotd = sysAdmin.entrypoint(
   *   "file:///virtual/entrypoint/privsep/motd.ts", // import.meta in real code
   *   async function updateMotd(message: string): Promise<void> {
   *     await Deno.writeTextFile("/etc/motd", message);
   *   },
   * );
   *
   * // Its wire name; `await updateMotd("idle")` runs it in the daemon.
   * assert.deepEqual(sysAdmin.entrypoints(), ["motd.ts#updateMotd"]);
   * assert.equal(updateMotd.name, "updateMotd");
   * ```
   */
  entrypoint<A extends unknown[], R>(
    module: ImportMeta | URL | string,
    fn: (...args: A) => R,
    options?: EntrypointOptions,
  ): (...args: A) => Promise<Awaited<R>> {
    return this.#define(module, fn, undefined, options);
  }

  /**
   * Like {@linkcode PrivContext.entrypoint}, with a timeout (ms) that
   * overrides the context's for this function (oslo's
   * `entrypoint_with_timeout`).
   *
   * @example
   * ```ts
   * import { callSignal, PrivContext, PrivsepTimeout } from "@privsep/privsep";
   * import { inProcess } from "@privsep/privsep/testing";
   * import assert from "node:assert/strict";
   *
   * const net = new PrivContext({
   *   module: "file:///virtual/entrypoint-with-timeout/privsep/mod.ts", // import.meta in real code
   *   name: "net",
   *   capabilities: ["CAP_NET_ADMIN"],
   * });
   * const waitForCarrier = net.entrypointWithTimeout(50)(
   *   "file:///virtual/entrypoint-with-timeout/privsep/links.ts",
   *   async function waitForCarrier(device: string): Promise<void> {
   *     // never comes up here: returns once the call is cancelled
   *     await new Promise<void>((resolve) =>
   *       callSignal().addEventListener("abort", () => resolve())
   *     );
   *   },
   * );
   *
   * using _ = inProcess(); // run it here, not in a daemon
   * await assert.rejects(waitForCarrier("eth0"), PrivsepTimeout);
   * ```
   */
  entrypointWithTimeout(
    timeoutMs: number,
  ): <A extends unknown[], R>(
    module: ImportMeta | URL | string,
    fn: (...args: A) => R,
    options?: EntrypointOptions,
  ) => (...args: A) => Promise<Awaited<R>> {
    checkPositiveInt("timeout", timeoutMs);
    return (module, fn, options) =>
      this.#define(module, fn, timeoutMs, options);
  }

  /** The keys (`path#function`) of the entrypoints defined so far. */
  entrypoints(): string[] {
    return [...entrypointsOf(this).keys()].sort();
  }

  #define<A extends unknown[], R>(
    module: ImportMeta | URL | string,
    fn: (...args: A) => R,
    timeoutMs: number | undefined,
    options: EntrypointOptions | undefined,
  ): (...args: A) => Promise<Awaited<R>> {
    if (typeof fn !== "function") {
      throw new TypeError(
        "entrypoint() needs the privileged function as its second argument",
      );
    }
    const url = moduleUrl(module, "entrypoint()'s first argument");
    if (!url.startsWith(this.prefix)) {
      throw new TypeError(
        `entrypoint ${
          fn.name || "(anonymous)"
        } is defined in ${url}, outside the prefix ${this.prefix} of context ${this.name}; move it below the prefix`,
      );
    }
    if (!/^[A-Za-z_$][\w$]*$/.test(fn.name)) {
      throw new TypeError(
        `an entrypoint needs a named function, e.g. entrypoint(import.meta, async function updateMotd(...) { … }); got ${
          JSON.stringify(fn.name)
        }`,
      );
    }
    const reg = registry();
    const owner = reg.owners.get(fn);
    if (owner) {
      throw new TypeError(
        `function ${fn.name} is already an entrypoint of context ${owner.id}; a function belongs to one context`,
      );
    }
    const key = `${url.slice(this.prefix.length)}#${fn.name}`;
    const map = entrypointsOf(this);
    if (map.has(key)) {
      throw new TypeError(
        `context ${this.name} already has an entrypoint ${key}`,
      );
    }
    checkEntrypointOptions(key, options);
    const record: EntrypointRecord = {
      key,
      fn: fn as (...args: unknown[]) => unknown,
      timeoutMs,
      options,
    };
    map.set(key, record);
    reg.owners.set(fn, this);
    const wrapper = this.#wrap<A, R>(record, fn.name);
    reg.owners.set(wrapper, this);
    return wrapper;
  }

  /**
   * The function an entrypoint's callers call: a record's, named `name`.
   * The warm-up's calls go through wrappers of the warm-up's records
   * (#spawn), so that V8 compiles this code, #call and #callOn for the
   * application's calls before the first one (bench/HISTORY.md, 2026-12-05
   * "warm-up through the wrapper").
   */
  #wrap<A extends unknown[], R>(
    record: EntrypointRecord,
    name: string,
  ): (...args: A) => Promise<Awaited<R>> {
    const ctx = { id: this.id };
    const fn = record.fn;
    // Not an async function: the caller gets the daemon client's promise
    // itself, without two more promises and microtask hops per call. A
    // synchronous throw still becomes a rejection. It calls the context's
    // methods, not a closure per entrypoint: every wrapper then calls the
    // same function, and V8's optimized wrapper is not thrown away ("wrong
    // call target") at the first call of each other entrypoint.
    return {
      [name]: (...args: A): Promise<Awaited<R>> => {
        try {
          const reg = registry();
          const mode: Mode = reg.mode;
          // The warm-up's calls are the library's, not the application's.
          if (reg.recorders.size && !isWarmUp(record)) {
            const call = {
              context: ctx.id,
              entrypoint: record.key,
              name,
              args,
            };
            for (const record of reg.recorders) record(call);
          }
          const result = mode === "daemon"
            ? Promise.resolve(fn(...args))
            : mode === "in-process"
            ? this.#inProcess(record, args)
            : this.#call(record, args);
          return result as Promise<Awaited<R>>;
        } catch (error) {
          return Promise.reject(error);
        }
      },
    }[name];
  }

  /**
   * This context's settings: its options with the TOML section (from
   * {@linkcode init}'s and the context's config files) applied on top.
   */
  settings(): ResolvedSettings {
    return resolveSettings(this, [
      ...globals.configFiles,
      ...(this.options.configFiles ?? []),
    ]);
  }

  /**
   * Everything that decides this context's daemon command line (the deno
   * binary, `daemon.ts`, the app's `deno.json`, code roots, config files,
   * the cache directory), without the helper command.
   */
  commandSpec(): DaemonCommandSpec {
    return this.#commandSpec();
  }

  /**
   * The exact argv that {@linkcode PrivContext.start} spawns: through sudo,
   * the helper command and the context's launcher (nothing else); directly
   * or unprivileged, the daemon's own command line.
   */
  command(): string[] {
    return this.#argv(this.settings());
  }

  #argv(settings: ResolvedSettings): string[] {
    if (this.#startMethod() === "sudo") {
      return [...settings.helperCommand, this.launcher()];
    }
    return daemonCommand(this.#commandSpec(settings));
  }

  /**
   * The path of this context's launcher: the root-owned script that its
   * sudoers rule lets the service's user run, with no arguments.
   */
  launcher(): string {
    return launcherPath(this.id, this.settings().launcherDir);
  }

  /**
   * The launcher script `privsep install` writes for this context. It runs
   * the real, root daemon, whatever mode this process is in.
   */
  launcherScript(): string {
    return buildLauncherScript(this.#rootSpec());
  }

  #rootSpec(): DaemonCommandSpec {
    // Never the testing kit's unprivileged start, whatever mode this
    // process is in.
    return {
      ...this.#commandSpec(),
      unprivileged: false,
      denoDir: this.settings().denoDir,
    };
  }

  /**
   * The sudoers line that lets `user` run this context's launcher as root,
   * with no arguments, and nothing else. It pins the launcher's SHA-256 and
   * refuses when root would run files that a non-root user can modify.
   */
  sudoersRule(user: string): string {
    const spec = this.#rootSpec();
    const problems = layoutProblems(spec);
    if (problems.length) {
      throw new Error(
        `refusing to write a sudoers rule for ${this.id}: root would run files that a non-root user can modify. Install them root-owned and not group/world-writable, below directories that are too (not /tmp):\n- ${
          problems.join("\n- ")
        }`,
      );
    }
    return buildSudoersRule(this.launcher(), {
      user,
      sha256: launcherDigest(buildLauncherScript(spec)),
    });
  }

  /** The running daemon, or `undefined`. */
  get daemon(): DaemonInfo | undefined {
    return this.#client?.alive ? this.#info : undefined;
  }

  /**
   * Starts the daemon now instead of at the first call. Concurrent callers
   * share one start.
   */
  async start(): Promise<DaemonInfo> {
    await this.#ensureClient();
    return this.#info!;
  }

  /**
   * Stops the daemon: calls in flight are cancelled and get their reply if
   * they return within the smaller of `cancelGraceMs` and 2 s; the others
   * reject with `DaemonExitedError` once the daemon has exited (or earlier
   * with their own timeout or signal). Resolves when the daemon has exited,
   * also when another stop() or a recycle is ending it.
   */
  async stop(): Promise<void> {
    const client = this.#client ?? await this.#starting?.catch(() => undefined);
    // Before the wait: a call made meanwhile starts the next daemon, which
    // becomes the last one.
    const last = this.#last;
    this.#client = undefined;
    this.#hadDaemon = false;
    await client?.close();
    if (last) await exitOf(last, this.id);
  }

  /** Stops the daemon when used with `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  #startMethod(): "sudo" | "direct" | "unprivileged" {
    if (registry().unprivileged) return "unprivileged";
    const method = this.options.startMethod ?? "auto";
    if (method !== "auto") return method;
    try {
      return Deno.uid() === 0 ? "direct" : "sudo";
    } catch {
      return "sudo";
    }
  }

  #commandSpec(
    settings: ResolvedSettings = this.settings(),
  ): DaemonCommandSpec {
    const daemonUrl = new URL("../daemon.ts", import.meta.url);
    if (daemonUrl.protocol !== "file:" || !this.moduleUrl.startsWith("file:")) {
      throw new TypeError(
        `the privsep daemon and context ${this.id} must be local files (got ${daemonUrl.href}); vendor @privsep/privsep into a root-owned directory`,
      );
    }
    const daemonPath = fileURLToPath(daemonUrl);
    const denoConfig = this.options.denoConfig === false
      ? undefined
      : this.options.denoConfig ?? findDenoConfig(new URL(this.moduleUrl));
    const roots = [
      dirname(daemonPath),
      fileURLToPath(this.prefix).replace(/\/$/, ""),
    ];
    if (denoConfig) roots.push(dirname(denoConfig));
    const unprivileged = this.#startMethod() === "unprivileged";
    return {
      unprivileged,
      denoPath: Deno.execPath(),
      daemonPath,
      denoConfig,
      codeRoots: outermost(roots),
      contextId: this.id,
      configFiles: [
        ...globals.configFiles,
        ...(this.options.configFiles ?? []),
      ],
      // Unprivileged, the daemon runs as this user: it may use this cache.
      denoDir: unprivileged ? ownDenoDir() : settings.denoDir,
    };
  }

  #call(record: EntrypointRecord, args: unknown[]): Promise<unknown> {
    const client = this.#client;
    if (client === undefined && isWarmUp(record)) {
      // A daemon that is warming up answers the warm-up's calls only, with
      // their own timeout: not the options of the call that started it.
      return this.#callOn(this.#warming, record, args, undefined);
    }
    return this.#callOn(client, record, args, currentCallOptions());
  }

  /**
   * A call of `record` on `client`, or on a daemon started for it when
   * `client` is absent or gone: the code of every call, and of the warm-up's
   * (#spawn), which V8 thereby compiles before the first real call.
   */
  #callOn(
    client: DaemonClient | undefined,
    record: EntrypointRecord,
    args: unknown[],
    options: CallOptions | undefined,
  ): Promise<unknown> {
    if (options?.signal?.aborted) return Promise.reject(options.signal.reason);
    // Read whether or not it applies: code V8 compiled during the warm-up
    // (whose records have a timeout) then has it, and is not thrown away at
    // the first call that falls back to the context's.
    const contextTimeout = this.#settings?.timeoutMs;
    const timeout = options?.timeout ?? record.timeoutMs ?? contextTimeout;
    const signal = options?.signal;
    // No closure for the common case: a daemon that is up.
    if (client?.alive) return client.call(record.key, args, timeout, signal);
    return this.#ensureClient(record.key).then((client) =>
      client.call(
        record.key,
        args,
        // The daemon's settings may set the timeout only now.
        options?.timeout ?? record.timeoutMs ?? this.#settings?.timeoutMs,
        signal,
      )
    );
  }

  /**
   * Runs an entrypoint in this process as its daemon would (core/invoke.ts),
   * through the codec both ways, with its signal and timeout: the call's
   * frame is encoded and decoded, the reply's too, and an error reply
   * becomes the error a daemon's would.
   */
  async #inProcess(
    record: EntrypointRecord,
    args: unknown[],
  ): Promise<unknown> {
    const options = currentCallOptions();
    options?.signal?.throwIfAborted();
    const settings = this.settings();
    const timeout = options?.timeout ?? record.timeoutMs ?? settings.timeoutMs;
    const maxFrameBytes = this.options.maxFrameBytes ??
      DEFAULT_MAX_FRAME_BYTES;
    const cancel = new CallAbort();
    const started = performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    const stop = new Promise<never>((_, reject) => {
      const abort = (reason: unknown) => {
        // Reject first: a function that resolves on abort must not win.
        reject(reason);
        cancel.abort(reason);
      };
      if (options?.signal) {
        const signal = options.signal;
        onAbort = () => abort(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
      }
      if (timeout !== undefined) {
        timer = setTimeout(
          () => abort(callTimeout(this.id, record.key, timeout, started)),
          timeout,
        );
      }
    });
    stop.catch(() => {});
    try {
      // What the daemon receives: the arguments, through the codec.
      const call = decodeMessage(
        encodeMessage([Kind.Call, 0, record.key, args], maxFrameBytes)
          .subarray(FRAME_HEADER_BYTES),
      ) as { args: unknown[] };
      const reply = new Promise<Uint8Array>((resolve, reject) => {
        // The daemon's stacks travel with log_daemon_traceback; a test's
        // always do.
        invoke(record, call.args, cancel, (outcome) =>
          resolve(
            replyFrame(0, outcome, { maxFrameBytes, withStack: true }).frame,
          ))?.catch(reject);
      });
      const m = decodeMessage(
        (await Promise.race([reply, stop])).subarray(FRAME_HEADER_BYTES),
      );
      if (m.kind === Kind.Error) {
        throw replyError(m.error, record.key, this.id);
      }
      return (m as { value: unknown }).value;
    } finally {
      clearTimeout(timer);
      if (onAbort) options?.signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * The running daemon's counters: calls running and queued, completed,
   * cancelled, and stuck (cancelled calls that ignored their signal past the
   * grace period). Starts the daemon if needed.
   */
  async status(): Promise<DaemonStatus> {
    const client = this.#client?.alive
      ? this.#client
      : await this.#ensureClient();
    return await client.status() as DaemonStatus;
  }

  #ensureClient(entrypoint?: string): Promise<DaemonClient> {
    if (this.#client?.alive) return Promise.resolve(this.#client);
    const forbidden = registry().forbidden;
    if (forbidden) return Promise.reject(forbidden(this.id, entrypoint));
    return this.#starting ??= this.#spawn().finally(() => {
      this.#starting = undefined;
    });
  }

  async #spawn(): Promise<DaemonClient> {
    const settings = this.settings();
    const argv = this.#argv(settings);
    // One daemon per context at a time: calls of one that was stopped may
    // still run for their grace (DaemonClient#close), and a call made after
    // the stop must not run beside them, as a retry of one of them would.
    if (this.#last) await exitOf(this.#last, this.id);
    if (this.#hadDaemon) {
      log.warn("restarting the privsep daemon of {context}", {
        context: this.id,
      });
    } else {
      log.info("starting the privsep daemon of {context}", {
        context: this.id,
      });
    }
    const client = this.#last = await DaemonClient.start({
      context: this.id,
      argv,
      cancelGraceMs: settings.cancelGraceMs,
      onStuck: settings.onStuck,
      maxFrameBytes: this.options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      daemonLogger: settings.loggerName,
      onGone: (c) => {
        if (this.#client === c) this.#client = undefined;
      },
      startHint: (stderr) => this.#startHint(stderr),
    });
    try {
      this.#info = await verifyDaemon(
        this.id,
        client,
        this.#startMethod() === "unprivileged"
          ? { ...settings, capabilities: [] }
          : settings,
        this.#startMethod() === "unprivileged",
      );
    } catch (error) {
      client.kill();
      throw error;
    }
    this.#settings = settings;
    if (settings.warmUp) {
      // Before any call of the application can use the daemon: the daemon
      // answers warm-up calls only until the first call of another name.
      try {
        const started = performance.now();
        // Through the wrappers and #call, as the application's calls go:
        // #call gives warm-up calls this client. #client is not alive here
        // (a daemon that is gone), and would be taken first.
        this.#client = undefined;
        this.#warming = client;
        const wrappers = this.#warmUpWrappers ??= new Map(
          [...WARM_UP].map((
            [name, record],
          ) => [name, this.#wrap(record, name)]),
        );
        const calls = await warmUp(
          (name, args) =>
            // On a client that is gone, #callOn would wait for a new daemon,
            // that is for this start: its own call rejects at once instead.
            // The wrappers follow the process's mode: a test that switches
            // to in-process calls meanwhile must not run them here.
            client.alive && registry().mode === "client"
              ? wrappers.get(name)!(...args)
              : client.call(name, args, WARM_UP_TIMEOUT_MS),
          {
            maxInFlight: settings.concurrency + settings.queueLimit,
            maxFrameBytes: Math.min(
              this.options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
              client.info?.hello.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
            ),
          },
        );
        log.debug(
          "warmed up the privsep daemon of {context}: {calls} calls in {ms} ms",
          {
            context: this.id,
            calls,
            ms: Math.round(performance.now() - started),
          },
        );
      } catch (error) {
        client.kill();
        throw new DaemonExitedError(
          `the privsep daemon of ${this.id} failed its warm-up and was stopped: ${
            (error as Error)?.message ?? String(error)
          }. The warm-up (docs/configuration.md, warm_up) makes calls of the daemon's own before the first call; warm_up = false skips it`,
          { context: this.id, cause: error },
        );
      } finally {
        this.#warming = undefined;
      }
    }
    if (!client.alive) {
      // It answered its checks and warm-up, then went: its onGone has run.
      throw new DaemonExitedError(
        `the privsep daemon of ${this.id} exited right after its warm-up, before its first call; the next call starts a new one`,
        { context: this.id },
      );
    }
    this.#client = client;
    this.#hadDaemon = true;
    log.info("privsep daemon of {context} is running as pid {pid}", {
      context: this.id,
      pid: this.#info.pid,
    });
    return client;
  }

  #startHint(stderr: string): string {
    const sudoRefused =
      /password is required|terminal is required|may not run sudo|not allowed to execute|command not found/i
        .test(stderr);
    if (sudoRefused && this.#startMethod() === "sudo") {
      let user = "<the service's user>";
      try {
        user = Deno.env.get("USER") ?? Deno.env.get("LOGNAME") ?? user;
      } catch { /* no env permission */ }
      const cli = fileURLToPath(new URL("../cli/privsep.ts", import.meta.url));
      let rule: string;
      try {
        rule = `It writes the launcher ${this.launcher()} and this rule:\n${
          this.sudoersRule(user)
        }`;
      } catch (error) {
        rule = (error as Error).message;
      }
      return `sudo refused to run the context's launcher. As root, install it and its sudoers rule with:\n  deno run -A ${cli} install --user=${user} ${
        fileURLToPath(this.moduleUrl)
      }#${this.name}\n${rule}`;
    }
    return "Check the launcher and its sudoers rule (privsep doctor), that libcap is installed, that the context's user and group exist, and that the daemon's files are root-owned.";
  }
}

/**
 * Waits for a previous daemon to exit before the next one starts: at most
 * the longest a stopped daemon takes (its calls' grace, then SIGTERM and
 * SIGKILL: ~3.2 s) and a little more; then kills it (a daemon whose channel
 * failed and that is blocked is stopped by nothing else) and waits again.
 * One that outlives SIGKILL fails the start: no daemon of a context runs
 * beside another.
 */
async function exitOf(client: DaemonClient, context: string): Promise<void> {
  if (await settlesWithin(client.exited, 5_000)) return;
  client.kill();
  if (await settlesWithin(client.exited, 5_000)) return;
  throw new DaemonExitedError(
    `the previous privsep daemon of ${context} (pid ${client.pid}) has not exited, even after SIGKILL; a new one does not start beside it, whose calls could run beside the old one's. See what holds it (ps -o pid,stat,wchan,cmd -p ${client.pid})`,
    { context },
  );
}

/** This process's DENO_DIR (for an unprivileged daemon, which runs as us). */
function ownDenoDir(): string | undefined {
  try {
    return Deno.env.get("DENO_DIR") ??
      (Deno.env.get("HOME")
        ? `${Deno.env.get("HOME")}/.cache/deno`
        : undefined);
  } catch {
    return undefined;
  }
}

function checkPositiveInt(what: string, value: number | undefined): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) {
    throw new RangeError(`${what} must be a positive integer, got ${value}`);
  }
}

/** Keeps only the paths that are not below another one. */
function outermost(paths: string[]): string[] {
  const unique = [...new Set(paths)].sort();
  return unique.filter((p) =>
    !unique.some((q) => q !== p && (p.startsWith(q + "/") || q === "/"))
  );
}

async function verifyDaemon(
  context: string,
  client: DaemonClient,
  settings: ResolvedSettings,
  unprivileged = false,
): Promise<DaemonInfo> {
  const hello = client.info!.hello;
  const info: DaemonInfo = {
    pid: hello.pid,
    uid: hello.uid ?? -1,
    gid: hello.gid ?? -1,
    capabilities: settings.capabilities,
    verified: false,
  };
  const want = capabilitiesToMask(settings.capabilities);
  if (hello.capabilities && capabilitiesToMask(hello.capabilities) !== want) {
    throw new FailedToDropPrivileges(
      `the daemon of ${context} reports capabilities ${
        hello.capabilities.join(",")
      } but this caller's settings say ${
        settings.capabilities.join(",")
      }; both sides must read the same config files`,
      { context },
    );
  }
  if (!settings.verify) {
    log.warn(
      "the daemon of {context} (pid {pid}) is NOT verified: verify = false skips the check of its credentials in /proc",
      { pid: hello.pid, context },
    );
    return info;
  }
  let creds;
  try {
    creds = await readProcessCredentials(hello.pid);
  } catch (error) {
    const reason = (error as Error).message;
    if (unprivileged) {
      // The testing kit's daemon runs as this process's own user, without
      // capabilities: it cannot hold more than the caller does.
      log.warn(
        "cannot read /proc/{pid} to verify the unprivileged daemon of {context} ({reason}); it runs as this user, so it is used unverified",
        { pid: hello.pid, context, reason },
      );
      return info;
    }
    throw new FailedToDropPrivileges(
      `cannot verify the daemon of ${context} (pid ${hello.pid}): reading /proc/${hello.pid}/task/*/status failed (${reason}). Deno 2.9 reads /proc only with --allow-all: run the caller with --allow-all, or set verify: false (TOML: verify = false) explicitly to use the daemon unverified`,
      { context, cause: error },
    );
  }
  // The hello names the daemon's pid: it must be the process this caller
  // spawned (sudo or the daemon itself) or one of its descendants, not any
  // process that happens to hold the expected credentials.
  const child = client.info!.helperPid;
  const chain = await ancestry(hello.pid, child);
  if (!chain) {
    throw new FailedToDropPrivileges(
      `the daemon of ${context} names pid ${hello.pid} in its hello, which is not a process this caller started: it is not the spawned helper (pid ${child}) nor one of its descendants in /proc/<pid>/stat; check helper_command`,
      { context },
    );
  }
  // Who it must run as, resolved here from this caller's settings (as the
  // daemon's first stage resolves them), not taken from its hello. The
  // testing kit's daemon runs as this process's user.
  let expected;
  try {
    expected = unprivileged
      ? {
        uid: Deno.uid(),
        gid: Deno.gid(),
        user: "this process's user",
        group: "this process's group",
      }
      : expectedIds(settings);
  } catch (error) {
    throw new FailedToDropPrivileges(
      `cannot verify the daemon of ${context} (pid ${hello.pid}): resolving its user and group on the caller's side failed (${
        (error as Error).message
      }); create them, or make this caller read the same config files as the daemon`,
      { context, cause: error },
    );
  }
  if (info.uid !== expected.uid || info.gid !== expected.gid) {
    throw new FailedToDropPrivileges(
      `the daemon of ${context} (pid ${hello.pid}) runs as uid ${info.uid} gid ${info.gid} by its hello, but this caller's settings say ${expected.user} (uid ${expected.uid}) and ${expected.group} (gid ${expected.gid}); both sides must read the same config files (reinstall the launcher with privsep install after changing them)`,
      { context },
    );
  }
  for (const t of creds.threads) {
    // A non-root unprivileged daemon cannot shrink its bounding set (it has
    // no capability to, and no_new_privs keeps it from gaining any).
    const sets = unprivileged && expected.uid !== 0
      ? [t.capEff, t.capPrm, t.capInh, t.capAmb]
      : [t.capEff, t.capPrm, t.capInh, t.capBnd, t.capAmb];
    const ids = [t.uid.real, t.uid.effective, t.uid.saved, t.uid.fs];
    const gids = [t.gid.real, t.gid.effective, t.gid.saved, t.gid.fs];
    if (
      sets.some((s) => s !== want) || !t.noNewPrivs ||
      ids.some((v) => v !== expected.uid) ||
      gids.some((v) => v !== expected.gid)
    ) {
      throw new FailedToDropPrivileges(
        `the daemon of ${context} (pid ${hello.pid}) does not run with exactly its context's credentials: thread ${t.tid} has uid ${
          ids.join("/")
        }, gid ${gids.join("/")}, effective ${
          t.capEff.toString(16)
        }, bounding ${
          t.capBnd.toString(16)
        }, no_new_privs ${t.noNewPrivs}; expected uid ${expected.uid}, gid ${expected.gid}, capabilities ${
          want.toString(16)
        }`,
        { context },
      );
    }
  }
  info.verified = true;
  return info;
}
