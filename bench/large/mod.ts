// The context of bench/large.ts: a large call, a large reply, and both.
import { PrivContext } from "../../mod.ts";

/** Context for bench/large.ts. */
export const largeCtx = new PrivContext({
  module: import.meta,
  name: "largeCtx",
  cfgSection: "privsep_large",
  capabilities: [],
  user: "nobody",
});

/** Returns its argument: a large call and a large reply. */
export const echo = largeCtx.entrypoint(
  import.meta,
  function echo(value: unknown): unknown {
    return value;
  },
);

/** Returns the length of its argument: a large call, a small reply. */
export const size = largeCtx.entrypoint(
  import.meta,
  function size(bytes: Uint8Array): number {
    return bytes.length;
  },
);

/** Returns `n` new bytes: a small call, a large reply. */
export const make = largeCtx.entrypoint(
  import.meta,
  function make(n: number): Uint8Array {
    return new Uint8Array(n).fill(2);
  },
);
