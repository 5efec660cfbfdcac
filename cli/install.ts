// privsep install: the root-owned launcher of each context and the one
// sudoers file that lets the service's user run them, with no arguments.
import { createHash } from "node:crypto";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { findDenoConfig } from "../core/command.ts";
import type { PrivContext } from "../contexts/priv_context.ts";
import { assertTrustedTree, untrustedReason } from "../core/trust.ts";
import { run } from "./_exec.ts";
import { contextCommandArgs, loadContexts } from "./_load.ts";
import { makeRootDirs } from "./_root_dirs.ts";
import { vendorImports, vendorPackage } from "./vendor.ts";

/** The comment line before each context's rule in a sudoers file. */
export const RULE_MARK = "# privsep context ";

const USAGE =
  `usage: privsep install --user=<user|%group> [--vendor-dir=<dir>] [--dry-run] [--sudoers-file=<path>] [--config-file=<abs path>]… <module.ts[#context]>…

With --vendor-dir (run it in production as root, from the package itself:
deno run -A --no-config jsr:@privsep/privsep/cli install --vendor-dir=vendor/privsep …),
first copies this version of privsep into <dir> (a previous copy is replaced
as a whole), points the "@privsep/privsep" imports of the application's
deno.json (the nearest to the first module) at it, adds privsep's npm
dependencies, "nodeModulesDir": "manual" and "workspace": [] when missing
(Deno then reads no configuration above it), runs "deno install"
there (node_modules), and then runs the vendored copy's install with the
other options: the daemon runs only local, root-owned files.

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
export interface Planned {
  path: string;
  content: string;
  mode: number;
  what: string;
}

/** The application's directory: its deno.json's, or the context module's. */
export function appDir(ctx: PrivContext): string {
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

/** The file's text, or undefined when there is none. */
export function readOrUndefined(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/**
 * Why `path` cannot be a sudoers file install writes (undefined: it can):
 * an absolute path whose name has only letters, digits, _ and - (sudo skips
 * names with a "." in /etc/sudoers.d).
 */
export function sudoersPathProblem(path: string): string | undefined {
  return /^\/[A-Za-z0-9_.\/-]+$/.test(path) &&
      /^[A-Za-z0-9_-]+$/.test(basename(path))
    ? undefined
    : `the sudoers file must be an absolute path whose name has only letters, digits, _ and - (sudo skips names with a "." in /etc/sudoers.d), got "${path}"`;
}

/**
 * Why root may not write, check or remove a sudoers file at `path` (null:
 * it may): its directory must be one only root can modify, or a link put
 * there by another user leads root's writes, `chown` and `chmod` to any
 * file (a twenty-seventh review took over another user's file so).
 */
export function sudoersDirProblem(path: string): string | null {
  const dir = dirname(path);
  const reason = untrustedReason(dir);
  return reason
    ? `refusing to write sudoers rules in ${dir}: ${reason}. Use /etc/sudoers.d, or another directory that only root can write`
    : null;
}

/**
 * visudo's verdict on `content` alone, as the sudoers file `path` would hold
 * it (checked under a name with a "." that sudo never reads).
 */
export async function checkSudoers(
  path: string,
  content: string,
): Promise<{ ok: boolean; out: string }> {
  const candidate = `${dirname(path)}/.${basename(path)}.privsep-check`;
  // A new file, never through a name that is already there (a link planted
  // in a directory others may write would lead the write elsewhere).
  try {
    Deno.removeSync(candidate);
  } catch { /* not there */ }
  Deno.writeTextFileSync(candidate, content, { mode: 0o440, createNew: true });
  try {
    return await visudo(["-c", "-q", "-f", candidate]);
  } finally {
    Deno.removeSync(candidate);
  }
}

/** Runs visudo with `args`; says what to install when it is missing. */
export async function visudo(
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

/**
 * Creates `dir` and missing parents root-owned 0755 (`makeRootDirs()`);
 * refuses an untrusted one, or one below an untrusted one, before it makes
 * anything.
 */
function ensureTrustedDir(dir: string): void {
  const reason = makeRootDirs(dir) ?? untrustedReason(dir);
  if (reason) {
    throw new Error(
      `refusing to put launchers in ${dir}: ${reason}. Use a root-owned directory that only root can write (launcher_dir)`,
    );
  }
}

/**
 * Creates `tmp` afresh: a leftover (or planted) file or link of that name is
 * removed first (unlink does not follow a link), and the new file is created
 * exclusively, so the write never goes through a link.
 */
function createFresh(tmp: string, content: string, mode: number): void {
  try {
    Deno.removeSync(tmp);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  Deno.writeTextFileSync(tmp, content, { mode, createNew: true });
}

/** Writes `file` atomically, root-owned, with `mode`. */
export function writeRootFile(file: Planned): void {
  const tmp = `${dirname(file.path)}/.${basename(file.path)}.privsep-new`;
  createFresh(tmp, file.content, file.mode);
  Deno.chownSync(tmp, 0, 0);
  Deno.chmodSync(tmp, file.mode);
  Deno.renameSync(tmp, file.path);
}

/** Takes `--vendor-dir=<dir>` (or `--vendor-dir <dir>`) out of `args`. */
function takeVendorDir(
  args: readonly string[],
): { vendorDir?: string; rest: string[] } {
  const rest: string[] = [];
  let vendorDir: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      rest.push(...args.slice(i));
      break;
    }
    if (arg.startsWith("--vendor-dir=")) {
      vendorDir = arg.slice("--vendor-dir=".length);
    } else if (arg === "--vendor-dir" && i + 1 < args.length) {
      vendorDir = args[++i];
    } else rest.push(arg);
  }
  return { vendorDir, rest };
}

/** Writes `path` atomically, keeping its owner and mode. */
function replaceFile(path: string, content: string): void {
  const info = Deno.statSync(path);
  const tmp = `${dirname(path)}/.${basename(path)}.privsep-new`;
  createFresh(tmp, content, info.mode! & 0o7777);
  Deno.chownSync(tmp, info.uid, info.gid);
  Deno.chmodSync(tmp, info.mode! & 0o7777);
  Deno.renameSync(tmp, path);
}

/**
 * The application's deno.json with its privsep imports pointing at the
 * vendored copy: every `@privsep/privsep…` entry replaced, privsep's npm
 * dependencies added where the application maps none, `nodeModulesDir`
 * "manual" unless it has one (the daemon finds npm packages only in the
 * application's node_modules: its own cache is never written by downloads),
 * and `"workspace": []` unless it has a workspace.
 */
function pointConfigAt(
  config: Record<string, unknown>,
  wanted: Record<string, string>,
): { config: Record<string, unknown>; changes: string[] } {
  const imports = { ...(config.imports ?? {}) } as Record<string, string>;
  const changes: string[] = [];
  for (const key of Object.keys(imports)) {
    if (
      (key === "@privsep/privsep" || key.startsWith("@privsep/privsep/")) &&
      !(key in wanted)
    ) {
      delete imports[key];
      changes.push(`removed "${key}"`);
    }
  }
  for (const [key, value] of Object.entries(wanted)) {
    const ours = key === "@privsep/privsep" ||
      key.startsWith("@privsep/privsep/");
    if (imports[key] === value || (!ours && key in imports)) continue;
    changes.push(`"${key}": "${value}"`);
    imports[key] = value;
  }
  const out: Record<string, unknown> = { ...config, imports };
  if (!("nodeModulesDir" in config)) {
    out.nodeModulesDir = "manual";
    changes.push(`"nodeModulesDir": "manual"`);
  }
  // A workspace root: Deno then reads no configuration above it (see
  // core/_launcher_check.ts, isWorkspaceRoot()).
  if (!("workspace" in config)) {
    out.workspace = [];
    changes.push(`"workspace": []`);
  }
  return { config: out, changes };
}

async function runInherit(
  args: string[],
  cwd: string,
): Promise<number> {
  const { code } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  return code;
}

/** `install --vendor-dir`: vendor, point the app at the copy, run its install. */
async function installVendored(
  vendorDir: string,
  rest: string[],
): Promise<number> {
  const parsed = contextCommandArgs(rest, USAGE);
  if (typeof parsed === "number") return parsed;
  const first = parsed.specs[0].replace(/#[A-Za-z_$][\w$]*$/, "");
  if (/^[a-z]+:/.test(first) && !first.startsWith("file:")) {
    console.error(
      `privsep install: with --vendor-dir the application's modules must be local files, got "${first}"`,
    );
    return 2;
  }
  const modulePath = first.startsWith("file:")
    ? fileURLToPath(first)
    : resolve(first);
  const configPath = findDenoConfig(pathToFileURL(modulePath));
  if (!configPath) {
    console.error(
      `privsep install: no deno.json in ${
        dirname(modulePath)
      } or above; the application needs one (its imports map @privsep/privsep to the vendored copy)`,
    );
    return 1;
  }
  const appDir = dirname(configPath);
  // As root, everything below runs or rewrites the application's files (its
  // deno.json maps the CLI's own imports): only in a tree no other user can
  // change, as the daemon requires anyway.
  if (Deno.uid() === 0) {
    try {
      assertTrustedTree(appDir, { skip: (p) => p.endsWith("/.git") });
    } catch (error) {
      console.error(
        `privsep install: refusing to work as root in ${appDir}: ${
          (error as Error).message
        }. Install the application afresh as root from its source (a checkout, a package), root-owned and not group/world-writable, below root-owned directories; do not just chown this tree: what another user could write in it, its deno.json and node_modules included, is that user's code`,
      );
      return 1;
    }
  }
  const dest = isAbsolute(vendorDir) ? vendorDir : resolve(vendorDir);
  const vendoredCli = join(dest, "cli", "privsep.ts");
  const again = [
    "run",
    "-A",
    `--config=${configPath}`,
    vendoredCli,
    "install",
    ...rest,
  ];
  if (parsed.dryRun) {
    console.log(
      `# would vendor privsep from ${
        new URL("../", import.meta.url).href
      } into ${dest} (replacing a previous copy), point ${configPath} at it, run deno install in ${appDir}, then: deno ${
        again.join(" ")
      }`,
    );
    try {
      Deno.statSync(vendoredCli);
    } catch {
      console.log(
        `# ${dest} holds no copy yet: the launchers are shown once it does`,
      );
      return 0;
    }
    return await runInherit(again, appDir);
  }
  if (Deno.uid() !== 0) {
    console.error(
      "privsep install: run it as root (it writes root-owned files the daemon runs); --dry-run shows what it would do",
    );
    return 1;
  }
  let text: string;
  let config: Record<string, unknown>;
  try {
    text = Deno.readTextFileSync(configPath);
    config = JSON.parse(text);
  } catch (error) {
    console.error(
      `privsep install: cannot read ${configPath} as JSON (${
        (error as Error).message
      }); set its imports by hand (privsep vendor prints them) and run install without --vendor-dir`,
    );
    return 1;
  }
  try {
    const vendored = await vendorPackage(dest);
    console.log(
      `vendored privsep ${vendored.version} (${vendored.files} files) into ${vendored.dest}${
        vendored.replaced ? ", replacing the previous copy" : ""
      }`,
    );
    const wanted = vendorImports(vendored, appDir);
    const { config: updated, changes } = pointConfigAt(config, wanted);
    if (changes.length) {
      replaceFile(configPath, JSON.stringify(updated, null, 2) + "\n");
      console.log(`updated ${configPath}: ${changes.join(", ")}`);
    } else console.log(`unchanged ${configPath}`);
  } catch (error) {
    console.error(`privsep install: ${(error as Error).message}`);
    return 1;
  }
  // node_modules for privsep's npm dependencies (and the application's).
  const installed = await runInherit(
    ["install", `--config=${configPath}`],
    appDir,
  );
  if (installed !== 0) {
    console.error(
      `privsep install: "deno install" in ${appDir} failed (exit ${installed}); the daemon needs the npm packages in ${appDir}/node_modules`,
    );
    return 1;
  }
  return await runInherit(again, appDir);
}

/** Runs `privsep install`; returns the exit code. */
export async function installMain(args: string[]): Promise<number> {
  const { vendorDir, rest } = takeVendorDir(args);
  if (vendorDir !== undefined) return await installVendored(vendorDir, rest);
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
        `${RULE_MARK}${ctx.id}\n${ctx.sudoersRule(parsed.user)}`,
      );
    } catch (error) {
      console.error(`privsep install: ${(error as Error).message}`);
      return 1;
    }
  }
  const sudoersPath = parsed.sudoersFile ??
    defaultSudoersFile(appDir(contexts[0]));
  const pathProblem = sudoersPathProblem(sudoersPath);
  if (pathProblem) {
    console.error(`privsep install: ${pathProblem}`);
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
  const sudoersDir = sudoersDirProblem(sudoers.path);
  if (sudoersDir) {
    console.error(`privsep install: ${sudoersDir}`);
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
    // The candidate alone first.
    const alone = await checkSudoers(sudoers.path, sudoers.content);
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
