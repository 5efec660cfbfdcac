// The way to every path the next root first stage trusts: a uid-0 serving
// daemon without CAP_SYS_ADMIN sees the cache, the code roots, deno and the
// config files through read-only bind mounts, but their parent directories
// are ordinary root-owned 0755 directories that a uid-0 process owns.
// Renaming a parent would move the protected tree away on the host and let
// the daemon put its own tree, root-owned, at the trusted path; so every
// directory and symlink on the way is a mount point in the daemon's
// namespace (rename, rmdir and unlink of a mount point fail with EBUSY,
// whatever the uid), and /usr (deno's libc and loader, /usr/bin/env, sh) is
// read-only as a whole. See docs/security/cache.md.
import assert from "node:assert/strict";
import { CAP_NET_BIND_SERVICE } from "../caps/table.ts";
import { init } from "../mod.ts";
import { testCtx } from "./fixtures/privsep/mod.ts";
import * as mounts from "./fixtures/privsep/mounts.ts";
import {
  EMIT_VICTIM,
  expectCredentials,
  requireRoot,
  ROOT,
  run,
  scratchDir,
  statusPayload as payload,
  writeConfig,
} from "./_helpers.ts";

const VICTIM = EMIT_VICTIM;

Deno.test(
  "a uid-0 daemon cannot replace the read-only cache by renaming its parent",
  async () => {
    requireRoot();
    const dir = await scratchDir();
    const denoDir = `${dir}/cache/deno`;
    await Deno.mkdir(`${dir}/cache`, { mode: 0o755 });
    await Deno.mkdir(`${dir}/attacker`, { mode: 0o755 });
    const marker = `${dir}/stage1-ran-planted-code`;
    const config = await writeConfig(dir, {
      e2e: {
        deno_dir: denoDir,
        user: "root",
        capabilities: ["CAP_NET_BIND_SERVICE"],
        permissions: "all",
      },
    });
    init({ configFiles: [config] });
    try {
      const info = await testCtx.start();
      let result: string;
      try {
        await expectCredentials(info.pid, {
          uid: 0,
          gid: 0,
          caps: [CAP_NET_BIND_SERVICE],
        });
        result = await mounts.swapCacheParent(
          denoDir,
          VICTIM,
          payload(marker),
          `${dir}/attacker`,
        );
      } finally {
        await testCtx.stop();
      }
      assert.match(result, /rename failed: Device or resource busy/);
      await testCtx.start().catch((e) => e);
      await testCtx.stop();
      const ran = await Deno.readTextFile(marker).catch(() => undefined);
      assert.equal(
        ran,
        undefined,
        `the next stage 1 ran code the daemon planted (${result}): ${
          ran?.match(/^(Uid|CapEff):.*$/gm)?.join(", ")
        }`,
      );
    } finally {
      await run(["rm", "-rf", dir], { allowFail: true });
    }
  },
);

Deno.test(
  "a uid-0 daemon cannot rewrite its config file by renaming its parent",
  async () => {
    requireRoot();
    const dir = await scratchDir();
    const etc = `${dir}/etc`;
    await Deno.mkdir(etc, { mode: 0o755 });
    const config = await writeConfig(etc, {
      e2e: {
        deno_dir: `${dir}/deno`,
        user: "root",
        capabilities: ["CAP_NET_BIND_SERVICE"],
        permissions: "all",
      },
    });
    init({ configFiles: [config] });
    try {
      const info = await testCtx.start();
      let result: string;
      try {
        result = await mounts.swapFileParent(
          config,
          `[e2e]\ndeno_dir = "${dir}/deno"\nuser = "root"\n` +
            `capabilities = ["CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE", "CAP_SETUID", "CAP_SYS_MODULE"]\npermissions = "all"\n`,
        );
      } finally {
        await testCtx.stop();
      }
      void info;
      assert.match(result, /rename failed: Device or resource busy/);
      const next = await testCtx.start().catch((e) => e as Error);
      try {
        if (next instanceof Error) return; // refused: attack failed
        const status = await Deno.readTextFile(`/proc/${next.pid}/status`);
        const capEff = /^CapEff:\s+(\S+)$/m.exec(status)?.[1];
        assert.equal(
          capEff,
          (1n << BigInt(CAP_NET_BIND_SERVICE)).toString(16).padStart(16, "0"),
          `the next daemon got CapEff ${capEff} (${result})`,
        );
      } finally {
        await testCtx.stop();
      }
    } finally {
      await run(["rm", "-rf", dir], { allowFail: true });
    }
  },
);

Deno.test(
  "a uid-0 daemon cannot rename, remove or write anything on the way to what stage 1 trusts",
  async () => {
    requireRoot();
    const dir = await scratchDir();
    // The cache is reached through a symlink: the link, the directories on
    // both sides of it and the launcher directory must all hold.
    await Deno.mkdir(`${dir}/real/cache`, { recursive: true, mode: 0o755 });
    await Deno.symlink("real", `${dir}/via`);
    await Deno.mkdir(`${dir}/libexec`, { mode: 0o755 });
    const denoDir = `${dir}/via/cache/deno`;
    const probe = `/usr/lib/privsep-mounts-probe-${Deno.pid}`;
    const config = await writeConfig(dir, {
      e2e: {
        deno_dir: denoDir,
        launcher_dir: `${dir}/libexec`,
        user: "root",
        capabilities: ["CAP_NET_BIND_SERVICE"],
        permissions: "all",
      },
    });
    init({ configFiles: [config] });
    try {
      const info = await testCtx.start();
      const out: string[] = [];
      let mountinfo: string;
      let chmodWay: string;
      try {
        mountinfo = await Deno.readTextFile(`/proc/${info.pid}/mountinfo`);
        for (
          const [op, path] of [
            ["rename", dir],
            ["rename", `${dir}/real`],
            ["rename", `${dir}/real/cache`],
            ["rename", `${dir}/via`],
            ["symlink", `${dir}/via`],
            ["write", `${dir}/libexec/planted`],
            ["write", probe],
            ["chmod", "/usr/bin/env"],
          ] as const
        ) out.push(`${op} ${path}: ${await mounts.attempt(op, path)}`);
        // Not prevented: the mode of a directory on the way (the next
        // launcher and stage 1 then refuse to start; see cache_test.ts).
        chmodWay = await mounts.attempt("chmod", `${dir}/real`);
      } finally {
        await testCtx.stop();
      }
      await Deno.remove(probe).catch(() => {});
      for (const line of out) {
        assert.match(
          line,
          /^(rename|symlink).*Device or resource busy|^(write|chmod).*Read-only file system/,
          out.join("\n"),
        );
      }
      // The daemon's namespace: /usr read-only; the symlinks of "/" that
      // lead into it (merged /usr) pinned, real directories read-only.
      const points = new Map<string, string[]>();
      for (const line of mountinfo.split("\n")) {
        const f = line.split(" ");
        if (f.length > 5) points.set(f[4], f[5].split(","));
      }
      assert.ok(points.get("/usr")?.includes("ro"), "/usr is not read-only");
      for (const top of ["/bin", "/sbin", "/lib", "/lib64"]) {
        const st = await Deno.lstat(top).catch(() => undefined);
        if (!st) continue;
        assert.ok(points.has(top), `${top} is not a mount point`);
        if (st.isDirectory) assert.ok(points.get(top)!.includes("ro"));
      }
      assert.equal(chmodWay, "ok");
      // The host's own view is unchanged.
      assert.equal(await Deno.readLink(`${dir}/via`), "real");
    } finally {
      await run(["rm", "-rf", dir, `${dir}.moved`], { allowFail: true });
    }
  },
);

Deno.test(
  "another mount of the same directory on the host: renames through it fail, writes through it do not",
  async () => {
    requireRoot();
    const dir = await scratchDir();
    const alias = `${dir}-alias`;
    await Deno.mkdir(`${dir}/cache`, { mode: 0o755 });
    await Deno.mkdir(alias, { mode: 0o755 });
    const denoDir = `${dir}/cache/deno`;
    const config = await writeConfig(dir, {
      e2e: {
        deno_dir: denoDir,
        user: "root",
        capabilities: ["CAP_NET_BIND_SERVICE"],
        permissions: "all",
      },
    });
    init({ configFiles: [config] });
    // Like /var also mounted at /srv/var: the same directories, another
    // mount, which the daemon's read-only view of the cache does not cover.
    await run(["mount", "--bind", dir, alias]);
    try {
      await testCtx.start();
      try {
        // The directories on the way are pinned whatever the path to them.
        assert.match(
          await mounts.attempt("rename", `${alias}/cache`),
          /Device or resource busy/,
        );
        // The cache itself is writable through the other mount.
        assert.equal(
          await mounts.attempt("write", `${alias}/cache/deno/planted`),
          "ok",
        );
        assert.match(
          await mounts.attempt("write", `${denoDir}/planted`),
          /Read-only file system/,
        );
      } finally {
        await testCtx.stop();
      }
    } finally {
      await run(["umount", alias], { allowFail: true });
      await run(["rm", "-rf", dir, alias], { allowFail: true });
    }
  },
);

Deno.test(
  "a uid-0 context whose write path holds the application's code refuses to start (a sixth review)",
  async () => {
    requireRoot();
    const dir = await scratchDir();
    // A daemon that may create files above the code (here: in the
    // directory that holds the checkout) could put a deno.json,
    // package.json or node_modules there, where Deno looks on its way up
    // from what the next root first stage loads.
    const above = ROOT.slice(0, ROOT.lastIndexOf("/")) || "/";
    // Also a write path not made yet beside the code: its rule and its
    // mount go to its directory (a seventh review).
    const notYet = `${above}/privsep-not-yet-${crypto.randomUUID()}`;
    try {
      for (const write of [above, notYet]) {
        const config = await writeConfig(dir, {
          e2e: {
            user: "root",
            capabilities: [],
            permissions: { write: [write] },
          },
        });
        init({ configFiles: [config] });
        await assert.rejects(
          testCtx.start(),
          (error: Error) => {
            assert.match(
              `${error.message} ${(error.cause as Error)?.message}`,
              new RegExp(
                `the write path ${write} holds ${ROOT}, which the root first stage trusts`,
              ),
            );
            return true;
          },
        );
      }
      // A write path that holds the cache (a twelfth review: cleared by
      // hand while the daemon ran, the cache lost its read-only mount, and
      // the daemon refilled it with code the next stage 1 ran).
      const cache = `${dir}/cache`;
      await Deno.mkdir(cache, { mode: 0o755 });
      init({
        configFiles: [
          await writeConfig(dir, {
            e2e: {
              user: "root",
              capabilities: [],
              deno_dir: `${cache}/deno`,
              permissions: { write: [cache] },
            },
          }),
        ],
      });
      await assert.rejects(testCtx.start(), (error: Error) => {
        assert.match(
          `${error.message} ${(error.cause as Error)?.message}`,
          new RegExp(`the write path ${cache} holds ${cache}/deno`),
        );
        return true;
      });
      // A pid file in /run: its directory gets the rule, and /run holds
      // /run/privsep, whose keeper-shell the next stage 1 runs as root
      // outside the sandbox (a thirteenth review replaced it).
      const pidFile = `/run/privsep-test-${crypto.randomUUID()}.pid`;
      init({
        configFiles: [
          await writeConfig(dir, {
            e2e: {
              user: "root",
              capabilities: [],
              permissions: { write: [pidFile] },
            },
          }),
        ],
      });
      await assert.rejects(testCtx.start(), (error: Error) => {
        assert.match(
          `${error.message} ${(error.cause as Error)?.message}`,
          new RegExp(`the write path ${pidFile} holds /run/privsep`),
        );
        return true;
      });
    } finally {
      await testCtx.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
