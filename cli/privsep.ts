/**
 * privsep's operator command line. As root, in the application's directory,
 * one command vendors privsep into the application (the root daemon runs only
 * local, root-owned files), points the application's deno.json at that copy,
 * and writes each context's launcher and the sudoers rules:
 *
 * ```sh
 * deno run -A --no-config jsr:@privsep/privsep/cli install --user=app \
 *   --vendor-dir=/opt/app/vendor/privsep /opt/app/privsep/mod.ts
 * ```
 *
 * The other commands:
 *
 * ```sh
 * privsep uninstall /opt/app/privsep/mod.ts
 * privsep sudoers --user=app /opt/app/privsep/mod.ts#sysAdmin
 * privsep inspect /opt/app/privsep/mod.ts
 * privsep doctor --user=app /opt/app/privsep/mod.ts
 * privsep caps 1234
 * privsep vendor /opt/app/vendor/privsep
 * ```
 *
 * where `privsep` is `deno run -A --no-config jsr:@privsep/privsep/cli`, or, once
 * vendored, `deno run -A --config=/opt/app/deno.json
 * /opt/app/vendor/privsep/cli/privsep.ts`. See docs/operating.md.
 *
 * Run as a program by root, this module imports nothing until it has checked
 * what Deno would resolve privsep's other modules and npm packages through:
 * the deno.json (or package.json, or import map) in effect and the
 * `node_modules` beside it, and, for a local copy, privsep's own files. Each
 * must be root-owned and not writable by group or others, or the command
 * refuses before any of that code runs: an import map can replace any module,
 * and `node_modules` holds code.
 *
 * @module
 */

/**
 * Runs the command line with `args` (the command, then its options) and
 * returns the exit code; what `deno run jsr:@privsep/privsep/cli` runs.
 * Called from a program, it loads the commands through that program's
 * configuration (the checks of the module's own start are the program's
 * business then).
 *
 * @param args The command line, without the program name.
 * @returns The exit code: 0 on success, 1 on failure, 2 on bad usage.
 *
 * @example Print the usage
 * ```ts
 * import { main } from "@privsep/privsep/cli";
 * import assert from "node:assert/strict";
 *
 * assert.equal(await main(["--help"]), 0);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const { runCli } = await import("./_main.ts");
  return await runCli(args);
}

/** Deno's long flags that name a configuration, as `--flag value` or `--flag=value`. */
const CONFIG_FLAGS = new Set(["--config", "--import-map"]);

/**
 * The configuration files a `deno run` command line names before the
 * program (`--config`, `--import-map`, and `-c` alone or at the end of a
 * cluster of short flags: `-c X`, `-cX`, `-c=X`, `-Ac X`), and whether it
 * has `--no-config`. `program` is the program's index in `argv`.
 */
function namedConfigs(
  argv: string[],
  program: number,
): { files: string[]; noConfig: boolean } {
  const files: string[] = [];
  let noConfig = false;
  // argv[0] is deno, argv[1] "run".
  for (let i = 2; i < program; i++) {
    const word = argv[i];
    if (word === "--no-config") noConfig = true;
    if (word.startsWith("--")) {
      const eq = word.indexOf("=");
      if (!CONFIG_FLAGS.has(eq < 0 ? word : word.slice(0, eq))) continue;
      files.push(eq < 0 ? argv[++i] ?? "" : word.slice(eq + 1));
    } else if (word.startsWith("-")) {
      const eq = word.indexOf("=");
      const c = word.slice(1, eq < 0 ? undefined : eq).indexOf("c");
      if (c < 0) continue;
      const rest = word.slice(c + 2).replace(/^=/, "");
      files.push(rest !== "" ? rest : argv[++i] ?? "");
    }
  }
  return { files, noConfig };
}

/**
 * The index in `argv` of the program: the word that names `main`, or a
 * `jsr:`/`npm:` one.
 */
function programIndex(argv: string[], main: string): number {
  for (let i = 2; i < argv.length; i++) {
    const word = argv[i];
    // A registry program (Deno.mainModule is then its https: URL).
    if (/^(jsr|npm):/.test(word)) return i;
    try {
      const url = /^[a-z][a-z0-9+.-]*:/i.test(word)
        ? new URL(word)
        : new URL(word, `file://${Deno.cwd()}/`);
      if (url.href === main) return i;
    } catch { /* not a URL or a path */ }
  }
  return argv.length;
}

/** The `"importMap"` a deno.json's text names, if any (JSONC aside). */
function importMapOf(text: string): string | undefined {
  try {
    const value = JSON.parse(text);
    return typeof value?.importMap === "string" ? value.importMap : undefined;
  } catch {
    return /"importMap"\s*:\s*"([^"]*)"/.exec(text)?.[1];
  }
}

/** `dir` and each of its ancestors, up to `/`. */
function upwards(dir: string): string[] {
  const out = [dir];
  while (dir !== "/") {
    dir = dir.slice(0, dir.lastIndexOf("/")) || "/";
    out.push(dir);
  }
  return out;
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Why a non-root user could change `path` (an absolute path), or
 * `undefined`: each directory on the way and the path itself root-owned and
 * not writable by group or others, links root's and followed. A small
 * version of core/trust.ts, which is itself checked with it before it is
 * imported.
 */
function pathProblem(path: string, links = 0): string | undefined {
  if (links > 40) return `${path}: too many levels of symbolic links`;
  let at = "";
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  for (let i = -1; i < parts.length; i++) {
    if (i >= 0) {
      if (parts[i] === "..") at = at.slice(0, at.lastIndexOf("/"));
      else at = `${at}/${parts[i]}`;
    }
    const where = at || "/";
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(where);
    } catch (error) {
      return `${where} cannot be inspected (${(error as Error).message})`;
    }
    if (info.uid !== 0) return `${where} is owned by uid ${info.uid}`;
    if (info.isSymlink) {
      const target = Deno.readLinkSync(where);
      const base = where.slice(0, where.lastIndexOf("/")) || "/";
      const rest = parts.slice(i + 1).join("/");
      const next = `${
        target.startsWith("/") ? "" : `${base}/`
      }${target}/${rest}`;
      return pathProblem(next, links + 1);
    }
    if ((info.mode ?? 0) & 0o022) {
      return `${where} is writable by ${
        (info.mode ?? 0) & 0o002 ? "everyone" : "its group"
      }`;
    }
  }
  return undefined;
}

/**
 * As root, why privsep's modules may not be loaded (see the module's
 * documentation), or `undefined`.
 */
async function rootLoadProblem(): Promise<string | undefined> {
  const argv = Deno.readTextFileSync("/proc/self/cmdline").split("\0");
  const program = programIndex(argv, Deno.mainModule);
  const named = namedConfigs(argv, program);
  const self = new URL(import.meta.url);
  const local = self.protocol === "file:";
  // A jsr: program gets the configuration found from the current directory
  // up, which can replace this very module before it runs (an eleventh
  // review): nothing here can check that, so as root it must run without.
  if (/^(jsr|npm):/.test(argv[program] ?? "") && !named.noConfig) {
    return `run the ${
      argv[program]
    } command with --no-config as root (deno run -A --no-config ${
      argv[program]
    } …): without it Deno applies a deno.json found from the current directory up to privsep's modules, this one included, before any check can run`;
  }
  const configs = named.files.map((f) =>
    f.startsWith("/") ? f : `${Deno.cwd()}/${f}`
  );
  if (!named.noConfig && configs.length === 0) {
    // Deno finds a local program's configuration from its directory up, and
    // a jsr: program's from the current directory up (a tenth review: the
    // documented `cd /opt/app && deno run -A jsr:…/cli` applied the
    // directory's deno.json to privsep's own modules); an http(s): one's
    // from nowhere.
    const start = local
      ? decodeURIComponent(self.pathname)
      : /^(jsr|npm):/.test(argv[program] ?? "")
      ? Deno.cwd()
      : undefined;
    for (const dir of start ? upwards(start) : []) {
      for (const name of ["deno.json", "deno.jsonc", "package.json"]) {
        if (exists(`${dir}/${name}`)) configs.push(`${dir}/${name}`);
      }
    }
  }
  // The cache Deno runs the compiled modules from (this one included: what
  // is checked here holds only for the rest). HOME or DENO_DIR of another
  // user (sudo -E, su -m) hands them the command (a tenth review).
  const home = Deno.env.get("HOME");
  const cache = Deno.env.get("DENO_DIR") ||
    `${Deno.env.get("XDG_CACHE_HOME") || `${home}/.cache`}/deno`;
  // A relative one is the current directory's (as Deno takes it); without
  // HOME, Deno's own fallback.
  let existing = home === undefined && !cache.startsWith("/") &&
      !Deno.env.get("DENO_DIR") && !Deno.env.get("XDG_CACHE_HOME")
    ? "/"
    : cache.startsWith("/")
    ? cache
    : `${Deno.cwd()}/${cache}`;
  while (!exists(existing) && existing !== "/") {
    existing = existing.slice(0, existing.lastIndexOf("/")) || "/";
  }
  const cacheProblem = pathProblem(existing);
  if (cacheProblem) {
    return `refusing to run with Deno's cache ${cache}: ${cacheProblem}; run the command in root's own environment (sudo -i, su -; not sudo -E or su -m), with HOME and DENO_DIR root's`;
  }
  const trustFile = decodeURIComponent(
    new URL("../core/trust.ts", self).pathname,
  );
  for (const file of [...configs, ...(local ? [trustFile] : [])]) {
    const problem = pathProblem(file);
    if (problem) return `refusing to load "${file}": ${problem}`;
  }
  // The configuration is root's now, so are the imports it maps.
  const { untrustedReason, assertTrustedTree, UntrustedPathError } =
    await import("../core/trust.ts");
  const trees = new Set<string>();
  const dirs = new Set<string>();
  if (local) {
    const root = decodeURIComponent(new URL("../", self).pathname).replace(
      /\/$/,
      "",
    );
    const list = `${root}/cli/_files.json`;
    const listed = untrustedReason(list);
    if (listed) return listed;
    const { files } = JSON.parse(Deno.readTextFileSync(list)) as {
      files: string[];
    };
    for (const file of files) {
      const reason = untrustedReason(`${root}/${file}`);
      if (reason) return reason;
    }
    // npm packages on the way up from privsep's files (Node's resolution).
    for (const dir of upwards(root)) {
      const modules = `${dir === "/" ? "" : dir}/node_modules`;
      if (exists(modules)) trees.add(modules);
    }
  }
  // What a configuration resolves through sits beside it: node_modules,
  // a vendor directory of remote modules, local imports.
  for (const config of configs) {
    dirs.add(config.slice(0, config.lastIndexOf("/")) || "/");
  }
  for (const dir of [...dirs, ...trees]) {
    try {
      assertTrustedTree(dir, { skip: (p) => p.endsWith("/.git") });
    } catch (error) {
      if (error instanceof UntrustedPathError) return error.message;
      throw error;
    }
  }
  // Every file above is root's now: the check of the workspace key too.
  const { aboveProblem, dirsAbove, isWorkspaceRoot } = await import(
    "../core/_launcher_check.ts"
  );
  // Nothing above the configuration and privsep's files that Deno reads on
  // its way up (a package.json's alias redirected an npm import).
  const tops = configs.map((c) => c.slice(0, c.lastIndexOf("/")) || "/");
  if (local) {
    tops.push(
      decodeURIComponent(new URL("../", self).pathname).replace(/\/$/, ""),
    );
  }
  const above = aboveProblem(dirsAbove(tops), exists);
  if (above) return `refusing to load privsep: ${above}`;
  // An import map file that a configuration names is read as root too.
  for (const config of configs) {
    if (!config.endsWith(".json") && !config.endsWith(".jsonc")) continue;
    const map = importMapOf(Deno.readTextFileSync(config));
    if (map === undefined) continue;
    const file = map.startsWith("/")
      ? map
      : `${config.slice(0, config.lastIndexOf("/"))}/${map}`;
    const reason = /^[a-z][a-z0-9+.-]*:/i.test(map)
      ? `"${config}" names an import map by URL (${map}), which privsep cannot check`
      : untrustedReason(file);
    if (reason) return reason;
  }
  // A deno.json that is not a workspace root lets Deno read one above it as
  // the root (its imports then apply), even a file a daemon could create.
  for (const config of configs) {
    if (!config.endsWith(".json") && !config.endsWith(".jsonc")) continue;
    if (isWorkspaceRoot(Deno.readTextFileSync(config))) continue;
    const dir = config.slice(0, config.lastIndexOf("/")) || "/";
    for (const above of upwards(dir).slice(1)) {
      for (const name of ["deno.json", "deno.jsonc", "package.json"]) {
        const path = `${above === "/" ? "" : above}/${name}`;
        if (exists(path)) {
          return `refusing to load privsep through "${config}": it has no "workspace" key, and Deno would read "${path}" above it as the workspace root; add "workspace": [] to it`;
        }
      }
    }
  }
  return undefined;
}

if (import.meta.main) {
  if (Deno.uid() === 0) {
    const problem = await rootLoadProblem();
    if (problem) {
      console.error(
        `privsep: ${problem}. As root, privsep loads its modules only through a configuration, node_modules and files that no other user can change (Deno resolves every import through them): install the application afresh as root from its source, root-owned and not writable by group or others (docs/operating.md, step 2; a tree another user could write holds that user's code, whoever owns it after), or run the command as the service's user`,
      );
      Deno.exit(1);
    }
  }
  // What the commands print, and the message of an error that ends one,
  // carry no terminal control, line-separator or bidi character: they name
  // files and link targets another user may have made (a sixteenth review:
  // an allowed path's link target in doctor's output rewrote root's
  // terminal). Loaded only now: as root, once the checks above passed.
  const { safeText } = await import("../core/_safe_text.ts");
  const clean = (d: unknown) =>
    typeof d === "string"
      ? safeText(d, true)
      : d instanceof Error
      ? safeText(d.stack ?? String(d), true)
      : d;
  for (const level of ["log", "error", "warn", "info"] as const) {
    const print = console[level];
    console[level] = (...data: unknown[]) =>
      print.apply(console, data.map(clean));
  }
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (error) {
    console.error("privsep:", error);
    code = 1;
  }
  Deno.exit(code);
}
