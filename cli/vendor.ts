// privsep vendor <dir>: copies privsep into an application, so that the root
// daemon runs from local, root-owned files (a registry import is cached in a
// DENO_DIR the daemon cannot trust, and its daemon.ts is not a local file).
import { parseArgs } from "node:util";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL as toFileUrl } from "node:url";
import { findDenoConfig } from "../contexts/command.ts";

const USAGE = `usage: privsep vendor <destination directory>

Copies privsep's own files (mod.ts, daemon.ts, caps/, contexts/, daemon/,
protocol/, cli/, testing/, errors.ts) into <destination>, e.g.
/opt/app/vendor/privsep, and prints the deno.json "imports" entries the
application needs. Then install the application root-owned and run "privsep
install": see docs/operating.md,
"Deploying with sudo".`;

const PARTS = [
  "mod.ts",
  "daemon.ts",
  "errors.ts",
  "deno.json",
  "caps",
  "contexts",
  "daemon",
  "protocol",
  "cli",
  "testing",
];
const SKIP = /_test\.ts$|\.md$/;

function copyTree(from: string, to: string): number {
  const info = Deno.statSync(from);
  if (info.isFile) {
    if (SKIP.test(from)) return 0;
    Deno.mkdirSync(dirname(to), { recursive: true, mode: 0o755 });
    Deno.copyFileSync(from, to);
    Deno.chmodSync(to, 0o644);
    return 1;
  }
  let n = 0;
  for (const e of Deno.readDirSync(from)) {
    n += copyTree(join(from, e.name), join(to, e.name));
  }
  return n;
}

/** Runs `privsep vendor`; returns the exit code. */
export function vendorMain(args: string[]): number {
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
  const source = fileURLToPath(new URL("../", import.meta.url));
  const dest = isAbsolute(positionals[0])
    ? positionals[0]
    : resolve(positionals[0]);
  if (resolve(dest).startsWith(resolve(source))) {
    console.error(`privsep vendor: ${dest} is inside privsep itself`);
    return 2;
  }
  // Into a fresh directory (mkdtemp: nobody can have planted links in it),
  // renamed into place at the end; an existing destination is refused, so
  // no symbolic link in it can redirect root's writes.
  try {
    Deno.lstatSync(dest);
    console.error(
      `privsep vendor: ${dest} exists; remove it first (vendor never writes into an existing directory)`,
    );
    return 1;
  } catch { /* good: it does not exist */ }
  Deno.mkdirSync(dirname(dest), { recursive: true, mode: 0o755 });
  const staging = Deno.makeTempDirSync({
    dir: dirname(dest),
    prefix: ".privsep-vendor-",
  });
  let files = 0;
  try {
    for (const part of PARTS) {
      files += copyTree(join(source, part), join(staging, part));
    }
    Deno.chmodSync(staging, 0o755);
    Deno.renameSync(staging, dest);
  } catch (error) {
    Deno.removeSync(staging, { recursive: true });
    throw error;
  }
  // privsep's own npm dependencies (from its deno.json, when there is one).
  let config: { imports?: Record<string, string> } = {};
  try {
    config = JSON.parse(Deno.readTextFileSync(join(source, "deno.json")));
  } catch { /* a vendored copy has none */ }
  // Import map paths are relative to the deno.json that holds them: the
  // application's, the first one above the destination.
  const appConfig = findDenoConfig(toFileUrl(dest));
  const base = appConfig ? dirname(appConfig) : Deno.cwd();
  const pathTo = (file: string) => {
    const rel = relative(base, join(dest, file));
    return rel.startsWith("../") ? rel : `./${rel}`;
  };
  const imports: Record<string, string> = {};
  const exported = (config as { exports?: Record<string, string> }).exports ??
    { ".": "./mod.ts" };
  for (const [key, file] of Object.entries(exported)) {
    imports[
      key === "." ? "@privsep/privsep" : `@privsep/privsep/${key.slice(2)}`
    ] = pathTo(file);
  }
  for (
    const [k, v] of Object.entries(config.imports as Record<string, string>)
  ) {
    if (k !== "msgpackr/pack" && k !== "msgpackr/unpack") imports[k] = v;
  }
  const where = appConfig
    ? `Add to ${appConfig} (paths relative to it)`
    : `No deno.json above ${dest}: add to the application's deno.json (these paths are relative to ${base}; make them relative to that file)`;
  console.log(`copied ${files} files to ${dest}
${where}, with "nodeModulesDir": "manual"
and the npm packages installed in its node_modules (see docs/install.md):
${JSON.stringify({ imports }, null, 2)}`);
  return 0;
}
