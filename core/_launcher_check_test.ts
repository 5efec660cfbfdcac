import assert from "node:assert/strict";
import {
  ABOVE_CHECK_SH,
  aboveProblem,
  CONFIG_CHECK_SH,
  denoConfigProblem,
  dirsAbove,
  FILES_CHECK_SH,
  isWorkspaceRoot,
  PRELOADED_MODULES,
} from "./_launcher_check.ts";

const ROOT = new URL("../", import.meta.url);

Deno.test("PRELOADED_MODULES is what daemon.ts imports statically, its first stage's modules", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL("daemon.ts", ROOT).pathname],
    cwd: ROOT.pathname,
    stdout: "piped",
  }).output();
  const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    modules: {
      specifier: string;
      dependencies?: {
        code?: { specifier: string };
        isDynamic?: boolean;
      }[];
    }[];
  };
  const bySpecifier = new Map(graph.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const todo = [graph.roots[0]];
  while (todo.length > 0) {
    const spec = todo.pop()!;
    if (seen.has(spec) || !spec.startsWith("file:")) continue;
    seen.add(spec);
    for (const dep of bySpecifier.get(spec)?.dependencies ?? []) {
      if (!dep.isDynamic && dep.code) todo.push(dep.code.specifier);
    }
  }
  assert.deepEqual(
    [...seen].map((s) => s.slice(ROOT.href.length)).sort(),
    [...PRELOADED_MODULES].sort(),
  );
});

/** Runs the launcher's shell function `name` (defined by `sh`) on `args`. */
async function runCheck(sh: string, name: string, ...args: string[]) {
  const out = await new Deno.Command("/bin/sh", {
    args: ["-c", `unset IFS\n${sh}\n${name} "$@"`, "sh", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

/** Runs privsep_check_files on `paths`. */
function check(...paths: string[]) {
  return runCheck(FILES_CHECK_SH, "privsep_check_files", ...paths);
}

Deno.test("privsep_check_files refuses a file, a directory on the way or a link's target that a user other than root may change", async () => {
  assert.equal(Deno.uid(), 0, "this test needs root: run it as root");
  await Deno.mkdir("/var/lib/privsep-tests", { recursive: true, mode: 0o755 });
  const dir = await Deno.makeTempDir({
    dir: "/var/lib/privsep-tests",
    prefix: "files-check-",
  });
  await Deno.chmod(dir, 0o755);
  try {
    const file = `${dir}/deno.json`;
    await Deno.writeTextFile(file, "{}\n", { mode: 0o644 });
    assert.equal((await check(file, "/bin/sh")).code, 0);

    await Deno.chown(file, 65534, 65534);
    const owned = await check("/bin/sh", file);
    assert.equal(owned.code, 1);
    assert.match(owned.stderr, new RegExp(`${file} is owned by uid 65534`));
    await Deno.chown(file, 0, 0);

    await Deno.chmod(dir, 0o775);
    const group = await check(file);
    assert.equal(group.code, 1);
    assert.match(
      group.stderr,
      new RegExp(`${dir} is owned by uid 0 with mode 775`),
    );
    await Deno.chmod(dir, 0o755);

    // A root's link is followed; the directories on the way to its target
    // are judged too.
    const other = `${dir}/other`;
    await Deno.mkdir(`${other}/app`, { recursive: true, mode: 0o755 });
    await Deno.writeTextFile(`${other}/app/deno.json`, "{}\n");
    await Deno.symlink(`${other}/app`, `${dir}/app`);
    assert.equal((await check(`${dir}/app/deno.json`)).code, 0);
    await Deno.chown(other, 65534, 65534);
    const target = await check(`${dir}/app/deno.json`);
    assert.equal(target.code, 1);
    assert.match(target.stderr, new RegExp(`${other} is owned by uid 65534`));

    const missing = await check(`${dir}/none.json`);
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /none\.json.*No such file[^]*refusing to start the daemon: .*cannot be inspected/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test('privsep_check_config and isWorkspaceRoot() accept a deno.json with a "workspace" key, and only that', async () => {
  const dir = await Deno.makeTempDir({ prefix: "privsep_ws_" });
  try {
    for (
      const [text, root] of [
        ['{ "workspace": [] }', true],
        ['{\n  "imports": {},\n  "workspace" : ["./a"],\n}', true],
        ['{\n  // the application\n  "workspace": []\n}', true],
        ['{ "imports": {} }', false],
        ['{ "workspaces": ["a"] }', false],
        // A review: a task named workspace, a comment, a string.
        [
          '{\n  "tasks": {\n    "workspace": "deno task -r check"\n  }\n}',
          false,
        ],
        ['{ "tasks": { "workspace": "deno task -r check" } }', false],
        ['{\n  // add "workspace": [] one day\n  "imports": {}\n}', false],
        ['{\n  "imports": { "a": "\\"workspace\\":" }\n}', false],
      ] as const
    ) {
      const file = `${dir}/deno.json`;
      await Deno.writeTextFile(file, text);
      assert.equal(isWorkspaceRoot(text), root, text);
      const out = await runCheck(CONFIG_CHECK_SH, "privsep_check_config", file);
      assert.equal(out.code, root ? 0 : 1, text);
      if (!root) {
        assert.match(
          out.stderr,
          /has no "workspace" key.*Add "workspace": \[\]/,
        );
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("privsep_check_config and denoConfigProblem() refuse a deno.json that names an import map file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "privsep_map_" });
  try {
    const file = `${dir}/deno.json`;
    for (
      const text of [
        '{\n  "importMap": "./import_map.json",\n  "workspace": []\n}',
        '{"workspace":[],"importMap":"/srv/shared/map.json"}',
      ]
    ) {
      await Deno.writeTextFile(file, text);
      assert.match(
        denoConfigProblem(file, text) ?? "",
        /names an import map file \("importMap"\)/,
      );
      const out = await runCheck(CONFIG_CHECK_SH, "privsep_check_config", file);
      assert.equal(out.code, 1, text);
      assert.match(
        out.stderr,
        /names an import map file/,
      );
    }
    assert.equal(
      denoConfigProblem(file, '{ "workspace": [], "imports": {} }'),
      undefined,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dirsAbove() lists the directories above the outermost roots, nearest first", () => {
  assert.deepEqual(dirsAbove(["/opt/app", "/opt/app/vendor/privsep"]), [
    "/opt",
    "/",
  ]);
  assert.deepEqual(dirsAbove(["/srv/a/b", "/opt/c"]), [
    "/srv/a",
    "/srv",
    "/",
    "/opt",
  ]);
  assert.deepEqual(dirsAbove(["/"]), []);
});

Deno.test("privsep_check_above and aboveProblem() refuse a package.json, deno.json or node_modules above the code", async () => {
  const dir = await Deno.makeTempDir({ prefix: "privsep_above_" });
  try {
    const dirs = [`${dir}/srv`, dir];
    await Deno.mkdir(`${dir}/srv/app`, { recursive: true });
    const check = async () => {
      return await runCheck(ABOVE_CHECK_SH, "privsep_check_above", ...dirs);
    };
    const exists = (p: string) => {
      try {
        Deno.lstatSync(p);
        return true;
      } catch {
        return false;
      }
    };
    assert.equal((await check()).code, 0);
    assert.equal(aboveProblem(dirs, exists), undefined);
    // A review: a package.json whose alias sent stage 1's npm import away.
    for (const name of ["package.json", "deno.json", "node_modules"]) {
      const path = `${dir}/srv/${name}`;
      if (name === "node_modules") await Deno.mkdir(path);
      else await Deno.writeTextFile(path, "{}");
      const out = await check();
      assert.equal(out.code, 1, name);
      assert.match(out.stderr, new RegExp(`${path} is above the application`));
      assert.match(aboveProblem(dirs, exists) ?? "", new RegExp(path));
      await Deno.remove(path);
    }
    // A dangling link counts.
    await Deno.symlink(`${dir}/none`, `${dir}/deno.jsonc`);
    assert.equal((await check()).code, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("privsep_check_config refuses a \\u escape, which could spell importMap", async () => {
  const dir = await Deno.makeTempDir({ prefix: "privsep_esc_" });
  try {
    const file = `${dir}/deno.json`;
    await Deno.writeTextFile(
      file,
      '{\n  "workspace": [],\n  "import\\u004dap": "./map.json"\n}\n',
    );
    const out = await runCheck(CONFIG_CHECK_SH, "privsep_check_config", file);
    assert.equal(out.code, 1);
    assert.match(out.stderr, /holds a \\u escape/);
    // The parser sees the key for what it is.
    assert.match(
      denoConfigProblem(file, await Deno.readTextFile(file)) ?? "",
      /names an import map file/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
