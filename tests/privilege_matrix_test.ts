// The privilege drop as a matrix: root and non-root targets × no, one and
// several capabilities. For each: every thread of the daemon has exactly the
// configured sets (NoNewPrivs, reduced bounding set); a child it spawns has
// no more; a setuid-root binary it runs gains nothing; an unprivileged user
// cannot ptrace it or read its environ or memory; Deno's permission denials
// come back to the caller as errors.
import assert from "node:assert/strict";
import { capabilitiesToMask, parseCapability } from "../caps/parse.ts";
import { init, RemoteError } from "../mod.ts";
import { testCtx } from "./fixtures/privsep/mod.ts";
import * as stress from "./fixtures/privsep/stress.ts";
import {
  ensureUser,
  expectCredentials,
  removeUser,
  requireRoot,
  run,
  scratchDir,
  testUser,
  writeConfig,
} from "./_helpers.ts";

/** This file's own users: the daemon's, and a plain user who spies on it. */
const DAEMON_USER = testUser(import.meta, "d");
const CALLER_USER = testUser(import.meta, "c");

interface Status {
  uid: number[];
  gid: number[];
  sets: Record<string, bigint>;
  noNewPrivs: number;
}

function parseStatus(text: string): Status {
  const field = (name: string) => {
    const m = new RegExp(`^${name}:\\s*(.*)$`, "m").exec(text);
    if (!m) throw new Error(`no ${name} in ${text}`);
    return m[1].trim();
  };
  const sets: Record<string, bigint> = {};
  for (const s of ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]) {
    sets[s] = BigInt(`0x${field(s)}`);
  }
  return {
    uid: field("Uid").split(/\s+/).map(Number),
    gid: field("Gid").split(/\s+/).map(Number),
    sets,
    noNewPrivs: Number(field("NoNewPrivs")),
  };
}

/** Asserts that a child's credentials are within the daemon's. */
function assertChildWithin(
  what: string,
  status: Status,
  want: { uid: number; gid: number; mask: bigint },
): void {
  assert.deepEqual(status.uid, [want.uid, want.uid, want.uid, want.uid], what);
  assert.deepEqual(status.gid, [want.gid, want.gid, want.gid, want.gid], what);
  for (const [name, set] of Object.entries(status.sets)) {
    assert.equal(
      set & ~want.mask,
      0n,
      `${what}: ${name}=${set.toString(16)} has more than ${
        want.mask.toString(16)
      }`,
    );
  }
  assert.equal(status.sets.CapBnd, want.mask, `${what}: bounding set`);
  assert.equal(status.noNewPrivs, 1, `${what}: NoNewPrivs`);
}

Deno.test("privilege matrix", async (t) => {
  requireRoot();
  const dir = await scratchDir();
  const asUser = (uid: number, gid: number, cmd: string[]) =>
    run([
      "setpriv",
      `--reuid=${uid}`,
      `--regid=${gid}`,
      "--clear-groups",
      "--",
      ...cmd,
    ], { allowFail: true, env: { HOME: "/", PATH: "/usr/bin:/bin" } });
  try {
    const daemonUser = await ensureUser(DAEMON_USER);
    const caller = await ensureUser(CALLER_USER);
    // A setuid-root copy of cat in a root-owned directory.
    const bin = `${dir}/bin`;
    await Deno.mkdir(bin, { mode: 0o755 });
    const suidCat = `${bin}/suid-cat`;
    await Deno.copyFile("/usr/bin/cat", suidCat);
    await Deno.chown(suidCat, 0, 0);
    await Deno.chmod(suidCat, 0o4755);
    await t.step(
      "control: the setuid copy really runs as root for a plain user",
      async () => {
        const out = await asUser(caller.uid, caller.gid, [
          suidCat,
          "/proc/self/status",
        ]);
        assert.equal(out.code, 0, out.stderr);
        assert.equal(parseStatus(out.stdout).uid[1], 0, "euid 0");
      },
    );

    const capSets: [string, string[]][] = [
      ["no capability", []],
      ["one capability", ["CAP_NET_BIND_SERVICE"]],
      ["several capabilities", ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "net_admin"]],
    ];
    for (const target of ["root", DAEMON_USER]) {
      for (const [label, capabilities] of capSets) {
        await t.step(`${target} target, ${label}`, async () => {
          const ids = target === "root"
            ? { uid: 0, gid: 0 }
            : { uid: daemonUser.uid, gid: daemonUser.gid };
          const caps = capabilities.map(parseCapability);
          const mask = capabilitiesToMask(caps);
          init({
            configFiles: [
              await writeConfig(dir, {
                e2e: {
                  user: target,
                  capabilities,
                  permissions: { run: ["/usr/bin/cat", suidCat] },
                },
              }),
            ],
          });
          const info = await testCtx.start();
          try {
            // Every thread: exactly the configured sets, NoNewPrivs.
            await expectCredentials(info.pid, { ...ids, caps });

            // A child has no more than the daemon.
            const plain = await stress.childStatus("/usr/bin/cat");
            assert.equal(plain.code, 0, plain.stderr);
            assertChildWithin("cat", parseStatus(plain.stdout), {
              ...ids,
              mask,
            });

            // A setuid-root binary gains nothing (its euid stays the daemon's).
            const suid = await stress.childStatus(suidCat);
            assert.equal(suid.code, 0, suid.stderr);
            assertChildWithin("setuid cat", parseStatus(suid.stdout), {
              ...ids,
              mask,
            });

            // Deno's own permission wall: errors for the caller.
            await assert.rejects(stress.readEnv("HOME"), (e: unknown) => {
              assert.ok(e instanceof RemoteError, String(e));
              assert.equal(e.remoteName, "NotCapable");
              assert.match(e.message, /env access/);
              return true;
            });
            await assert.rejects(stress.runTrue(), (e: unknown) => {
              assert.ok(e instanceof RemoteError, String(e));
              assert.equal(e.remoteName, "NotCapable");
              assert.match(e.message, /run access/);
              return true;
            });

            // Another user cannot look inside; for a daemon with a
            // capability, not even its own user can.
            const maps = await Deno.readTextFile(`/proc/${info.pid}/maps`);
            const addr = parseInt(maps.split("-")[0], 16);
            const spies: [string, { uid: number; gid: number }][] = [
              [CALLER_USER, caller],
            ];
            if (target !== "root" && caps.length) {
              spies.push([DAEMON_USER, daemonUser]);
            }
            for (const [who, spy] of spies) {
              const environ = await asUser(spy.uid, spy.gid, [
                "cat",
                `/proc/${info.pid}/environ`,
              ]);
              assert.notEqual(environ.code, 0, `${who} read environ`);
              assert.match(environ.stderr, /Permission denied/);
              const mem = await asUser(spy.uid, spy.gid, [
                "dd",
                `if=/proc/${info.pid}/mem`,
                "of=/dev/null",
                "bs=4096",
                "count=1",
                "iflag=skip_bytes",
                `skip=${addr}`,
              ]);
              assert.notEqual(mem.code, 0, `${who} read mem`);
              assert.match(mem.stderr, /Permission denied/);
              if (label === "one capability") {
                const gdb = await asUser(spy.uid, spy.gid, [
                  "timeout",
                  "60",
                  "gdb",
                  "-nx",
                  "-batch",
                  "-p",
                  String(info.pid),
                  "-ex",
                  "info registers rip",
                ]);
                assert.match(
                  gdb.stdout + gdb.stderr,
                  /ptrace: Operation not permitted/,
                  `${who} attached gdb`,
                );
              }
            }
            // The daemon is still fine after all of that.
            assert.equal(await testCtx.daemon?.pid, info.pid);
          } finally {
            await testCtx.stop();
          }
        });
      }
    }
  } finally {
    init({ configFiles: [] });
    await testCtx.stop();
    await Deno.remove(dir, { recursive: true });
    await removeUser(DAEMON_USER);
    await removeUser(CALLER_USER);
  }
});
