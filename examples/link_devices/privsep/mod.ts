// The seed's neutron-style `privileged.default` context.
import { caps, PrivContext } from "../../../mod.ts";

/** `ip` from iproute2. */
export const IP = "/usr/sbin/ip";

/** Context for reading network state (entering namespaces needs CAP_SYS_ADMIN). */
export const defaultCtx = new PrivContext({
  module: import.meta,
  name: "defaultCtx",
  cfgSection: "privsep_default",
  capabilities: [caps.CAP_SYS_ADMIN, caps.CAP_NET_ADMIN],
  permissions: { run: [IP] },
});
