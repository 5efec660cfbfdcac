// Review 2, attack on the keeper's commands: the keeper signals whatever
// process group the serving stage names ("KILL 1" runs `kill -s KILL -- -1`:
// every process the keeper's uid may signal). Where signals are not scoped
// (confinement "off"; "best-effort" on a kernel with Landlock ABI < 6, such
// as Debian 12's 6.1; a context that keeps CAP_KILL or runs any program), a
// daemon whose own Deno permissions forbid any kill thereby kills every
// process of its user outside the daemon: the service itself, when it runs
// as the context's user.
import assert from "node:assert/strict";
import { init } from "../mod.ts";
import { treeCtx } from "./fixtures/tree/mod.ts";
import { keeperKill } from "./fixtures/tree/review2_keeper_ops.ts";
import {
  ensureUser,
  removeUser,
  requireRoot,
  scratchDir,
  writeConfig,
} from "./_helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const USER = "privsep-rv2-c";

async function alive(pid: number): Promise<boolean> {
  try {
    return !/\nState:\tZ/.test(await Deno.readTextFile(`/proc/${pid}/status`));
  } catch {
    return false;
  }
}

Deno.test(
  "review2: the keeper signals only groups the daemon started",
  opts,
  async (t) => {
    requireRoot();
    const dir = await scratchDir();
    const { uid, gid } = await ensureUser(USER);
    try {
      for (const confinement of ["best-effort", "off"]) {
        await t.step(`confinement ${confinement}`, async () => {
          // A process of the context's user that is not the daemon's.
          const victim = new Deno.Command("/usr/bin/setpriv", {
            args: [
              `--reuid=${uid}`,
              `--regid=${gid}`,
              "--clear-groups",
              "/usr/bin/sleep",
              "5151",
            ],
          }).spawn();
          try {
            init({
              configFiles: [
                await writeConfig(dir, {
                  tree: {
                    user: USER,
                    capabilities: [],
                    confinement,
                    permissions: { run: ["/bin/true"] },
                  },
                }),
              ],
            });
            await treeCtx.start();
            await keeperKill(1).catch(() => {});
            await new Promise((r) => setTimeout(r, 300));
            assert.ok(
              await alive(victim.pid),
              `the daemon had its keeper kill process ${victim.pid} of its user, outside the daemon ("KILL 1")`,
            );
          } finally {
            try {
              victim.kill("SIGKILL");
            } catch { /* gone */ }
            await victim.status;
            await treeCtx.stop();
          }
        });
      }
    } finally {
      await removeUser(USER);
    }
  },
);
