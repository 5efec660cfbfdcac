// A context that may bind a port below 1024 on 127.0.0.1 and do nothing else:
// user "nobody", CAP_NET_BIND_SERVICE alone, and Deno's net permission
// limited to the allowed ports on that address.
import { caps, PrivContext } from "../../../mod.ts";

/** The only address the daemon listens on. */
export const HOSTNAME = "127.0.0.1";
/** The only ports serveStatus() accepts: privileged, and rarely in use. */
export const STATUS_PORTS: readonly number[] = Object.freeze([81, 444]);

/** Context for serving the status page on a privileged port. */
export const bindCtx = new PrivContext({
  module: import.meta,
  name: "bindCtx",
  cfgSection: "port_below_1024",
  user: "nobody",
  capabilities: [caps.CAP_NET_BIND_SERVICE],
  permissions: { net: STATUS_PORTS.map((p) => `${HOSTNAME}:${p}`) },
  // One long-running call per port, at most.
  concurrency: STATUS_PORTS.length,
});
