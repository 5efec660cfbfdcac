// The context of bench/tail.ts: one no-op entrypoint.
import { PrivContext } from "../../mod.ts";

/** Context for bench/tail.ts. */
export const tailCtx = new PrivContext({
  module: import.meta,
  name: "tailCtx",
  cfgSection: "privsep_tail",
  capabilities: [],
  user: "nobody",
});

/** Returns its argument. */
export const echo = tailCtx.entrypoint(
  import.meta,
  function echo(value: unknown): unknown {
    return value;
  },
);
