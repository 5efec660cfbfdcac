/**
 * Prints the exact sudoers lines for one or more contexts of an application:
 *
 * ```sh
 * deno task sudoers --user=app [--config-file=/etc/app/privsep.toml] \
 *   /opt/app/privsep/mod.ts#sysAdmin [more contexts…]
 * ```
 *
 * The lines come from the same code that builds the command the service
 * runs, so the two cannot drift apart.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { init } from "../mod.ts";
import { registry } from "../contexts/_registry.ts";
import type { PrivContext } from "../contexts/priv_context.ts";

const USAGE =
  "usage: deno task sudoers --user=<user|%group> [--config-file=<abs path>]… <module.ts#contextExport>…";

/**
 * Runs the generator; returns the process exit code.
 *
 * @example
 * ```ts ignore
 * await sudoersMain(["--user=app", "/opt/app/privsep/mod.ts#sysAdmin"]);
 * ```
 */
export async function sudoersMain(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      user: { type: "string" },
      "config-file": { type: "string", multiple: true },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.user || positionals.length === 0) {
    console.error(USAGE);
    return 2;
  }
  const configFiles = (values["config-file"] ?? []).map((f) => resolve(f));
  init({ configFiles });
  const out: string[] = [];
  for (const spec of positionals) {
    const hash = spec.lastIndexOf("#");
    if (hash < 0) {
      console.error(
        `"${spec}" must be <module path>#<context export name>\n${USAGE}`,
      );
      return 2;
    }
    const path = spec.slice(0, hash);
    const url = path.startsWith("file:")
      ? path
      : pathToFileURL(isAbsolute(path) ? path : resolve(path)).href;
    await import(url);
    const id = `${url}#${spec.slice(hash + 1)}`;
    const ctx = registry().contexts.get(id) as PrivContext | undefined;
    if (!ctx) {
      console.error(
        `${url} defines no PrivContext named "${spec.slice(hash + 1)}"`,
      );
      return 1;
    }
    out.push(`# privsep context ${ctx.id}`, ctx.sudoersRule(values.user));
  }
  console.log(out.join("\n"));
  return 0;
}

if (import.meta.main) Deno.exit(await sudoersMain(Deno.args));
