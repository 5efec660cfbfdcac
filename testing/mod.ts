/**
 * A testing kit for services that use privsep: run entrypoints in-process,
 * forbid real daemons, start real but unprivileged daemons, and record which
 * entrypoints a piece of code called. Every helper returns a handle that
 * restores the previous state, usable with `using` / `await using` (or call
 * `restore()`).
 *
 * @example
 * ```ts
 * import { inProcess, recordCalls } from "@privsep/privsep/testing";
 *
 * Deno.test("the service writes the motd", async () => {
 *   using _inProcess = inProcess();
 *   using calls = recordCalls();
 *   // await service.goIdle();   // calls motd.updateMotd("…") in-process
 *   calls.calls.length; // what was called, with which arguments
 * });
 * ```
 *
 * @module
 */

import { isDeepStrictEqual } from "node:util";
import { type RecordedCall, registry } from "../core/_registry.ts";
import type { PrivContext } from "../contexts/priv_context.ts";

export type { RecordedCall };

/**
 * A state change that {@linkcode Restorable.restore} (or `using`) undoes.
 *
 * @example
 * ```ts
 * import { inProcess, type Restorable } from "@privsep/privsep/testing";
 *
 * const handle: Restorable = inProcess();
 * try {
 *   // entrypoints called here run in-process
 * } finally {
 *   handle.restore(); // the same as leaving a `using` block
 * }
 * handle.restore(); // again: does nothing
 * ```
 */
export interface Restorable extends Disposable {
  /** Undoes the change; calling it again does nothing. */
  restore(): void;
}

function restorable(undo: () => void): Restorable {
  let done = false;
  const restore = () => {
    if (!done) {
      done = true;
      undo();
    }
  };
  return { restore, [Symbol.dispose]: restore };
}

/**
 * Runs entrypoints in this process (oslo's `PrivsepFixture` /
 * `set_client_mode(False)`), through the msgpack codec, with schemas,
 * timeouts and `callSignal()`, but without a daemon or any privilege.
 *
 * @example
 * ```ts
 * import { inProcess } from "@privsep/privsep/testing";
 * {
 *   using _ = inProcess();
 *   // entrypoints called here run in-process
 * }
 * // and here through the daemon again
 * ```
 */
export function inProcess(): Restorable {
  const reg = registry();
  if (reg.mode === "daemon") {
    throw new Error("inProcess() cannot be used inside the daemon");
  }
  const previous = reg.mode;
  reg.mode = "in-process";
  return restorable(() => {
    reg.mode = previous;
  });
}

/**
 * Starting a real daemon is an error in this test. Thrown by a privileged
 * call (or `ctx.start()`) made while {@linkcode forbidDaemon} is in effect.
 *
 * @example
 * ```ts
 * import { PrivsepDaemonForbidden } from "@privsep/privsep/testing";
 * new PrivsepDaemonForbidden("x", { context: "c", entrypoint: "e" }).name; // "PrivsepDaemonForbidden"
 * ```
 */
export class PrivsepDaemonForbidden extends Error {
  /** Always `"PrivsepDaemonForbidden"`. */
  override name = "PrivsepDaemonForbidden";
  /** The context whose daemon would have started. */
  readonly context: string;
  /** The entrypoint that was called, when one was. */
  readonly entrypoint?: string;
  /** Creates the error. */
  constructor(
    message: string,
    options: { context: string; entrypoint?: string },
  ) {
    super(message);
    this.context = options.context;
    this.entrypoint = options.entrypoint;
  }
}

/**
 * Makes any attempt to start a real daemon fail at once with
 * {@linkcode PrivsepDaemonForbidden}, naming the entrypoint and `label`
 * (the test's name), instead of a sudo failure somewhere later (nova's
 * `PrivsepNoHelperFixture`). Daemons already running are not affected.
 *
 * @example
 * ```ts
 * import { forbidDaemon } from "@privsep/privsep/testing";
 * Deno.test("pure logic never touches privsep", () => {
 *   using _ = forbidDaemon("pure logic never touches privsep");
 *   // … a privileged call here throws PrivsepDaemonForbidden
 * });
 * ```
 */
export function forbidDaemon(label?: string): Restorable {
  const reg = registry();
  const previous = reg.forbidden;
  reg.forbidden = (context, entrypoint) =>
    new PrivsepDaemonForbidden(
      `${
        entrypoint ? `privileged call ${entrypoint}` : "starting the daemon"
      } of ${context} would start a real privsep daemon${
        label ? ` in "${label}"` : ""
      }, which forbidDaemon() forbids; use inProcess() or unprivilegedDaemon() in this test`,
      { context, entrypoint },
    );
  return restorable(() => {
    reg.forbidden = previous;
  });
}

/**
 * A handle that stops the daemons it started when disposed.
 *
 * @example
 * ```ts
 * import { type UnprivilegedDaemons, unprivilegedDaemon } from "@privsep/privsep/testing";
 *
 * const daemons: UnprivilegedDaemons = await unprivilegedDaemon();
 * try {
 *   // privileged calls here start real daemons as this user, without capabilities
 * } finally {
 *   await daemons.restore(); // stops them; the same as leaving `await using`
 * }
 * ```
 */
export interface UnprivilegedDaemons extends AsyncDisposable {
  /** Stops the daemons started meanwhile and restores the start method. */
  restore(): Promise<void>;
}

/**
 * Daemons start as the current user, without sudo and without any
 * capability, but with the real channel, codec, daemon and Deno permissions
 * (oslo's `UnprivilegedPrivsepFixture`): for tests that want the wire without
 * root. Daemons already running are stopped first, and again on restore.
 *
 * @example
 * ```ts
 * import { unprivilegedDaemon } from "@privsep/privsep/testing";
 * Deno.test("round trip through a real daemon", async () => {
 *   await using _ = await unprivilegedDaemon();
 *   // await ops.echo("hi") runs in a capability-less daemon of this user
 * });
 * ```
 */
export async function unprivilegedDaemon(): Promise<UnprivilegedDaemons> {
  const reg = registry();
  const contexts = () => [...reg.contexts.values()] as PrivContext[];
  await Promise.all(contexts().map((c) => c.stop()));
  const previous = reg.unprivileged;
  reg.unprivileged = true;
  let done = false;
  const restore = async () => {
    if (done) return;
    done = true;
    await Promise.all(contexts().map((c) => c.stop()));
    reg.unprivileged = previous;
  };
  return { restore, [Symbol.asyncDispose]: restore };
}

/**
 * What {@linkcode recordCalls} collects.
 *
 * @example
 * ```ts
 * import { PrivContext } from "@privsep/privsep";
 * import { type CallRecorder, inProcess, recordCalls } from "@privsep/privsep/testing";
 * import assert from "node:assert/strict";
 *
 * const net = new PrivContext({
 *   module: "file:///virtual/call-recorder/privsep/mod.ts", // import.meta in real code
 *   name: "net",
 *   capabilities: ["CAP_NET_ADMIN"],
 * });
 * const linkUp = net.entrypoint(
 *   "file:///virtual/call-recorder/privsep/links.ts",
 *   function linkUp(device: string): void {
 *     // a stand-in for `ip link set <device> up`
 *   },
 * );
 * const linkDown = net.entrypoint(
 *   "file:///virtual/call-recorder/privsep/links.ts",
 *   function linkDown(device: string): void {},
 * );
 *
 * using _ = inProcess();
 * using recorder: CallRecorder = recordCalls();
 * await linkUp("eth0");
 * await linkUp("eth1");
 * assert.equal(recorder.callsOf(linkUp).length, 2);
 * assert(recorder.calledWith(linkUp, "eth1"));
 * assert(!recorder.calledWith(linkDown, "eth1"));
 * recorder.assertCalled(linkUp, "eth0");
 * recorder.clear();
 * assert.deepEqual(recorder.calls, []);
 * ```
 */
export interface CallRecorder extends Restorable {
  /** Every entrypoint call made since recording started, in order. */
  readonly calls: RecordedCall[];
  /** The calls of one entrypoint (the function the service calls). */
  callsOf(fn: (...args: never[]) => unknown): RecordedCall[];
  /** Whether `fn` was called with exactly `args` (deep equality). */
  calledWith<A extends unknown[]>(
    fn: (...args: A) => unknown,
    ...args: A
  ): boolean;
  /** Throws an `Error` listing the calls made unless `fn` was called with `args`. */
  assertCalled<A extends unknown[]>(
    fn: (...args: A) => unknown,
    ...args: A
  ): void;
  /** Forgets the calls recorded so far. */
  clear(): void;
}

/**
 * Records which entrypoints the code under test calls, with which arguments,
 * in any mode (daemon, in-process, unprivileged).
 *
 * @example
 * ```ts
 * import { PrivContext } from "@privsep/privsep";
 * import { inProcess, recordCalls } from "@privsep/privsep/testing";
 *
 * // app/privsep/motd.ts (and its context)
 * const sysAdmin = new PrivContext({
 *   module: "file:///virtual/record-calls/privsep/mod.ts", // import.meta in real code
 *   name: "sysAdmin",
 *   capabilities: ["CAP_DAC_OVERRIDE"],
 * });
 * const motd = {
 *   updateMotd: sysAdmin.entrypoint(
 *     "file:///virtual/record-calls/privsep/motd.ts",
 *     function updateMotd(message: string): void {
 *       // a stand-in for Deno.writeTextFile("/etc/motd", message)
 *     },
 *   ),
 * };
 *
 * using _ = inProcess();
 * using calls = recordCalls();
 * await motd.updateMotd("idle"); // in a test: the service code that calls it
 * calls.assertCalled(motd.updateMotd, "idle");
 * ```
 */
export function recordCalls(): CallRecorder {
  const reg = registry();
  const calls: RecordedCall[] = [];
  const record = (call: RecordedCall) => {
    calls.push({ ...call, args: [...call.args] });
  };
  reg.recorders.add(record);
  const identify = (fn: (...args: never[]) => unknown) => {
    const ctx = reg.owners.get(fn);
    if (!ctx) {
      throw new TypeError(
        `${fn.name || "this function"} is not a privsep entrypoint`,
      );
    }
    return { context: ctx.id, name: fn.name };
  };
  const callsOf = (fn: (...args: never[]) => unknown) => {
    const { context, name } = identify(fn);
    return calls.filter((c) => c.context === context && c.name === name);
  };
  const calledWith = <A extends unknown[]>(
    fn: (...args: A) => unknown,
    ...args: A
  ) =>
    callsOf(fn as (...args: never[]) => unknown).some((c) =>
      isDeepStrictEqual(c.args, args)
    );
  const handle = restorable(() => reg.recorders.delete(record));
  return {
    ...handle,
    calls,
    callsOf,
    calledWith,
    assertCalled<A extends unknown[]>(
      fn: (...args: A) => unknown,
      ...args: A
    ): void {
      if (!calledWith(fn, ...args)) {
        throw new Error(
          `expected ${fn.name}(${
            args.map((a) => JSON.stringify(a)).join(", ")
          }) to have been called; calls made: ${
            calls.map((c) =>
              `${c.name}(${c.args.map((a) => JSON.stringify(a)).join(", ")})`
            ).join(", ") || "none"
          }`,
        );
      }
    },
    clear(): void {
      calls.length = 0;
    },
  };
}
