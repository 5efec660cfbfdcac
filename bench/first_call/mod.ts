// The context of bench/first_call.ts: no-op entrypoints that differ only in
// name and arguments, and two chown entrypoints with the same body, so that
// the first call of one entrypoint can be told apart from the first time the
// daemon runs a path (decoding a string argument, Deno.chownSync).
import { PrivContext } from "../../mod.ts";

/** Context for bench/first_call.ts. */
export const firstCallCtx = new PrivContext({
  module: import.meta,
  name: "firstCallCtx",
  cfgSection: "privsep_first_call",
  capabilities: [],
  user: "nobody",
});

/** Returns its argument. */
export const echo = firstCallCtx.entrypoint(
  import.meta,
  function echo<T>(value: T): T {
    return value;
  },
);

/** Does nothing, with the chown entrypoints' arguments. */
export const noopA = firstCallCtx.entrypoint(
  import.meta,
  function noopA(_path: string, _uid: number, _gid: number): void {},
);

/** Does nothing, with the chown entrypoints' arguments. */
export const noopB = firstCallCtx.entrypoint(
  import.meta,
  function noopB(_path: string, _uid: number, _gid: number): void {},
);

/** Changes the owner of one file. */
export const chownA = firstCallCtx.entrypoint(
  import.meta,
  function chownA(path: string, uid: number, gid: number): void {
    Deno.chownSync(path, uid, gid);
  },
);

/** The same as chownA, under another name. */
export const chownB = firstCallCtx.entrypoint(
  import.meta,
  function chownB(path: string, uid: number, gid: number): void {
    Deno.chownSync(path, uid, gid);
  },
);
