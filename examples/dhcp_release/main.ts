// `deno task example:dhcp_release`: release a lease through the daemon.
import * as dhcp from "./privsep/dhcp.ts";
import { dhcpReleaseCmd } from "./privsep/mod.ts";

try {
  await dhcp.releaseLease("lo", "127.0.0.2", "02:00:00:00:00:01");
  console.log("released 127.0.0.2 on lo (dhcp_release ran in the daemon)");
} finally {
  await dhcpReleaseCmd.stop();
}
