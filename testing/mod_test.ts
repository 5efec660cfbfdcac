import assert from "node:assert/strict";
import { init, RemoteError } from "../mod.ts";
import { testCtx } from "../tests/fixtures/privsep/mod.ts";
import * as ops from "../tests/fixtures/privsep/ops.ts";
import * as audited from "../tests/fixtures/privsep/audit.ts";
import {
  ensureUser,
  removeUser,
  ROOT,
  run,
  scratchDir,
  testUser,
} from "../tests/_helpers.ts";
import {
  forbidDaemon,
  inProcess,
  PrivsepDaemonForbidden,
  recordCalls,
  unprivilegedDaemon,
} from "./mod.ts";

Deno.test("inProcess() reports a thrown error as a daemon does: class name, message unchanged", async () => {
  using _ = inProcess();
  await assert.rejects(ops.fail("class"), (e: unknown) => {
    assert.ok(e instanceof RemoteError, String(e));
    assert.equal(e.remoteName, "NotFoundError");
    assert.equal(e.message, "no such thing");
    assert.equal(e.entrypoint, "ops.ts#fail");
    return true;
  });
});

Deno.test("inProcess() runs entrypoints here, with schemas, and restores", async () => {
  {
    using _ = inProcess();
    assert.deepEqual(await ops.echo({ a: [1, 2] }), { a: [1, 2] });
    await assert.rejects(
      audited.fileName("/etc/passwd", 0o644),
      /argument 1 \(path\)/,
    );
    assert.equal(testCtx.daemon, undefined, "no daemon was started");
  }
  using _forbid = forbidDaemon("inProcess restore");
  await assert.rejects(
    ops.echo(1),
    PrivsepDaemonForbidden,
    "client mode is back",
  );
});

Deno.test("forbidDaemon() fails a privileged call at once, naming the entrypoint and the test", async () => {
  using _ = forbidDaemon("my pure test");
  await assert.rejects(ops.echo("x"), (e: unknown) => {
    assert.ok(e instanceof PrivsepDaemonForbidden);
    assert.equal(e.entrypoint, "ops.ts#echo");
    assert.equal(e.context, testCtx.id);
    assert.match(
      e.message,
      /privileged call ops\.ts#echo .* in "my pure test"/,
    );
    return true;
  });
  await assert.rejects(testCtx.start(), PrivsepDaemonForbidden);
});

Deno.test("recordCalls() records entrypoint calls and asserts on them", async () => {
  using _ = inProcess();
  using calls = recordCalls();
  await ops.echo("one");
  await ops.sleep(1);
  calls.assertCalled(ops.echo, "one");
  assert.equal(calls.calledWith(ops.echo, "two"), false);
  assert.deepEqual(calls.callsOf(ops.sleep).map((c) => c.args), [[1]]);
  assert.throws(
    () => calls.assertCalled(ops.echo, "two"),
    /expected echo\("two"\).*calls made: echo\("one"\), sleep\(1\)/,
  );
  assert.throws(() => calls.callsOf(() => 1), /not a privsep entrypoint/);
  calls.clear();
  assert.equal(calls.calls.length, 0);
});

Deno.test(
  "unprivilegedDaemon() gives the real channel and daemon with no capabilities and no sudo",
  async () => {
    if (Deno.uid() !== 0) {
      throw new Error(
        "run as root: this test also runs the kit as a non-root user",
      );
    }
    const dir = await scratchDir();
    const config = `${dir}/c.toml`;
    // Even a context configured with capabilities gets none.
    await Deno.writeTextFile(
      config,
      '[e2e]\nuser = "root"\ncapabilities = ["CAP_NET_ADMIN"]\n',
    );
    init({ configFiles: [config] });
    const user = testUser(import.meta, "kit");
    try {
      const ids = await ensureUser(user, `${dir}/home`);
      {
        await using _ = await unprivilegedDaemon();
        using calls = recordCalls();
        assert.equal(await ops.echo("wire"), "wire");
        // The daemon's warm-up calls (through the same wrappers) are the
        // library's: they are not recorded.
        assert.deepEqual(calls.calls.map((c) => c.name), ["echo"]);
        const info = testCtx.daemon!;
        assert.equal(info.verified, true);
        assert.deepEqual(info.capabilities, []);
        assert.equal(info.uid, 0);
        await assert.rejects(ops.fail("x"), RemoteError);
      }
      assert.equal(testCtx.daemon, undefined, "stopped on restore");
      // As a non-root user: the daemon runs as that user.
      const out = await run([
        "setpriv",
        `--reuid=${ids.uid}`,
        `--regid=${ids.gid}`,
        "--init-groups",
        "--",
        Deno.execPath(),
        "run",
        "-A",
        `--config=${ROOT}/deno.json`,
        `${ROOT}/tests/fixtures/unprivileged_caller.ts`,
      ], {
        env: { HOME: `${dir}/home`, PATH: "/usr/bin:/bin" },
        cwd: `${dir}/home`,
      });
      const result = JSON.parse(out.stdout);
      assert.deepEqual(result.value, { from: "unprivileged" });
      assert.equal(result.daemon.uid, ids.uid);
      assert.deepEqual(result.daemon.capabilities, []);
      assert.equal(result.daemon.verified, true);
    } finally {
      init({ configFiles: [] });
      await testCtx.stop();
      await removeUser(user);
      await Deno.remove(dir, { recursive: true });
    }
  },
);
