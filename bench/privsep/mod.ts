// The benchmark's context: no capabilities, the nobody user.
import { PrivContext } from "../../mod.ts";

/** Context for `deno task bench`. */
export const benchCtx = new PrivContext({
  module: import.meta,
  name: "benchCtx",
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
