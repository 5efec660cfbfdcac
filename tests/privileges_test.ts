// The kernel is the boundary: every thread of the daemon has exactly the
// context's credentials, and file access follows the capabilities kept
// (through both sync and async Deno APIs) and the Deno permissions declared.
import assert from "node:assert/strict";
import {
  CAP_CHOWN,
  CAP_DAC_OVERRIDE,
  CAP_NET_ADMIN,
  CAP_NET_BIND_SERVICE,
} from "../caps/table.ts";
import { FailedToDropPrivileges, init, RemoteError } from "../mod.ts";
import { testCtx } from "./fixtures/privsep/mod.ts";
import * as ops from "./fixtures/privsep/ops.ts";
import {
  ensureUser,
  expectCredentials,
  removeUser,
  requireRoot,
  scratchDir,
  testUser,
  writeConfig,
} from "./_helpers.ts";

/** This file's own daemon user. */
const DAEMON_USER = testUser(import.meta, "d");

Deno.test(
  "privileged daemon: credentials, file access and permissions",
  async (t) => {
    requireRoot();
    const dir = await scratchDir();
    const start = async (section: Record<string, unknown>) => {
      const config = await writeConfig(dir, { e2e: section as never });
      init({ configFiles: [config] });
      return await testCtx.start();
    };
    try {
      const daemonUser = await ensureUser(DAEMON_USER);
      await t.step(
        "a root target keeps exactly its capabilities on every thread",
        async () => {
          const info = await start({
            user: "root",
            capabilities: ["CAP_DAC_OVERRIDE", "net_admin"],
          });
          try {
            assert.equal(info.verified, true);
            const threads = await expectCredentials(info.pid, {
              uid: 0,
              gid: 0,
              caps: [CAP_DAC_OVERRIDE, CAP_NET_ADMIN],
            });
            assert.ok(threads >= 2);
            assert.equal(await ops.echo("hi"), "hi");
          } finally {
            await testCtx.stop();
          }
        },
      );

      await t.step(
        "a non-root target keeps its capabilities as ambient on every thread",
        async () => {
          const info = await start({
            user: DAEMON_USER,
            capabilities: [CAP_NET_BIND_SERVICE, CAP_CHOWN],
          });
          try {
            await expectCredentials(info.pid, {
              uid: daemonUser.uid,
              gid: daemonUser.gid,
              caps: [CAP_CHOWN, CAP_NET_BIND_SERVICE],
            });
          } finally {
            await testCtx.stop();
          }
        },
      );

      await t.step(
        "an empty capability set leaves no capability anywhere",
        async () => {
          const info = await start({ user: DAEMON_USER, capabilities: [] });
          try {
            await expectCredentials(info.pid, {
              uid: daemonUser.uid,
              gid: daemonUser.gid,
              caps: [],
            });
          } finally {
            await testCtx.stop();
          }
        },
      );

      await t.step(
        "a missing user, group or libcap fails the start with a message that says so",
        async () => {
          for (
            const [section, pattern] of [
              [
                { user: "privsep-no-such-user", capabilities: [] },
                /user "privsep-no-such-user" does not exist; create it/,
              ],
              [{
                user: DAEMON_USER,
                group: "privsep-no-such-group",
                capabilities: [],
              }, /group "privsep-no-such-group" does not exist/],
              [
                {
                  user: DAEMON_USER,
                  capabilities: [],
                  libcap: "libcap-missing.so.9",
                },
                /cannot load libcap \("libcap-missing\.so\.9"\)[^]*apt-get install libcap2/,
              ],
            ] as const
          ) {
            await assert.rejects(start(section), (e: unknown) => {
              assert.ok(e instanceof FailedToDropPrivileges, String(e));
              assert.match(e.message, pattern);
              assert.match(e.stderr, pattern);
              return true;
            });
          }
        },
      );

      // A root-only directory: only CAP_DAC_OVERRIDE lets a non-root daemon in.
      const secret = `${dir}/secret`;
      await Deno.mkdir(secret, { mode: 0o700 });
      await Deno.chmod(secret, 0o700);

      await t.step(
        "with CAP_DAC_OVERRIDE both sync and async writes into a 0700 root dir succeed",
        async () => {
          await start({
            user: DAEMON_USER,
            capabilities: ["CAP_DAC_OVERRIDE"],
            permissions: { write: [secret], read: [secret] },
          });
          try {
            await ops.writeSync(`${secret}/sync`, "sync");
            await ops.writeAsync(`${secret}/async`, "async");
            assert.equal(await Deno.readTextFile(`${secret}/sync`), "sync");
            assert.equal(await Deno.readTextFile(`${secret}/async`), "async");
            assert.equal(await ops.readAsync(`${secret}/async`), "async");
          } finally {
            await testCtx.stop();
          }
        },
      );

      await t.step(
        "without CAP_DAC_OVERRIDE both sync and async writes are refused by the kernel",
        async () => {
          await start({
            user: DAEMON_USER,
            capabilities: ["CAP_CHOWN"],
            permissions: { write: [secret], read: [secret] },
          });
          try {
            for (const write of [ops.writeSync, ops.writeAsync]) {
              await assert.rejects(
                write(`${secret}/denied-${write.name}`, "x"),
                (e: unknown) => {
                  assert.ok(e instanceof RemoteError);
                  assert.equal(e.remoteName, "PermissionDenied");
                  return true;
                },
              );
            }
            await assert.rejects(ops.readAsync(`${secret}/sync`), RemoteError);
            assert.deepEqual(
              [...Deno.readDirSync(secret)].map((e) => e.name).sort(),
              ["async", "sync"],
            );
          } finally {
            await testCtx.stop();
          }
        },
      );

      await t.step(
        "a context that may write one path cannot write another, even with the kernel's leave",
        async () => {
          const allowed = `${secret}/allowed`;
          // (Made first: a uid-0 context refuses a write path that does not
          // exist yet, whose directory would get the kernel sandbox's rule.)
          await Deno.writeTextFile(allowed, "");
          await start({
            user: "root",
            capabilities: ["CAP_DAC_OVERRIDE"],
            permissions: { write: [allowed] },
          });
          try {
            await ops.writeAsync(allowed, "ok");
            assert.equal(await Deno.readTextFile(allowed), "ok");
            for (const write of [ops.writeSync, ops.writeAsync]) {
              const other = `${secret}/other-${write.name}`;
              await assert.rejects(write(other, "no"), (e: unknown) => {
                assert.ok(e instanceof RemoteError);
                assert.equal(e.remoteName, "NotCapable");
                assert.match(e.message, /write access/);
                return true;
              });
              await assert.rejects(Deno.stat(other), Deno.errors.NotFound);
            }
            // The same holds for a path that is not even root-only.
            await assert.rejects(
              ops.writeAsync("/etc/privsep-e2e-should-not-exist", "no"),
              RemoteError,
            );
            await assert.rejects(
              Deno.stat("/etc/privsep-e2e-should-not-exist"),
              Deno.errors.NotFound,
            );
          } finally {
            await testCtx.stop();
          }
        },
      );
    } finally {
      init({ configFiles: [] });
      await testCtx.stop();
      await Deno.remove(dir, { recursive: true });
      await removeUser(DAEMON_USER);
    }
  },
);
