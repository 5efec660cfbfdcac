// The web service's one privileged need: appending to a root-only log. The
// daemon runs as "nobody" with CAP_DAC_OVERRIDE (to open the 0600 root file)
// and may write that one file; it runs up to 4 calls at once, and the rest
// of a burst waits in its queue.
import { caps, PrivContext } from "../../../mod.ts";

/** The demo's root-only directory, shared with the other examples. */
export const DEMO_DIR = "/var/lib/privsep-demo";
/** The root-only (0600) log the daemon appends to. */
export const VISITS_LOG = `${DEMO_DIR}/visits.log`;

/** Context for recording visits. */
export const visitsCtx = new PrivContext({
  module: import.meta,
  name: "visitsCtx",
  cfgSection: "web_service_visits",
  user: "nobody",
  capabilities: [caps.CAP_DAC_OVERRIDE],
  permissions: { write: [VISITS_LOG] },
  concurrency: 4,
  timeout: 5_000,
});
