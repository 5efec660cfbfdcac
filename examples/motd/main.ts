// The seed's first example, end to end: `deno task demo`.
//
// As root it starts the daemon directly; as another user it goes through
// sudo, and without a sudoers rule it prints the exact rule to add.
import { dirname } from "node:path";
import { FailedToDropPrivileges } from "../../mod.ts";
import { describeCredentials, readProcessCredentials } from "../../caps/mod.ts";
import { sysAdmin } from "./privsep/mod.ts";
import * as motd from "./privsep/motd.ts";

const me = await readProcessCredentials("self");
console.log(`caller  pid ${me.pid}: ${describeCredentials(me.threads[0])}`);

if (Deno.uid() === 0) {
  // A root-only directory of the demo's own (mode 0700).
  await Deno.mkdir(dirname(motd.MOTD_PATH), { recursive: true, mode: 0o700 });
}

try {
  const info = await sysAdmin.start();
  const daemon = await readProcessCredentials(info.pid);
  console.log(
    `daemon  pid ${info.pid} (${daemon.threads.length} threads, ${
      info.verified ? "all verified" : "not verified"
    }): ${describeCredentials(daemon.threads[0])}`,
  );
  await motd.updateMotd("This node is currently idle");
  console.log(`wrote ${motd.MOTD_PATH} through the daemon`);
  if (Deno.uid() === 0) {
    console.log(`it now says: ${await Deno.readTextFile(motd.MOTD_PATH)}`);
  }
} catch (error) {
  if (error instanceof FailedToDropPrivileges && Deno.uid() !== 0) {
    console.error(
      `The daemon could not start through sudo. As root, add this rule with "visudo -f /etc/sudoers.d/privsep-demo":\n\n${
        sysAdmin.sudoersRule(Deno.env.get("USER") ?? String(Deno.uid()))
      }\n(${error.message})`,
    );
    Deno.exit(1);
  }
  throw error;
} finally {
  await sysAdmin.stop();
}
