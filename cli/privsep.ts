/**
 * The operator's command line: `deno task privsep <command>`.
 *
 * ```sh
 * deno task privsep install --user=app /opt/app/privsep/mod.ts
 * deno task privsep sudoers --user=app /opt/app/privsep/mod.ts#sysAdmin
 * deno task privsep inspect /opt/app/privsep/mod.ts
 * deno task privsep doctor --user=app /opt/app/privsep/mod.ts
 * deno task privsep caps 1234
 * deno task privsep vendor /opt/app/vendor/privsep
 * ```
 *
 * @module
 */

import { capsMain } from "./caps.ts";
import { doctorMain } from "./doctor.ts";
import { inspectMain } from "./inspect.ts";
import { installMain } from "./install.ts";
import { sudoersMain } from "./sudoers.ts";
import { vendorMain } from "./vendor.ts";

const USAGE = `usage: privsep <command> [options]

commands:
  install   as root: each context's launcher and the sudoers rules for them
  sudoers   the sudoers line per context (its launcher, no arguments)
  inspect   every context and entrypoint, what each may do, what is broad
  doctor    everything that can make the first call fail, with fixes
  caps      the capability sets of a process, per thread
  vendor    copy privsep into an application, for a root-owned install

"privsep <command> --help" tells more.`;

/** Runs the command line; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case "install":
      return await installMain(rest);
    case "sudoers":
      return await sudoersMain(rest);
    case "inspect":
      return await inspectMain(rest);
    case "doctor":
      return await doctorMain(rest);
    case "caps":
      return await capsMain(rest);
    case "vendor":
      return vendorMain(rest);
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
