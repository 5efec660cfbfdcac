// The operator CLI run as root from JSR, in the application's directory
// (docs/operating.md, step 3). For a jsr: program Deno applies the
// configuration found from the current directory up (an http: one's it does
// not): a tenth review had a developer's deno.json map privsep's own
// cli/_main.ts to their code, which ran as root, and an eleventh mapped the
// program itself, which no check inside it can see. As root the CLI runs
// only with --no-config. The package is served by a registry of this test's
// own (JSR_URL).
import assert from "node:assert/strict";
import {
  DENO,
  ensureUser,
  removeUser,
  requireRoot,
  ROOT,
  run,
  scratchDir,
  testUser,
} from "./_helpers.ts";

/** This file's own user: the application's developer. */
const USER = testUser(import.meta, "dev");

/** Publishes this checkout's package files as @privsep/privsep@0.1.0. */
async function publish(dir: string): Promise<void> {
  const { files } = JSON.parse(
    await Deno.readTextFile(`${ROOT}/cli/_files.json`),
  ) as { files: string[] };
  const out = `${dir}/@privsep/privsep`;
  const manifest: Record<string, unknown> = {};
  for (const file of new Set([...files, "deno.json"])) {
    const data = await Deno.readFile(`${ROOT}/${file}`);
    const to = `${out}/0.1.0/${file}`;
    await Deno.mkdir(to.slice(0, to.lastIndexOf("/")), { recursive: true });
    await Deno.writeFile(to, data);
    const hash = Array.from(
      new Uint8Array(await crypto.subtle.digest("SHA-256", data)),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    manifest[`/${file}`] = { size: data.length, checksum: `sha256-${hash}` };
  }
  const { exports } = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  await Deno.writeTextFile(
    `${out}/meta.json`,
    JSON.stringify({ versions: { "0.1.0": {} } }),
  );
  await Deno.writeTextFile(
    `${out}/0.1.0_meta.json`,
    JSON.stringify({ manifest, exports }),
  );
}

Deno.test(
  "the JSR operator CLI, run as root in a directory whose deno.json another user owns, runs none of its mappings (a tenth review)",
  async () => {
    requireRoot();
    const dir = await scratchDir();
    const registry = `${dir}/registry`;
    await publish(registry);
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      async (req) => {
        try {
          const path = decodeURIComponent(new URL(req.url).pathname);
          if (path.includes("..")) throw new Error(path);
          return new Response(await Deno.readFile(`${registry}${path}`));
        } catch {
          return new Response("not found", { status: 404 });
        }
      },
    );
    const jsr = `http://127.0.0.1:${server.addr.port}/`;
    try {
      const { uid, gid } = await ensureUser(USER);
      const app = `${dir}/app`;
      const marker = `${dir}/ran-as`;
      await Deno.mkdir(`${app}/privsep`, { recursive: true });
      await Deno.writeTextFile(
        `${app}/evil.ts`,
        `Deno.writeTextFileSync(${
          JSON.stringify(marker)
        }, "uid " + Deno.uid());\nexport async function runCli() { return 0; }\n`,
      );
      await Deno.writeTextFile(
        `${app}/deno.json`,
        JSON.stringify({
          imports: {
            [`${jsr}@privsep/privsep/0.1.0/cli/_main.ts`]: "./evil.ts",
          },
        }),
      );
      await run(["chown", "-R", `${uid}:${gid}`, app]);
      const cache = `${dir}/cache`;
      await Deno.mkdir(cache, { mode: 0o755 });
      const cli = (flags: string[]) =>
        run([
          DENO,
          "run",
          "-A",
          ...flags,
          "jsr:@privsep/privsep/cli",
          "inspect",
          `${app}/privsep/mod.ts`,
        ], {
          allowFail: true,
          cwd: app,
          env: { JSR_URL: jsr, DENO_DIR: cache, NO_COLOR: "1" },
        });
      // Without --no-config, as root: refused before privsep's modules.
      const out = await cli([]);
      await assert.rejects(
        Deno.stat(marker),
        Deno.errors.NotFound,
        "the developer's module ran as root",
      );
      assert.equal(out.code, 1, out.stdout + out.stderr);
      assert.match(
        out.stderr,
        /privsep: run the jsr:@privsep\/privsep\/cli command with --no-config as root/,
      );
      // An eleventh review: the cwd's deno.json can map the program itself
      // (its imports, or links to a package of the same name), which no
      // check inside it can see. With --no-config Deno applies none of it.
      await Deno.writeTextFile(
        `${app}/deno.json`,
        JSON.stringify({
          imports: {
            "jsr:@privsep/privsep/cli": "./evil.ts",
            [`${jsr}@privsep/privsep/0.1.0/cli/_main.ts`]: "./evil.ts",
          },
        }),
      );
      await cli(["--no-config"]);
      await assert.rejects(
        Deno.stat(marker),
        Deno.errors.NotFound,
        "the developer's mapping of the program applied with --no-config",
      );
    } finally {
      await server.shutdown();
      await removeUser(USER);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);

Deno.test(
  "the operator CLI refuses to run as root with another user's HOME or DENO_DIR, whose cache Deno runs compiled modules from (a tenth review)",
  async () => {
    requireRoot();
    const dir = await scratchDir();
    try {
      const { uid, gid } = await ensureUser(USER);
      const home = `${dir}/home`;
      await Deno.mkdir(home);
      await Deno.chown(home, uid, gid);
      for (
        const env of [
          { HOME: home },
          { DENO_DIR: `${home}/.cache/deno` },
        ] as Record<string, string>[]
      ) {
        const out = await run([
          DENO,
          "run",
          "-A",
          `${ROOT}/cli/privsep.ts`,
          "caps",
          "1",
        ], { allowFail: true, env: { ...env, NO_COLOR: "1" } });
        assert.equal(out.code, 1, JSON.stringify(env) + out.stderr);
        assert.match(
          out.stderr,
          /refusing to run with Deno's cache .*home.*owned by uid \d+; run the command in root's own environment/,
        );
      }
    } finally {
      await removeUser(USER);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);
