// The narrow version: the path is checked by a schema in the daemon, and the
// context's Deno permissions allow writes in that one directory only. The
// broad version it replaces, writeFile(path, text), would let the service
// overwrite any file on the machine.
import { CONF_DIR, confCtx } from "./mod.ts";
import { confFileIn } from "./schemas.ts";

/** Writes one drop-in file in the application's conf.d. */
export const writeConfFile = confCtx.entrypoint(
  import.meta,
  async function writeConfFile(path: string, text: string): Promise<void> {
    await Deno.writeTextFile(path, text, { mode: 0o644 });
  },
  { args: [confFileIn(CONF_DIR)] },
);
