// Review 2, attack on `privsep install --vendor-dir` run as root in an
// application directory its developer owns: it rewrites deno.json through a
// temporary file `.deno.json.privsep-new` in that directory, created with
// writeTextFile (follows symlinks) and then chowned (follows symlinks) to
// deno.json's owner, before any check that the directory is root's. The
// developer plants that name as a symlink to a root-only file: root
// overwrites the file and gives it to the developer.
import assert from "node:assert/strict";
import {
  DENO,
  ensureUser,
  removeUser,
  requireRoot,
  ROOT,
  run,
  scratchDir,
} from "./_helpers.ts";

const USER = "privsep-rv2-e";

Deno.test(
  "review2: privsep install --vendor-dir does not follow a symlink the application's owner planted",
  { sanitizeOps: false, sanitizeResources: false },
  async () => {
    requireRoot();
    const dir = await scratchDir();
    const { uid, gid } = await ensureUser(USER);
    try {
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
      console.log(out.code, out.stdout.slice(-400), out.stderr.slice(-600));
      const info = await Deno.lstat(victim);
      assert.equal(info.uid, 0, `root gave ${victim} to uid ${info.uid}`);
      assert.equal(await Deno.readTextFile(victim), "root only\n");
    } finally {
      await removeUser(USER);
    }
  },
);
