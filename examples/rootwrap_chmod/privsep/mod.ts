// The context of the narrow chmod functions: a dedicated non-root user with
// CAP_FOWNER only, which lets it change the mode of files it does not own
// (root's), and nothing else: it cannot read or write their contents, and it
// can reach only the directories whose group lets it in (see setup.ts).
import { caps, PrivContext } from "../../../mod.ts";

/** The demo's root directory, shared with the other examples. */
export const DEMO_DIR = "/var/lib/privsep-demo";
/** Log files that makeLogsReadable() makes 0644. */
export const LOGS_DIR = `${DEMO_DIR}/logs`;
/** Secret files that lockSecret() makes 0600. */
export const SECRETS_DIR = `${DEMO_DIR}/secrets`;
/** The only secrets lockSecret() accepts, by file name. */
export const SECRET_NAMES: readonly string[] = Object.freeze([
  "db_password",
  "api_token",
  "tls_key.pem",
]);
/** The daemon's user (and primary group), created by setup.ts. */
export const DAEMON_USER = "privsep-chmod";

/** Context for changing the modes of the demo's log and secret files. */
export const fownerCtx = new PrivContext({
  module: import.meta,
  name: "fownerCtx",
  cfgSection: "rootwrap_chmod",
  user: DAEMON_USER,
  capabilities: [caps.CAP_FOWNER],
  // Deno needs write permission for chmod and read permission for lstat and
  // readDir; nothing outside these two directories.
  permissions: {
    read: [LOGS_DIR, SECRETS_DIR],
    write: [LOGS_DIR, SECRETS_DIR],
  },
});
