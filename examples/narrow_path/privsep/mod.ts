// A context that may write files in one directory, and nothing else.
import { caps, PrivContext } from "../../../mod.ts";

/** The only directory the daemon writes. */
export const CONF_DIR = "/var/lib/privsep-demo/conf.d";

/** Context for writing the application's drop-in config files. */
export const confCtx = new PrivContext({
  module: import.meta,
  name: "confCtx",
  cfgSection: "narrow_path",
  capabilities: [caps.CAP_DAC_OVERRIDE],
  permissions: { write: [CONF_DIR] },
});
