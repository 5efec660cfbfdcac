/**
 * Cancellable building blocks for privileged functions. A call's timeout (or
 * its caller's abort) cancels the call in the daemon by aborting
 * {@linkcode callSignal}; work that does not listen to that signal runs on
 * through the grace period and then gets its daemon recycled. These helpers
 * listen to it for you.
 *
 * For the APIs that take a signal, pass `callSignal()` yourself:
 *
 * ```ts ignore
 * const response = await fetch(url, { signal: callSignal() });
 * const text = await Deno.readTextFile(path, { signal: callSignal() });
 * await Deno.writeTextFile(path, text, { signal: callSignal() });
 * await readable.pipeTo(writable, { signal: callSignal() });
 * const { code } = await runCommand("/usr/sbin/ip", ["link"]); // cancelled for you
 * ```
 *
 * and in a loop of steps that take no signal, call
 * {@linkcode throwIfCancelled} between steps.
 *
 * @module
 */

import { callSignal } from "../core/call_scope.ts";

/** Options for {@linkcode sleep}. */
export interface SleepOptions {
  /**
   * Also reject when this signal aborts (the call's own signal always
   * applies).
   */
  signal?: AbortSignal;
}

/**
 * Resolves after `ms` milliseconds, or rejects with the abort reason as soon
 * as the running privileged call is cancelled (its {@linkcode callSignal}
 * aborts: the caller's timeout passed or the caller aborted it) or
 * `options.signal` aborts. The timer is cleared on abort, so nothing keeps
 * running after the call. Outside a privileged call only `options.signal`
 * can cut it short.
 *
 * Use it instead of `new Promise((r) => setTimeout(r, ms))`, which a timeout
 * cannot stop.
 *
 * @example A retry loop that stops when the call is cancelled
 * ```ts
 * import { callWith, PrivContext, PrivsepTimeout, sleep } from "@privsep/privsep";
 * import { inProcess } from "@privsep/privsep/testing";
 * import assert from "node:assert/strict";
 *
 * const net = new PrivContext({
 *   module: "file:///virtual/sleep/privsep/mod.ts", // import.meta in real code
 *   name: "net",
 *   capabilities: [],
 * });
 * let tries = 0;
 * const waitForLink = net.entrypoint(
 *   "file:///virtual/sleep/privsep/links.ts", // import.meta in real code
 *   async function waitForLink(name: string): Promise<string> {
 *     for (;;) {
 *       tries++; // a stand-in for "is the link up yet?"
 *       await sleep(20); // rejects when the call is cancelled
 *       if (name === "up0") return "up";
 *     }
 *   },
 * );
 *
 * using _ = inProcess(); // here; a service calls the daemon
 * assert.equal(await waitForLink("up0"), "up");
 * await assert.rejects(
 *   callWith({ timeout: 100 }, () => waitForLink("down0")),
 *   PrivsepTimeout,
 * );
 * const after = tries;
 * await new Promise((r) => setTimeout(r, 100));
 * assert.equal(tries, after, "the loop stopped with the call");
 * ```
 *
 * @param ms Milliseconds to wait, a finite number `>= 0`.
 * @param options Another signal to listen to.
 * @returns A promise that resolves after `ms` or rejects with the reason of
 * the signal that aborted first.
 */
export function sleep(ms: number, options: SleepOptions = {}): Promise<void> {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
    throw new RangeError(
      `sleep(ms) needs a finite number of milliseconds >= 0, got ${ms}`,
    );
  }
  const signal = options.signal === undefined
    ? callSignal()
    : AbortSignal.any([callSignal(), options.signal]);
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Throws the abort reason (an `AbortError` `DOMException` naming the call)
 * when the running privileged call was cancelled; does nothing otherwise, and
 * nothing outside a privileged call. Call it between the steps of work that
 * takes no signal, so that a timeout stops it at the next step.
 *
 * @example Stop a batch between items
 * ```ts
 * import { callWith, PrivContext, PrivsepTimeout, sleep, throwIfCancelled } from "@privsep/privsep";
 * import { inProcess } from "@privsep/privsep/testing";
 * import assert from "node:assert/strict";
 *
 * const files = new PrivContext({
 *   module: "file:///virtual/throw-if-cancelled/privsep/mod.ts", // import.meta in real code
 *   name: "files",
 *   capabilities: [],
 * });
 * const done: string[] = [];
 * const fixAll = files.entrypoint(
 *   "file:///virtual/throw-if-cancelled/privsep/fix.ts", // import.meta in real code
 *   async function fixAll(names: string[]): Promise<number> {
 *     for (const name of names) {
 *       throwIfCancelled(); // stop before the next item once cancelled
 *       await new Promise((r) => setTimeout(r, 30)); // a step that takes no signal
 *       done.push(name);
 *     }
 *     return names.length;
 *   },
 * );
 *
 * using _ = inProcess(); // here; a service calls the daemon
 * const names = Array.from({ length: 20 }, (_, i) => `f${i}`);
 * await assert.rejects(
 *   callWith({ timeout: 100 }, () => fixAll(names)),
 *   PrivsepTimeout,
 * );
 * await sleep(100);
 * assert.ok(done.length < names.length, `stopped after ${done.length} items`);
 * ```
 */
export function throwIfCancelled(): void {
  callSignal().throwIfAborted();
}
