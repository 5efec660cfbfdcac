// Audit records through real sudo: when the process that ran sudo exits
// before the daemon starts, callerUid still comes from sudo (SUDO_UID) and
// callerPid says it is unknown, and why.
import assert from "node:assert/strict";
import { type LogRecord, reset } from "@logtape/logtape";
import { init } from "../mod.ts";
import { DaemonClient } from "../contexts/_client.ts";
import { testCtx } from "./fixtures/privsep/mod.ts";
import {
  captureLogs,
  ensureUser,
  installLaunchers,
  removeUser,
  requireRoot,
  run,
  scratchDir,
  testSudoersFile,
  testUser,
  writeConfig,
} from "./_helpers.ts";

/** This file's own caller user. */
const CALLER = testUser(import.meta, "c");

Deno.test("audit through sudo after the caller exited", async () => {
  requireRoot();
  const sudo = await run(["sh", "-c", "command -v sudo"], { allowFail: true });
  if (sudo.code !== 0) {
    throw new Error('this test needs sudo: "apt-get install -y sudo"');
  }
  const dir = await scratchDir();
  const sudoers = testSudoersFile(import.meta);
  let client: DaemonClient | undefined;
  let records: LogRecord[] = [];
  try {
    const caller = await ensureUser(CALLER, `${dir}/home`);
    const config = await writeConfig(dir, {
      e2e: { user: "root", capabilities: [], launcher_dir: `${dir}/libexec` },
    });
    init({ configFiles: [config] });
    await installLaunchers({
      user: CALLER,
      configFiles: [config],
      specs: [testCtx.id.replace("file://", "")],
      sudoersFile: sudoers,
    });
    records = await captureLogs(["privsep", "audit"]);
    // The caller runs sudo in the background from a subshell that exits at
    // once: sudo is reparented before the daemon's first stage looks at its
    // parents. The daemon keeps our pipes (fd 3 carries stdin past the
    // shell's /dev/null for background jobs). The process we spawned stays,
    // with none of them: node:child_process closes a child's stdin when the
    // child exits.
    client = await DaemonClient.start({
      context: testCtx.id,
      argv: [
        "setpriv",
        `--reuid=${caller.uid}`,
        `--regid=${caller.gid}`,
        "--init-groups",
        "--",
        "sh",
        "-c",
        '(exec 3<&0; sudo -n "$@" <&3 3<&- &); exec sleep 600 <&- >&- 2>&-',
        "sh",
        testCtx.launcher(),
      ],
      maxFrameBytes: 1 << 24,
      daemonLogger: ["privsep", "daemon"],
      onGone: () => {},
      startHint: () => "",
    });
    assert.equal(await client.call("ops.ts#echo", ["x"], undefined), "x");
    const [audit] = records.filter((r) =>
      r.properties.entrypoint === "ops.ts#echo"
    );
    assert.ok(audit, "an audit record for the call");
    assert.equal(audit.properties.callerUid, caller.uid);
    assert.equal(audit.properties.callerPid, null);
    assert.match(
      String(audit.properties.callerPidUnknown),
      /the process that ran sudo had exited/,
    );
    await client.close();
    client = undefined;

    // Without sudo, a SUDO_UID in the environment is not believed.
    records.length = 0;
    client = await DaemonClient.start({
      context: testCtx.id,
      argv: [
        "sh",
        "-c",
        '(exec 3<&0; SUDO_UID=4242 "$@" <&3 3<&- &); exec sleep 600 <&- >&- 2>&-',
        "sh",
        ...testCtx.command(),
      ],
      maxFrameBytes: 1 << 24,
      daemonLogger: ["privsep", "daemon"],
      onGone: () => {},
      startHint: () => "",
    });
    assert.equal(await client.call("ops.ts#echo", ["y"], undefined), "y");
    const [direct] = records.filter((r) =>
      r.properties.entrypoint === "ops.ts#echo"
    );
    assert.equal(direct.properties.callerUid, null);
    assert.equal(direct.properties.callerPid, null);
    assert.equal(direct.properties.callerPidUnknown, undefined);
  } finally {
    await client?.close();
    await reset();
    init({ configFiles: [] });
    await Deno.remove(sudoers).catch(() => {});
    await removeUser(CALLER);
    await Deno.remove(dir, { recursive: true });
  }
});
