// The cache that root's first stage runs from: no serving daemon may change
// it. A uid-0 daemon owns every root-owned file even without
// CAP_DAC_OVERRIDE, so file modes cannot protect DENO_DIR: the daemon sees it
// (and the code, deno and the config) through read-only mounts instead.
import assert from "node:assert/strict";
import { CAP_DAC_OVERRIDE, CAP_NET_BIND_SERVICE } from "../caps/table.ts";
import { init } from "../mod.ts";
import { CACHE_CHECK_SH } from "../core/_launcher_check.ts";
import { testCtx } from "./fixtures/privsep/mod.ts";
import * as cache from "./fixtures/privsep/cache.ts";
import * as ops from "./fixtures/privsep/ops.ts";
import { encodeMessage, Kind } from "../protocol/messages.ts";
import { RawDaemon } from "../reliability/_raw.ts";
import {
  DENO,
  EMIT_VICTIM,
  ensureUser,
  expectCredentials,
  removeUser,
  requireRoot,
  ROOT,
  run,
  scratchDir,
  statusPayload as payload,
  testUser,
  writeConfig,
} from "./_helpers.ts";

/** This file's own daemon user. */
const CACHE_USER = testUser(import.meta, "d");

const VICTIM = EMIT_VICTIM;

/** The mounts of `pid` (mount point -> per-mount options), from mountinfo. */
async function mountsOf(pid: number): Promise<Map<string, string[]>> {
  const mounts = new Map<string, string[]>();
  for (
    const line of (await Deno.readTextFile(`/proc/${pid}/mountinfo`))
      .split("\n")
  ) {
    const f = line.split(" ");
    if (f.length > 5) mounts.set(f[4], f[5].split(","));
  }
  return mounts;
}

Deno.test(
  "the cache that stage 1 runs from is never writable by a serving daemon",
  async (t) => {
    requireRoot();
    const dir = await scratchDir();
    const denoDir = `${dir}/deno`;
    let stepDenoDir = `${dir}/deno-attack`;
    const daemonUser = await ensureUser(CACHE_USER);
    let config = "";
    const start = async (section: Record<string, unknown>) => {
      config = await writeConfig(dir, {
        e2e: { deno_dir: stepDenoDir, ...section } as never,
      });
      init({ configFiles: [config] });
      return await testCtx.start();
    };
    try {
      await t.step(
        "a uid-0 daemon without CAP_DAC_OVERRIDE cannot plant code that the next stage 1 runs as full root",
        async () => {
          const marker = `${dir}/stage1-ran-planted-code`;
          const scratch = `${dir}/attacker`;
          await Deno.mkdir(scratch, { mode: 0o755 });
          const info = await start({
            user: "root",
            capabilities: ["CAP_NET_BIND_SERVICE"],
            permissions: "all",
          });
          let planted: unknown;
          try {
            await expectCredentials(info.pid, {
              uid: 0,
              gid: 0,
              caps: [CAP_NET_BIND_SERVICE],
            });
            // The entry exists: stage 1 wrote it when it loaded the module.
            assert.ok(
              (await Deno.stat(`${stepDenoDir}/gen/file${VICTIM}.js`)).isFile,
            );
            planted = await cache.poisonEmitCache(
              stepDenoDir,
              VICTIM,
              payload(marker),
              scratch,
            ).catch((e: Error) => e);
          } finally {
            await testCtx.stop();
          }
          // The next start: stage 1 loads caps/_ffi.ts from the cache.
          await start({
            user: "root",
            capabilities: ["CAP_NET_BIND_SERVICE"],
            permissions: "all",
          });
          await testCtx.stop();
          const ran = await Deno.readTextFile(marker).catch(() => undefined);
          assert.equal(
            ran,
            undefined,
            `processes ran code that the daemon planted in ${planted}: ${
              ran?.match(/^CapEff:.*$/gm)?.join(", ")
            }`,
          );
          assert.ok(planted instanceof Error, `planted in ${planted}`);
          assert.match(planted.message, /Read-only file system/);
        },
      );

      stepDenoDir = denoDir;
      const cacheFile = `${denoDir}/gen/file${VICTIM}.js`;
      for (
        const [label, section, uid, caps] of [
          ["uid 0, no capabilities", { user: "root", capabilities: [] }, 0, []],
          [
            "uid 0 with CAP_DAC_OVERRIDE",
            { user: "root", capabilities: ["CAP_DAC_OVERRIDE"] },
            0,
            [CAP_DAC_OVERRIDE],
          ],
          [
            "another user with CAP_DAC_OVERRIDE",
            { user: CACHE_USER, capabilities: ["CAP_DAC_OVERRIDE"] },
            daemonUser.uid,
            [CAP_DAC_OVERRIDE],
          ],
        ] as const
      ) {
        await t.step(
          `${label}: the cache, the code, deno and the config are read-only mounts`,
          async () => {
            const info = await start({ ...section, permissions: "all" });
            try {
              await expectCredentials(info.pid, {
                uid,
                gid: uid === 0 ? 0 : daemonUser.gid,
                caps: [...caps],
              });
              for (const path of [cacheFile, VICTIM, config]) {
                const got = await cache.tryOpenForWrite(path);
                assert.match(got, /Read-only file system/, `${path}: ${got}`);
              }
              // The running deno is "busy" for writes; its mode is not.
              for (const path of [cacheFile, DENO, config]) {
                const got = await cache.tryChmod(path);
                assert.match(got, /Read-only file system/, `${path}: ${got}`);
              }
              // A file the daemon creates in the cache directory: refused too.
              assert.match(
                await cache.tryOpenForWrite(`${denoDir}/gen/new.js`),
                /Read-only file system/,
              );
              const mounts = await mountsOf(info.pid);
              for (const path of [denoDir, ROOT, config]) {
                assert.ok(
                  mounts.get(path)?.includes("ro"),
                  `${path} in /proc/${info.pid}/mountinfo: ${mounts.get(path)}`,
                );
              }
              // Nothing of the daemon's mounts reached the host.
              const ours = await mountsOf(Deno.pid);
              assert.equal(ours.get(denoDir), undefined);
              assert.notEqual(
                await Deno.readLink(`/proc/${info.pid}/ns/mnt`),
                await Deno.readLink("/proc/self/ns/mnt"),
              );
            } finally {
              await testCtx.stop();
            }
          },
        );
      }

      await t.step(
        "the launcher's check refuses a cache that anyone but root could have written",
        async () => {
          const check = (path: string) =>
            run([
              "sh",
              "-c",
              `${CACHE_CHECK_SH}\nprivsep_check_cache "$1"`,
              "sh",
              path,
            ], { allowFail: true });
          // What the daemons above left: root-owned, read-only for others.
          assert.equal((await check(denoDir)).code, 0);
          assert.equal((await check(`${dir}/not-yet/deno`)).code, 0);
          // A cache not created yet: only its ancestors are judged, not
          // what else its nearest existing ancestor holds (on a fresh host,
          // /var/cache/man is owned by user man).
          await Deno.mkdir(`${dir}/other`, { mode: 0o755 });
          await Deno.chown(`${dir}/other`, daemonUser.uid, daemonUser.gid);
          const fresh = await check(`${dir}/not-yet/deno`);
          assert.equal(fresh.code, 0, fresh.stderr);
          await Deno.remove(`${dir}/other`);
          const entry = `${denoDir}/gen/file${VICTIM}.js`;
          await Deno.chmod(entry, 0o664);
          const group = await check(denoDir);
          assert.equal(group.code, 1);
          assert.match(group.stderr, /is not root-owned or is writable/);
          await Deno.chmod(entry, 0o644);
          await Deno.chown(entry, daemonUser.uid, daemonUser.gid);
          const owned = await check(denoDir);
          assert.equal(owned.code, 1);
          // The advice names the cache itself, never an ancestor.
          assert.ok(
            owned.stderr.includes(`(rm -rf ${denoDir})`),
            owned.stderr,
          );
          await Deno.chown(entry, 0, 0);
          assert.equal((await check(denoDir)).code, 0);
          assert.match((await check("/tmp/privsep-cache")).stderr, /mode 1777/);
          assert.match((await check("cache")).stderr, /must be an absolute/);
        },
      );

      await t.step(
        "a daemon that keeps CAP_SYS_ADMIN stays in the host's mount namespace (it could undo any mount)",
        async () => {
          const info = await start({
            user: "root",
            capabilities: ["CAP_SYS_ADMIN"],
          });
          try {
            assert.equal(
              await Deno.readLink(`/proc/${info.pid}/ns/mnt`),
              await Deno.readLink("/proc/self/ns/mnt"),
            );
          } finally {
            await testCtx.stop();
          }
        },
      );

      await t.step(
        "/proc/<pid>/root of a host process: a way around the mounts only where a uid-0 host process has no more capabilities than the daemon",
        async () => {
          // A host process, uid 0 with no capabilities at all, in the
          // host's mount namespace (where the cache is writable).
          const host = new Deno.Command("setpriv", {
            args: [
              "--securebits=+noroot,+noroot_locked",
              "--bounding-set=-all",
              "--inh-caps=-all",
              "sleep",
              "60",
            ],
            stdout: "null",
            stderr: "null",
          }).spawn();
          // A full-root host process (like sudo, or stage 1 itself).
          const full = new Deno.Command("sleep", {
            args: ["60"],
            stdout: "null",
            stderr: "null",
          }).spawn();
          await new Promise((r) => setTimeout(r, 100));
          const hostStatus = await Deno.readTextFile(
            `/proc/${host.pid}/status`,
          );
          assert.match(hostStatus, /^CapPrm:\s+0+$/m);
          try {
            const cases = [
              // Without the kernel sandbox; with it (the default), Landlock
              // refuses the daemon any ptrace-mode access, /proc/<pid>/root
              // included, to a process outside its domain
              // (docs/security/sandbox.md).
              [
                { user: "root", capabilities: [], confinement: "off" },
                host.pid,
                "writable",
              ],
              [{ user: "root", capabilities: [] }, host.pid, /denied/],
              [{ user: "root", capabilities: [] }, full.pid, /denied/],
              [
                { user: CACHE_USER, capabilities: ["CAP_DAC_OVERRIDE"] },
                host.pid,
                /denied/,
              ],
            ] as const;
            for (const [section, pid, want] of cases) {
              await start({ ...section, permissions: "all" });
              try {
                const got = await cache.tryOpenForWrite(
                  `/proc/${pid}/root${cacheFile}`,
                );
                if (typeof want === "string") assert.equal(got, want);
                else assert.match(got, want);
              } finally {
                await testCtx.stop();
              }
            }
          } finally {
            host.kill();
            full.kill();
            await host.status;
            await full.status;
          }
        },
      );
    } finally {
      await removeUser(CACHE_USER);
      await run(["rm", "-rf", dir], { allowFail: true });
    }
  },
);

Deno.test(
  "first stages started at the same time into an empty cache all serve, and leave it whole",
  async () => {
    // What `deno test --parallel` does to /var/cache/privsep/deno on a fresh
    // host (CI starts from an empty one): several root first stages fill
    // the same DENO_DIR at once. Deno writes it for concurrent processes.
    requireRoot();
    const dir = await scratchDir();
    const denoDir = `${dir}/deno`;
    const daemons: RawDaemon[] = [];
    try {
      init({
        configFiles: [
          await writeConfig(dir, {
            e2e: { user: "root", capabilities: [], deno_dir: denoDir },
          }),
        ],
      });
      for (let i = 0; i < 4; i++) {
        daemons.push(new RawDaemon(testCtx.command()));
      }
      await Promise.all(daemons.map((d) => d.handshake(60_000)));
      for (const [i, d] of daemons.entries()) {
        await d.write(encodeMessage([Kind.Call, 1, "ops.ts#echo", [i]]));
        const reply = await d.waitFor(
          (m) => "id" in m && m.id === 1,
          30_000,
          `daemon ${i}'s reply`,
        );
        assert.equal(reply.kind, Kind.Result, d.stderr);
      }
      // The next start runs from that cache, and the launcher accepts it.
      assert.equal(await ops.echo("again"), "again");
      await testCtx.stop();
      const check = await run([
        "sh",
        "-c",
        `${CACHE_CHECK_SH}\nprivsep_check_cache "$1"`,
        "sh",
        denoDir,
      ], { allowFail: true });
      assert.equal(check.code, 0, check.stderr);
      const partial = await run(["find", denoDir, "-name", "*.tmp*"]);
      assert.equal(partial.stdout, "", "files left half-written");
    } finally {
      for (const d of daemons) await d.kill();
      await testCtx.stop();
      init({ configFiles: [] });
      await run(["rm", "-rf", dir], { allowFail: true });
    }
  },
);
