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
