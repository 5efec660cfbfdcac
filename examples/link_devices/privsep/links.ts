// get_link_devices from the seed, with entrypointWithTimeout: plain,
// serialisable data out, a recognisable error for a missing namespace.
import { runCommand } from "../../../mod.ts";
import { defaultCtx, IP } from "./mod.ts";

/** One network device, as plain data. */
export interface LinkDevice {
  /** Interface index. */
  index: number;
  /** Interface name. */
  name: string;
  /** Operational state, e.g. "UP", "DOWN", "UNKNOWN". */
  state: string;
  /** MTU in bytes. */
  mtu: number;
  /** Link-layer address. */
  address?: string;
  /** Interface flags. */
  flags: string[];
}

/**
 * A namespace name, starting with a letter or digit: never `.` or `..` (`ip
 * -n` opens /run/netns/<name>), nor `-` (an option of ip's).
 */
const NAMESPACE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/**
 * Lists the link devices of network namespace `namespace`, or of the daemon's
 * own namespace for `null`. A name that is not a plain namespace name
 * (letters, digits, `_`, `.` and `-`, starting with a letter or digit; at most
 * 64) throws a TypeError; a missing namespace throws an error named
 * `NetworkNamespaceNotFound`.
 */
export const getLinkDevices = defaultCtx.entrypointWithTimeout(5_000)(
  import.meta,
  async function getLinkDevices(
    namespace: string | null,
  ): Promise<LinkDevice[]> {
    if (namespace !== null && !NAMESPACE.test(namespace)) {
      throw new TypeError(`not a network namespace name: "${namespace}"`);
    }
    const args = namespace === null
      ? ["-j", "link", "show"]
      : ["-j", "-n", namespace, "link", "show"];
    const { success, stdout, stderr } = await runCommand(IP, args);
    const text = new TextDecoder().decode(stderr);
    if (!success) {
      if (/Cannot open network namespace/.test(text)) {
        throw Object.assign(
          new Error(`network namespace "${namespace}" not found`),
          {
            name: "NetworkNamespaceNotFound",
            code: "ENOENT",
            data: { namespace },
          },
        );
      }
      throw new Error(`ip failed: ${text.trim()}`);
    }
    const links = JSON.parse(new TextDecoder().decode(stdout)) as Record<
      string,
      unknown
    >[];
    return links.map((l) => ({
      index: l.ifindex as number,
      name: l.ifname as string,
      state: l.operstate as string,
      mtu: l.mtu as number,
      address: l.address as string | undefined,
      flags: (l.flags as string[]) ?? [],
    }));
  },
);
