// The seed's first example, end to end: `deno task demo`.
//
// As root it starts the daemon directly; as another user it goes through
// sudo, and without its launcher and sudoers rule it prints the install
// command and the rule.
import { dirname } from "node:path";
import { FailedToDropPrivileges } from "../../mod.ts";
import {
  formatCapabilities,
  readProcessCredentials,
  type StatusCredentials,
} from "../../caps/mod.ts";
import { sysAdmin } from "./privsep/mod.ts";
import * as motd from "./privsep/motd.ts";

/** One line per process: uid and the capability sets, compactly. */
function describe(c: StatusCredentials): string {
  const set = (mask: bigint) => {
    const names = formatCapabilities(mask).map((n) => n.slice(4).toLowerCase());
    return names.length > 8 ? `(${names.length} caps)` : `[${names.join(",")}]`;
  };
  return `uid=${c.uid.effective} gid=${c.gid.effective} effective=${
    set(c.capEff)
  } bounding=${set(c.capBnd)} ambient=${set(c.capAmb)} no_new_privs=${
    c.noNewPrivs ? 1 : 0
  }`;
}

const me = await readProcessCredentials("self");
console.log(`caller pid ${me.pid}: ${describe(me.threads[0])}`);

if (Deno.uid() === 0) {
  // A root-only directory of the demo's own (mode 0700), and the file the
  // context may write: a uid-0 daemon refuses a write path that does not
  // exist yet (the kernel sandbox would give it the whole directory).
  await Deno.mkdir(dirname(motd.MOTD_PATH), { recursive: true, mode: 0o700 });
  await Deno.writeFile(motd.MOTD_PATH, new Uint8Array(), {
    append: true,
    mode: 0o600,
  });
}

try {
  const info = await sysAdmin.start();
  const daemon = await readProcessCredentials(info.pid);
  console.log(
    `daemon pid ${info.pid}: ${describe(daemon.threads[0])} (${
      info.verified ? "same on all" : "not verified on"
    } ${daemon.threads.length} threads)`,
  );
  await motd.updateMotd("This node is currently idle");
  console.log(`wrote ${motd.MOTD_PATH} through the daemon`);
  if (Deno.uid() === 0) {
    console.log(`it now says: ${await Deno.readTextFile(motd.MOTD_PATH)}`);
  }
} catch (error) {
  if (error instanceof FailedToDropPrivileges && Deno.uid() !== 0) {
    console.error(
      `The daemon could not start through sudo (${
        error.stderr.split("\n")[0] || error.message.split("\n")[0]
      }).\nAs root, install its launcher and sudoers rule and make the file it writes, then run the demo again:\n\n  deno task privsep install --user=${
        Deno.env.get("USER") ?? String(Deno.uid())
      } ${
        new URL("./privsep/mod.ts", import.meta.url).pathname
      }\n  install -d -m 700 ${
        dirname(motd.MOTD_PATH)
      } && install -m 600 /dev/null ${motd.MOTD_PATH}\n\nThe rule it writes:\n${
        sysAdmin.sudoersRule(Deno.env.get("USER") ?? String(Deno.uid()))
      }`,
    );
    Deno.exit(1);
  }
  throw error;
} finally {
  await sysAdmin.stop();
}
