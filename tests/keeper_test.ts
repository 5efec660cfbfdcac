// The process keeper (daemon/_keeper.ts) against two attacks found in review:
// 1. Another process of the context's user (a shared account such as
//    "nobody") replaces the keeper FIFO's name with a symlink to a root-only
//    file between stage 1's uses of the path: the daemon, which keeps
//    CAP_DAC_OVERRIDE, would write its keeper lines there and run without a
//    keeper. The FIFO's directory now stays root's.
// 2. The daemon asks the keeper to signal a group it did not start
//    (`KILL 1` is `kill -- -1`: every process of the keeper's uid). The
//    keeper now acts only on groups it tracks, led by the daemon's children.
import assert from "node:assert/strict";
import { init } from "../mod.ts";
import { treeCtx } from "./fixtures/tree/mod.ts";
import * as ops from "./fixtures/tree/ops.ts";
import {
  keeperKill,
  keeperLeaveGroup,
  keeperTrackKill,
} from "./fixtures/tree/keeper_ops.ts";
import {
  DENO,
  ensureUser,
  removeUser,
  requireRoot,
  ROOT,
  scratchDir,
  testUser,
  writeConfig,
} from "./_helpers.ts";

const SECRET = "root:$y$j9T$notarealhash:19000:0:99999:7:::\n";

async function alive(pid: number): Promise<boolean> {
  try {
    return !/\nState:\tZ/.test(await Deno.readTextFile(`/proc/${pid}/status`));
  } catch {
    return false;
  }
}

/**
 * A process of `uid` whose pid, and so its process group's number, is
 * `pid`: the kernel's next pid (`ns_last_pid`) is set to `pid - 1` right
 * before the spawn, and the spawn retried while other processes of the host
 * take it first.
 */
async function leadGroupNumbered(
  pid: number,
  uid: number,
  gid: number,
): Promise<Deno.ChildProcess> {
  // Under the test suite's parallel load other processes and threads often
  // take the number first: many tries, the write without a pool thread.
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    Deno.writeTextFileSync("/proc/sys/kernel/ns_last_pid", String(pid - 1));
    const child = new Deno.Command("/usr/bin/setpriv", {
      args: [
        `--reuid=${uid}`,
        `--regid=${gid}`,
        "--clear-groups",
        "/usr/bin/sleep",
        "5152",
      ],
      detached: true,
    }).spawn();
    if (child.pid === pid) {
      // Once it is sleep, it has its uid.
      while ((await Deno.readTextFile(`/proc/${pid}/comm`)) !== "sleep\n") {
        await new Promise((r) => setTimeout(r, 10));
      }
      return child;
    }
    child.kill("SIGKILL");
    await child.status;
  }
  throw new Error(`no process got pid ${pid} in ${ATTEMPTS} attempts`);
}

/** Spawns leadGroupNumbered() tries before it gives up. */
const ATTEMPTS = 2000;

Deno.test(
  "keeper: another process of the context's user cannot redirect the keeper FIFO to a root-only file",
  async () => {
    requireRoot();
    const user = testUser(import.meta, "d");
    const dir = await scratchDir();
    const denoDir = await Deno.makeTempDir({ prefix: "privsep-kp-deno-" });
    let attacker: Deno.ChildProcess | undefined;
    try {
      const { uid, gid } = await ensureUser(user);
      const victim = `${dir}/victim`;
      await Deno.writeTextFile(victim, SECRET, { mode: 0o600 });
      const allowed = `${dir}/allowed`;
      await Deno.writeTextFile(allowed, "", { mode: 0o600 });
      await Deno.chown(denoDir, uid, gid);
      let out = "none";
      for (let attempt = 0; attempt < 5 && out === "none"; attempt++) {
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
            `${ROOT}/tests/fixtures/keeper/swap_keeper.ts`,
            victim,
            "15000",
            String(uid),
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
                user,
                capabilities: ["CAP_DAC_OVERRIDE"],
                permissions: { write: [allowed], run: ["/bin/sh"] },
              },
            }),
          ],
        });
        await treeCtx.start();
        await ops.leaveBehind(4243);
        out = new TextDecoder().decode((await attacker.output()).stdout)
          .trim();
        attacker = undefined;
      }
      const pid = out.split(" ")[1];
      assert.match(out, /^refused \d+ PermissionDenied$/, out);
      // The keeper's directory is root's; only the FIFO is the user's.
      const tree = await Deno.lstat(`/run/privsep/tree-${pid}`);
      assert.equal(tree.uid, 0);
      assert.equal(tree.mode! & 0o7777, 0o711);
      const fifo = await Deno.lstat(`/run/privsep/tree-${pid}/keeper`);
      assert.ok(fifo.isFifo);
      assert.equal(fifo.uid, uid);
      assert.equal(await Deno.readTextFile(victim), SECRET);
    } finally {
      try {
        attacker?.kill("SIGKILL");
        await attacker?.output();
      } catch { /* gone */ }
      await treeCtx.stop();
      await Deno.remove(denoDir, { recursive: true });
      await removeUser(user);
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "keeper: the next daemon removes a dead daemon's keeper directory, without following a symlink",
  async () => {
    requireRoot();
    const user = testUser(import.meta, "s");
    const dir = await scratchDir();
    // Pids above pid_max never run: these daemons are gone.
    const stale = "/run/privsep/tree-99999991";
    const link = "/run/privsep/tree-99999992";
    const odd = "/run/privsep/tree-99999993";
    const target = `${dir}/target`;
    await Deno.mkdir(target);
    await Deno.writeTextFile(`${target}/keeper`, "keep");
    try {
      await ensureUser(user);
      await Deno.mkdir("/run/privsep", { recursive: true, mode: 0o755 });
      await Deno.mkdir(stale, { mode: 0o711 });
      await new Deno.Command("/usr/bin/mkfifo", { args: [`${stale}/keeper`] })
        .output();
      await Deno.symlink(target, link);
      await Deno.mkdir(odd, { mode: 0o711 });
      await Deno.writeTextFile(`${odd}/keeper`, "not a FIFO");
      init({
        configFiles: [
          await writeConfig(dir, {
            tree: { user, capabilities: [], permissions: { run: ["/bin/sh"] } },
          }),
        ],
      });
      await treeCtx.start();
      await assert.rejects(Deno.lstat(stale), Deno.errors.NotFound);
      assert.ok((await Deno.lstat(link)).isSymlink, "a symlink is no keeper");
      assert.equal(await Deno.readTextFile(`${target}/keeper`), "keep");
      assert.equal(await Deno.readTextFile(`${odd}/keeper`), "not a FIFO");
    } finally {
      await treeCtx.stop();
      for (const p of [stale, link, odd]) {
        await Deno.remove(p, { recursive: true }).catch(() => {});
      }
      await removeUser(user);
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "keeper: the keeper signals only groups the daemon started",
  async (t) => {
    requireRoot();
    const user = testUser(import.meta, "c");
    const dir = await scratchDir();
    try {
      const { uid, gid } = await ensureUser(user);
      for (const confinement of ["best-effort", "off"]) {
        await t.step(`confinement ${confinement}`, async () => {
          // A process of the context's user that is not the daemon's, in a
          // process group of its own.
          const victim = new Deno.Command("/usr/bin/setpriv", {
            args: [
              `--reuid=${uid}`,
              `--regid=${gid}`,
              "--clear-groups",
              "/usr/bin/sleep",
              "5151",
            ],
            detached: true,
          }).spawn();
          try {
            init({
              configFiles: [
                await writeConfig(dir, {
                  tree: {
                    user,
                    capabilities: [],
                    confinement,
                    permissions: { run: ["/bin/sh"] },
                  },
                }),
              ],
            });
            await treeCtx.start();
            // 1: every process of the uid; 0: the keeper's own group (the
            // daemon's); the victim's group, untracked, then tracked.
            await keeperKill(1);
            await keeperKill(0);
            await keeperKill(victim.pid);
            await keeperTrackKill(victim.pid);
            await new Promise((r) => setTimeout(r, 300));
            assert.ok(
              await alive(victim.pid),
              `the daemon had its keeper kill process ${victim.pid} of its user, outside the daemon`,
            );
            {
              // A group the keeper tracks whose command ended without
              // `done`, and whose number another process then leads (found
              // by a review: a compromised daemon forked until the pids
              // wrapped; here the kernel's next pid is set instead). Where
              // signals are scoped, the keeper's own Landlock layer keeps it
              // from signalling outside the daemon's domain; everywhere, with
              // the daemon's cgroup, it signals a group only while a process
              // of that cgroup is in it.
              const pgid = await keeperLeaveGroup();
              const taker = await leadGroupNumbered(pgid, uid, gid);
              try {
                await keeperKill(pgid);
                await new Promise((r) => setTimeout(r, 300));
                assert.ok(
                  await alive(taker.pid),
                  `the daemon had its keeper kill process ${taker.pid}, which took the number of a group the daemon's command had left`,
                );
              } finally {
                try {
                  taker.kill("SIGKILL");
                } catch { /* gone */ }
                await taker.status;
              }
            }
            // The daemon (in the keeper's group) still serves, and its
            // own commands' leftovers are still killed.
            assert.equal(await keeperKill(1), 0);
            await ops.leaveBehind(4244);
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
      await removeUser(user);
      await Deno.remove(dir, { recursive: true });
    }
  },
);
