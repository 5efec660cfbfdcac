// Root's one-time set-up (what a package's postinst would do); not part of
// privsep/, so the daemon never loads it.
import { DEMO_DIR, VISITS_LOG } from "./privsep/mod.ts";

/** Creates the root-only visits log (0600) in the demo's 0700 directory. */
export async function prepareVisitsLog(): Promise<void> {
  if (Deno.uid() !== 0) throw new Error("prepareVisitsLog() must run as root");
  await Deno.mkdir(DEMO_DIR, { recursive: true, mode: 0o700 });
  await Deno.writeTextFile(VISITS_LOG, "", { append: true, mode: 0o600 });
  await Deno.chown(VISITS_LOG, 0, 0);
  await Deno.chmod(VISITS_LOG, 0o600);
}
