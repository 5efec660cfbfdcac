// privsep sudoers: the sudoers line per context, from the same code that
// builds the launcher the service runs, so the two cannot drift apart.
import { contextCommandArgs, loadContexts } from "./_load.ts";

const USAGE =
  `usage: privsep sudoers --user=<user|%group> [--json] [--config-file=<abs path>]… <module.ts#context>…

Prints, per context, the sudoers line that lets <user> run the context's
launcher as root with no arguments (""), in / (CWD=/), pinned by the
launcher's SHA-256, and nothing else. The launcher must be installed too:
"privsep install" writes both (use this command only to feed a
configuration-management tool). It refuses when root would run files that a
non-root user can modify.`;

/** Runs `privsep sudoers`; returns the exit code. */
export async function sudoersMain(args: string[]): Promise<number> {
  const parsed = contextCommandArgs(args, USAGE);
  if (typeof parsed === "number") return parsed;
  if (!parsed.user) {
    console.error(USAGE);
    return 2;
  }
  const out: { context: string; launcher: string; rule: string }[] = [];
  for (const ctx of await loadContexts(parsed.specs)) {
    try {
      out.push({
        context: ctx.id,
        launcher: ctx.launcher(),
        rule: ctx.sudoersRule(parsed.user),
      });
    } catch (error) {
      console.error(`privsep sudoers: ${(error as Error).message}`);
      return 1;
    }
  }
  if (parsed.json) console.log(JSON.stringify(out, null, 2));
  else {
    console.log(
      out.map((o) => `# privsep context ${o.context}\n${o.rule}`).join("\n"),
    );
  }
  return 0;
}

if (import.meta.main) Deno.exit(await sudoersMain(Deno.args));
