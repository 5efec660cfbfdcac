// Loads an application's privsep modules the way the daemon does, and lists
// the contexts they define. Used by inspect, doctor and sudoers.
import { isAbsolute, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { registry } from "../contexts/_registry.ts";
import type { PrivContext } from "../contexts/priv_context.ts";

const MODULE_FILE = /\.(ts|mts|js|mjs|tsx|jsx)$/;
const SKIP_FILE = /(_test|\.test|\.bench|_bench)\.\w+$|\.d\.ts$/;

function toUrl(spec: string): string {
  if (/^(file|https?):/.test(spec)) return spec;
  return pathToFileURL(isAbsolute(spec) ? spec : resolve(spec)).href;
}

function moduleFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (
      const e of [...Deno.readDirSync(d)].sort((a, b) =>
        a.name < b.name ? -1 : 1
      )
    ) {
      if (e.name.startsWith(".") || e.name === "node_modules") continue;
      const p = join(d, e.name);
      if (e.isDirectory) walk(p);
      else if (
        e.isFile && MODULE_FILE.test(e.name) && !SKIP_FILE.test(e.name)
      ) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/**
 * Imports `specs` (paths or URLs, each optionally `#exportName`), then every
 * module below the prefix of each context found, and returns the contexts:
 * those named, or all that the modules define.
 */
export async function loadContexts(
  specs: readonly string[],
): Promise<PrivContext[]> {
  const before = new Set(registry().contexts.keys());
  const wanted: string[] = [];
  for (const spec of specs) {
    const hash = spec.lastIndexOf("#");
    const path = hash > 0 && !spec.slice(hash).includes("/")
      ? spec.slice(0, hash)
      : spec;
    const url = toUrl(path);
    await import(url);
    if (hash > 0 && path !== spec) wanted.push(`${url}${spec.slice(hash)}`);
  }
  const all = [...registry().contexts.values()] as PrivContext[];
  let found = wanted.length
    ? wanted.map((id) => {
      const ctx = registry().contexts.get(id) as PrivContext | undefined;
      if (!ctx) {
        throw new TypeError(`no PrivContext ${id} (check the export name)`);
      }
      return ctx;
    })
    : all.filter((c) => !before.has(c.id));
  if (found.length === 0) found = all;
  for (const ctx of found) {
    if (ctx.prefix.startsWith("file:")) {
      for (const file of moduleFiles(fileURLToPath(ctx.prefix))) {
        await import(pathToFileURL(file).href);
      }
    }
  }
  return found;
}

/** Parses `--json` and `--help` style flags shared by the commands. */
export function wantsJson(args: readonly string[]): boolean {
  return args.includes("--json");
}
