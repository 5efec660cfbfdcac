// Every process a daemon starts, and everything those start, is gone when its
// call is cancelled and when the daemon ends, whatever ends it: checked by
// scanning /proc for processes of the context's user, against a real daemon
// (started directly as root, or by an unprivileged user through real sudo).
import assert from "node:assert/strict";
import { callWith, init, PrivsepTimeout } from "../mod.ts";
import { treeCtx } from "./fixtures/tree/mod.ts";
import * as ops from "./fixtures/tree/ops.ts";
import {
  captureLogs,
  DENO,
  ensureUser,
  installLaunchers,
  removeUser,
  requireRoot,
  ROOT,
  run,
  scratchDir,
  waitGone,
  writeConfig,
} from "./_helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
/** The context's user: every process of the daemon runs as this uid. */
const TREE_DAEMON = "privsep-tree-d";
/** The unprivileged caller of the sudo test. */
const TREE_CALLER = "privsep-tree-c";

/** A number no other test uses as `sleep`'s argument. */
let markerSeq = 4000 + (Deno.pid % 1000) * 7;
const nextMarker = () => markerSeq++;

/** Processes whose real uid is `uid` (and whose command line holds `text`). */
async function processesOf(uid: number, text?: string): Promise<string[]> {
  const found: string[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const status = await Deno.readTextFile(`/proc/${e.name}/status`);
      if (Number(/\nUid:\t(\d+)/.exec(status)?.[1]) !== uid) continue;
      if (/\nState:\tZ/.test(status)) continue;
      const cmd = (await Deno.readTextFile(`/proc/${e.name}/cmdline`))
        .split("\0").join(" ").trim();
      if (text !== undefined && !cmd.includes(text)) continue;
      found.push(`${e.name} ${cmd}`);
    } catch { /* gone */ }
  }
  return found;
}

/** Waits until `check()` finds nothing; fails with what is left. */
async function waitNone(
  what: string,
  check: () => Promise<string[]>,
  limitMs: number,
): Promise<number> {
  const start = performance.now();
  let left: string[] = [];
  while (performance.now() - start < limitMs) {
    left = await check();
    if (left.length === 0) return performance.now() - start;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(
    `${what}: still running after ${limitMs} ms: ${left.join("; ")}`,
  );
}

/** Waits until a process of `uid` runs `sleep <marker>`. */
async function waitSleeping(uid: number, marker: number): Promise<void> {
  for (let i = 0; i < 250; i++) {
    if ((await processesOf(uid, `sleep ${marker}`)).length) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`sleep ${marker} did not start`);
}

/**
 * Lets `user` start the context's daemon through sudo; returns the rule's
 * file, to remove. Kept in one place: how rules look may change.
 */
/** What an operator does: the context's launcher and the rule for `user`. */
async function allowSudo(user: string, config: string): Promise<string> {
  return await installLaunchers({
    user,
    configFiles: [config],
    specs: [`${ROOT}/tests/fixtures/tree/mod.ts#treeCtx`],
    sudoersFile: `/etc/sudoers.d/privsep-tree-${Deno.pid}`,
  });
}

Deno.test(
  "no process of a daemon outlives its call or its daemon",
  opts,
  async (t) => {
    requireRoot();
    const dir = await scratchDir();
    await captureLogs();
    const daemonUser = await ensureUser(TREE_DAEMON);
    const uid = daemonUser.uid;
    /** Kills what an earlier failed step left, so each step stands alone. */
    const sweep = async () => {
      for (const line of await processesOf(uid)) {
        await run(["kill", "-KILL", line.split(" ")[0]], { allowFail: true });
      }
    };
    const use = async (section: Record<string, unknown>) => {
      await treeCtx.stop();
      await sweep();
      init({
        configFiles: [
          await writeConfig(dir, {
            tree: {
              user: TREE_DAEMON,
              capabilities: [],
              permissions: { run: ["/bin/sh", "/bin/true"] },
              ...section,
            } as never,
          }),
        ],
      });
      return (await treeCtx.start()).pid;
    };
    let sudoers: string | undefined;
    try {
      await t.step(
        "cancel: a child that ignores SIGTERM and its grandchild that holds stdout are killed, and the call answers",
        async () => {
          const pid = await use({ concurrency: 2, on_stuck: "report" });
          const marker = nextMarker();
          const call = callWith({ timeout: 300 }, () => ops.stubborn(marker));
          await waitSleeping(uid, marker);
          await assert.rejects(call, PrivsepTimeout);
          // runCommand's grace (1 s) and then the kill of the whole tree.
          await waitNone(
            "the cancelled command's tree",
            () => processesOf(uid, `sleep ${marker}`),
            2_500,
          );
          const status = await treeCtx.status();
          assert.equal(status.running, 0, "the cancelled call answered");
          assert.equal(status.stuckNow, 0);
          assert.equal(treeCtx.daemon?.pid, pid, "no recycle needed");
        },
      );

      await t.step(
        "a finished command's background process is killed with the call",
        async () => {
          const pid = await use({});
          const marker = nextMarker();
          assert.equal(await ops.leaveBehind(marker), 0);
          await waitNone(
            "the finished command's group",
            () => processesOf(uid, `sleep ${marker}`),
            1_000,
          );
          assert.equal(treeCtx.daemon?.pid, pid);
        },
      );

      await t.step(
        "recycle: the blocked daemon's other call's tree is killed",
        async () => {
          const pid = await use({
            concurrency: 2,
            on_stuck: "recycle",
            cancel_grace_ms: 200,
          });
          const marker = nextMarker();
          const first = ops.stubborn(marker).catch((e) => e);
          await waitSleeping(uid, marker);
          await assert.rejects(
            callWith({ timeout: 200 }, () => ops.spin(120_000)),
            PrivsepTimeout,
          );
          // grace + 500 ms, then EOF (300 ms), SIGTERM (1 s), SIGKILL
          await waitGone(pid, 5_000);
          assert.ok((await first) instanceof Error, "the other call failed");
          await waitNone(
            "the recycled daemon's processes",
            () => processesOf(uid),
            2_000,
          );
        },
      );

      await t.step(
        "SIGKILL of the daemon kills its whole tree",
        async () => {
          const pid = await use({ concurrency: 2 });
          const marker = nextMarker();
          const call = ops.stubborn(marker).catch((e) => e);
          await waitSleeping(uid, marker);
          Deno.kill(pid, "SIGKILL");
          await waitGone(pid, 2_000);
          await waitNone(
            "the killed daemon's processes",
            () => processesOf(uid),
            2_000,
          );
          await call;
        },
      );

      await t.step(
        "a stopped daemon leaves nothing behind",
        async () => {
          await use({ concurrency: 2 });
          const marker = nextMarker();
          const call = ops.stubborn(marker).catch((e) => e);
          await waitSleeping(uid, marker);
          await treeCtx.stop();
          await waitNone(
            "the stopped daemon's processes",
            () => processesOf(uid),
            2_000,
          );
          await call;
        },
      );

      await t.step(
        "an unprivileged caller that sends SIGTERM to its sudo leaves nothing running",
        async () => {
          const home = `${dir}/home`;
          const caller = await ensureUser(TREE_CALLER, home);
          const config = await writeConfig(dir, {
            tree: {
              user: TREE_DAEMON,
              capabilities: [],
              permissions: { run: ["/bin/sh"] },
              launcher_dir: `${dir}/libexec`,
            },
          });
          await Deno.chmod(config, 0o644);
          const env = {
            HOME: home,
            USER: TREE_CALLER,
            PATH: "/usr/local/bin:/usr/bin:/bin",
            DENO_DIR: `${home}/.cache/deno`,
          };
          sudoers = await allowSudo(TREE_CALLER, config);
          await sweep();
          const marker = nextMarker();
          const out = await run([
            "setpriv",
            `--reuid=${caller.uid}`,
            `--regid=${caller.gid}`,
            "--init-groups",
            "--",
            DENO,
            "run",
            "-A",
            `--config=${ROOT}/deno.json`,
            `${ROOT}/tests/fixtures/tree_caller.ts`,
            config,
            "term",
            String(marker),
          ], { allowFail: true, env, cwd: home });
          assert.equal(out.code, 0, out.stderr);
          const { daemonPid } = JSON.parse(out.stdout);
          await waitGone(daemonPid, 3_000);
          await waitNone(
            "the daemon's processes after sudo's SIGTERM",
            () => processesOf(uid),
            2_000,
          );
        },
      );
    } finally {
      await treeCtx.stop();
      if (sudoers) await Deno.remove(sudoers).catch(() => {});
      // Nothing of the daemon's user may be left, whatever failed above.
      for (const line of await processesOf(uid)) {
        await run(["kill", "-KILL", line.split(" ")[0]], { allowFail: true });
      }
      await removeUser(TREE_CALLER);
      await removeUser(TREE_DAEMON);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);
