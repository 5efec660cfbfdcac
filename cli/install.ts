// privsep install: the root-owned launcher of each context and the one
// sudoers file that lets the service's user run them, with no arguments.
import { createHash } from "node:crypto";
import { basename, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import type { PrivContext } from "../contexts/priv_context.ts";
import { untrustedReason } from "../daemon/trust.ts";
import { run } from "./_exec.ts";
import { contextCommandArgs, loadContexts } from "./_load.ts";

const USAGE =
  `usage: privsep install --user=<user|%group> [--dry-run] [--sudoers-file=<path>] [--config-file=<abs path>]… <module.ts[#context]>…

As root, writes for each context its launcher (a fixed, root-owned script that
starts exactly that daemon, in /, with a fixed environment; see "ctx.launcher()")
and one sudoers file with a rule per context that lets <user> run the
launcher as root with NO arguments (""), pinned by its SHA-256. The file is
checked with "visudo -cf" before it is put in place and the whole sudoers
configuration with "visudo -c" after; on failure the old file is restored.
Running it again changes only what differs. --dry-run prints the files and
changes nothing. The default sudoers file is
/etc/sudoers.d/privsep-<app>-<8 hex digits of the app's directory>.`;

/** One file install writes, and whether it changed. */
interface Planned {
  path: string;
  content: string;
  mode: number;
  what: string;
}

/** The application's directory: its deno.json's, or the context module's. */
function appDir(ctx: PrivContext): string {
  const spec = ctx.commandSpec();
  return spec.denoConfig
    ? dirname(spec.denoConfig)
    : dirname(fileURLToPath(ctx.moduleUrl));
}

/** The default sudoers file of an application (no "." : sudo skips those). */
export function defaultSudoersFile(dir: string): string {
  const name = basename(dir).replace(/[^A-Za-z0-9_-]/g, "_") || "app";
  const digest = createHash("sha256").update(dir).digest("hex").slice(0, 8);
  return `/etc/sudoers.d/privsep-${name}-${digest}`;
}

function readOrUndefined(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

async function visudo(
  args: string[],
): Promise<{ ok: boolean; out: string }> {
  const r = await run(["visudo", ...args]);
  return {
    ok: r.code === 0,
    out: r.code === 127
      ? `${r.out}: visudo is part of sudo (apt-get install sudo; Fedora: dnf install sudo)`
      : r.out,
  };
}

/** Creates `dir` and missing parents root-owned 0755; refuses an untrusted one. */
function ensureTrustedDir(dir: string): void {
  const missing: string[] = [];
  for (let d = dir;; d = dirname(d)) {
    try {
      Deno.lstatSync(d);
      break;
    } catch {
      missing.unshift(d);
    }
    if (dirname(d) === d) break;
  }
  for (const d of missing) {
    Deno.mkdirSync(d, { mode: 0o755 });
    Deno.chownSync(d, 0, 0);
    Deno.chmodSync(d, 0o755);
  }
  const reason = untrustedReason(dir);
  if (reason) {
    throw new Error(
      `refusing to put launchers in ${dir}: ${reason}. Use a root-owned directory that only root can write (launcher_dir)`,
    );
  }
}

/** Writes `file` atomically, root-owned, with `mode`. */
function writeRootFile(file: Planned): void {
  const tmp = `${dirname(file.path)}/.${basename(file.path)}.privsep-new`;
  Deno.writeTextFileSync(tmp, file.content, { mode: file.mode });
  Deno.chownSync(tmp, 0, 0);
  Deno.chmodSync(tmp, file.mode);
  Deno.renameSync(tmp, file.path);
}

/** Runs `privsep install`; returns the exit code. */
export async function installMain(args: string[]): Promise<number> {
  const parsed = contextCommandArgs(args, USAGE);
  if (typeof parsed === "number") return parsed;
  if (!parsed.user) {
    console.error(`privsep install: --user is required\n${USAGE}`);
    return 2;
  }
  const contexts = await loadContexts(parsed.specs);
  const launchers: Planned[] = [];
  const rules: string[] = [];
  for (const ctx of contexts) {
    try {
      launchers.push({
        path: ctx.launcher(),
        content: ctx.launcherScript(),
        mode: 0o755,
        what: `launcher of ${ctx.id}`,
      });
      rules.push(
        `# privsep context ${ctx.id}\n${ctx.sudoersRule(parsed.user)}`,
      );
    } catch (error) {
      console.error(`privsep install: ${(error as Error).message}`);
      return 1;
    }
  }
  const sudoersPath = parsed.sudoersFile ??
    defaultSudoersFile(appDir(contexts[0]));
  if (
    !/^\/[A-Za-z0-9_.\/-]+$/.test(sudoersPath) ||
    !/^[A-Za-z0-9_-]+$/.test(basename(sudoersPath))
  ) {
    console.error(
      `privsep install: the sudoers file must be an absolute path whose name has only letters, digits, _ and - (sudo skips names with a "." in /etc/sudoers.d), got "${sudoersPath}"`,
    );
    return 2;
  }
  const sudoers: Planned = {
    path: sudoersPath,
    content: [
      `# Written by privsep install for ${parsed.user}. Each rule lets it run one`,
      "# context's launcher as root with no arguments; the launcher starts the",
      "# daemon. Run privsep install again rather than editing this file.",
      ...rules,
    ].join("\n"),
    mode: 0o440,
    what: "sudoers rules",
  };
  const files = [...launchers, sudoers];
  if (parsed.dryRun) {
    for (const f of files) {
      const same = readOrUndefined(f.path) === f.content;
      console.log(
        `# ${f.what}: ${f.path} (mode ${f.mode.toString(8)}, ${
          same ? "unchanged" : "would be written"
        })\n${f.content}`,
      );
    }
    return 0;
  }
  if (Deno.uid() !== 0) {
    console.error(
      "privsep install: run it as root (it writes root-owned launchers and a sudoers file); --dry-run shows what it would write",
    );
    return 1;
  }
  for (const f of launchers) {
    try {
      ensureTrustedDir(dirname(f.path));
      if (readOrUndefined(f.path) === f.content && !untrustedReason(f.path)) {
        console.log(`unchanged ${f.path}`);
        continue;
      }
      writeRootFile(f);
      console.log(`wrote ${f.path}`);
    } catch (error) {
      console.error(`privsep install: ${(error as Error).message}`);
      return 1;
    }
  }
  const before = readOrUndefined(sudoers.path);
  if (before === sudoers.content && !untrustedReason(sudoers.path)) {
    console.log(`unchanged ${sudoers.path}`);
  } else {
    // The candidate alone first (a name with a "." that sudo never reads).
    const candidate = `${dirname(sudoers.path)}/.${
      basename(sudoers.path)
    }.privsep-check`;
    Deno.writeTextFileSync(candidate, sudoers.content, { mode: 0o440 });
    const alone = await visudo(["-c", "-q", "-f", candidate]);
    Deno.removeSync(candidate);
    if (!alone.ok) {
      console.error(
        `privsep install: visudo refused the rules, nothing changed: ${alone.out}`,
      );
      return 1;
    }
    writeRootFile(sudoers);
    const whole = await visudo(["-c", "-q"]);
    if (!whole.ok) {
      if (before === undefined) Deno.removeSync(sudoers.path);
      else writeRootFile({ ...sudoers, content: before });
      console.error(
        `privsep install: the sudoers configuration as a whole does not parse with ${sudoers.path}; the old file was restored: ${whole.out}`,
      );
      return 1;
    }
    console.log(`wrote ${sudoers.path}`);
  }
  console.log(
    `${parsed.user} may now run ${launchers.length} launcher(s) through sudo -n; check with: privsep doctor --user=${parsed.user} ${
      parsed.specs.join(" ")
    }`,
  );
  return 0;
}

if (import.meta.main) Deno.exit(await installMain(Deno.args));
