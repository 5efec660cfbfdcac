// Review 2, attack on the process keeper's FIFO path: stage 1 (root) creates
// /run/privsep/tree-<pid>, chowns it to the context's user, and then uses the
// path `tree-<pid>/keeper` three more times (its own open loop, the Landlock
// rule of confine.prepare(), the serving stage's --keeper= open). Any other
// process of the context's user (a shared account like "nobody", as in
// examples/web_service) may replace that name with a symlink in between: the
// daemon, which keeps CAP_DAC_OVERRIDE, then writes its keeper lines into a
// root-only file of the attacker's choosing, and runs with no keeper at all.
import assert from "node:assert/strict";
import { init } from "../mod.ts";
import { treeCtx } from "./fixtures/tree/mod.ts";
import * as ops from "./fixtures/tree/ops.ts";
import {
  DENO,
  ensureUser,
  removeUser,
  requireRoot,
  ROOT,
  scratchDir,
  writeConfig,
} from "./_helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const USER = "privsep-rv2-d";
const SECRET = "root:$y$j9T$notarealhash:19000:0:99999:7:::\n";

Deno.test(
  "review2: another process of the context's user cannot redirect the keeper FIFO to a root-only file",
  opts,
  async () => {
    requireRoot();
    const dir = await scratchDir();
    const { uid, gid } = await ensureUser(USER);
    const victim = `${dir}/victim`;
    await Deno.writeTextFile(victim, SECRET, { mode: 0o600 });
    const allowed = `${dir}/allowed`;
    await Deno.writeTextFile(allowed, "", { mode: 0o600 });
    const denoDir = await Deno.makeTempDir({ prefix: "privsep-rv2-deno-" });
    await Deno.chown(denoDir, uid, gid);
    let attacker: Deno.ChildProcess | undefined;
    try {
      let won = false;
      for (let attempt = 0; attempt < 5 && !won; attempt++) {
        await treeCtx.stop();
        attacker = new Deno.Command("/usr/bin/setpriv", {
          args: [
            `--reuid=${uid}`,
            `--regid=${gid}`,
            "--clear-groups",
            DENO,
            "run",
            "--allow-read",
            "--allow-write",
            `${ROOT}/tests/fixtures/review2/swap_keeper.ts`,
            victim,
            "15000",
          ],
          env: { DENO_DIR: denoDir, HOME: denoDir, NO_COLOR: "1" },
          stdout: "piped",
          stderr: "inherit",
        }).spawn();
        // Let the attacker list /run/privsep before the daemon starts.
        await new Promise((r) => setTimeout(r, 700));
        init({
          configFiles: [
            await writeConfig(dir, {
              tree: {
                user: USER,
                capabilities: ["CAP_DAC_OVERRIDE"],
                permissions: { write: [allowed], run: ["/bin/sh"] },
              },
            }),
          ],
        });
        let started: unknown;
        try {
          await treeCtx.start();
          await ops.leaveBehind(4242);
          started = true;
        } catch (error) {
          started = error;
        }
        const out = new TextDecoder().decode((await attacker.output()).stdout)
          .trim();
        attacker = undefined;
        won = out !== "none";
        console.log(
          `attempt ${attempt}: swapped tree-${out}; start: ${started}`,
        );
      }
      const now = await Deno.readTextFile(victim);
      console.log(`victim now begins ${JSON.stringify(now.slice(0, 40))}`);
      assert.equal(
        now,
        SECRET,
        "the daemon wrote its keeper lines into a root-only file named by a symlink another process of its user planted",
      );
    } finally {
      try {
        attacker?.kill("SIGKILL");
        await attacker?.output();
      } catch { /* gone */ }
      await treeCtx.stop();
      await Deno.remove(denoDir, { recursive: true });
      await removeUser(USER);
    }
  },
);
