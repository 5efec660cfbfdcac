// The benchmark's context. Declared with no capabilities and the nobody user;
// `deno task bench` gives it CAP_CHOWN and CAP_DAC_OVERRIDE, its user and the
// Deno write permission on the chown target through the `privsep_bench`
// section of a generated TOML file, like a deployment would.
import { PrivContext } from "../../mod.ts";

/** Context for `deno task bench`. */
export const benchCtx = new PrivContext({
  module: import.meta,
  name: "benchCtx",
  cfgSection: "privsep_bench",
  capabilities: [],
  user: "nobody",
  concurrency: 64,
});

/** Returns its argument. */
export const echo = benchCtx.entrypoint(
  import.meta,
  function echo<T>(value: T): T {
    return value;
  },
);

/**
 * Changes the owner of one file: the narrow operation of the benchmark.
 * Synchronous, like oslo.privsep's `os.chown`: a syscall of a few
 * microseconds costs more through Deno's thread pool (async `Deno.chown`)
 * than it takes.
 */
export const chown = benchCtx.entrypoint(
  import.meta,
  function chown(path: string, uid: number, gid: number): void {
    Deno.chownSync(path, uid, gid);
  },
);
