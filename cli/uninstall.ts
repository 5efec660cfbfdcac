// privsep uninstall: removes what privsep install wrote for some contexts,
// their launchers and their rules (the sudoers file with its last rule).
import { dirname } from "node:path";
import { untrustedReason } from "../core/trust.ts";
import { contextCommandArgs, loadContexts } from "./_load.ts";
import {
  appDir,
  checkSudoers,
  defaultSudoersFile,
  readOrUndefined,
  RULE_MARK,
  sudoersDirProblem,
  sudoersPathProblem,
  writeRootFile,
} from "./install.ts";

const USAGE =
  `usage: privsep uninstall [--dry-run] [--sudoers-file=<path>] [--config-file=<abs path>]… <module.ts[#context]>…

As root, removes what "privsep install" wrote for the contexts named: each
context's launcher, and its rule from the sudoers file (the default one of the
application, or --sudoers-file as given to install); the file goes with its
last rule. Rules of other contexts stay. The rest of the file is checked with
"visudo -cf" before it replaces the old one. Daemons that run keep running
until their service stops them; the next start fails (no rule). --dry-run
prints what it would remove and changes nothing.`;

/**
 * `text` without the rules of `ids`: each is the line `# privsep context
 * <id>` and the rule after it. Returns the text, how many rules are left,
 * and the launcher each removed rule named (context id -> path).
 */
export function withoutRules(
  text: string,
  ids: ReadonlySet<string>,
): {
  text: string;
  removed: number;
  left: number;
  launchers: Map<string, string>;
} {
  const lines = text.split("\n");
  const out: string[] = [];
  const launchers = new Map<string, string>();
  let removed = 0;
  let left = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith(RULE_MARK)) {
      const id = line.slice(RULE_MARK.length);
      if (ids.has(id)) {
        removed++;
        i++; // and its rule
        const path = / (\/\S+) ""$/.exec(lines[i] ?? "")?.[1];
        if (path) launchers.set(id, path);
        continue;
      }
      left++;
    }
    out.push(line);
  }
  return { text: out.join("\n"), removed, left, launchers };
}

/**
 * Why `path` is not a launcher that install wrote for context `id`, to be
 * removed by root, or `undefined`: its directory only root may change, and
 * the file a regular one that says it is that context's launcher.
 */
function launcherProblem(path: string, id: string): string | undefined {
  const dir = untrustedReason(dirname(path));
  if (dir) return dir;
  try {
    const info = Deno.lstatSync(path);
    if (!info.isFile) return `${path} is not a regular file`;
    const head = Deno.readTextFileSync(path).split("\n", 2)[1];
    // A comment of the id without control characters (launcherScript()).
    // deno-lint-ignore no-control-regex
    const mark = `# privsep launcher of ${id.replace(/[\0-\x1f\x7f]/g, "?")}`;
    return head === mark ? undefined : `${path} is not ${id}'s launcher`;
  } catch (error) {
    return `${path}: ${(error as Error).message}`;
  }
}

/** Runs `privsep uninstall`; returns the exit code. */
export async function uninstallMain(args: string[]): Promise<number> {
  const parsed = contextCommandArgs(args, USAGE);
  if (typeof parsed === "number") return parsed;
  if (!parsed.dryRun && Deno.uid() !== 0) {
    console.error(
      "privsep uninstall: run it as root (it removes root-owned launchers and sudoers rules); --dry-run shows what it would remove",
    );
    return 1;
  }
  const contexts = await loadContexts(parsed.specs);
  const sudoersPath = parsed.sudoersFile ??
    defaultSudoersFile(appDir(contexts[0]));
  const pathProblem = sudoersPathProblem(sudoersPath);
  if (pathProblem) {
    console.error(`privsep uninstall: ${pathProblem}`);
    return 2;
  }
  const dirProblem = sudoersDirProblem(sudoersPath);
  if (dirProblem) {
    console.error(`privsep uninstall: ${dirProblem}`);
    return 1;
  }
  const say = (what: string) =>
    console.log(parsed.dryRun ? `would remove ${what}` : `removed ${what}`);
  // The rules first: a rule without its launcher lets nothing run.
  const before = readOrUndefined(sudoersPath);
  // Each context's launcher where its settings put it, and where its rule
  // named it (install's --config-file may have moved it: launcher_dir).
  const launchers = new Map(
    contexts.map((ctx) => [ctx.id, new Set([ctx.launcher()])]),
  );
  if (before === undefined) {
    console.log(`no ${sudoersPath}: no rule to remove`);
  } else {
    const ids = new Set(contexts.map((ctx) => ctx.id));
    const { text, removed, left, launchers: named } = withoutRules(
      before,
      ids,
    );
    for (const [id, path] of named) launchers.get(id)?.add(path);
    if (removed === 0) {
      console.log(`${sudoersPath} holds no rule of these contexts`);
    } else if (left === 0) {
      if (!parsed.dryRun) Deno.removeSync(sudoersPath);
      say(sudoersPath);
    } else if (parsed.dryRun) {
      say(`${removed} rule(s) from ${sudoersPath} (${left} stay)`);
    } else {
      const checked = await checkSudoers(sudoersPath, text);
      if (!checked.ok) {
        console.error(
          `privsep uninstall: visudo refused ${sudoersPath} without the rules, nothing changed: ${checked.out}`,
        );
        return 1;
      }
      writeRootFile({
        path: sudoersPath,
        content: text,
        mode: 0o440,
        what: "sudoers rules",
      });
      say(`${removed} rule(s) from ${sudoersPath} (${left} stay)`);
    }
  }
  let status = 0;
  for (const [id, paths] of launchers) {
    const found = [...paths].filter((path) => {
      try {
        Deno.lstatSync(path);
        return true;
      } catch {
        return false;
      }
    });
    if (found.length === 0) {
      console.log(`no launcher ${[...paths].join(" or ")}`);
    }
    for (const launcher of found) {
      const problem = launcherProblem(launcher, id);
      if (problem) {
        console.error(
          `privsep uninstall: leaving ${launcher}: ${problem}; remove it by hand if it is one`,
        );
        status = 1;
        continue;
      }
      // unlink: a link there goes, not what it points to.
      if (!parsed.dryRun) Deno.removeSync(launcher);
      say(launcher);
    }
  }
  return status;
}

if (import.meta.main) Deno.exit(await uninstallMain(Deno.args));
