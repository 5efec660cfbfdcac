// Audit records for every privileged call, argument values never logged
// unless an entrypoint allows it, and schemas checked in the daemon.
import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { init, RemoteError } from "../mod.ts";
import { DaemonClient } from "../contexts/_client.ts";
import { testCtx } from "./fixtures/privsep/mod.ts";
import * as audited from "./fixtures/privsep/audit.ts";
import * as ops from "./fixtures/privsep/ops.ts";
import { requireRoot, scratchDir, writeConfig } from "./_helpers.ts";

const SECRET = "hunter2-correct-horse-battery";

Deno.test("audit log and argument validation", async (t) => {
  requireRoot();
  const dir = await scratchDir();
  init({
    configFiles: [
      await writeConfig(dir, {
        e2e: { user: "root", capabilities: [], log_daemon_traceback: true },
      }),
    ],
  });
  const records: LogRecord[] = [];
  // Everything, at every level, from every category.
  await configure({
    reset: true,
    sinks: { memory: (r) => records.push(r) },
    loggers: [
      { category: [], sinks: ["memory"], lowestLevel: "trace" },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "fatal" },
    ],
  });
  const audits = () =>
    records.filter((r) => r.category.join(".") === "privsep.audit");
  try {
    await t.step(
      "every call leaves one audit record on privsep.audit",
      async () => {
        records.length = 0;
        assert.equal(await audited.login("alice", SECRET), "ok");
        await ops.echo(1);
        const [login, echo] = audits();
        assert.equal(audits().length, 2);
        const p = login.properties;
        assert.equal(p.context, testCtx.id);
        assert.equal(p.entrypoint, "audit.ts#login");
        assert.equal(p.outcome, "ok");
        assert.equal(p.callerUid, 0);
        assert.equal(p.callerPid, Deno.pid);
        assert.equal(p.daemonPid, testCtx.daemon?.pid);
        assert.equal(typeof p.durationMs, "number");
        assert.ok(Date.parse(p.start as string) <= Date.now());
        assert.equal(p.args, undefined);
        assert.equal(echo.properties.entrypoint, "ops.ts#echo");
      },
    );

    await t.step(
      "failures, refusals and their error names are audited too",
      async () => {
        records.length = 0;
        await assert.rejects(audited.login("bob", "short"), RemoteError);
        const client = await DaemonClient.start({
          context: testCtx.id,
          argv: testCtx.command(),
          maxFrameBytes: 1 << 24,
          daemonLogger: ["privsep", "daemon"],
          onGone: () => {},
          startHint: () => "",
        });
        try {
          await assert.rejects(
            client.call("ops.ts#helper", [SECRET], undefined),
            RemoteError,
          );
          await client.call("ops.ts#echo", [0], undefined);
        } finally {
          await client.close();
        }
        const outcomes = audits().map((
          r,
        ) => [
          r.properties.entrypoint,
          r.properties.outcome,
          r.properties.errorName,
        ]);
        assert.deepEqual(outcomes.slice(0, 2), [
          ["audit.ts#login", "error", "Error"],
          ["ops.ts#helper", "refused", "NotAnEntrypoint"],
        ]);
        // An error message quoting an argument: the caller gets it, the
        // daemon's traceback (log_daemon_traceback) does not log it.
        await assert.rejects(audited.login(SECRET, "short"), (e: unknown) => {
          assert.ok(e instanceof RemoteError, String(e));
          assert.equal(e.message, `weak password for ${SECRET}`);
          return true;
        });
        const tracebacks = records.filter((r) =>
          r.message.map(String).join("").startsWith("audit.ts#login failed: ")
        );
        assert.equal(tracebacks.length, 2, "one for each failed login");
        for (const r of tracebacks) {
          const [head, ...frames] = r.message.map(String).join("").split("\n");
          assert.equal(head, "audit.ts#login failed: Error");
          assert.ok(frames.length > 0);
          for (const frame of frames) assert.match(frame, /^ {4}at /);
        }
      },
    );

    await t.step(
      "a secret argument never appears in any log record at any level",
      () => {
        const everything = JSON.stringify(records.map((r) => ({
          category: r.category,
          message: r.message.map(String),
          properties: r.properties,
        })));
        assert.ok(records.length > 0);
        assert.ok(
          !everything.includes(SECRET),
          "the secret leaked into the logs",
        );
      },
    );

    await t.step(
      "an entrypoint that marks its arguments safe gets them audited",
      async () => {
        records.length = 0;
        await audited.publicEcho("visible");
        assert.deepEqual(audits()[0].properties.args, ["visible"]);
      },
    );

    await t.step(
      "schemas are checked in the daemon, naming the argument",
      async () => {
        assert.equal(
          await audited.fileName("/var/lib/privsep-tests/a.conf", 0o644),
          "a.conf",
        );
        for (
          const [args, pattern] of [
            [
              ["/etc/passwd", 0o644],
              /argument 1 \(path\) of audit\.ts#fileName is invalid: must name a file directly in \/var\/lib\/privsep-tests/,
            ],
            [
              ["/var/lib/privsep-tests/../../etc/shadow", 0o644],
              /argument 1 \(path\)/,
            ],
            [
              ["/var/lib/privsep-tests/a.conf", 0o4755],
              /argument 2 \(_mode\) .*a file mode/,
            ],
            [
              ["/var/lib/privsep-tests/a.conf", 0o644, "extra"],
              /audit\.ts#fileName takes at most 2 argument\(s\), got 3/,
            ],
            [
              ["/var/lib/privsep-tests/forbidden", 0o644],
              /the result of audit\.ts#fileName is invalid \(the schema.s messages are withheld/,
            ],
          ] as const
        ) {
          await assert.rejects(
            (audited.fileName as (...a: unknown[]) => Promise<string>)(...args),
            (e: unknown) => {
              assert.ok(e instanceof RemoteError, String(e));
              assert.equal(e.remoteName, "InvalidArgument");
              assert.equal(e.code, "EINVAL");
              assert.match(e.message, pattern);
              return true;
            },
          );
        }
      },
    );
  } finally {
    await testCtx.stop();
    init({ configFiles: [] });
    await reset();
    await Deno.remove(dir, { recursive: true });
  }
});
