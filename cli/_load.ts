// Loads an application's privsep modules the way the daemon does, and lists
// the contexts they define. Used by inspect, doctor and sudoers.
import { dirname, isAbsolute, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { registry } from "../core/_registry.ts";
import { init } from "../core/settings.ts";
import type { PrivContext } from "../contexts/priv_context.ts";
import { moduleFiles } from "../core/_modules.ts";
import { assertTrustedTree } from "../core/trust.ts";
import { findDenoConfig } from "../core/command.ts";

/**
 * As root, the commands run the application's code (they import it): only
 * from a tree that no other user can modify, like the daemon itself.
 */
function checkBeforeImport(dir: string): void {
  let root = false;
  try {
    root = Deno.uid() === 0;
  } catch { /* no sys permission: not checked */ }
  if (!root) return;
  try {
    assertTrustedTree(dir, { skip: (p) => p.endsWith("/.git") });
  } catch (error) {
    throw new Error(
      `refusing to import the application's modules as root: ${
        (error as Error).message
      }. Run this command as the service's user, or make the application root-owned first`,
      { cause: error },
    );
  }
}

function toUrl(spec: string): string {
  if (/^(file|https?):/.test(spec)) return spec;
  return pathToFileURL(isAbsolute(spec) ? spec : resolve(spec)).href;
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
    if (url.startsWith("file:")) {
      // The whole application: the directory of its deno.json, or the module's.
      const config = findDenoConfig(new URL(url));
      checkBeforeImport(dirname(config ?? fileURLToPath(url)));
    }
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
      checkBeforeImport(fileURLToPath(ctx.prefix));
      for (const file of moduleFiles(fileURLToPath(ctx.prefix))) {
        await import(pathToFileURL(file).href);
      }
    }
  }
  return found;
}

/** What the commands that take contexts parse from their arguments. */
export interface ContextCommandArgs {
  /** `--json`. */
  json: boolean;
  /** `--user=`, when given. */
  user?: string;
  /** `--dry-run` (install). */
  dryRun: boolean;
  /** `--sudoers-file=` (install), when given. */
  sudoersFile?: string;
  /** The module specs (`path[#context]`). */
  specs: string[];
}

/**
 * Parses the options shared by `inspect`, `doctor`, `sudoers` and `install`
 * (`--json`, `--user`, `--dry-run`, `--sudoers-file`, `--config-file`,
 * `--help`), applies the config files,
 * and returns the arguments, or the exit code when there is nothing to do.
 */
export function contextCommandArgs(
  args: string[],
  usage: string,
): ContextCommandArgs | number {
  const { values, positionals } = parseArgs({
    args,
    options: {
      json: { type: "boolean" },
      user: { type: "string" },
      "dry-run": { type: "boolean" },
      "sudoers-file": { type: "string" },
      "config-file": { type: "string", multiple: true },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
  });
  if (values.help) {
    console.log(usage);
    return 0;
  }
  if (positionals.length === 0) {
    console.error(usage);
    return 2;
  }
  init({ configFiles: values["config-file"] ?? [] });
  return {
    json: values.json ?? false,
    user: values.user,
    dryRun: values["dry-run"] ?? false,
    sudoersFile: values["sudoers-file"],
    specs: positionals,
  };
}
