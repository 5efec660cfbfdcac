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
  testSudoersFile,
  testUser,
  waitGone,
  writeConfig,
} from "./_helpers.ts";

/** The context's user: every process of the daemon runs as this uid. */
const TREE_DAEMON = testUser(import.meta, "d");
/** The unprivileged caller of the sudo test. */
const TREE_CALLER = testUser(import.meta, "c");

/** tests/fixtures/tree_caller.ts's command line, before its arguments. */
const TREE_CALLER_ARGV = [
  DENO,
  "run",
  "-A",
  `--config=${ROOT}/deno.json`,
  `${ROOT}/tests/fixtures/tree_caller.ts`,
];

/**
 * A service user's watcher (Python, as that user): makes `<cgroup>/ice`,
 * frozen, and moves the first process of `<cgroup>` whose command line holds
 * "privsep-keeper-home" into it, within `<seconds>`.
 */
const WATCHER = `import os, sys, time
d = sys.argv[1]
ice = d + "/ice"
os.makedirs(ice, exist_ok=True)
open(ice + "/cgroup.freeze", "w").write("1")
end = time.time() + float(sys.argv[2])
print("ready", flush=True)
while time.time() < end:
    for p in open(d + "/cgroup.procs").read().split():
        try:
            cmd = open(f"/proc/{p}/cmdline", "rb").read()
        except OSError:
            continue
        if b"privsep-keeper-home" in cmd:
            try:
                open(ice + "/cgroup.procs", "w").write(p)
                print("froze", p, cmd.replace(b"\\0", b" ")[:200], flush=True)
                sys.exit(0)
            except OSError as e:
                print("move failed", p, e, flush=True)
print("none", flush=True)
`;

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
 * The cgroup2 hierarchy's mount point. Throws, saying which kernel feature is
 * missing, where there is none: a process that leaves its process group then
 * survives its daemon, and the steps that need it fail (never skip).
 */
function cgroup2Mount(): string {
  const info = Deno.readTextFileSync("/proc/self/mountinfo");
  for (const line of info.split("\n")) {
    const [mount, fs] = line.split(" - ");
    if (fs?.startsWith("cgroup2 ")) return mount.split(" ")[4];
  }
  throw new Error(
    "this kernel has no cgroup2 hierarchy mounted (cgroup v2, with cgroup.kill from Linux 5.14): a process that leaves its process group survives its call and its daemon here",
  );
}

/** This process's cgroup2 cgroup, as a directory below the cgroup2 mount. */
async function ownCgroupDir(): Promise<string> {
  const own = (await Deno.readTextFile("/proc/self/cgroup")).split("\n")
    .find((l) => l.startsWith("0::"))!.slice(3).replace(/\/$/, "");
  return `${cgroup2Mount()}${own}`;
}

/** `argv` run in the cgroup `dir`: a shell moves itself there, then execs. */
function inCgroup(dir: string, argv: string[]): string[] {
  return [
    "/bin/sh",
    "-c",
    'echo $$ >"$1/cgroup.procs" && shift && exec "$@"',
    "sh",
    dir,
    ...argv,
  ];
}

/**
 * Makes the cgroup `dir` (if missing) and gives it to `owner` as systemd's
 * Delegate=yes with User= does: the directory, its cgroup.procs,
 * cgroup.threads and cgroup.subtree_control.
 */
async function delegate(
  dir: string,
  owner: { uid: number; gid: number },
): Promise<void> {
  await Deno.mkdir(dir).catch((e) => {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
  });
  for (
    const f of [
      "",
      "/cgroup.procs",
      "/cgroup.threads",
      "/cgroup.subtree_control",
    ]
  ) await Deno.chown(`${dir}${f}`, owner.uid, owner.gid);
}

/** The daemon's cgroup (a directory below the cgroup2 mount). */
async function cgroupOf(pid: number): Promise<string> {
  const line = (await Deno.readTextFile(`/proc/${pid}/cgroup`)).split("\n")
    .find((l) => l.startsWith("0::"));
  assert.ok(line, `process ${pid} is in no cgroup2 cgroup`);
  const dir = cgroup2Mount() + line.slice(3).replace(/\/$/, "");
  assert.match(
    dir,
    new RegExp(`/privsep-${pid}$`),
    `the daemon ${pid} runs in a cgroup of its own`,
  );
  await Deno.stat(`${dir}/cgroup.kill`).catch(() => {
    throw new Error(
      `${dir} has no cgroup.kill: this kernel is older than Linux 5.14, and a process that leaves its process group survives its daemon here`,
    );
  });
  return dir;
}

/** Waits until `count` processes of `uid` run `sleep <marker>`. */
async function waitEscaped(uid: number, marker: number, count = 2) {
  for (let i = 0; i < 250; i++) {
    if ((await processesOf(uid, `sleep ${marker}`)).length >= count) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${count} sleep ${marker} did not start`);
}

Deno.test(
  "no process of a daemon outlives its call or its daemon",
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
    /** Daemons this file started (their cgroups go at the end). */
    const daemons = new Set<number>();
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
      const { pid } = await treeCtx.start();
      daemons.add(pid);
      return pid;
    };
    /**
     * Runs a call whose command leaves its session and waits, then `before`,
     * then SIGKILLs daemon `pid`: nothing of the daemon's user may be left.
     */
    const killWithEscaped = async (
      pid: number,
      before: () => Promise<void> = () => Promise.resolve(),
    ) => {
      const marker = nextMarker();
      const call = ops.escape(marker, true).catch((e) => e);
      await waitEscaped(uid, marker);
      await before();
      Deno.kill(pid, "SIGKILL");
      await waitGone(pid, 2_000);
      await waitNone(
        "the killed daemon's processes, the escaped one included",
        () => processesOf(uid),
        3_000,
      );
      assert.ok((await call) instanceof Error);
    };
    let sudoers: string | undefined;
    /** The cgroup of the callers of the last step (see there). */
    let callerCgroup: string | undefined;
    /** The cgroup delegated to the service user (see there). */
    let delegatedCgroup: string | undefined;
    /** A cgroup that allows none below it (see there). */
    let fullCgroup: string | undefined;
    /** A root-owned cgroup with a quota, and a delegated one below it. */
    let limitedCgroup: string | undefined;
    try {
      await t.step(
        "cancel: a child that ignores SIGTERM and its grandchild that holds stdout are killed, and the call answers",
        async () => {
          const pid = await use({ concurrency: 2, on_stuck: "report" });
          const marker = nextMarker();
          const call = callWith({ timeout: 300 }, () => ops.stubborn(marker));
          // Handled below; a failed wait must not leave it unhandled.
          call.catch(() => {});
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
        "a command cannot kill its daemon's keeper, and the keeper still kills the tree when the daemon dies",
        async () => {
          // Found by a review: a command killed the keeper (same user, and
          // the daemon's Landlock layer did not scope signals), so nothing
          // killed what escaped when the daemon ended.
          const pid = await use({ concurrency: 2 });
          const r = await ops.killKeeper();
          assert.ok(r.keeper > 0, `no keeper found: ${JSON.stringify(r)}`);
          assert.notEqual(r.code, 0, `the keeper was killed: ${r.stderr}`);
          assert.match(r.stderr, /Operation not permitted/, r.stderr);
          // Nor through its resource limits (found by a second review: the
          // kernel ends a process past its CPU limit, and a keeper without
          // descriptors cannot open cgroup.kill).
          assert.deepEqual(r.limits, [1, 1], r.stderr);
          await new Promise((r) => setTimeout(r, 1_500));
          await Deno.stat(`/proc/${r.keeper}`);
          assert.doesNotMatch(
            await Deno.readTextFile(`/proc/${r.keeper}/stat`),
            /\) Z /,
          );
          await killWithEscaped(pid);
        },
      );

      await t.step(
        "commands that read their keeper's channel cannot block the keeper: the daemon's SIGKILL still kills the tree",
        async () => {
          // Found by a review: a command (the daemon's user) could read the
          // keeper's FIFO and take a line between the keeper's wait and its
          // read; the keeper's read() then blocked for good, and sixteen
          // readers and a SIGKILL of the daemon left everything running. The
          // keeper's read end is non-blocking now.
          const pid = await use({ concurrency: 2 });
          assert.equal(await ops.stealKeeperLines(16), 16);
          // Lines for the keeper (each call's track and done) while the
          // readers wait on the FIFO too.
          await killWithEscaped(pid, async () => {
            for (let i = 0; i < 5; i++) await ops.stealKeeperLines(0);
          });
        },
      );

      await t.step(
        "a caller's oom_score_adj does not make the keeper the OOM killer's first choice",
        async () => {
          // Found by a review: sudo hands the caller's oom_score_adj (here
          // 1000) to stage 1, the keeper and the daemon; a daemon that could
          // lower its own left the keeper the first to be killed when its
          // cgroup ran out of memory, and what escaped lived on.
          const own = "/proc/self/oom_score_adj";
          const before = (await Deno.readTextFile(own)).trim();
          await Deno.writeTextFile(own, "1000");
          let pid: number;
          try {
            pid = await use({ concurrency: 2 });
          } finally {
            await Deno.writeTextFile(own, before);
          }
          const adj = (p: number | string) =>
            Number(Deno.readTextFileSync(`/proc/${p}/oom_score_adj`).trim());
          const keepers: number[] = [];
          for (const e of Deno.readDirSync("/proc")) {
            if (!/^\d+$/.test(e.name)) continue;
            try {
              const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
              const ppid = Number(
                stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1],
              );
              if (ppid === pid && stat.includes("(keeper-shell)")) {
                keepers.push(Number(e.name));
              }
            } catch { /* gone */ }
          }
          assert.equal(keepers.length, 1, `keepers of ${pid}: ${keepers}`);
          assert.equal(adj(pid), 1000, "the daemon keeps the caller's");
          assert.ok(adj(keepers[0]) <= 0, `the keeper's is ${adj(keepers[0])}`);
        },
      );

      await t.step(
        "a daemon whose writes are not confined cannot disarm its cgroup's kill, nor aim the OOM killer at its keeper",
        async () => {
          // Found by a review: stage 1 gave cgroup.kill to the daemon's user
          // (for the keeper), so the daemon could chmod it where its mounts
          // are writable; at the end the keeper could not write it, and a
          // command that left its session, and the command itself, lived on.
          const pid = await use({
            concurrency: 2,
            permissions: { run: ["/bin/sh", "/bin/true"], write: true },
          });
          await cgroupOf(pid);
          // Nor point the OOM killer at the keeper (found by a fourth
          // review: the keeper's /proc files were its user's, so a command
          // wrote 1000 to its oom_score_adj, made the cgroup run out of
          // memory, and the kernel killed the keeper first).
          const oom = await ops.raiseKeeperOom();
          assert.ok(oom.keeper > 0, oom.stderr);
          assert.notEqual(
            oom.code,
            0,
            "the keeper's oom_score_adj was written",
          );
          assert.match(oom.stderr, /Permission denied/, oom.stderr);
          assert.equal(
            (await Deno.readTextFile(`/proc/${oom.keeper}/oom_score_adj`))
              .trim(),
            "0",
          );
          const r = await ops.disarmCgroup();
          assert.notEqual(r.code, 9, r.stderr);
          await killWithEscaped(pid);
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

      /**
       * Runs tests/fixtures/tree_caller.ts `args` as an unprivileged caller
       * whose daemon starts through sudo, then waits until the daemon and
       * every process of its user are gone (`what` names them).
       */
      const throughSudo = async (
        args: string[],
        what: string,
        wrapper: string[] = [],
      ): Promise<Record<string, unknown>> => {
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
        sudoers ??= await installLaunchers({
          user: TREE_CALLER,
          configFiles: [config],
          specs: [treeCtx.id.replace("file://", "")],
          sudoersFile: testSudoersFile(import.meta),
        });
        await sweep();
        const out = await run([
          "setpriv",
          `--reuid=${caller.uid}`,
          `--regid=${caller.gid}`,
          "--init-groups",
          "--",
          ...wrapper,
          ...TREE_CALLER_ARGV,
          config,
          ...args,
        ], {
          allowFail: true,
          env: {
            HOME: home,
            USER: TREE_CALLER,
            PATH: "/usr/local/bin:/usr/bin:/bin",
            DENO_DIR: `${home}/.cache/deno`,
          },
          cwd: home,
        });
        assert.equal(out.code, 0, out.stderr);
        const result = JSON.parse(out.stdout);
        daemons.add(result.daemonPid);
        await waitGone(result.daemonPid, 3_000);
        await waitNone(what, () => processesOf(uid), 2_000);
        return result;
      };

      /**
       * An unprivileged caller starts `op` through sudo, waits for its
       * `sleep <marker>`, and sends SIGTERM to its own sudo.
       */
      const sudoTerm = async (op: "stubborn" | "escape") => {
        await throughSudo(
          ["term", String(nextMarker()), op],
          "the daemon's processes after sudo's SIGTERM",
        );
      };

      /** The caller's daemon blocks, then the caller SIGKILLs its sudo or exits. */
      const sudoBlocked = async (how: "kill" | "exit") => {
        await throughSudo(["blocked", how], "the blocked daemon's processes");
      };

      // Found by a review: a daemon that blocks its event loop never runs
      // its SIGTERM handler; sudo does not relay SIGKILL, and a caller that
      // is gone closes a stdin the daemon never reads: it ran on, with its
      // credentials, after every recycle.
      await t.step(
        "a blocked daemon ends when its caller SIGKILLs its sudo",
        () => sudoBlocked("kill"),
      );

      await t.step(
        "a blocked daemon ends when its caller exits",
        () => sudoBlocked("exit"),
      );

      await t.step(
        "an unprivileged caller that sends SIGTERM to its sudo leaves nothing running",
        () => sudoTerm("stubborn"),
      );

      await t.step(
        "an unprivileged caller that sends SIGTERM to its sudo leaves no process that left its session",
        async () => {
          cgroup2Mount();
          await sudoTerm("escape");
        },
      );

      await t.step(
        "a caller that stops its daemon's process group with ^Z and continues only the daemon leaves nothing running (a sixteenth review)",
        async () => {
          // The daemon's process group is in the caller's session. Given a
          // terminal, the caller stopped that group, the keeper with it;
          // SIGCONT crosses uids within a session, so it continued the
          // daemon alone and closed its stdin: the daemon ended, its keeper
          // stayed stopped, and what the daemon had started ran on for as
          // long as the caller kept its session. The keeper now has a
          // session of its own.
          cgroup2Mount();
          const r = await throughSudo(
            ["tstp", String(nextMarker())],
            "the daemon's processes after the ^Z attack",
            ["/usr/bin/python3", `${ROOT}/tests/fixtures/tstp_attack.py`],
          );
          assert.deepEqual(
            (r.afterTstp as { daemon: string }).daemon,
            "T",
            `the ^Z did not stop the daemon: ${JSON.stringify(r)}`,
          );
          assert.deepEqual(
            r.left,
            [],
            `still running 2.5 s after the daemon ended: ${JSON.stringify(r)}`,
          );
          // The caller ignored SIGHUP, SIGINT and SIGTERM: the keeper, whose
          // parent-death signal is SIGTERM, ignores none of them.
          const ignores = r.keeperIgnores as number[];
          assert.equal(ignores.length, 1, JSON.stringify(r));
          assert.equal(ignores[0] & 0x4003, 0, JSON.stringify(r));
        },
      );

      await t.step(
        "a command's process that left its session is killed with the call",
        async () => {
          const pid = await use({});
          cgroup2Mount();
          const marker = nextMarker();
          assert.equal(await ops.escape(marker, false), 0);
          await waitNone(
            "the finished command's escaped process",
            () => processesOf(uid, `sleep ${marker}`),
            1_000,
          );
          assert.equal(treeCtx.daemon?.pid, pid);
          await cgroupOf(pid);
        },
      );

      await t.step(
        "a process that left its session and named itself after the daemon is killed with the call",
        async () => {
          // Found by a second review: its name ") S <daemon pid>" and a
          // newline made the keeper, reading its /proc/<pid>/stat one line
          // at a time, take the daemon for its parent.
          const pid = await use({
            permissions: {
              run: ["/bin/sh", "/bin/true", "/usr/bin/perl"],
            },
          });
          cgroup2Mount();
          const marker = nextMarker();
          assert.equal(await ops.escapeNamed(marker), 0);
          await waitNone(
            "the finished command's escaped process",
            () => processesOf(uid, `sleep ${marker}`),
            1_000,
          );
          assert.equal(treeCtx.daemon?.pid, pid);
        },
      );

      await t.step(
        "cancel: a command's process that left its session is killed, and the call answers",
        async () => {
          const pid = await use({ concurrency: 2, on_stuck: "report" });
          cgroup2Mount();
          const marker = nextMarker();
          const call = callWith(
            { timeout: 300 },
            () => ops.escape(marker, true),
          );
          call.catch(() => {}); // handled below, even when the wait fails
          await waitEscaped(uid, marker);
          await assert.rejects(call, PrivsepTimeout);
          await waitNone(
            "the cancelled command's escaped process",
            () => processesOf(uid, `sleep ${marker}`),
            2_500,
          );
          const status = await treeCtx.status();
          assert.equal(status.running, 0, "the cancelled call answered");
          assert.equal(treeCtx.daemon?.pid, pid, "no recycle needed");
          await cgroupOf(pid);
        },
      );

      await t.step(
        "a running call's process that left its session outlives another call",
        async () => {
          await use({ concurrency: 2 });
          cgroup2Mount();
          const marker = nextMarker();
          const call = ops.escape(marker, true).catch((e) => e);
          await waitEscaped(uid, marker);
          assert.equal(await ops.runTrue(), 0);
          await new Promise((r) => setTimeout(r, 300));
          assert.equal(
            (await processesOf(uid, `sleep ${marker}`)).length,
            2,
            "the running call's processes are all there",
          );
          await treeCtx.stop();
          await call;
        },
      );

      await t.step(
        "SIGKILL of the daemon kills a process that left its session",
        async () => {
          const pid = await use({ concurrency: 2 });
          cgroup2Mount();
          const marker = nextMarker();
          const call = ops.escape(marker, true).catch((e) => e);
          await waitEscaped(uid, marker);
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
        "a stopped daemon leaves no process that left its session",
        async () => {
          await use({ concurrency: 2 });
          cgroup2Mount();
          const marker = nextMarker();
          const call = ops.escape(marker, true).catch((e) => e);
          await waitEscaped(uid, marker);
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
        "the daemon's commands cannot leave its cgroup",
        async () => {
          const pid = await use({});
          const cgroup = await cgroupOf(pid);
          const parent = cgroup.slice(0, cgroup.lastIndexOf("/"));
          assert.notEqual(await ops.moveTo(parent), 0, "moved to the parent");
          assert.notEqual(await ops.moveTo(cgroup), 0, "wrote cgroup.procs");
          assert.equal((await Deno.stat(`${cgroup}/cgroup.procs`)).uid, 0);
        },
      );

      await t.step(
        "the next daemon kills what a dead daemon whose keeper was killed left, and removes its cgroup",
        async () => {
          // Every stage 1 sweeps the cgroup it starts in, and other test
          // files start daemons in this process's cgroup all the time
          // (deno test --parallel): these daemons start from a caller in a
          // cgroup of this file's own, below this process's.
          await treeCtx.stop();
          await sweep();
          const config = await writeConfig(dir, {
            tree: {
              user: TREE_DAEMON,
              capabilities: [],
              permissions: { run: ["/bin/sh", "/bin/true"] },
              concurrency: 2,
            },
          });
          callerCgroup = `${await ownCgroupDir()}/tests-${TREE_DAEMON}`;
          await Deno.mkdir(callerCgroup).catch((e) => {
            if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
          });
          const caller = async (...args: string[]): Promise<number> => {
            const out = await run(inCgroup(callerCgroup!, [
              ...TREE_CALLER_ARGV,
              config,
              ...args,
            ]));
            const { daemonPid } = JSON.parse(out.stdout);
            daemons.add(daemonPid);
            return daemonPid;
          };
          const marker = nextMarker();
          const pid = await caller("orphan", String(marker));
          const cgroup = `${callerCgroup}/privsep-${pid}`;
          await waitGone(pid, 2_000);
          await new Promise((r) => setTimeout(r, 200));
          assert.ok(
            (await processesOf(uid, `sleep ${marker}`)).length > 0,
            "without its keeper, the escaped process outlived the daemon",
          );
          assert.ok((await Deno.stat(cgroup)).isDirectory, cgroup);
          await caller("start");
          await waitNone(
            "the dead daemon's escaped process",
            () => processesOf(uid, `sleep ${marker}`),
            2_000,
          );
          for (let i = 0; i < 40; i++) {
            if (!await Deno.stat(cgroup).then(() => true, () => false)) break;
            await new Promise((r) => setTimeout(r, 50));
          }
          await assert.rejects(Deno.stat(cgroup), Deno.errors.NotFound);
        },
      );

      await t.step(
        "a caller whose cgroup is delegated to a non-root user: no daemon cgroup is made there, and the daemon and doctor say why",
        async () => {
          // What systemd's Delegate=yes with User= does: the unit's cgroup,
          // its cgroup.procs, cgroup.threads and cgroup.subtree_control
          // become the user's. That user could move the daemon's processes
          // from a cgroup below into its own (found by a review: a process
          // that left its session, moved out so, outlived its daemon as uid 0
          // with its capability).
          await treeCtx.stop();
          await sweep();
          const owner = await ensureUser(TREE_CALLER);
          const config = await writeConfig(dir, {
            tree: {
              user: TREE_DAEMON,
              capabilities: [],
              permissions: { run: ["/bin/sh", "/bin/true"] },
            },
          });
          delegatedCgroup = `${await ownCgroupDir()}/tests-${TREE_CALLER}`;
          await delegate(delegatedCgroup, owner);
          const out = await run(inCgroup(delegatedCgroup, [
            ...TREE_CALLER_ARGV,
            config,
            "cgroup",
          ]));
          const { daemonPid, cgroup, warnings } = JSON.parse(out.stdout) as {
            daemonPid: number;
            cgroup: string;
            warnings: string[];
          };
          daemons.add(daemonPid);
          assert.match(
            cgroup,
            new RegExp(
              `^0::${delegatedCgroup.slice(cgroup2Mount().length)}$`,
              "m",
            ),
            "the daemon got a cgroup below the delegated one",
          );
          const made: string[] = [];
          for await (const e of Deno.readDir(delegatedCgroup)) {
            if (e.name.startsWith("privsep-")) made.push(e.name);
          }
          assert.deepEqual(made, [], "a daemon cgroup was made there");
          assert.ok(
            warnings.some((w) =>
              w.includes("without a cgroup of its own") &&
              w.includes(`is owned by uid ${owner.uid}`) &&
              w.includes("Delegate=yes")
            ),
            `no warning says why: ${JSON.stringify(warnings)}`,
          );
          // `privsep doctor`, run from the same cgroup, says so before any
          // daemon starts; from the test's own cgroup (root's), it does not.
          const doctor = async (cgroupDir?: string) => {
            const cli = [
              DENO,
              "run",
              "-A",
              `--config=${ROOT}/deno.json`,
              `${ROOT}/cli/privsep.ts`,
              "doctor",
              "--json",
              `--config-file=${config}`,
              `${ROOT}/tests/fixtures/tree/mod.ts#treeCtx`,
            ];
            const out = await run(
              cgroupDir ? inCgroup(cgroupDir, cli) : cli,
              { allowFail: true },
            );
            const checks = JSON.parse(out.stdout) as {
              check: string;
              ok: boolean;
              warn?: boolean;
              detail: string;
            }[];
            return checks.find((c) => c.check === "cgroup")!;
          };
          const there = await doctor(delegatedCgroup);
          assert.equal(there.ok, false, JSON.stringify(there));
          assert.equal(there.warn, true, JSON.stringify(there));
          assert.match(there.detail, new RegExp(`tests-${TREE_CALLER}`));
          assert.match(there.detail, /without a cgroup of their own/);
          assert.match(there.detail, /leave Delegate= off/);
          const here = await doctor();
          assert.equal(here.ok, true, JSON.stringify(here));
        },
      );

      await t.step(
        "without a daemon cgroup, the daemon cannot have its keeper kill itself (a seventeenth review)",
        async () => {
          // The keeper leads a group of its own (its session) and is the
          // daemon's child: `track` took it, and `KILL` by group number
          // (no cgroup to check against) killed it, so what the daemon
          // started outlived it.
          assert.ok(delegatedCgroup, "the step before made the cgroup");
          await treeCtx.stop();
          await sweep();
          const config = await writeConfig(dir, {
            tree: {
              user: TREE_DAEMON,
              capabilities: [],
              permissions: { run: ["/bin/sh", "/usr/bin/sleep"] },
            },
          });
          const out = await run(inCgroup(delegatedCgroup, [
            ...TREE_CALLER_ARGV,
            config,
            "selfkill",
          ]));
          const r = JSON.parse(out.stdout);
          daemons.add(r.daemonPid);
          assert.ok(r.keeper > 0, out.stdout);
          assert.equal(
            r.alive,
            true,
            `the keeper killed itself: ${out.stdout}`,
          );
        },
      );

      await t.step(
        "a caller whose cgroup is delegated cannot take the keeper away: what the daemon started dies with it (a twenty-sixth review)",
        async () => {
          // The delegated cgroup is the service user's: a process in it
          // may be moved into a cgroup of the user's own and killed there
          // (cgroup.kill) or frozen, whatever its uid. The keeper, started
          // there, was: then a command's process outlived its daemon, as
          // the daemon's user with its capabilities.
          assert.ok(delegatedCgroup, "the step before made the cgroup");
          await treeCtx.stop();
          await sweep();
          const owner = await ensureUser(TREE_CALLER);
          const config = await writeConfig(dir, {
            tree: {
              user: TREE_DAEMON,
              capabilities: [],
              permissions: { run: ["/bin/sh", "/usr/bin/sleep"] },
            },
          });
          const marker = nextMarker();
          const out = await run(inCgroup(delegatedCgroup, [
            ...TREE_CALLER_ARGV,
            config,
            "delegated",
            String(marker),
            `${owner.uid}:${owner.gid}`,
          ]));
          const r = JSON.parse(out.stdout) as {
            daemonPid: number;
            keeper: number;
            moved: boolean;
            attack: string;
            left: number[];
            own: string;
            daemonCgroup: string;
            keeperCgroup: string;
          };
          // The daemon serves in its caller's cgroup, under its limits:
          // stage 1 never left it (a third reading had a stage 1 that went
          // away to start the keeper, and could not come back, stuck
          // outside it).
          assert.equal(r.daemonCgroup, r.own, out.stdout);
          daemons.add(r.daemonPid);
          await Deno.remove(`${delegatedCgroup}/k`).catch(() => {});
          assert.deepEqual(
            r.left,
            [],
            `sleep ${marker} outlived its daemon: ${out.stdout}`,
          );
          assert.equal(
            r.moved,
            false,
            `the service user moved the keeper: ${out.stdout}`,
          );
          assert.notEqual(r.attack, "", out.stdout);
          // Where it ran: a root-owned cgroup out of the user's reach.
          const home = `${await ownCgroupDir()}/privsep-keepers`;
          assert.equal(`${cgroup2Mount()}${r.keeperCgroup}`, home);
          const st = await Deno.stat(home);
          assert.equal(st.uid, 0);
          assert.equal(st.mode! & 0o022, 0);
        },
      );

      await t.step(
        "a delegated caller that freezes the keeper before it reaches its home fails the start and leaves no root process behind (a reading)",
        async () => {
          // The keeper is spawned as root in the caller's cgroup and moves
          // itself out at once; before that, the user may move it into a
          // frozen cgroup of its own. The start then failed after 5 s, and
          // the root wrapper stayed, frozen, for as long as the user liked.
          assert.ok(delegatedCgroup, "the step before made the cgroup");
          await treeCtx.stop();
          await sweep();
          const owner = await ensureUser(TREE_CALLER);
          const config = await writeConfig(dir, {
            tree: {
              user: TREE_DAEMON,
              capabilities: [],
              permissions: { run: ["/bin/sh", "/bin/true"] },
            },
          });
          const wrappers = async () =>
            (await run(["pgrep", "-f", "privsep-keeper-home"], {
              allowFail: true,
            })).stdout.split("\n").filter((l) => l.trim() !== "");
          let froze = false;
          for (let attempt = 0; attempt < 8 && !froze; attempt++) {
            const watcher = new Deno.Command("setpriv", {
              args: [
                `--reuid=${owner.uid}`,
                `--regid=${owner.gid}`,
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
                WATCHER,
                delegatedCgroup,
                "8",
              ],
              stdout: "piped",
              stderr: "piped",
            }).spawn();
            const lines = watcher.stdout.pipeThrough(new TextDecoderStream())
              .getReader();
            const first: string = (await lines.read()).value ?? "";
            if (!/ready/.test(first)) {
              const stderr: string = await new Response(watcher.stderr).text();
              assert.fail(`the watcher did not start: ${first} ${stderr}`);
            }
            const out = await run(
              inCgroup(delegatedCgroup, [...TREE_CALLER_ARGV, config, "start"]),
              { allowFail: true },
            );
            let said = "";
            for (;;) {
              const { value, done } = await lines.read();
              if (done) break;
              said += value;
            }
            await watcher.status;
            // Whatever the interleaving, no root wrapper is left.
            assert.deepEqual(
              await wrappers(),
              [],
              `a root wrapper outlived the start: ${out.stdout} ${said}`,
            );
            if (out.code === 0) {
              // The keeper was out of reach before the watcher saw it, or
              // it moved itself home while the watcher moved it: either
              // way it runs there (the steps above check where).
              daemons.add(JSON.parse(out.stdout).daemonPid);
              continue;
            }
            assert.ok(said.includes("froze"), `${out.stderr} ${said}`);
            froze = true;
            assert.match(
              out.stderr,
              /keeper could not start out of that user's reach: it did not start in/,
            );
          }
          await Deno.writeTextFile(`${delegatedCgroup}/ice/cgroup.freeze`, "0")
            .catch(() => {});
          await Deno.writeTextFile(`${delegatedCgroup}/ice/cgroup.kill`, "1")
            .catch(() => {});
          await new Promise((r) => setTimeout(r, 200));
          await Deno.remove(`${delegatedCgroup}/ice`).catch(() => {});
          if (!froze) {
            console.log(
              "the watcher never caught the keeper before it left the delegated cgroup in 8 starts: this step checked nothing",
            );
          }
        },
      );

      await t.step(
        "a delegated caller that fills a cgroup.max.descendants above it sends the keeper further up; where no root-owned cgroup will take it, the start is refused (a second reading)",
        async () => {
          // The user could make the nearest privsep-keepers fail to be made
          // (it fills the quota of a limited cgroup above its own with
          // cgroups of its own), and the keeper then started in its reach
          // with a warning that only the caller, that user, saw.
          await treeCtx.stop();
          await sweep();
          const owner = await ensureUser(TREE_CALLER);
          const own = await ownCgroupDir();
          limitedCgroup = `${own}/tests-${TREE_CALLER}-top`;
          await Deno.mkdir(limitedCgroup).catch((e) => {
            if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
          });
          const deleg = `${limitedCgroup}/deleg`;
          await delegate(deleg, owner);
          await Deno.writeTextFile(
            `${limitedCgroup}/cgroup.max.descendants`,
            "3",
          );
          // deleg, k and f: the quota is full.
          await run([
            "setpriv",
            `--reuid=${owner.uid}`,
            `--regid=${owner.gid}`,
            "--clear-groups",
            "mkdir",
            `${deleg}/k`,
            `${deleg}/f`,
          ]);
          const config = await writeConfig(dir, {
            tree: {
              user: TREE_DAEMON,
              capabilities: [],
              permissions: { run: ["/bin/sh", "/usr/bin/sleep"] },
            },
          });
          const attack = async () =>
            await run(
              inCgroup(deleg, [
                ...TREE_CALLER_ARGV,
                config,
                "delegated",
                String(nextMarker()),
                `${owner.uid}:${owner.gid}`,
              ]),
              { allowFail: true },
            );
          const out = await attack();
          const r = JSON.parse(out.stdout);
          daemons.add(r.daemonPid);
          assert.deepEqual(r.left, [], `outlived its daemon: ${out.stdout}`);
          assert.equal(r.moved, false, out.stdout);
          // Every privsep-keepers stage 1 may use, made unsafe: refused.
          const homes: string[] = [];
          for (let d = own; d.startsWith(cgroup2Mount());) {
            homes.push(`${d}/privsep-keepers`);
            if (d === cgroup2Mount()) break;
            d = d.slice(0, d.lastIndexOf("/"));
          }
          const made: string[] = [];
          try {
            for (const home of homes) {
              await Deno.mkdir(home).then(() => made.push(home), () => {});
              await Deno.chmod(home, 0o775);
            }
            const refused = await attack();
            assert.notEqual(refused.code, 0, refused.stdout);
            assert.match(
              refused.stderr,
              /delegated to a user other than root, and the daemon's keeper could not start out of that user's reach \(.*Resource temporarily unavailable.*writable by its group/s,
            );
          } finally {
            for (const home of homes) {
              await Deno.chmod(home, 0o755).catch(() => {});
            }
            for (const home of made) await Deno.remove(home).catch(() => {});
          }
        },
      );

      await t.step(
        'where the daemon\'s cgroup cannot be made, best-effort says why and confinement "required" refuses the start',
        async () => {
          // A root-owned cgroup that allows no cgroup below it
          // (cgroup.max.descendants 0): mkdir fails there (EAGAIN).
          await treeCtx.stop();
          await sweep();
          fullCgroup = `${await ownCgroupDir()}/tests-${TREE_DAEMON}-full`;
          await Deno.mkdir(fullCgroup).catch((e) => {
            if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
          });
          await Deno.writeTextFile(
            `${fullCgroup}/cgroup.max.descendants`,
            "0",
          );
          const start = async (confinement: string) =>
            await run(
              inCgroup(fullCgroup!, [
                ...TREE_CALLER_ARGV,
                await writeConfig(dir, {
                  tree: {
                    user: TREE_DAEMON,
                    capabilities: [],
                    permissions: { run: ["/bin/sh", "/bin/true"] },
                    confinement,
                  },
                }),
                "cgroup",
              ]),
              { allowFail: true },
            );
          const best = await start("best-effort");
          assert.equal(best.code, 0, best.stderr);
          const { daemonPid, warnings } = JSON.parse(best.stdout) as {
            daemonPid: number;
            warnings: string[];
          };
          daemons.add(daemonPid);
          assert.ok(
            warnings.some((w) =>
              w.includes("without a cgroup of its own") &&
              w.includes("mkdir(")
            ),
            `no warning says why: ${JSON.stringify(warnings)}`,
          );
          const required = await start("required");
          assert.notEqual(required.code, 0, required.stdout);
          assert.match(
            required.stderr,
            /confinement = "required" but the daemon's cgroup could not be made: mkdir\(.*\): Resource temporarily unavailable/,
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
      // The cgroups of this file's daemons, all gone now.
      const own = (await Deno.readTextFile("/proc/self/cgroup")).split("\n")
        .find((l) => l.startsWith("0::"))?.slice(3);
      for (const pid of daemons) {
        await Deno.remove(`${cgroup2Mount()}${own}/privsep-${pid}`)
          .catch(() => {});
        for (const parent of [callerCgroup, delegatedCgroup]) {
          if (parent) {
            await Deno.remove(`${parent}/privsep-${pid}`).catch(() => {});
          }
        }
      }
      if (callerCgroup) await Deno.remove(callerCgroup).catch(() => {});
      // Made by the delegated caller's keepers (empty once they are gone).
      await Deno.remove(`${await ownCgroupDir()}/privsep-keepers`)
        .catch(() => {});
      if (fullCgroup) await Deno.remove(fullCgroup).catch(() => {});
      if (limitedCgroup) {
        for (const d of ["deleg/k", "deleg/f", "deleg", ""]) {
          await Deno.remove(`${limitedCgroup}/${d}`).catch(() => {});
        }
      }
      if (delegatedCgroup) {
        await Deno.writeTextFile(`${delegatedCgroup}/ice/cgroup.kill`, "1")
          .catch(() => {});
        await Deno.remove(`${delegatedCgroup}/ice`).catch(() => {});
        await Deno.remove(`${delegatedCgroup}/k`).catch(() => {});
        await Deno.remove(delegatedCgroup).catch(() => {});
      }
      await removeUser(TREE_CALLER);
      await removeUser(TREE_DAEMON);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);
