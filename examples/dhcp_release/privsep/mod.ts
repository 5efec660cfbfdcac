// The seed's dhcp_release_cmd context: a 5 s timeout, CAP_SYS_ADMIN and
// CAP_NET_ADMIN, and the one program it may run.
import { caps, PrivContext } from "../../../mod.ts";

/** Where Debian's dnsmasq-utils installs dhcp_release. */
export const DHCP_RELEASE = "/usr/bin/dhcp_release";

/** Context for releasing DHCP leases. */
export const dhcpReleaseCmd = new PrivContext({
  module: import.meta,
  name: "dhcpReleaseCmd",
  cfgSection: "privsep_dhcp_release",
  capabilities: [caps.CAP_SYS_ADMIN, caps.CAP_NET_ADMIN],
  timeout: 5_000, // milliseconds: every call rejects with PrivsepTimeout after 5 s
  permissions: { run: [DHCP_RELEASE] },
});
