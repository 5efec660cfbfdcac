// A narrow function: it runs one fixed program with checked arguments, never
// "any command" (see docs/oslo_privsep.md, converting from rootwrap).
import { runCommand } from "../../../mod.ts";
import { DHCP_RELEASE, dhcpReleaseCmd } from "./mod.ts";

/**
 * A network device name (at most 15 characters), starting with a letter, a
 * digit or `_`: never `-` (an option of dhcp_release's), nor `.` or `..`.
 */
const DEVICE = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,14}$/;
const IPV4 = /^((25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(25[0-5]|2[0-4]\d|1?\d?\d)$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/**
 * Tells the local DHCP server that `ip` leased to `mac` on `device` is free.
 * A device name that is not plain (letters, digits, `_`, `.`, `:` and `-`,
 * starting with a letter, digit or `_`; at most 15), an `ip` that is not an
 * IPv4 address or a `mac` that is not a MAC address throws a TypeError.
 */
export const releaseLease = dhcpReleaseCmd.entrypoint(
  import.meta,
  async function releaseLease(
    device: string,
    ip: string,
    mac: string,
  ): Promise<void> {
    if (!DEVICE.test(device)) {
      throw new TypeError(`not a network device name: "${device}"`);
    }
    if (!IPV4.test(ip)) throw new TypeError(`not an IPv4 address: "${ip}"`);
    if (!MAC.test(mac)) throw new TypeError(`not a MAC address: "${mac}"`);
    // runCommand follows the call's cancellation: on timeout the child is killed.
    const { success, code, stderr } = await runCommand(DHCP_RELEASE, [
      device,
      ip,
      mac,
    ]);
    if (!success) {
      throw new Error(
        `dhcp_release exited with code ${code}: ${
          new TextDecoder().decode(stderr).trim()
        }`,
      );
    }
  },
);
