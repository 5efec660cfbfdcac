// The example application's privsep package: its contexts live here and its
// privileged functions below this directory (the context's prefix).
import { caps, PrivContext } from "../../../mod.ts";

/** The seed's sys_admin_pctxt: the rights a sudo-using service had. */
export const sysAdmin = new PrivContext({
  module: import.meta,
  name: "sysAdmin",
  cfgSection: "motd_sys_admin",
  capabilities: [
    caps.CAP_CHOWN,
    caps.CAP_DAC_OVERRIDE,
    caps.CAP_DAC_READ_SEARCH,
    caps.CAP_FOWNER,
    caps.CAP_NET_ADMIN,
    caps.CAP_SYS_ADMIN,
  ],
  // The daemon may write the message file and nothing else.
  permissions: { write: ["/var/lib/privsep-demo/motd"] },
});
