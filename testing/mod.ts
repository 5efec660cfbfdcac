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
import { type RecordedCall, registry } from "../contexts/_registry.ts";
import type { PrivContext } from "../contexts/priv_context.ts";

export type { RecordedCall };

/** A state change that {@linkcode Restorable.restore} (or `using`) undoes. */
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

/** A handle that stops the daemons it started when disposed. */
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
 * ```ts ignore
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

/** What {@linkcode recordCalls} collects. */
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
 * ```ts ignore
 * import { inProcess, recordCalls } from "@privsep/privsep/testing";
 * import * as motd from "../app/privsep/motd.ts";
 * using _ = inProcess();
 * using calls = recordCalls();
 * await motd.updateMotd("idle");
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
