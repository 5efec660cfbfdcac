// A context whose functions wait: for a file to appear, for a web service to
// answer. Each call has a short timeout, and its functions stop when it passes.
import { PrivContext } from "../../../mod.ts";

/** The directory the daemon watches. */
export const READY_DIR = "/var/lib/privsep-demo/ready";

/** Context for waiting on local state; it keeps no capability. */
export const waitCtx = new PrivContext({
  module: import.meta,
  name: "waitCtx",
  cfgSection: "cancellable",
  capabilities: [],
  timeout: 2_000, // every call rejects with PrivsepTimeout after 2 s…
  cancelGraceMs: 500, // …and must have stopped 0.5 s later, or is "stuck"
  permissions: { read: [READY_DIR], net: ["127.0.0.1"] },
});
