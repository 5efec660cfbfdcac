// privsep vendor <dir>: copies privsep into an application, so that the root
// daemon runs from local, root-owned files (a registry import is cached in a
// DENO_DIR the daemon cannot trust, and its daemon.ts is not a local file).
//
// The files come from where this module was loaded: read from disk for a
// file: URL (a checkout, or an already vendored copy), fetched for an
// http(s): URL (jsr:@privsep/privsep/cli runs from https://jsr.io/…). Which
// files: cli/_files.json, the list `deno publish` publishes, kept current by
// .ci/files_manifest.ts (deno task check).
import { parseArgs } from "node:util";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { findDenoConfig } from "../core/command.ts";
import { makeRootDirs } from "./_root_dirs.ts";
import { untrustedReason } from "../core/trust.ts";

const USAGE = `usage: privsep vendor <destination directory>

Copies privsep's own files (its modules and deno.json, as published) into
<destination>, e.g. /opt/app/vendor/privsep, from wherever this command was
loaded (jsr.io, another URL, or a local copy), and prints the deno.json
"imports" entries the application needs. A previous copy of privsep there is
replaced as a whole (no file of the old version stays); anything else there is
refused. "privsep install --vendor-dir=<dir>" does this and sets the imports
itself: see docs/operating.md, "Deploying".`;

/** The package's root, where this CLI was loaded from. */
const PACKAGE_ROOT = new URL("../", import.meta.url);

/** privsep's dependencies that only its own tests use. */
const TEST_ONLY = new Set(["msgpackr/pack", "msgpackr/unpack"]);

/** What a file name in the manifest may be (it is written as root). */
const SAFE_NAME =
  /^(?:[A-Za-z0-9_-][A-Za-z0-9_.-]*\/)*[A-Za-z0-9_-][A-Za-z0-9_.-]*\.(?:ts|json)$/;

async function readPackageFile(
  base: URL,
  name: string,
): Promise<Uint8Array> {
  const url = new URL(name, base);
  if (url.protocol === "file:") return await Deno.readFile(fileURLToPath(url));
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new TypeError(
      `cannot read privsep's files from ${url.href}: only file:, http: and https: are supported`,
    );
  }
  const response = await fetch(url);
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(
      `fetching ${url.href} failed: HTTP ${response.status}; is the package complete at ${base.href}?`,
    );
  }
  return new Uint8Array(await response.arrayBuffer());
}

/** privsep's deno.json, as vendored. */
interface PackageConfig {
  name?: string;
  version?: string;
  exports?: Record<string, string>;
  imports?: Record<string, string>;
}

function isVendoredPrivsep(dir: string): boolean {
  try {
    const info = Deno.lstatSync(dir);
    if (!info.isDirectory) return false;
    const config = JSON.parse(
      Deno.readTextFileSync(join(dir, "deno.json")),
    ) as PackageConfig;
    return config.name === "@privsep/privsep";
  } catch {
    return false;
  }
}

/** Creates `parent` as root, or refuses (`makeRootDirs()`, _root_dirs.ts). */
function makeParentAsRoot(parent: string): void {
  const reason = makeRootDirs(parent);
  if (reason) {
    throw new Error(
      `refusing to create ${parent} as root: ${reason}. The daemon runs the vendored files as root; use a root-owned directory only root can write`,
    );
  }
}

function isRoot(): boolean {
  try {
    return Deno.uid() === 0;
  } catch {
    return false;
  }
}

/** What {@linkcode vendorPackage} did. */
export interface Vendored {
  /** The destination directory (absolute). */
  dest: string;
  /** Where the files came from. */
  source: string;
  /** How many files were written. */
  files: number;
  /** The version vendored (from its deno.json). */
  version: string;
  /** The package's deno.json. */
  config: PackageConfig;
  /** Whether an older copy was replaced. */
  replaced: boolean;
}

/**
 * Copies privsep's published modules into `dest` (absolute): into a fresh
 * directory next to it (mkdtemp: nobody can have planted links in it), then
 * renamed into place; a previous copy of privsep at `dest` is moved aside
 * and removed, anything else at `dest` is refused.
 */
export async function vendorPackage(
  dest: string,
  base: URL = PACKAGE_ROOT,
): Promise<Vendored> {
  dest = resolve(dest);
  if (base.protocol === "file:") {
    const source = fileURLToPath(base).replace(/\/$/, "");
    if (dest === source || dest.startsWith(source + "/")) {
      throw new TypeError(`${dest} is inside privsep itself (${source})`);
    }
  }
  const decoder = new TextDecoder();
  const manifest = JSON.parse(
    decoder.decode(await readPackageFile(base, "cli/_files.json")),
  ) as { files?: unknown };
  const names = manifest.files;
  if (
    !Array.isArray(names) ||
    !names.every((n) => typeof n === "string" && SAFE_NAME.test(n)) ||
    !names.includes("daemon.ts") || !names.includes("deno.json")
  ) {
    throw new Error(
      `${
        new URL("cli/_files.json", base).href
      } is not privsep's file list (relative .ts and .json names, daemon.ts and deno.json among them)`,
    );
  }
  let replaced = false;
  try {
    Deno.lstatSync(dest);
    if (!isVendoredPrivsep(dest)) {
      throw new Error(
        `${dest} exists and is not a vendored copy of privsep (no deno.json named @privsep/privsep); choose another directory or remove it`,
      );
    }
    replaced = true;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const parent = dirname(dest);
  if (isRoot()) makeParentAsRoot(parent);
  else Deno.mkdirSync(parent, { recursive: true, mode: 0o755 });
  if (isRoot()) {
    const reason = untrustedReason(parent);
    if (reason) {
      throw new Error(
        `refusing to vendor privsep into ${parent}: ${reason}. The daemon runs these files as root; use a root-owned directory only root can write`,
      );
    }
  }
  const staging = Deno.makeTempDirSync({
    dir: parent,
    prefix: ".privsep-vendor-",
  });
  let config: PackageConfig = {};
  try {
    for (const name of names as string[]) {
      const bytes = await readPackageFile(base, name);
      if (name === "deno.json") config = JSON.parse(decoder.decode(bytes));
      const to = join(staging, name);
      Deno.mkdirSync(dirname(to), { recursive: true, mode: 0o755 });
      Deno.writeFileSync(to, bytes, { mode: 0o644 });
      Deno.chmodSync(to, 0o644);
    }
    Deno.chmodSync(staging, 0o755);
    if (config.name !== "@privsep/privsep") {
      throw new Error(
        `${
          new URL("deno.json", base).href
        } is not privsep's (its name is "${config.name}")`,
      );
    }
    if (replaced) {
      const old = Deno.makeTempDirSync({
        dir: parent,
        prefix: ".privsep-old-",
      });
      Deno.renameSync(dest, join(old, "privsep"));
      Deno.renameSync(staging, dest);
      Deno.removeSync(old, { recursive: true });
    } else {
      Deno.renameSync(staging, dest);
    }
  } catch (error) {
    Deno.removeSync(staging, { recursive: true });
    throw error;
  }
  return {
    dest,
    source: base.href,
    files: names.length,
    version: config.version ?? "unknown",
    config,
    replaced,
  };
}

/**
 * The deno.json "imports" an application needs to use a vendored copy:
 * `@privsep/privsep` and each of its exports mapped to files in `dest`
 * (relative to `appDir`), and privsep's own npm dependencies.
 */
export function vendorImports(
  vendored: Pick<Vendored, "dest" | "config">,
  appDir: string,
): Record<string, string> {
  let rel = relative(appDir, vendored.dest);
  if (!rel.startsWith("../")) rel = `./${rel}`;
  const imports: Record<string, string> = {};
  for (
    const [key, file] of Object.entries(
      vendored.config.exports ?? { ".": "./mod.ts" },
    )
  ) {
    const name = key === "."
      ? "@privsep/privsep"
      : `@privsep/privsep/${key.replace(/^\.\//, "")}`;
    imports[name] = `${rel}/${file.replace(/^\.\//, "")}`;
  }
  for (const [key, value] of Object.entries(vendored.config.imports ?? {})) {
    if (!TEST_ONLY.has(key)) imports[key] = value;
  }
  return imports;
}

/** The application's directory for a destination: its deno.json's, or cwd. */
export function appDirOf(dest: string): string {
  // From the parent: the vendored copy has a deno.json of its own.
  const config = findDenoConfig(pathToFileURL(resolve(dest)));
  return config ? dirname(config) : Deno.cwd();
}

/** Runs `privsep vendor`; returns the exit code. */
export async function vendorMain(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { help: { type: "boolean", short: "h" } },
    allowPositionals: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    console.error(USAGE);
    return 2;
  }
  const dest = isAbsolute(positionals[0])
    ? positionals[0]
    : resolve(positionals[0]);
  let vendored: Vendored;
  try {
    vendored = await vendorPackage(dest);
  } catch (error) {
    console.error(`privsep vendor: ${(error as Error).message}`);
    return 1;
  }
  const config = findDenoConfig(pathToFileURL(resolve(vendored.dest)));
  const imports = vendorImports(vendored, appDirOf(vendored.dest));
  const where = config
    ? `Add to ${config} (paths relative to it)`
    : `No deno.json above ${vendored.dest}: add to the application's deno.json (these paths are relative to ${Deno.cwd()}; make them relative to that file)`;
  console.log(
    `copied ${vendored.files} files of privsep ${vendored.version} to ${vendored.dest}${
      vendored.replaced ? " (the previous copy was removed)" : ""
    }
${where}, with "nodeModulesDir": "manual" and
"workspace": [] (Deno then reads no configuration above it), and the npm
packages installed in its node_modules (deno install; see docs/install.md):
${JSON.stringify({ imports }, null, 2)}`,
  );
  return 0;
}
