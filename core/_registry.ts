// Process-wide state shared by every copy of privsep loaded in one process
// (a module loaded twice under two URLs still sees one registry).

import type { EntrypointOptions } from "./schema.ts";
import type { PrivContextOptions } from "./settings.ts";

/** How entrypoints run in this process. */
export type Mode = "client" | "in-process" | "daemon";

/** One registered entrypoint. */
export interface EntrypointRecord {
  /** `path#function`, relative to the context's prefix. */
  key: string;
  /** The privileged function itself. */
  fn: (...args: unknown[]) => unknown;
  /** Per-entrypoint timeout override, in ms. */
  timeoutMs?: number;
  /** Schemas and audit options. */
  options?: EntrypointOptions;
}

/**
 * What the registry knows of a context (structural, so copies agree): all
 * that the daemon needs to find a context, load its modules, resolve its
 * settings and serve its entrypoints, without the client's `PrivContext`.
 */
export interface RegisteredContext {
  /** `module#name`. */
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
}

/**
 * One call recorded by the testing kit's `recordCalls()`.
 *
 * @example
 * ```ts
 * import { PrivContext } from "@privsep/privsep";
 * import { inProcess, type RecordedCall, recordCalls } from "@privsep/privsep/testing";
 * import assert from "node:assert/strict";
 *
 * const ops = new PrivContext({
 *   module: "file:///virtual/recorded-call/privsep/mod.ts", // import.meta in real code
 *   name: "ops",
 *   capabilities: [],
 * });
 * const echo = ops.entrypoint(
 *   "file:///virtual/recorded-call/privsep/echo.ts",
 *   function echo(text: string): string {
 *     return text;
 *   },
 * );
 *
 * using _inProcess = inProcess();
 * using recorder = recordCalls();
 * await echo("hi");
 * const call: RecordedCall = recorder.calls[0];
 * assert.deepEqual(call, {
 *   context: "file:///virtual/recorded-call/privsep/mod.ts#ops",
 *   entrypoint: "echo.ts#echo",
 *   name: "echo",
 *   args: ["hi"],
 * });
 * ```
 */
export interface RecordedCall {
  /** The context, as `module#export`. */
  context: string;
  /** The entrypoint, as `path#function`. */
  entrypoint: string;
  /** The function's name. */
  name: string;
  /** The arguments, as given. */
  args: unknown[];
}

interface Registry {
  mode: Mode;
  /** Testing kit: called with every entrypoint call made in this process. */
  recorders: Set<(call: RecordedCall) => void>;
  /** Testing kit: when set, starting a daemon throws what this returns. */
  forbidden?: (context: string, entrypoint: string | undefined) => Error;
  /** Testing kit: daemons start without sudo and without capabilities. */
  unprivileged: boolean;
  contexts: Map<string, RegisteredContext>;
  entrypoints: WeakMap<RegisteredContext, Map<string, EntrypointRecord>>;
  owners: WeakMap<object, RegisteredContext>;
}

const KEY = Symbol.for("@privsep/privsep/registry");

/** The registry of this process. */
export function registry(): Registry {
  const g = globalThis as unknown as Record<symbol, Registry | undefined>;
  return g[KEY] ??= {
    mode: "client",
    recorders: new Set(),
    unprivileged: false,
    contexts: new Map(),
    entrypoints: new WeakMap(),
    owners: new WeakMap(),
  };
}

/** The context registered as `id` (`module#name`), if its module was loaded. */
export function findContext(id: string): RegisteredContext | undefined {
  return registry().contexts.get(id);
}

/** Marks this process as the daemon's serving stage: entrypoints run here. */
export function setDaemonMode(): void {
  registry().mode = "daemon";
}

/** The entrypoints of `ctx` (created on first use). */
export function entrypointsOf(
  ctx: RegisteredContext,
): Map<string, EntrypointRecord> {
  const reg = registry();
  let map = reg.entrypoints.get(ctx);
  if (!map) reg.entrypoints.set(ctx, map = new Map());
  return map;
}
