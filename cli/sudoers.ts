// privsep sudoers: the exact sudoers lines for contexts, from the same code
// that builds the command the service runs, so the two cannot drift apart.
import { ENV_PROGRAM } from "../contexts/command.ts";
import { contextCommandArgs, loadContexts } from "./_load.ts";

const USAGE =
  `usage: privsep sudoers --user=<user|%group> [--sha256] [--json] [--config-file=<abs path>]… <module.ts#context>…

Prints a Cmnd_Alias and a NOPASSWD rule per context that let <user> start
exactly that daemon as root, and nothing else (no wildcards). It refuses when
root would run files that a non-root user can modify. --sha256 pins the
digest of ${ENV_PROGRAM}, the program sudo runs (the deno binary is pinned by
path and must be root-owned, which the daemon checks). Install with
"visudo -f /etc/sudoers.d/<app>".`;

async function sha256(path: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    await Deno.readFile(path),
  );
  return Array.from(
    new Uint8Array(digest),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** Runs `privsep sudoers`; returns the exit code. */
export async function sudoersMain(args: string[]): Promise<number> {
  const parsed = contextCommandArgs(args, USAGE);
  if (typeof parsed === "number") return parsed;
  if (!parsed.user) {
    console.error(USAGE);
    return 2;
  }
  const digest = parsed.sha256 ? await sha256(ENV_PROGRAM) : undefined;
  const out: { context: string; argv: string[]; rule: string }[] = [];
  for (const ctx of await loadContexts(parsed.specs)) {
    try {
      const rule = ctx.sudoersRule(parsed.user, { sha256: digest });
      const argv = ctx.command();
      out.push({
        context: ctx.id,
        argv: argv.slice(argv.indexOf(ENV_PROGRAM)),
        rule,
      });
    } catch (error) {
      console.error(`privsep sudoers: ${(error as Error).message}`);
      return 1;
    }
  }
  if (parsed.json) console.log(JSON.stringify(out, null, 2));
  else {console.log(
      out.map((o) => `# privsep context ${o.context}\n${o.rule}`).join("\n"),
    );}
  return 0;
}

if (import.meta.main) Deno.exit(await sudoersMain(Deno.args));
