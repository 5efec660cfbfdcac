// Fault injection with a real daemon: what the caller sees, and what is left
// behind, when a side dies, stops, stops reading or cannot start. Faults
// already covered elsewhere are not repeated here: daemon SIGKILL mid-call
// and the idle caller's death (channel_test.ts), a missing user, group or
// libcap (privileges_test.ts), `sudo -n` without a rule (sudo_test.ts).
import assert from "node:assert/strict";
import {
  ConfigError,
  FailedToDropPrivileges,
  init,
  PrivContext,
  PrivsepTimeout,
} from "../mod.ts";
import { encodeMessage, Kind } from "../protocol/messages.ts";
import { concatFrames } from "../protocol/frame.ts";
import { testCtx } from "./fixtures/privsep/mod.ts";
import * as ops from "./fixtures/privsep/ops.ts";
import * as stress from "./fixtures/privsep/stress.ts";
import {
  childrenOf,
  DENO,
  ensureUser,
  removeUser,
  requireRoot,
  ROOT,
  run,
  scratchDir,
  testUser,
  waitGone,
  writeConfig,
} from "./_helpers.ts";
import { procKb, RawDaemon, withTimeout } from "../reliability/_raw.ts";

/** This file's own unprivileged caller. */
const CALLER_USER = testUser(import.meta, "c");

/** A context that always starts through its helper command (even as root). */
export const viaHelper = new PrivContext({
  module: import.meta,
  name: "viaHelper",
  cfgSection: "faults_helper",
  capabilities: [],
  startMethod: "sudo",
});

/** Pids whose command line contains `needle` (not our own pgrep). */
async function pgrep(needle: string): Promise<number[]> {
  const out = await run(["pgrep", "-f", "--", needle], { allowFail: true });
  return out.stdout.trim().split("\n").filter(Boolean).map(Number);
}

/** Starts reliability/fault_caller.ts; returns it and the daemon's pid. */
async function startCaller(config: string, mode: string, arg: string) {
  const caller = new Deno.Command(DENO, {
    args: [
      "run",
      "-A",
      `${ROOT}/reliability/fault_caller.ts`,
      config,
      mode,
      arg,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = caller.stdout.getReader();
  const { value } = await withTimeout(reader.read(), 20_000, "fault_caller");
  reader.releaseLock();
  const { pid } = JSON.parse(new TextDecoder().decode(value));
  return { caller, pid: pid as number };
}

Deno.test("faults", async (t) => {
  requireRoot();
  const dir = await scratchDir();
  const use = async (section: Record<string, unknown>) => {
    await testCtx.stop();
    const config = await writeConfig(dir, {
      e2e: { user: "root", capabilities: [], ...section } as never,
    });
    init({ configFiles: [config] });
    return config;
  };
  // A daemon of testCtx driven frame by frame, past its hello.
  const withDaemon = async (
    section: Record<string, unknown>,
    body: (d: RawDaemon) => Promise<void>,
  ) => {
    await use(section);
    const d = new RawDaemon(testCtx.command());
    try {
      await d.handshake();
      await body(d);
    } finally {
      await d.kill();
    }
  };
  try {
    await t.step(
      "caller SIGKILL mid-call: the daemon is gone within 1 s, no daemon is left",
      async () => {
        const config = await use({});
        const { caller, pid } = await startCaller(config, "sleep", "30000");
        caller.kill("SIGKILL");
        await caller.status;
        await caller.stdout.cancel();
        const waited = await waitGone(pid, 1000);
        assert.ok(waited < 1000, `${waited} ms`);
        // This caller's daemon only: other test files run daemons of
        // testCtx at the same time (deno test --parallel). Stage 1 names
        // this file's config, the serving stage its caller's pid.
        const left = [
          ...await pgrep(`--context=${testCtx.id} .*--config-file=${config}`),
          ...await pgrep(
            `--context=${testCtx.id} .*--caller-pid=${caller.pid}( |$)`,
          ),
        ];
        assert.deepEqual(left, [], "no leftover daemon of this caller");
      },
    );

    await t.step(
      "daemon SIGSTOP mid-call: calls in flight time out promptly, the stopped daemon is recycled, the next call restarts",
      async () => {
        await use({ timeout_ms: 500, cancel_grace_ms: 300 });
        const pid = (await testCtx.start()).pid;
        const calls = Array.from({ length: 8 }, () => ops.sleep(300));
        await new Promise((r) => setTimeout(r, 50));
        Deno.kill(pid, "SIGSTOP");
        try {
          const t0 = performance.now();
          const settled = await Promise.allSettled(calls);
          const ms = performance.now() - t0;
          for (const s of settled) {
            assert.equal(s.status, "rejected");
            assert.ok(
              (s as PromiseRejectedResult).reason instanceof PrivsepTimeout,
              String((s as PromiseRejectedResult).reason),
            );
          }
          assert.ok(ms < 1_500, `${ms} ms`);
          // Timeout + grace + margin, then SIGTERM (pending while stopped),
          // then SIGKILL a second later.
          const gone = await waitGone(pid, 5_000);
          assert.ok(gone < 4_000, `${gone} ms`);
          const next = await ops.daemonPid();
          assert.notEqual(next, pid);
        } finally {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch { /* gone */ }
        }
      },
    );

    await t.step(
      "the daemon's stdout closed while a 15 MiB reply is being written: the daemon exits at once, cleanly",
      () =>
        withDaemon({}, async (d) => {
          d.pause();
          await d.write(
            encodeMessage([Kind.Call, 1, "stress.ts#bigReply", [15 << 20]]),
          );
          // Let it fill the pipe and block in its write.
          await new Promise((r) => setTimeout(r, 500));
          assert.equal(d.status, undefined, "still running, blocked");
          await d.closeStdout();
          const t0 = performance.now();
          const status = await d.waitExit(2_000);
          assert.ok(performance.now() - t0 < 2_000);
          assert.equal(status.code, 0, d.stderr);
          assert.equal(d.stderr.trim(), "");
        }),
    );

    await t.step(
      "a caller that stops reading: the daemon keeps only the replies it owes, and they all arrive once it reads again",
      () =>
        withDaemon({ concurrency: 8 }, async (d) => {
          await d.write(encodeMessage([Kind.Call, 1, "ops.ts#echo", [0]]));
          await d.waitFor((m) => m.kind === Kind.Result, 10_000, "warm-up");
          const before = procKb(d.pid, "VmRSS")!;
          d.pause();
          const owed = 64;
          const size = 1 << 20;
          for (let id = 2; id < 2 + owed; id++) {
            await d.write(
              encodeMessage([Kind.Call, id, "stress.ts#bigReply", [size]]),
            );
          }
          await new Promise((r) => setTimeout(r, 1_500));
          const during = procKb(d.pid, "VmRSS")!;
          const growthMiB = (during - before) / 1024;
          // Bounded by what it owes (64 MiB), not more.
          assert.ok(
            growthMiB < (owed * size) / 2 ** 20 * 2 + 64,
            `daemon RSS grew by ${growthMiB.toFixed(0)} MiB`,
          );
          d.resume();
          for (let id = 2; id < 2 + owed; id++) {
            const m = await d.waitFor(
              (m) => "id" in m && m.id === id,
              20_000,
              `reply ${id}`,
            );
            assert.equal(m.kind, Kind.Result);
            assert.equal((m as { value: Uint8Array }).value.length, size);
          }
        }),
    );

    await t.step(
      "large results of small calls: the daemon frees them after each call",
      () =>
        withDaemon({}, async (d) => {
          const size = 8 << 20;
          let id = 1;
          const bigCall = async () => {
            const want = id++;
            await d.write(
              encodeMessage([Kind.Call, want, "stress.ts#bigReply", [size]]),
            );
            await d.waitFor(
              (m) => "id" in m && m.id === want && m.kind === Kind.Result,
              20_000,
              `reply ${want}`,
            );
          };
          // Once for what stays: code, heap growth, malloc's kept memory.
          await bigCall();
          await new Promise((r) => setTimeout(r, 300));
          const before = procKb(d.pid, "RssAnon")!;
          for (let i = 0; i < 6; i++) await bigCall();
          await new Promise((r) => setTimeout(r, 300));
          const growthMiB = (procKb(d.pid, "RssAnon")! - before) / 1024;
          // Six 8 MiB results kept until V8 collects by itself: ~48 MiB.
          assert.ok(
            growthMiB < 16,
            `daemon RssAnon grew by ${growthMiB.toFixed(0)} MiB`,
          );
        }),
    );

    await t.step(
      "a large reply does not hold back a call read with it: the call runs while the caller does not read",
      () =>
        withDaemon({}, async (d) => {
          d.pause();
          // One write, two calls: a 15 MiB reply (more than the pipe
          // holds), then a call that says when it started.
          await d.write(concatFrames([
            encodeMessage([Kind.Call, 1, "stress.ts#bigReply", [15 << 20]]),
            encodeMessage([Kind.Call, 2, "stress.ts#startedAt", [0]]),
          ]));
          await new Promise((r) => setTimeout(r, 1_000));
          const resumed = Date.now();
          d.resume();
          const reply = await d.waitFor(
            (m) => "id" in m && m.id === 2,
            10_000,
            "reply 2",
          );
          assert.equal(reply.kind, Kind.Result);
          const started = Number((reply as { value: unknown }).value);
          // Before: the daemon started call 2 only once reply 1 was read.
          // The daemon's clock is this one's (same machine): a time, not a
          // duration, so a busy machine cannot fail it.
          assert.ok(
            started < resumed,
            `call 2 started ${started - resumed} ms after reading resumed`,
          );
        }),
    );

    await t.step(
      "stop() while the daemon writes a 15 MiB reply: the daemon leaves at once, no SIGTERM needed",
      async () => {
        await use({});
        // Catch the daemon inside the write of the reply (the caller is
        // reading it), then stop: the caller stops reading.
        let caught = false;
        for (let attempt = 0; attempt < 10 && !caught; attempt++) {
          const pid = (await testCtx.start()).pid;
          let answered = false;
          const call = stress.bigReply(15 << 20).then(
            () => answered = true,
            () => undefined,
          );
          const deadline = performance.now() + 5_000;
          while (!answered && performance.now() < deadline) {
            const syscall = await Deno.readTextFile(`/proc/${pid}/syscall`)
              .catch(() => "");
            if (syscall.startsWith("1 ")) {
              caught = true;
              break;
            }
          }
          const t0 = performance.now();
          await testCtx.stop();
          const stopMs = performance.now() - t0;
          await call;
          if (!caught) continue;
          const gone = await waitGone(pid, 2_000);
          // Before: the daemon stayed blocked in its write until close()
          // sent SIGTERM, 1 s after EOF.
          assert.ok(stopMs < 500, `stop() took ${stopMs.toFixed(0)} ms`);
          assert.ok(gone < 500, `daemon gone after ${gone} ms`);
        }
        assert.ok(caught, "never caught the daemon inside its write");
      },
    );

    await t.step(
      "a helper command that does not exist: a clear error at once",
      async () => {
        const config = await writeConfig(dir, {
          faults_helper: {
            helper_command: ["/nonexistent/privsep-test/sudo", "-n"],
          },
        });
        init({ configFiles: [config] });
        await assert.rejects(
          withTimeout(viaHelper.start(), 10_000, "start"),
          (e: unknown) => {
            assert.ok(e instanceof FailedToDropPrivileges, String(e));
            assert.match(
              e.message,
              /"\/nonexistent\/privsep-test\/sudo" was not found/,
            );
            assert.match(e.message, /apt-get install sudo/);
            return true;
          },
        );
      },
    );

    await t.step(
      "a config file that is missing, a directory, or not TOML: a ConfigError naming file and cause",
      async () => {
        const tomlDir = `${dir}/a-directory.toml`;
        await Deno.mkdir(tomlDir);
        const invalid = `${dir}/invalid.toml`;
        await Deno.writeTextFile(invalid, "[e2e]\nuser = \n");
        const binary = `${dir}/binary.toml`;
        await Deno.writeFile(binary, new Uint8Array([0xff, 0xfe, 0x00, 0x5b]));
        for (
          const [file, cause] of [
            [`${dir}/missing.toml`, /No such file or directory/],
            [tomlDir, /Is a directory/],
            [invalid, /TOML|invalid|Invalid|unexpected/],
            [binary, /TOML|UTF-8|invalid|Invalid|unexpected|decode/],
          ] as const
        ) {
          await testCtx.stop();
          init({ configFiles: [file] });
          await assert.rejects(
            withTimeout(testCtx.start(), 10_000, "start"),
            (e: unknown) => {
              assert.ok(e instanceof ConfigError, `${file}: ${e}`);
              assert.ok(e.message.includes(file), e.message);
              assert.match(e.message, cause);
              return true;
            },
          );
        }
      },
    );

    await t.step(
      "as an unprivileged user: an unreadable config, and sudo that wants a password without a terminal; a clear error, never a hang",
      async () => {
        const home = `${dir}/home`;
        try {
          const caller = await ensureUser(CALLER_USER, home);
          const env = {
            HOME: home,
            USER: CALLER_USER,
            PATH: "/usr/local/bin:/usr/bin:/bin",
            DENO_DIR: `${home}/.cache/deno`,
          };
          const asCaller = (config: string) =>
            run([
              "timeout",
              "60",
              "setpriv",
              `--reuid=${caller.uid}`,
              `--regid=${caller.gid}`,
              "--init-groups",
              "--",
              DENO,
              "run",
              "-A",
              `--config=${ROOT}/deno.json`,
              `${ROOT}/reliability/fault_caller.ts`,
              config,
              "start",
            ], { allowFail: true, env, cwd: home });

          const secret = await writeConfig(dir, {
            e2e: { user: "root", capabilities: [] },
          });
          await Deno.chmod(secret, 0o600);
          const unreadable = await asCaller(secret);
          assert.notEqual(unreadable.code, 124, "timed out");
          assert.match(unreadable.stdout, /ConfigError/);
          assert.ok(unreadable.stdout.includes(secret), unreadable.stdout);
          assert.match(unreadable.stdout, /Permission denied/);

          // No -n: sudo would ask for a password, and has no terminal.
          const prompting = await writeConfig(dir, {
            e2e: {
              user: "root",
              capabilities: [],
              helper_command: ["sudo"],
            },
          });
          const t0 = performance.now();
          const out = await asCaller(prompting);
          assert.notEqual(out.code, 124, "timed out");
          assert.ok(performance.now() - t0 < 30_000);
          assert.match(out.stdout, /FailedToDropPrivileges/);
          assert.match(out.stdout, /terminal is required|password/);
          assert.match(out.stdout, / install --user=/);
          assert.match(
            out.stdout,
            /CWD=\/ NOPASSWD: sha256:[0-9a-f]{64} \S+\/testCtx-[0-9a-f]{12} /,
          );
        } finally {
          await removeUser(CALLER_USER);
        }
      },
    );
  } finally {
    await testCtx.stop();
    await viaHelper.stop();
    init({ configFiles: [] });
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "caller SIGKILL during a runCommand() call leaves no child running (was bug 3 in reliability/REPORT.md)",
  fn: async () => {
    const dir = await scratchDir();
    try {
      const config = await writeConfig(dir, {
        e2e: {
          user: "root",
          capabilities: [],
          permissions: { run: ["/usr/bin/sleep"] },
        },
      });
      const { caller, pid } = await startCaller(config, "sleep-command", "37");
      // (the daemon also has its process keeper as a child)
      const children = await childrenOf(pid, "/usr/bin/sleep 37");
      assert.equal(children.length, 1);
      caller.kill("SIGKILL");
      await caller.status;
      await caller.stdout.cancel();
      await waitGone(pid, 1000);
      try {
        await waitGone(children[0], 2000);
      } finally {
        try {
          Deno.kill(children[0], "SIGKILL");
        } catch { /* gone */ }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
