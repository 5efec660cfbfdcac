// Process-wide state shared by every copy of privsep loaded in one process
// (a module loaded twice under two URLs still sees one registry).

import type { EntrypointOptions } from "./schema.ts";

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

/** What the registry knows of a context (structural, so copies agree). */
export interface RegisteredContext {
  readonly id: string;
  readonly prefix: string;
}

/** One recorded call (testing kit). */
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

/** The entrypoints of `ctx` (created on first use). */
export function entrypointsOf(
  ctx: RegisteredContext,
): Map<string, EntrypointRecord> {
  const reg = registry();
  let map = reg.entrypoints.get(ctx);
  if (!map) reg.entrypoints.set(ctx, map = new Map());
  return map;
}
