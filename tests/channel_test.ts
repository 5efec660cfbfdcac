// The channel with a real daemon: results, remote errors, what may be called,
// forwarded logs, many calls in flight, and what happens when a side dies.
import assert from "node:assert/strict";
import { reset } from "@logtape/logtape";
import {
  callWith,
  DaemonExitedError,
  init,
  PrivsepTimeout,
  ProtocolError,
  RemoteError,
} from "../mod.ts";
import { DaemonClient } from "../contexts/_client.ts";
import { WARM_UP_NAMES } from "../protocol/messages.ts";
import { WARM_KEY } from "../daemon/_warm_session.ts";
import { otherCtx, testCtx } from "./fixtures/privsep/mod.ts";
import * as ops from "./fixtures/privsep/ops.ts";
import * as other from "./fixtures/privsep/other/other.ts";
import * as noisy from "./fixtures/noisy/mod.ts";
import {
  captureLogs,
  DENO,
  requireRoot,
  ROOT,
  run,
  scratchDir,
  waitGone,
  writeConfig,
} from "./_helpers.ts";

Deno.test("daemon channel", async (t) => {
  requireRoot();
  const dir = await scratchDir();
  const config = await writeConfig(dir, {
    e2e: { user: "root", capabilities: [], concurrency: 8 },
    e2e_other: { user: "root", capabilities: [] },
    e2e_noisy: { user: "root", capabilities: [] },
  });
  init({ configFiles: [config] });
  const records = await captureLogs();
  // The messages of the records the daemon sent (the caller's privsep.daemon).
  const daemonMessages = () =>
    records.filter((r) => r.category.join(".") === "privsep.daemon").map((r) =>
      r.message.join("")
    );
  try {
    await t.step("values of every msgpack type travel both ways", async () => {
      const value = {
        s: "ünïcødé",
        n: 1.5,
        i: -7,
        big: 2n ** 60n,
        b: true,
        nil: null,
        bytes: new Uint8Array([0, 1, 255]),
        list: [1, [2, [3]]],
        date: new Date(0),
      };
      assert.deepEqual(await ops.echo(value), value);
      const big = new Uint8Array(1024 * 1024).fill(7);
      assert.deepEqual(await ops.echo(big), big);
    });

    await t.step(
      "a new daemon is warmed up through the channel before the first call, which alone is audited and counted",
      async () => {
        const warmed = records.filter((r) =>
          r.category.join(".") === "privsep.client" &&
          String(r.rawMessage).startsWith("warmed up")
        );
        assert.equal(warmed.length, 1, "one daemon started, one warm-up");
        assert.ok((warmed[0].properties.calls as number) > 0);
        assert.ok(
          !records.some((r) =>
            r.category.join(".") === "privsep.audit" &&
            WARM_UP_NAMES.includes(String(r.properties.entrypoint))
          ),
        );
        // The two echo calls of the step before.
        assert.equal((await testCtx.status()).completed, 2);
      },
    );

    await t.step(
      "64 calls in flight complete, each with its own reply",
      async () => {
        const delays = Array.from({ length: 64 }, (_, i) => (i * 7) % 40);
        const results = await Promise.all(delays.map((ms) => ops.sleep(ms)));
        assert.deepEqual(results, delays);
      },
    );

    await t.step(
      'a permission error says what works: permissions = "all" for /proc, the context\'s list otherwise',
      async () => {
        await assert.rejects(
          ops.readAsync("/proc/self/status"),
          (e: unknown) => {
            assert.ok(e instanceof RemoteError, String(e));
            assert.equal(e.remoteName, "NotCapable");
            assert.match(
              e.message,
              /^Requires read access to "\/proc\/self\/status": /,
            );
            assert.match(
              e.message,
              /permissions = "all" of the context testCtx \(in its TOML section \[e2e\]/,
            );
            assert.doesNotMatch(e.message, /--allow-read flag|run again/);
            return true;
          },
        );
        await assert.rejects(ops.readAsync("/etc/hostname"), (e: unknown) => {
          assert.ok(e instanceof RemoteError, String(e));
          assert.match(
            e.message,
            /add it to permissions\.read of the context testCtx \(in its TOML section \[e2e\]/,
          );
          assert.doesNotMatch(e.message, /run again/);
          return true;
        });
      },
    );

    await t.step(
      "an error of a class that does not set name arrives under its class's name",
      async () => {
        await assert.rejects(ops.fail("class"), (e: unknown) => {
          assert.ok(e instanceof RemoteError);
          assert.equal(e.remoteName, "NotFoundError");
          assert.equal(e.cause.name, "NotFoundError");
          assert.equal(e.message, "no such thing");
          assert.equal(e.entrypoint, "ops.ts#fail");
          assert.equal(String(e), "RemoteError: no such thing");
          return true;
        });
      },
    );

    await t.step(
      "a remote exception comes back with name, message, code and data",
      async () => {
        await assert.rejects(ops.fail("custom"), (e: unknown) => {
          assert.ok(e instanceof RemoteError);
          assert.equal(e.remoteName, "CustomError");
          assert.equal(e.code, "E_CUSTOM");
          assert.deepEqual(e.data, { n: 1 });
          assert.equal(e.cause.message, "custom failure");
          assert.equal(e.message, "custom failure", "the message unchanged");
          assert.equal(e.entrypoint, "ops.ts#fail");
          assert.equal(
            e.cause.stack,
            undefined,
            "stacks only with log_daemon_traceback",
          );
          return true;
        });
        await assert.rejects(ops.fail("x"), {
          name: "RemoteError",
          remoteName: "RangeError",
          message: "out of range: x",
        });
      },
    );

    await t.step("only entrypoints of this context can be called", async () => {
      const argv = testCtx.command();
      const client = await DaemonClient.start({
        context: testCtx.id,
        argv,
        maxFrameBytes: 1 << 24,
        daemonLogger: ["privsep", "daemon"],
        onGone: () => {},
        startHint: () => "",
      });
      try {
        assert.equal(
          await client.call("ops.ts#echo", ["raw"], undefined),
          "raw",
        );
        for (
          const name of [
            "ops.ts#helper", // exported, not an entrypoint
            "other/other.ts#otherOp", // another context's entrypoint
            "../../../mod.ts#init",
            "file:///etc/passwd#x",
            "ops.ts#constructor",
            "ops.ts#__proto__",
            WARM_KEY, // the daemon's warm-up function (daemon/_warm_session.ts)
            ...WARM_UP_NAMES, // after the first call of the application
            "",
          ]
        ) {
          await assert.rejects(
            client.call(name, [], undefined),
            (e: unknown) => {
              assert.ok(e instanceof RemoteError, name);
              assert.equal(e.remoteName, "NotAnEntrypoint");
              return true;
            },
          );
        }
        assert.equal(
          await client.call("ops.ts#echo", ["still fine"], undefined),
          "still fine",
        );
      } finally {
        await client.close();
      }
      // Through its own context, the other function works.
      assert.equal(await other.otherOp(), "other");
      assert.deepEqual(otherCtx.entrypoints(), ["other.ts#otherOp"]);
    });

    await t.step(
      "daemon logs and console output reach the caller's category",
      async () => {
        records.length = 0;
        assert.equal(await ops.logMessage("hello"), "logged");
        await ops.echo(1); // the log frames precede this reply
        const forwarded = records.filter((r) =>
          r.category.join(".") === "privsep.daemon"
        );
        const messages = forwarded.map((r) => r.message.join(""));
        assert.ok(
          messages.includes('ops says "hello"') ||
            messages.includes("ops says hello"),
          messages.join(" | "),
        );
        assert.ok(
          messages.includes("console says hello"),
          messages.join(" | "),
        );
        assert.ok(
          forwarded.some((r) => r.properties.daemonCategory === "app.ops"),
        );
        // Below the context's log_level (default "info"): never sent, so the
        // service account never holds them, whatever its LogTape keeps.
        assert.ok(
          !messages.some((m) => m.includes("whispers")),
          messages.join(" | "),
        );
      },
    );

    await t.step(
      "console methods that print to stdout in Deno (dir, table, count, time, assert) become records and leave the channel whole",
      async () => {
        records.length = 0;
        const pid = (await testCtx.start()).pid;
        assert.equal(await ops.consoleEverything("zq"), "printed");
        assert.equal(await ops.echo("after"), "after");
        assert.equal(testCtx.daemon?.pid, pid, "the same daemon");
        const messages = daemonMessages();
        for (
          const part of [
            'dir: "zq"',
            '"dirxml":"zq"',
            'table: "zq"',
            "zq: 1",
            "ms timeLog",
            "Assertion failed: assert zq",
          ]
        ) {
          assert.ok(
            messages.some((m) => m.includes(part)),
            `${part} not in ${messages.join(" | ")}`,
          );
        }
      },
    );

    await t.step(
      "a context module's top-level console output is sent once, from the serving stage, at the log level; the first stage's would break the channel",
      async () => {
        records.length = 0;
        try {
          assert.equal(await noisy.ping(), "pong");
        } finally {
          await noisy.noisyCtx.stop();
        }
        const messages = daemonMessages();
        assert.equal(
          messages.filter((m) => m === "noisy module loaded").length,
          1,
          messages.join(" | "),
        );
        assert.ok(messages.includes('{ noisy: "dir" }'), messages.join(" | "));
        assert.ok(
          !messages.some((m) => m.includes("noisy module debug")),
          messages.join(" | "),
        );
      },
    );

    await t.step(
      'log_level = "debug" sends the daemon\'s debug records and console.debug too',
      async () => {
        await testCtx.stop();
        init({
          configFiles: [
            await writeConfig(dir, {
              e2e: { user: "root", capabilities: [], log_level: "debug" },
            }),
          ],
        });
        try {
          records.length = 0;
          assert.equal(await ops.logMessage("hi"), "logged");
          await ops.echo(1);
          const messages = daemonMessages();
          for (const m of ['ops whispers "hi"', "console whispers hi"]) {
            assert.ok(
              messages.includes(m) ||
                messages.includes(m.replaceAll('"', "")),
              `${m} not in ${messages.join(" | ")}`,
            );
          }
        } finally {
          await testCtx.stop();
          init({ configFiles: [config] });
        }
      },
    );

    await t.step(
      "a call that does not answer in time rejects with PrivsepTimeout; the late reply is dropped",
      async () => {
        await testCtx.stop();
        init({
          configFiles: [
            await writeConfig(dir, {
              e2e: { user: "root", capabilities: [], timeout_ms: 300 },
            }),
          ],
        });
        try {
          // Started first: the bound is the call's, not the daemon's start
          // (slow on a busy machine, with other test files in parallel).
          await testCtx.start();
          const started = performance.now();
          await assert.rejects(ops.sleep(1_000), (e: unknown) => {
            assert.ok(e instanceof PrivsepTimeout);
            assert.equal(e.entrypoint, "ops.ts#sleep");
            assert.equal(e.context, testCtx.id);
            assert.ok(
              e.elapsedMs >= 300 && e.elapsedMs < 1_300,
              String(e.elapsedMs),
            );
            return true;
          });
          assert.ok(performance.now() - started < 1_300);
          // The daemon answers later; the reply must not reach anyone.
          await new Promise((r) => setTimeout(r, 900));
          assert.equal(await ops.echo("after"), "after");
        } finally {
          await testCtx.stop();
          init({ configFiles: [config] });
        }
      },
    );

    await t.step(
      "with log_daemon_traceback the remote stack comes back and is logged",
      async () => {
        init({
          configFiles: [
            await writeConfig(dir, {
              e2e: {
                user: "root",
                capabilities: [],
                log_daemon_traceback: true,
              },
            }),
          ],
        });
        try {
          records.length = 0;
          await assert.rejects(ops.fail("x"), (e: unknown) => {
            assert.ok(e instanceof RemoteError);
            assert.match(e.cause.stack ?? "", /ops\.ts/);
            return true;
          });
          await ops.echo(1);
          assert.ok(
            records.some((r) =>
              r.level === "error" &&
              r.message.join("").includes("ops.ts#fail failed")
            ),
          );
        } finally {
          await testCtx.stop();
          init({ configFiles: [config] });
        }
      },
    );

    await t.step(
      "killing the daemon rejects calls in flight, and the next call restarts it",
      async () => {
        const pid = await ops.daemonPid();
        const inFlight = ops.sleep(10_000);
        await new Promise((r) => setTimeout(r, 50));
        Deno.kill(pid, "SIGKILL");
        await assert.rejects(inFlight, DaemonExitedError);
        await waitGone(pid, 1000);
        records.length = 0;
        const next = await ops.daemonPid();
        assert.notEqual(next, pid);
        assert.ok(
          records.some((r) =>
            r.level === "warning" && r.message.join("").includes("restarting")
          ),
        );
      },
    );

    await t.step("many racing first calls start one daemon", async () => {
      await testCtx.stop();
      const pids = await Promise.all(
        Array.from({ length: 16 }, () => ops.daemonPid()),
      );
      assert.equal(new Set(pids).size, 1);
    });

    await t.step(
      "the warm-up of a daemon started by a call with options does not take them",
      async () => {
        // The warm-up's calls go through the entrypoint path (#call), which
        // reads the call scope: the first call's 1 ms timeout or its signal
        // must not reach them (the first warm-up call alone waits longer for
        // the daemon's own warm-up), or the start fails.
        const scopes = [
          () => ({ timeout: 1 }),
          // Made after stop(): a signal that has fired already would refuse
          // the call before it starts anything.
          () => ({ signal: AbortSignal.timeout(5) }),
        ];
        for (const options of scopes) {
          await testCtx.stop();
          const first = await callWith(options(), () => ops.daemonPid()).then(
            (pid) => pid,
            (error: unknown) => {
              assert.ok(
                error instanceof PrivsepTimeout ||
                  (error as Error)?.name === "TimeoutError",
                `the first call fails by its own option, not the start: ${error}`,
              );
              return undefined;
            },
          );
          const pid = await ops.daemonPid();
          if (first !== undefined) assert.equal(pid, first);
          assert.equal(testCtx.daemon?.pid, pid, "the daemon started once");
        }
      },
    );

    await t.step(
      "a malformed frame from the daemon closes the channel with ProtocolError",
      async () => {
        // A fake daemon that says hello, then sends a frame above the limit.
        const script = `${dir}/bad_daemon.ts`;
        await Deno.writeTextFile(
          script,
          `import { encodeMessage, Kind, PROTOCOL_VERSION } from "${ROOT}/protocol/messages.ts";
await Deno.stdout.write(encodeMessage([Kind.Hello, { v: PROTOCOL_VERSION, pid: Deno.pid }]));
await Deno.stdout.write(new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
await new Promise((r) => setTimeout(r, 5000));`,
        );
        const client = await DaemonClient.start({
          context: "fake",
          argv: [DENO, "run", "-A", `--config=${ROOT}/deno.json`, script],
          maxFrameBytes: 1 << 20,
          daemonLogger: ["privsep", "daemon"],
          onGone: () => {},
          startHint: () => "",
        }).catch((e) => e);
        // The bad frame may arrive with the hello or right after it.
        if (client instanceof Error) {
          assert.ok(client instanceof ProtocolError, String(client));
        } else {
          await assert.rejects(
            client.call("x#y", [], undefined),
            ProtocolError,
          );
          await client.close();
        }
      },
    );

    await t.step(
      "killing the caller leaves no daemon behind within a second",
      async () => {
        const caller = new Deno.Command(DENO, {
          args: [
            "run",
            "-A",
            `${ROOT}/tests/fixtures/caller.ts`,
            config,
            "hold",
          ],
          stdout: "piped",
          stderr: "inherit",
        }).spawn();
        const reader = caller.stdout.getReader();
        const { value } = await reader.read();
        const { pid } = JSON.parse(new TextDecoder().decode(value));
        assert.ok((await Deno.stat(`/proc/${pid}`)).isDirectory);
        caller.kill("SIGKILL");
        await caller.status;
        reader.releaseLock();
        await caller.stdout.cancel();
        const waited = await waitGone(pid, 1000);
        assert.ok(waited < 1000);
        const left = await run([
          "pgrep",
          "-f",
          `--context=${testCtx.id.replace(/[.]/g, "\\.")}`,
        ], { allowFail: true });
        const others = left.stdout.trim().split("\n").filter(Boolean).map(
          Number,
        );
        const ours = testCtx.daemon?.pid;
        assert.deepEqual(
          others.filter((p) => p !== ours),
          [],
          "no leftover daemon",
        );
      },
    );
  } finally {
    await testCtx.stop();
    await otherCtx.stop();
    init({ configFiles: [] });
    await reset();
    await Deno.remove(dir, { recursive: true });
  }
});
