/**
 * Per-call options without extra parameters: on the caller's side
 * {@linkcode callWith} gives privileged calls a signal or a timeout; on the
 * daemon's side {@linkcode callSignal} tells a privileged function that its
 * call was cancelled (it timed out, or the caller aborted it).
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";

/** Options for the privileged calls made inside {@linkcode callWith}. */
export interface CallOptions {
  /** Aborting it rejects the call with the signal's reason and cancels it in the daemon. */
  signal?: AbortSignal;
  /** Milliseconds before `PrivsepTimeout`; overrides the entrypoint's and the context's. */
  timeout?: number;
}

interface Scope {
  /** Caller side: options for calls started in this scope. */
  options?: CallOptions;
  /** Daemon side: the running call's signal. */
  signal?: AbortSignal;
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
 * ```ts ignore
 * import { callWith } from "@privsep/privsep";
 * import * as links from "./privsep/links.ts";
 * const controller = new AbortController();
 * const devices = await callWith({ signal: controller.signal, timeout: 2_000 }, () =>
 *   links.getLinkDevices("ns1"));
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
  return store.run({ ...store.getStore(), options }, fn);
}

/**
 * The signal of the privileged call running now. It aborts when the call is
 * cancelled: the caller's timeout passed or the caller aborted it. Long or
 * blocking work should pass it on (`fetch`, `runCommand`, timers) or check it;
 * a function that ignores it is reported and, by default, its daemon is
 * recycled. Outside a privileged call it returns a signal that never aborts.
 *
 * @example
 * ```ts ignore
 * import { callSignal } from "@privsep/privsep";
 * export const waitForLink = net.entrypoint(import.meta, async function waitForLink(name: string) {
 *   const signal = callSignal();
 *   while (!signal.aborted && !(await linkUp(name))) await delay(100, { signal });
 * });
 * ```
 */
export function callSignal(): AbortSignal {
  return store.getStore()?.signal ?? NEVER;
}

/** @internal The caller-side options in effect. */
export function currentCallOptions(): CallOptions | undefined {
  return store.getStore()?.options;
}

/** @internal Runs a privileged function with its call's signal. */
export function runWithSignal<T>(signal: AbortSignal, fn: () => T): T {
  return store.run({ signal }, fn);
}
