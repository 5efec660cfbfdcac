import assert from "node:assert/strict";
import { RemoteError } from "../../mod.ts";
import { DHCP_RELEASE, dhcpReleaseCmd } from "./privsep/mod.ts";
import * as dhcp from "./privsep/dhcp.ts";

Deno.test(
  "examples/dhcp_release: releaseLease() runs dhcp_release in the daemon",
  async () => {
    if (Deno.uid() !== 0) {
      throw new Error(
        "this example's test runs the real daemon: run it as root",
      );
    }
    try {
      await Deno.stat(DHCP_RELEASE);
    } catch {
      throw new Error(
        `${DHCP_RELEASE} is missing: apt-get install -y dnsmasq-utils (.ci/run does this)`,
      );
    }
    try {
      await dhcp.releaseLease("lo", "127.0.0.2", "02:00:00:00:00:01");
      // Not a device name, nor an option of dhcp_release's (a leading "-").
      for (const device of ["lo; reboot", "-h", "--help", "-", ".", ""]) {
        await assert.rejects(
          dhcp.releaseLease(device, "127.0.0.2", "02:00:00:00:00:01"),
          (e: unknown) => {
            assert.ok(e instanceof RemoteError, String(e));
            assert.equal(e.remoteName, "TypeError", device);
            return true;
          },
        );
      }
      assert.equal(dhcpReleaseCmd.settings().timeoutMs, 5_000);
    } finally {
      await dhcpReleaseCmd.stop();
    }
  },
);
