// Privileged functions touching the MOTD. Narrow: they can only overwrite
// one file, never "any file" (see the README, "The seed example").
import { sysAdmin } from "./mod.ts";

/** Where the demo writes: a root-only directory of its own. */
export const MOTD_PATH = "/var/lib/privsep-demo/motd";

/** Overwrites the message of the day. */
export const updateMotd = sysAdmin.entrypoint(
  import.meta,
  async function updateMotd(message: string): Promise<void> {
    await Deno.writeTextFile(MOTD_PATH, message);
  },
);
