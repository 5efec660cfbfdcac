/**
 * privsep's operator command line. As root, in the application's directory,
 * one command vendors privsep into the application (the root daemon runs only
 * local, root-owned files), points the application's deno.json at that copy,
 * and writes each context's launcher and the sudoers rules:
 *
 * ```sh
 * deno run -A jsr:@privsep/privsep/cli install --user=app \
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
 * where `privsep` is `deno run -A jsr:@privsep/privsep/cli`, or, once
 * vendored, `deno run -A --config=/opt/app/deno.json
 * /opt/app/vendor/privsep/cli/privsep.ts`. See docs/operating.md.
 *
 * @module
 */

import { capsMain } from "./caps.ts";
import { doctorMain } from "./doctor.ts";
import { inspectMain } from "./inspect.ts";
import { installMain } from "./install.ts";
import { sudoersMain } from "./sudoers.ts";
import { uninstallMain } from "./uninstall.ts";
import { vendorMain } from "./vendor.ts";

const USAGE = `usage: privsep <command> [options]

commands:
  install   as root: each context's launcher and the sudoers rules for them
  uninstall as root: removes what install wrote for the contexts named
  sudoers   the sudoers line per context (its launcher, no arguments)
  inspect   every context and entrypoint, what each may do, what is broad
  doctor    everything that can make the first call fail, with fixes
  caps      the capability sets of a process, per thread
  vendor    copy privsep into an application, for a root-owned install
            (install --vendor-dir=<dir> does it too)

"privsep <command> --help" tells more.`;

/**
 * Runs the command line with `args` (the command, then its options) and
 * returns the exit code; what `deno run jsr:@privsep/privsep/cli` runs.
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
  const [command, ...rest] = args;
  switch (command) {
    case "install":
      return await installMain(rest);
    case "uninstall":
      return await uninstallMain(rest);
    case "sudoers":
      return await sudoersMain(rest);
    case "inspect":
      return await inspectMain(rest);
    case "doctor":
      return await doctorMain(rest);
    case "caps":
      return await capsMain(rest);
    case "vendor":
      return await vendorMain(rest);
    case undefined:
    case "-h":
    case "--help":
    case "help":
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      console.error(`privsep: unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
