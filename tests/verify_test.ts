// The caller's check of the daemon's credentials in /proc never turns itself
// off: Deno 2.9 reads /proc only with --allow-all, so a caller without it
// refuses the daemon unless the context says `verify = false`, which is
// logged at every start.
import assert from "node:assert/strict";
import { reset } from "@logtape/logtape";
import { init } from "../mod.ts";
import { testCtx } from "./fixtures/privsep/mod.ts";
import * as ops from "./fixtures/privsep/ops.ts";
import {
  captureLogs,
  DENO,
  requireRoot,
  ROOT,
  run,
  scratchDir,
  writeConfig,
} from "./_helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

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

Deno.test("daemon verification", opts, async (t) => {
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
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
