// The caller's check of the daemon's credentials in /proc never turns itself
// off: Deno 2.9 reads /proc only with --allow-all, so a caller without it
// refuses the daemon unless the context says `verify = false`, which is
// logged at every start.
import assert from "node:assert/strict";
import { reset } from "@logtape/logtape";
import { FailedToDropPrivileges, init } from "../mod.ts";
import { sudoCtx, testCtx } from "./fixtures/privsep/mod.ts";
import * as ops from "./fixtures/privsep/ops.ts";
import {
  captureLogs,
  DENO,
  ensureUser,
  removeUser,
  requireRoot,
  ROOT,
  run,
  scratchDir,
  testUser,
  writeConfig,
} from "./_helpers.ts";

/** The daemon's user in the steps where the caller expects another one. */
const OTHER_USER = testUser(import.meta, "d");

/** Every permission a caller needs to start a daemon, but not --allow-all. */
const NARROW = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-run",
  "--allow-sys",
  "--allow-net",
];

/** Runs tests/fixtures/`fixture` with `permissions`, as root. */
function caller(permissions: string[], fixture: string, ...args: string[]) {
  return run([
    DENO,
    "run",
    "--no-prompt",
    `--config=${ROOT}/deno.json`,
    ...permissions,
    `${ROOT}/tests/fixtures/${fixture}`,
    ...args,
  ], { allowFail: true });
}

Deno.test("daemon verification", async (t) => {
  requireRoot();
  const dir = await scratchDir();
  try {
    await t.step(
      "Deno 2.9 refuses /proc/<pid>/task/*/status without --allow-all, even with --allow-read=/proc",
      async () => {
        const script = `${dir}/read_proc.ts`;
        await Deno.writeTextFile(
          script,
          "await Deno.readTextFile(`/proc/${Deno.pid}/task/${Deno.pid}/status`);\n",
        );
        for (const read of [`--allow-read=${script},/proc`, "--allow-read"]) {
          const out = await run([
            DENO,
            "run",
            "--no-config",
            "--no-prompt",
            read,
            script,
          ], { allowFail: true });
          assert.notEqual(out.code, 0, read);
          assert.match(out.stderr, /NotCapable.*--allow-all/, read);
        }
      },
    );

    await t.step(
      "a caller without --allow-all refuses the daemon, naming what to grant",
      async () => {
        const config = await writeConfig(dir, {
          e2e: { user: "root", capabilities: [] },
        });
        const out = await caller(NARROW, "caller.ts", config, "echo", "hi");
        assert.notEqual(out.code, 0, `the call succeeded: ${out.stdout}`);
        assert.match(out.stderr, /FailedToDropPrivileges/);
        assert.match(out.stderr, /cannot verify the daemon of .*#testCtx/);
        assert.match(out.stderr, /run the caller with --allow-all/);
        assert.match(out.stderr, /verify = false/);
      },
    );

    await t.step(
      "with verify = false it runs unverified, and says so",
      async () => {
        const config = await writeConfig(dir, {
          e2e: { user: "root", capabilities: [], verify: false },
        });
        const out = await caller(NARROW, "caller.ts", config, "echo", "hi");
        assert.equal(out.code, 0, out.stderr);
        const { result, daemon } = JSON.parse(out.stdout);
        assert.equal(result, "hi");
        assert.equal(daemon.verified, false);
      },
    );

    await t.step(
      "verify = false is logged at warning level at every start",
      async () => {
        const records = await captureLogs(["privsep"]);
        init({
          configFiles: [
            await writeConfig(dir, {
              e2e: { user: "root", capabilities: [], verify: false },
            }),
          ],
        });
        try {
          for (let i = 0; i < 2; i++) {
            await ops.echo(i);
            assert.equal(testCtx.daemon?.verified, false);
            await testCtx.stop();
          }
          const warnings = records.filter((r) =>
            r.level === "warning" &&
            String(r.rawMessage).includes("is NOT verified")
          );
          assert.equal(warnings.length, 2);
        } finally {
          await testCtx.stop();
          init({ configFiles: [] });
          await reset();
        }
      },
    );

    await t.step(
      "with --allow-all the daemon is verified",
      async () => {
        init({
          configFiles: [
            await writeConfig(dir, { e2e: { user: "root", capabilities: [] } }),
          ],
        });
        try {
          await ops.echo(1);
          assert.equal(testCtx.daemon?.verified, true);
        } finally {
          await testCtx.stop();
          init({ configFiles: [] });
        }
      },
    );

    await t.step(
      "the testing kit's unprivileged daemon still starts without --allow-all",
      async () => {
        const out = await caller(
          [...NARROW, `--allow-ffi`],
          "unprivileged_caller.ts",
        );
        assert.equal(out.code, 0, out.stderr);
        const { value, daemon } = JSON.parse(out.stdout);
        assert.deepEqual(value, { from: "unprivileged" });
        assert.deepEqual(daemon.capabilities, []);
        assert.equal(daemon.verified, false);
      },
    );
    await t.step(
      "a daemon that runs as another user than the caller's settings say is refused",
      async () => {
        const other = await ensureUser(OTHER_USER);
        const section = {
          capabilities: [],
          launcher_dir: dir,
          helper_command: ["/usr/bin/sudo", "-n"],
          // Waiting in a blocking read, the daemon runs no signal handler:
          // only the end of its input can make the refused one leave.
          idle_read: "blocking",
        };
        try {
          // The launcher reads a config that names OTHER_USER (as after an
          // install with another config than the service reads).
          init({
            configFiles: [
              await writeConfig(dir, {
                verify_sudo: { ...section, user: OTHER_USER },
              }),
            ],
          });
          await Deno.writeTextFile(
            sudoCtx.launcher(),
            sudoCtx.launcherScript(),
            { mode: 0o755 },
          );
          // Both sides agree: verified, through sudo.
          const agreed = await sudoCtx.start();
          assert.equal(agreed.verified, true);
          assert.equal(agreed.uid, other.uid);
          await sudoCtx.stop();
          // The caller's settings say root; the daemon still runs as
          // OTHER_USER and says so in its hello.
          init({
            configFiles: [
              await writeConfig(dir, {
                verify_sudo: { ...section, user: "root" },
              }),
            ],
          });
          await assert.rejects(sudoCtx.start(), (e: unknown) => {
            assert.ok(e instanceof FailedToDropPrivileges, String(e));
            assert.match(
              e.message,
              new RegExp(
                `runs as uid ${other.uid} .*user "root" \\(uid 0\\)`,
              ),
            );
            return true;
          });
          assert.equal(sudoCtx.daemon, undefined);
          // The refused daemon, started through sudo as OTHER_USER, is out
          // of the caller's reach once sudo is killed: it must leave because
          // the caller closed its stdin (it once lived on until the whole
          // caller process exited).
          let left = "";
          for (let waited = 0; waited < 10_000; waited += 100) {
            left = (await run(["pgrep", "-a", "-u", OTHER_USER], {
              allowFail: true,
            })).stdout.trim();
            if (!left) break;
            await new Promise((r) => setTimeout(r, 100));
          }
          assert.equal(left, "", "the refused daemon outlived its refusal");
        } finally {
          await sudoCtx.stop();
          init({ configFiles: [] });
          // Left only if the check above failed.
          await run(["pkill", "-KILL", "-u", OTHER_USER], { allowFail: true });
          await removeUser(OTHER_USER);
        }
      },
    );

    await t.step(
      "a hello naming a process this caller did not start is refused",
      async () => {
        // A real daemon with the credentials sudoCtx expects (root, no
        // capabilities), started apart: its pid is what the impostor names.
        const fake = `${ROOT}/tests/fixtures/fake_daemon.ts`;
        const config = await writeConfig(dir, {
          e2e: { user: "root", capabilities: [] },
          verify_sudo: {
            user: "root",
            capabilities: [],
            launcher_dir: dir,
            helper_command: [DENO, "run", "-A", `--config=${ROOT}/deno.json`],
          },
        });
        init({ configFiles: [config] });
        try {
          const target = await testCtx.start();
          assert.equal(target.verified, true);
          init({
            configFiles: [
              config,
              await writeConfig(dir, {
                verify_sudo: {
                  helper_command: [
                    DENO,
                    "run",
                    "-A",
                    `--config=${ROOT}/deno.json`,
                    fake,
                    String(target.pid),
                  ],
                },
              }),
            ],
          });
          await assert.rejects(sudoCtx.start(), (e: unknown) => {
            assert.ok(e instanceof FailedToDropPrivileges, String(e));
            assert.match(
              e.message,
              new RegExp(
                `pid ${target.pid} .*not a process this caller started`,
              ),
            );
            return true;
          });
        } finally {
          await sudoCtx.stop();
          await testCtx.stop();
          init({ configFiles: [] });
        }
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
