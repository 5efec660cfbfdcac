// The operator command line's commands, loaded by cli/privsep.ts once it has
// checked, as root, what Deno resolves these modules through.

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

/** Runs the command line `args`; returns the exit code (cli/privsep.ts). */
export async function runCli(args: string[]): Promise<number> {
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
