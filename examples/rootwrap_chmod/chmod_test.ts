// Runs as root: an in-process unit test of the calling code (testing kit),
// then the real daemon (dedicated user, CAP_FOWNER only) against real files.
import assert from "node:assert/strict";
import { caps, RemoteError } from "../../mod.ts";
import { capabilitiesToMask, readProcessCredentials } from "../../caps/mod.ts";
import { forbidDaemon, inProcess, recordCalls } from "../../testing/mod.ts";
import { fixPermissions } from "./main.ts";
import * as modes from "./privsep/modes.ts";
import {
  DAEMON_USER,
  fownerCtx,
  LOGS_DIR,
  SECRET_NAMES,
  SECRETS_DIR,
} from "./privsep/mod.ts";
import { prepareLayout } from "./setup.ts";

const SCRATCH = "/var/lib/privsep-tests";

function requireRoot(): void {
  if (Deno.uid() !== 0) {
    throw new Error("this example's test runs the real daemon: run it as root");
  }
}

async function mode(path: string): Promise<number> {
  return (await Deno.lstat(path)).mode! & 0o7777;
}

/** Root-owned test files with a given mode; returns a cleanup. */
async function files(
  entries: [string, number][],
): Promise<() => Promise<void>> {
  for (const [path, m] of entries) {
    await Deno.writeTextFile(path, "test\n", { mode: m });
    await Deno.chmod(path, m);
  }
  return async () => {
    for (const [path] of entries) await Deno.remove(path).catch(() => {});
  };
}

Deno.test(
  "examples/rootwrap_chmod: fixPermissions() calls only the narrow functions (in-process)",
  async () => {
    requireRoot();
    await prepareLayout();
    const log = `${LOGS_DIR}/unit-${Deno.pid}.log`;
    const secret = `${SECRETS_DIR}/db_password`;
    const cleanup = await files([[log, 0o600]]);
    const hadSecret = await Deno.lstat(secret).then(() => true, () => false);
    if (!hadSecret) await files([[secret, 0o644]]);
    try {
      using _noDaemon = forbidDaemon("rootwrap_chmod in-process unit test");
      using _inProcess = inProcess();
      using calls = recordCalls();
      const result = await fixPermissions(["db_password"]);
      assert.deepEqual(calls.calls.map((c) => c.name), [
        "makeLogsReadable",
        "lockSecret",
      ]);
      calls.assertCalled(modes.makeLogsReadable);
      calls.assertCalled(modes.lockSecret, "db_password");
      assert.ok(result.changed.includes(`unit-${Deno.pid}.log`));
      assert.equal(await mode(log), 0o644);
      assert.equal(await mode(secret), 0o600);
      // The schema runs in-process too (the error is not wrapped in RemoteError there).
      // In-process, errors arrive as over the wire: RemoteError.
      await assert.rejects(fixPermissions(["../logs/x"]), {
        name: "RemoteError",
        remoteName: "InvalidArgument",
      });
    } finally {
      await cleanup();
      if (!hadSecret) await Deno.remove(secret).catch(() => {});
    }
  },
);

Deno.test(
  "examples/rootwrap_chmod: the daemon changes exactly those modes and refuses the rest",
  async () => {
    requireRoot();
    await prepareLayout();
    await Deno.mkdir(SCRATCH, { recursive: true, mode: 0o755 });
    const outside = await Deno.makeTempDir({ dir: SCRATCH, prefix: "chmod-" });
    const target = `${outside}/target`; // stands in for /usr/bin/bash
    const p = `test-${Deno.pid}`;
    const logA = `${LOGS_DIR}/${p}-a.log`;
    const logB = `${LOGS_DIR}/${p}-b.log`;
    const link = `${LOGS_DIR}/${p}-link.log`;
    const hard = `${LOGS_DIR}/${p}-hard.log`;
    const subdir = `${LOGS_DIR}/${p}-dir`;
    // api_token and tls_key.pem belong to this test (the demo uses db_password).
    const token = `${SECRETS_DIR}/api_token`;
    const tlsKey = `${SECRETS_DIR}/tls_key.pem`;
    await Deno.remove(token).catch(() => {});
    await Deno.remove(tlsKey).catch(() => {});
    const cleanup = await files([
      [logA, 0o600],
      [logB, 0o640],
      [target, 0o600],
      [token, 0o644],
    ]);
    await Deno.symlink(target, link);
    await Deno.link(target, hard);
    await Deno.mkdir(subdir, { mode: 0o700 });
    await Deno.symlink(target, tlsKey);
    const shadow = await mode("/etc/shadow");
    try {
      // The daemon: the dedicated user, CAP_FOWNER alone, on every thread.
      const info = await fownerCtx.start();
      assert.ok(info.verified);
      const uid = Number(
        new TextDecoder().decode(
          (await new Deno.Command("id", { args: ["-u", DAEMON_USER] }).output())
            .stdout,
        ),
      );
      const mask = capabilitiesToMask([caps.CAP_FOWNER]);
      for (const t of (await readProcessCredentials(info.pid)).threads) {
        assert.deepEqual(
          [t.uid.real, t.uid.effective, t.uid.saved, t.uid.fs],
          [uid, uid, uid, uid],
        );
        for (const set of [t.capEff, t.capPrm, t.capBnd, t.capAmb]) {
          assert.equal(set, mask);
        }
        assert.ok(t.noNewPrivs);
      }

      const result = await modes.makeLogsReadable();
      assert.ok(result.changed.includes(`${p}-a.log`));
      assert.ok(result.changed.includes(`${p}-b.log`));
      for (const name of [`${p}-link.log`, `${p}-hard.log`, `${p}-dir`]) {
        assert.ok(result.skipped.includes(name), `${name} was not skipped`);
      }
      assert.equal(await mode(logA), 0o644);
      assert.equal(await mode(logB), 0o644);
      assert.equal(await mode(subdir), 0o700);
      assert.equal(await mode(target), 0o600, "chmod followed a link");

      await modes.lockSecret("api_token");
      assert.equal(await mode(token), 0o600);

      // A symbolic link in place of a listed secret is refused in the function.
      await assert.rejects(modes.lockSecret("tls_key.pem"), (e: unknown) => {
        assert.ok(e instanceof RemoteError);
        assert.equal(e.remoteName, "TypeError");
        assert.match(e.message, /not a plain file/);
        return true;
      });
      assert.equal(await mode(target), 0o600);

      // Anything but a listed name is refused before the function runs.
      for (
        const bad of [
          "../logs/" + `${p}-a.log`,
          "/etc/shadow",
          "../../../../etc/shadow",
          "DB_PASSWORD",
          "api_token/",
          "",
          42,
          null,
        ]
      ) {
        await assert.rejects(
          modes.lockSecret(bad as string),
          (e: unknown) => {
            assert.ok(e instanceof RemoteError, String(e));
            assert.equal(e.remoteName, "InvalidArgument");
            assert.equal(e.code, "EINVAL");
            assert.match(
              e.message,
              /argument 1 \(name\) of modes\.ts#lockSecret is invalid: must be one of db_password, api_token, tls_key\.pem/,
            );
            return true;
          },
        );
      }
      assert.deepEqual(SECRET_NAMES, [
        "db_password",
        "api_token",
        "tls_key.pem",
      ]);
      assert.equal(await mode("/etc/shadow"), shadow);
      assert.equal(await mode(target), 0o600);
      assert.equal(await mode(logA), 0o644);
      const status = await fownerCtx.status();
      assert.equal(status.stuck, 0);
    } finally {
      await fownerCtx.stop();
      await cleanup();
      await Deno.remove(link).catch(() => {});
      await Deno.remove(hard).catch(() => {});
      await Deno.remove(subdir).catch(() => {});
      await Deno.remove(tlsKey).catch(() => {});
      await Deno.remove(outside, { recursive: true }).catch(() => {});
    }
  },
);
