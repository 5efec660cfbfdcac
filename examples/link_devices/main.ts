// `deno task example:link_devices [namespace]`: the seed's caller side, with
// its error handling shape: FailedToDropPrivileges and PrivsepTimeout are
// re-thrown, a missing namespace becomes the service's own error.
import {
  FailedToDropPrivileges,
  PrivsepTimeout,
  RemoteError,
} from "../../mod.ts";
import * as links from "./privsep/links.ts";
import { defaultCtx } from "./privsep/mod.ts";

/** The service's own error for a namespace that does not exist. */
export class NetworkNamespaceNotFound extends Error {
  override name = "NetworkNamespaceNotFound";
  constructor(readonly netnsName: string) {
    super(`network namespace ${netnsName} not found`);
  }
}

/** The service's view: link devices, or its own errors. */
export async function linkDevices(
  namespace: string | null,
): Promise<links.LinkDevice[]> {
  try {
    return await links.getLinkDevices(namespace);
  } catch (error) {
    if (
      error instanceof FailedToDropPrivileges || error instanceof PrivsepTimeout
    ) throw error;
    if (
      error instanceof RemoteError &&
      error.remoteName === "NetworkNamespaceNotFound"
    ) {
      throw new NetworkNamespaceNotFound(namespace ?? "");
    }
    throw error;
  }
}

if (import.meta.main) {
  try {
    const namespace = Deno.args[0] ?? null;
    for (const l of await linkDevices(namespace)) {
      console.log(
        `${l.index}: ${l.name} ${l.state} mtu ${l.mtu} ${l.address ?? ""}`,
      );
    }
  } finally {
    await defaultCtx.stop();
  }
}
