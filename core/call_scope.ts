/**
 * Per-call options without extra parameters: on the caller's side
 * {@linkcode callWith} gives privileged calls a signal or a timeout; on the
 * daemon's side {@linkcode callSignal} tells a privileged function that its
 * call was cancelled (it timed out, or the caller aborted it).
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";

/**
 * Options for the privileged calls made inside {@linkcode callWith}.
 *
 * @example
 * ```ts
 * import { type CallOptions, callWith } from "@privsep/privsep";
 *
 * const request = new AbortController(); // e.g. aborted when the client goes away
 * const options: CallOptions = {
 *   signal: request.signal, // aborting it rejects and cancels the calls
 *   timeout: 2_000, // per call, in ms
 * };
 * callWith(options, () => {
 *   // privileged calls started here use `options`
 * });
 * ```
 */
export interface CallOptions {
  /** Aborting it rejects the call with the signal's reason and cancels it in the daemon. */
  signal?: AbortSignal;
  /** Milliseconds before `PrivsepTimeout`; overrides the entrypoint's and the context's. */
  timeout?: number;
}

interface Scope {
  /** Caller side: options for calls started in this scope. */
  readonly options?: CallOptions;
  /** Daemon side: the running call's signal. */
  readonly signal?: AbortSignal;
}

const KEY = Symbol.for("@privsep/privsep/call-scope");
const g = globalThis as unknown as Record<symbol, AsyncLocalStorage<Scope>>;
const store: AsyncLocalStorage<Scope> = g[KEY] ??= new AsyncLocalStorage<
  Scope
>();
const NEVER: AbortSignal = new AbortController().signal;

/**
 * Runs `fn`; every privileged call it starts (also in awaited code) uses
 * `options`.
 *
 * @example
 * ```ts
 * import { callWith, PrivContext } from "@privsep/privsep";
 * import { inProcess } from "@privsep/privsep/testing";
 * import assert from "node:assert/strict";
 *
 * // app/privsep/links.ts (and its context)
 * const net = new PrivContext({
 *   module: "file:///virtual/call-with/privsep/mod.ts", // import.meta in real code
 *   name: "net",
 *   capabilities: ["CAP_NET_ADMIN"],
 * });
 * const getLinkDevices = net.entrypoint(
 *   "file:///virtual/call-with/privsep/links.ts",
 *   function getLinkDevices(namespace: string): string[] {
 *     return [`${namespace}-eth0`]; // a stand-in for the real lookup
 *   },
 * );
 *
 * using _ = inProcess(); // here; a service calls the daemon
 * const controller = new AbortController();
 * const devices = await callWith(
 *   { signal: controller.signal, timeout: 2_000 },
 *   () => getLinkDevices("ns1"),
 * );
 * assert.deepEqual(devices, ["ns1-eth0"]);
 *
 * controller.abort(new Error("shutting down"));
 * await assert.rejects(
 *   callWith({ signal: controller.signal }, () => getLinkDevices("ns1")),
 *   /shutting down/,
 * );
 * ```
 */
export function callWith<T>(options: CallOptions, fn: () => T): T {
  if (
    options.timeout !== undefined &&
    (!Number.isSafeInteger(options.timeout) || options.timeout < 1)
  ) {
    throw new RangeError(
      `timeout must be a positive integer of milliseconds, got ${options.timeout}`,
    );
  }
  // Inside a privileged function the scope is its call's (a CallAbort,
  // core/_call_abort.ts, whose signal a spread would not copy): keep it.
  const signal = store.getStore()?.signal;
  return store.run(signal ? { options, signal } : { options }, fn);
}

/**
 * The signal of the privileged call running now. It aborts when the call is
 * cancelled: the caller's timeout passed or the caller aborted it. Long or
 * blocking work should pass it on (`fetch(url, { signal: callSignal() })`,
 * `Deno.readTextFile(path, { signal: callSignal() })`), wait with
 * `sleep()` instead of `setTimeout`, or check it between steps with
 * `throwIfCancelled()`; `runCommand` listens to it itself. A function
 * that ignores it is reported and, by default, its daemon is recycled.
 * Outside a privileged call it returns a signal that never aborts.
 *
 * @example
 * ```ts
 * import { callSignal, callWith, PrivContext, PrivsepTimeout } from "@privsep/privsep";
 * import { inProcess } from "@privsep/privsep/testing";
 * import assert from "node:assert/strict";
 *
 * assert.equal(callSignal().aborted, false); // outside a call: never aborts
 *
 * const net = new PrivContext({
 *   module: "file:///virtual/call-signal/privsep/mod.ts", // import.meta in real code
 *   name: "net",
 *   capabilities: ["CAP_NET_ADMIN"],
 * });
 * const watchLink = net.entrypoint(
 *   "file:///virtual/call-signal/privsep/links.ts",
 *   async function watchLink(name: string): Promise<string> {
 *     const signal = callSignal();
 *     // … watch `name` until the call is cancelled, then clean up
 *     await new Promise<void>((resolve) =>
 *       signal.addEventListener("abort", () => resolve(), { once: true })
 *     );
 *     return `stopped watching ${name}`;
 *   },
 * );
 *
 * using _ = inProcess(); // here; a service calls the daemon
 * await assert.rejects(
 *   callWith({ timeout: 50 }, () => watchLink("eth0")),
 *   PrivsepTimeout,
 * );
 * ```
 */
export function callSignal(): AbortSignal {
  return store.getStore()?.signal ?? NEVER;
}

/** @internal The caller-side options in effect. */
export function currentCallOptions(): CallOptions | undefined {
  return store.getStore()?.options;
}

/**
 * @internal Runs a privileged function with its call's signal: `call`'s
 * `signal`, read when the function asks for it (core/_call_abort.ts). `call`
 * is the scope itself: no object is made for it.
 */
export function runWithSignal<T>(
  call: { readonly signal: AbortSignal },
  fn: () => T,
): T {
  return store.run(call, fn);
}
