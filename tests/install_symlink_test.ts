// `privsep install --vendor-dir` run as root in an application directory its
// developer owns: it used to rewrite deno.json through a temporary file
// `.deno.json.privsep-new` there, created with writeTextFile and then chowned
// (both follow symlinks) to deno.json's owner, before any check that the
// directory is root's. The developer planted that name as a symlink to a
// root-only file: root overwrote the file and gave it to the developer. Now
// install refuses such a tree as root, before it writes or runs anything.
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

Deno.test(
  "privsep install --vendor-dir refuses, as root, an application tree another user owns (and follows no link planted there)",
  async () => {
    requireRoot();
    const dir = await scratchDir();
    try {
      const { uid, gid } = await ensureUser(USER);
      const victim = `${dir}/victim`;
      await Deno.writeTextFile(victim, "root only\n", { mode: 0o600 });
      const app = `${dir}/app`;
      await Deno.mkdir(`${app}/privsep`, { recursive: true });
      await Deno.writeTextFile(`${app}/deno.json`, '{ "imports": {} }\n');
      await Deno.writeTextFile(
        `${app}/privsep/mod.ts`,
        'import { PrivContext } from "@privsep/privsep";\nexport const c = new PrivContext({ module: import.meta, name: "c", capabilities: [] });\n',
      );
      await run(["chown", "-R", `${uid}:${gid}`, app]);
      // What the developer plants.
      await run([
        "/usr/bin/setpriv",
        `--reuid=${uid}`,
        `--regid=${gid}`,
        "--clear-groups",
        "ln",
        "-s",
        victim,
        `${app}/.deno.json.privsep-new`,
      ]);
      const out = await run([
        DENO,
        "run",
        "-A",
        `${ROOT}/cli/privsep.ts`,
        "install",
        `--vendor-dir=${dir}/vendor`,
        "--user",
        "root",
        `${app}/privsep/mod.ts#c`,
      ], { allowFail: true, cwd: dir });
      assert.equal(out.code, 1, out.stdout + out.stderr);
      assert.match(out.stderr, /refusing to work as root in .*owned by uid/);
      const info = await Deno.lstat(victim);
      assert.equal(info.uid, 0, `root gave ${victim} to uid ${info.uid}`);
      assert.equal(await Deno.readTextFile(victim), "root only\n");
      await assert.rejects(Deno.stat(`${dir}/vendor`), Deno.errors.NotFound);
    } finally {
      await removeUser(USER);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);

/** Runs `argv` as `uid`/`gid` (the developer's own commands). */
function asUser(uid: number, gid: number, argv: string[]): Promise<unknown> {
  return run([
    "/usr/bin/setpriv",
    `--reuid=${uid}`,
    `--regid=${gid}`,
    "--clear-groups",
    ...argv,
  ]);
}

/**
 * Code the developer plants: evaluated, it records who ran it in `marker`
 * (and exports what the module it replaces would, so that nothing fails).
 */
function planted(marker: string): string {
  return `Deno.writeTextFileSync(${
    JSON.stringify(marker)
  }, "uid " + Deno.uid() + "\\n", { append: true });
export const capsMain = () => 0, runCli = () => 0, parse = () => ({}), stringify = () => "";
export default {};
`;
}

Deno.test(
  "the operator CLI, run as root, runs no code through an application's configuration or node_modules another user could change (a fifth review)",
  async (t) => {
    requireRoot();
    const dir = await scratchDir();
    try {
      const { uid, gid } = await ensureUser(USER);
      const marker = `${dir}/ran-as`;
      const app = `${dir}/app`;
      await Deno.mkdir(`${app}/privsep`, { recursive: true });
      await Deno.writeTextFile(
        `${app}/privsep/mod.ts`,
        'import { PrivContext } from "@privsep/privsep";\nexport const c = new PrivContext({ module: import.meta, name: "c", capabilities: [] });\n',
      );
      const cli = (config: string, flags = [`--config=${config}`]) =>
        run([
          DENO,
          "run",
          "-A",
          ...flags,
          `${ROOT}/cli/privsep.ts`,
          "install",
          "--dry-run",
          `--vendor-dir=${app}/vendor/privsep`,
          "--user",
          "root",
          `${app}/privsep/mod.ts#c`,
        ], { allowFail: true, cwd: app });
      const ran = async () => {
        try {
          return await Deno.readTextFile(marker);
        } catch {
          return "";
        }
      };

      // An application as install wants it: privsep's npm packages in its
      // node_modules, mapped by its deno.json.
      const npmImports = {
        "@logtape/logtape": "npm:@logtape/logtape@^2.4.2",
        "msgpackr/pack": "npm:msgpackr@^2.1.4/pack",
        "msgpackr/unpack": "npm:msgpackr@^2.1.4/unpack",
        "smol-toml": "npm:smol-toml@^1.9.1",
      };
      await Deno.mkdir(`${app}/node_modules`);
      for (const pkg of ["@logtape", "msgpackr", "smol-toml"]) {
        await run([
          "cp",
          "-a",
          `${ROOT}/node_modules/${pkg}`,
          `${app}/node_modules/`,
        ]);
      }

      await t.step(
        "a deno.json the developer owns maps privsep's own modules to theirs",
        async () => {
          // docs/operating.md said to pass the application's deno.json to a
          // URL install; here the developer still owns the tree (step 2 of
          // the docs not done), which install refuses, but only once loaded.
          await Deno.writeTextFile(`${app}/evil.ts`, planted(marker));
          const imports: Record<string, string> = { ...npmImports };
          for (const name of ["_main.ts", "caps.ts"]) {
            imports[`file://${ROOT}/cli/${name}`] = "./evil.ts";
          }
          await Deno.writeTextFile(
            `${app}/deno.json`,
            JSON.stringify({ nodeModulesDir: "manual", imports }),
          );
          await run(["chown", "-R", `${uid}:${gid}`, app]);
          const out = await cli(`${app}/deno.json`);
          assert.equal(await ran(), "", "the developer's module ran as root");
          assert.equal(out.code, 1, out.stdout + out.stderr);
          assert.match(
            out.stderr,
            /refusing to load ".*\/app\/deno\.json": .*owned by uid \d+.*docs\/operating\.md, step 2/,
          );
          // Every way Deno's command line names a configuration.
          const json = `${app}/deno.json`;
          for (
            const flags of [
              ["-c", json],
              [`-c=${json}`],
              ["-Ac", json],
              [`-Ac${json}`],
              ["--config", json],
              [`--import-map=${json}`],
              ["--import-map", json],
            ]
          ) {
            const other = await cli(json, flags);
            assert.equal(await ran(), "", `${flags}: the module ran as root`);
            assert.equal(other.code, 1, `${flags}: ${other.stderr}`);
            assert.match(other.stderr, /refusing to load .*deno\.json/);
          }
        },
      );

      await t.step(
        "a root-owned deno.json whose node_modules holds the developer's package",
        async () => {
          await run(["chown", "-R", "root:root", app]);
          await run(["chmod", "-R", "go-w", app]);
          await Deno.remove(`${app}/evil.ts`);
          await Deno.writeTextFile(
            `${app}/deno.json`,
            JSON.stringify({ nodeModulesDir: "manual", imports: npmImports }),
          );
          // The developer's own smol-toml, in a directory of theirs.
          const pkg = `${app}/node_modules/smol-toml`;
          await Deno.remove(pkg, { recursive: true });
          await Deno.mkdir(pkg);
          await Deno.writeTextFile(
            `${pkg}/package.json`,
            JSON.stringify({
              name: "smol-toml",
              version: "1.9.1",
              type: "module",
              main: "index.js",
              exports: { ".": "./index.js" },
            }),
          );
          await Deno.writeTextFile(`${pkg}/index.js`, planted(marker));
          await run(["chown", "-R", `${uid}:${gid}`, pkg]);
          const out = await cli(`${app}/deno.json`);
          assert.equal(await ran(), "", "the developer's package ran as root");
          assert.equal(out.code, 1, out.stdout + out.stderr);
          assert.match(out.stderr, /node_modules\/smol-toml.*owned by uid/);
        },
      );

      await t.step(
        "a root-owned deno.json that is no workspace root, below another (a sixth review)",
        async () => {
          // What a daemon that may create files above the application could
          // plant, root-owned: Deno reads it as the workspace root.
          await Deno.writeTextFile(`${dir}/evil.ts`, planted(marker));
          await Deno.writeTextFile(
            `${dir}/deno.json`,
            JSON.stringify({
              workspace: ["./app"],
              imports: {
                [`file://${ROOT}/cli/_main.ts`]: "./evil.ts",
                [`file://${ROOT}/cli/caps.ts`]: "./evil.ts",
              },
            }),
          );
          await Deno.remove(`${app}/node_modules/smol-toml`, {
            recursive: true,
          });
          await run([
            "cp",
            "-a",
            `${ROOT}/node_modules/smol-toml`,
            `${app}/node_modules/`,
          ]);
          try {
            const out = await cli(`${app}/deno.json`);
            assert.equal(await ran(), "", "the module above ran as root");
            assert.equal(out.code, 1, out.stdout + out.stderr);
            assert.match(
              out.stderr,
              /deno\.json is above the application's code/,
            );
          } finally {
            await Deno.remove(`${dir}/deno.json`);
            await Deno.remove(`${dir}/evil.ts`);
          }
        },
      );
    } finally {
      await removeUser(USER);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);

Deno.test(
  "privsep vendor, as root, creates nothing through a link another user planted on the way to its directory (a fifth review)",
  async () => {
    requireRoot();
    const dir = await scratchDir();
    try {
      const { uid, gid } = await ensureUser(USER);
      // Stands for /etc: a root-owned directory only root may write.
      const elsewhere = `${dir}/etc`;
      await Deno.mkdir(elsewhere, { mode: 0o755 });
      const app = `${dir}/app`;
      await Deno.mkdir(app);
      await run(["chown", `${uid}:${gid}`, app]);
      await asUser(uid, gid, ["ln", "-s", elsewhere, `${app}/vendor`]);
      const out = await run([
        DENO,
        "run",
        "-A",
        `${ROOT}/cli/privsep.ts`,
        "vendor",
        `${app}/vendor/made-by-root/privsep`,
      ], { allowFail: true, cwd: dir });
      assert.deepEqual(
        [...Deno.readDirSync(elsewhere)].map((e) => e.name),
        [],
        "root created a directory through the link",
      );
      assert.equal(out.code, 1, out.stdout + out.stderr);
      assert.match(out.stderr, /refusing to create .* owned by uid/);
    } finally {
      await removeUser(USER);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);
