// Copyright the privsep authors. Apache-2.0 license.

// These tests change file ownership, so they need root; they run on the real
// filesystem, in a fresh root-owned 0755 directory that each test removes.

import assert from "node:assert/strict";
import {
  assertTrusted,
  assertTrustedTree,
  UntrustedPathError,
  untrustedReason,
} from "./trust.ts";

const NOBODY = 65534;
const ignore = Deno.uid() !== 0;

const OWNER_REMEDY =
  "install the files afresh, root-owned, in a root-owned location (chown root:root only a directory no other user has written in)";

/** Runs `fn` with a fresh, trusted, root-owned 0755 directory. */
const TEST_ROOT = "/var/lib/privsep-tests";

function withBase(fn: (base: string) => void): void {
  // Below a root-owned 0755 directory: /tmp is sticky and world-writable,
  // which the check refuses even as an ancestor.
  Deno.mkdirSync(TEST_ROOT, { recursive: true, mode: 0o755 });
  const base = Deno.makeTempDirSync({
    dir: TEST_ROOT,
    prefix: "privsep_trust_test_",
  });
  try {
    Deno.chmodSync(base, 0o755);
    const reason = untrustedReason(base);
    assert.equal(
      reason,
      null,
      `the test directory must start out trusted; is TMPDIR root-owned? ${reason}`,
    );
    fn(base);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
}

function makeFile(path: string, mode = 0o644): string {
  Deno.writeTextFileSync(path, "export {};\n");
  Deno.chmodSync(path, mode);
  return path;
}

function makeDir(path: string, mode = 0o755): string {
  Deno.mkdirSync(path);
  Deno.chmodSync(path, mode);
  return path;
}

/** Changes the owner of a symbolic link itself (Deno.chown follows links). */
function lchown(path: string, uid: number): void {
  const { success, stderr } = new Deno.Command("chown", {
    args: ["-h", `${uid}:${uid}`, path],
    stderr: "piped",
  }).outputSync();
  assert.ok(success, new TextDecoder().decode(stderr));
}

function assertReason(path: string, ...patterns: RegExp[]): string {
  const reason = untrustedReason(path);
  assert.notEqual(reason, null, `expected "${path}" to be untrusted`);
  assert.ok(reason !== null);
  assert.ok(
    reason.startsWith(`refusing to load "${path}": `),
    `unexpected start: ${reason}`,
  );
  for (const pattern of patterns) assert.match(reason, pattern);
  return reason;
}

function quoted(path: string): RegExp {
  return new RegExp(`"${path.replaceAll(/[.*+?^${}()|[\]\\]/g, "\\$&")}"`);
}

function assertTreeThrows(
  dir: string,
  expectedPath: string,
  options: { skip?: (path: string) => boolean } = {},
  ...patterns: RegExp[]
): UntrustedPathError {
  let caught: unknown;
  try {
    assertTrustedTree(dir, options);
  } catch (error) {
    caught = error;
  }
  assert.ok(
    caught instanceof UntrustedPathError,
    `expected an UntrustedPathError, got ${caught}`,
  );
  assert.equal(caught.path, expectedPath);
  for (const pattern of patterns) assert.match(caught.message, pattern);
  return caught;
}

Deno.test({
  name: "untrustedReason() accepts a root-owned file in root-owned directories",
  ignore,
  fn() {
    withBase((base) => {
      const file = makeFile(`${base}/daemon.ts`);
      const sub = makeDir(`${base}/sub`);
      const nested = makeFile(`${sub}/nested.ts`, 0o600);
      assert.equal(untrustedReason(file), null);
      assert.equal(untrustedReason(sub), null);
      assert.equal(untrustedReason(nested), null);
      assert.equal(untrustedReason(`${sub}/./../sub/nested.ts`), null);
      assert.equal(untrustedReason("/"), null);
      assertTrusted(file);
    });
  },
});

Deno.test({
  name: "untrustedReason() rejects a sticky directory as an ancestor",
  ignore,
  fn() {
    withBase((base) => {
      // Anyone could put a deno.json or node_modules beside "app" that Deno
      // would pick up as a workspace root or npm package.
      const shared = makeDir(`${base}/shared`, 0o1777);
      const inner = makeDir(`${shared}/app`);
      const file = makeFile(`${inner}/daemon.ts`);
      assertReason(
        file,
        quoted(shared),
        /mode 1777/,
        /even with the sticky bit/,
      );
    });
  },
});

Deno.test({
  name: "untrustedReason() rejects a sticky directory as the target",
  ignore,
  fn() {
    withBase((base) => {
      const shared = makeDir(`${base}/shared`, 0o1777);
      assertReason(
        shared,
        new RegExp(
          `${
            quoted(shared).source
          } is writable by its group and by others \\(mode 1777\\)`,
        ),
        /even with the sticky bit, anyone can put a deno\.json/,
        /chmod go-w/,
      );
      // Reaching the sticky directory through ".." still makes it the target.
      makeDir(`${shared}/app`);
      assertReason(`${shared}/app/..`, quoted(shared), /mode 1777/);
    });
  },
});

Deno.test({
  name: "untrustedReason() rejects a file owned by another user",
  ignore,
  fn() {
    withBase((base) => {
      const file = makeFile(`${base}/daemon.ts`);
      Deno.chownSync(file, NOBODY, NOBODY);
      assert.equal(
        untrustedReason(file),
        `refusing to load "${file}": "${file}" is owned by uid ${NOBODY}, not root; ${OWNER_REMEDY}`,
      );
    });
  },
});

Deno.test({
  name:
    "untrustedReason() rejects a file below a directory owned by another user",
  ignore,
  fn() {
    withBase((base) => {
      const dir = makeDir(`${base}/x`);
      const file = makeFile(`${dir}/daemon.ts`);
      Deno.chownSync(dir, NOBODY, NOBODY);
      assert.equal(
        untrustedReason(file),
        `refusing to load "${file}": "${dir}" is owned by uid ${NOBODY}, not root; ${OWNER_REMEDY}`,
      );
    });
  },
});

Deno.test({
  name: "untrustedReason() rejects a group-writable file",
  ignore,
  fn() {
    withBase((base) => {
      const file = makeFile(`${base}/daemon.ts`, 0o664);
      assertReason(
        file,
        new RegExp(
          `${quoted(file).source} is writable by its group \\(mode 0664\\)`,
        ),
        /not group\/world-writable, in a root-owned location \(chmod go-w only what no other user has written in\)/,
      );
    });
  },
});

Deno.test({
  name: "untrustedReason() rejects a file below a world-writable directory",
  ignore,
  fn() {
    withBase((base) => {
      const dir = makeDir(`${base}/open`, 0o757);
      const file = makeFile(`${dir}/daemon.ts`);
      assertReason(
        file,
        new RegExp(
          `${quoted(dir).source} is writable by others \\(mode 0757\\)`,
        ),
      );
    });
  },
});

Deno.test({
  name: "untrustedReason() rejects a group- and world-writable file",
  ignore,
  fn() {
    withBase((base) => {
      const file = makeFile(`${base}/daemon.ts`, 0o666);
      assertReason(file, /writable by its group and by others \(mode 0666\)/);
    });
  },
});

Deno.test({
  name: "untrustedReason() accepts a root-owned symlink to a trusted file",
  ignore,
  fn() {
    withBase((base) => {
      const file = makeFile(`${base}/real.ts`);
      Deno.symlinkSync(file, `${base}/absolute.ts`);
      Deno.symlinkSync("real.ts", `${base}/relative.ts`);
      makeDir(`${base}/real`);
      makeFile(`${base}/real/mod.ts`);
      Deno.symlinkSync("real", `${base}/alias`);
      assert.equal(untrustedReason(`${base}/absolute.ts`), null);
      assert.equal(untrustedReason(`${base}/relative.ts`), null);
      assert.equal(untrustedReason(`${base}/alias/mod.ts`), null);
    });
  },
});

Deno.test({
  name: "untrustedReason() rejects a symlink to an untrusted target",
  ignore,
  fn() {
    withBase((base) => {
      const evil = makeDir(`${base}/evil`);
      const target = makeFile(`${evil}/daemon.ts`);
      Deno.chownSync(evil, NOBODY, NOBODY);
      const link = `${base}/daemon.ts`;
      Deno.symlinkSync(target, link);
      assertReason(
        link,
        new RegExp(`${quoted(evil).source} is owned by uid ${NOBODY}`),
      );

      const owned = makeFile(`${base}/owned.ts`);
      Deno.chownSync(owned, NOBODY, NOBODY);
      Deno.symlinkSync("owned.ts", `${base}/to-owned.ts`);
      assertReason(
        `${base}/to-owned.ts`,
        new RegExp(`${quoted(owned).source} is owned by uid ${NOBODY}`),
      );
    });
  },
});

Deno.test({
  name:
    "untrustedReason() rejects a path through a symlinked directory that is untrusted",
  ignore,
  fn() {
    withBase((base) => {
      const evil = makeDir(`${base}/evil`, 0o777);
      makeFile(`${evil}/mod.ts`);
      Deno.symlinkSync(evil, `${base}/lib`);
      assertReason(
        `${base}/lib/mod.ts`,
        new RegExp(
          `${quoted(evil).source} is writable by its group and by others`,
        ),
      );
    });
  },
});

Deno.test({
  name: "untrustedReason() rejects a symlink owned by another user",
  ignore,
  fn() {
    withBase((base) => {
      const file = makeFile(`${base}/real.ts`);
      const link = `${base}/daemon.ts`;
      Deno.symlinkSync(file, link);
      lchown(link, NOBODY);
      assertReason(
        link,
        new RegExp(
          `${
            quoted(link).source
          } \\(a symbolic link\\) is owned by uid ${NOBODY}, not root`,
        ),
        /chown -h root:root/,
      );
    });
  },
});

Deno.test({
  name:
    "untrustedReason() rejects a symlink whose text passes through an untrusted directory",
  ignore,
  fn() {
    withBase((base) => {
      makeFile(`${base}/real.ts`);
      const evil = makeDir(`${base}/evil`);
      Deno.chownSync(evil, NOBODY, NOBODY);
      // The real path is the trusted base/real.ts, but the owner of "evil"
      // could replace it with a link that changes where ".." leads.
      Deno.symlinkSync("evil/../real.ts", `${base}/daemon.ts`);
      assert.equal(Deno.realPathSync(`${base}/daemon.ts`), `${base}/real.ts`);
      assertReason(
        `${base}/daemon.ts`,
        new RegExp(`${quoted(evil).source} is owned by uid ${NOBODY}`),
      );
    });
  },
});

Deno.test({
  name: "untrustedReason() rejects a missing path",
  ignore,
  fn() {
    withBase((base) => {
      assertReason(
        `${base}/missing/daemon.ts`,
        new RegExp(`${quoted(`${base}/missing`).source} cannot be inspected`),
        /No such file or directory/,
        /check that the path exists/,
      );
      Deno.symlinkSync("nowhere.ts", `${base}/dangling.ts`);
      assertReason(`${base}/dangling.ts`, /nowhere\.ts" cannot be inspected/);
      assertReason("", /the path is empty/);
    });
  },
});

Deno.test({
  name: "untrustedReason() rejects a symlink loop",
  ignore,
  fn() {
    withBase((base) => {
      Deno.symlinkSync("b", `${base}/a`);
      Deno.symlinkSync("a", `${base}/b`);
      assertReason(`${base}/a`, /more than 40 symbolic links were followed/);
    });
  },
});

Deno.test({
  name:
    "untrustedReason() resolves a relative path against the current directory",
  ignore,
  fn() {
    withBase((base) => {
      makeFile(`${base}/good.ts`);
      const bad = makeFile(`${base}/bad.ts`, 0o646);
      // In a process of its own started in `base`: the working directory is
      // the whole process's, and other test files run in this one
      // (deno test --parallel).
      const out = new Deno.Command(Deno.execPath(), {
        args: [
          "eval",
          "--no-config",
          `import { untrustedReason } from ${
            JSON.stringify(new URL("./trust.ts", import.meta.url).href)
          };
          console.log(JSON.stringify(["good.ts", "./good.ts", "bad.ts"].map(untrustedReason)));`,
        ],
        cwd: base,
        stderr: "inherit",
      }).outputSync();
      assert.ok(out.success, "deno eval failed");
      const [good, dotGood, badReason] = JSON.parse(
        new TextDecoder().decode(out.stdout),
      );
      assert.equal(good, null);
      assert.equal(dotGood, null);
      assert.ok(
        badReason?.startsWith('refusing to load "bad.ts": '),
        `unexpected: ${badReason}`,
      );
      assert.match(
        badReason,
        new RegExp(`${quoted(bad).source} is writable by others`),
      );
    });
  },
});

Deno.test({
  name: "assertTrusted() throws an UntrustedPathError naming the path",
  ignore,
  fn() {
    withBase((base) => {
      const file = makeFile(`${base}/daemon.ts`, 0o662);
      let caught: unknown;
      try {
        assertTrusted(file);
      } catch (error) {
        caught = error;
      }
      assert.ok(caught instanceof UntrustedPathError);
      assert.ok(caught instanceof Error);
      assert.equal(caught.name, "UntrustedPathError");
      assert.equal(caught.path, file);
      assert.equal(caught.message, untrustedReason(file));
    });
  },
});

/** Builds base/tree with a few nested trusted entries; returns the tree. */
function makeTree(base: string): string {
  const tree = makeDir(`${base}/tree`);
  makeFile(`${tree}/mod.ts`);
  makeDir(`${tree}/lib`);
  makeFile(`${tree}/lib/a.ts`);
  makeDir(`${tree}/lib/deep`);
  makeFile(`${tree}/lib/deep/b.ts`, 0o600);
  Deno.symlinkSync("../mod.ts", `${tree}/lib/mod-link.ts`);
  return tree;
}

Deno.test({
  name: "assertTrustedTree() accepts a trusted tree",
  ignore,
  fn() {
    withBase((base) => {
      const tree = makeTree(base);
      assertTrustedTree(tree);
      assertTrustedTree(`${tree}/`);
    });
  },
});

Deno.test({
  name: "assertTrustedTree() rejects a nested file owned by another user",
  ignore,
  fn() {
    withBase((base) => {
      const tree = makeTree(base);
      const file = `${tree}/lib/deep/b.ts`;
      Deno.chownSync(file, NOBODY, NOBODY);
      assertTreeThrows(
        tree,
        file,
        {},
        new RegExp(
          `^refusing to load ${quoted(file).source}: ${
            quoted(file).source
          } is owned by uid ${NOBODY}`,
        ),
      );
    });
  },
});

Deno.test({
  name: "assertTrustedTree() rejects a nested group-writable directory",
  ignore,
  fn() {
    withBase((base) => {
      const tree = makeTree(base);
      const dir = `${tree}/lib/deep`;
      Deno.chmodSync(dir, 0o775);
      assertTreeThrows(tree, dir, {}, /writable by its group \(mode 0775\)/);
    });
  },
});

Deno.test({
  name: "assertTrustedTree() rejects a sticky directory inside the tree",
  ignore,
  fn() {
    withBase((base) => {
      const tree = makeTree(base);
      const dir = makeDir(`${tree}/cache`, 0o1777);
      assertTreeThrows(tree, dir, {}, /mode 1777/, /sticky bit/);
    });
  },
});

Deno.test({
  name: "assertTrustedTree() skips entries the skip option names",
  ignore,
  fn() {
    withBase((base) => {
      const tree = makeTree(base);
      const badFile = makeFile(`${tree}/lib/notes.txt`, 0o666);
      const badDir = makeDir(`${tree}/scratch`, 0o777);
      makeFile(`${badDir}/x.ts`, 0o666);
      const seen: string[] = [];
      assertTrustedTree(tree, {
        skip: (path) => {
          seen.push(path);
          return path === badFile || path === badDir;
        },
      });
      assert.ok(seen.includes(`${tree}/lib/deep/b.ts`));
      assert.ok(
        !seen.includes(`${badDir}/x.ts`),
        "skipped directories are not walked",
      );
      assertTreeThrows(tree, badFile, { skip: (path) => path === badDir });
    });
  },
});

Deno.test({
  name:
    "assertTrustedTree() rejects a symlink in the tree to an untrusted target",
  ignore,
  fn() {
    withBase((base) => {
      const tree = makeTree(base);
      const outside = makeDir(`${base}/outside`);
      makeFile(`${outside}/evil.ts`);
      Deno.chownSync(outside, NOBODY, NOBODY);
      const link = `${tree}/lib/evil.ts`;
      Deno.symlinkSync(`${outside}/evil.ts`, link);
      assertTreeThrows(
        tree,
        link,
        {},
        new RegExp(
          `^refusing to load ${quoted(link).source}: ${
            quoted(outside).source
          } is owned by uid ${NOBODY}`,
        ),
      );
    });
  },
});

Deno.test({
  name:
    "assertTrustedTree() rejects a symlink in the tree owned by another user",
  ignore,
  fn() {
    withBase((base) => {
      const tree = makeTree(base);
      const link = `${tree}/lib/mod-link.ts`;
      lchown(link, NOBODY);
      assertTreeThrows(
        tree,
        link,
        {},
        /\(a symbolic link\) is owned by uid 65534/,
      );
    });
  },
});

Deno.test({
  name: "assertTrustedTree() refuses a symbolic link to a directory",
  ignore,
  fn() {
    withBase((base) => {
      const tree = makeTree(base);
      const other = makeDir(`${base}/other`);
      makeFile(`${other}/loose.ts`, 0o666);
      Deno.symlinkSync(other, `${tree}/other`);
      // Deno would import through it; the walk would not look inside.
      assertTreeThrows(
        tree,
        `${tree}/other`,
        {},
        /symbolic link to a directory/,
      );
      // A link to a trusted file is fine.
      Deno.removeSync(`${tree}/other`);
      Deno.symlinkSync(makeFile(`${other}/ok.ts`), `${tree}/ok.ts`);
      assertTrustedTree(tree);
    });
  },
});

Deno.test({
  name:
    "assertTrustedTree() accepts a link to a directory inside the tree (deno install's node_modules)",
  ignore,
  fn() {
    withBase((base) => {
      const tree = makeTree(base);
      const pkg = makeDir(
        `${makeDir(`${makeDir(`${tree}/node_modules`)}/.deno`)}/pkg@1.0.0`,
      );
      makeFile(`${pkg}/index.js`);
      Deno.symlinkSync(".deno/pkg@1.0.0", `${tree}/node_modules/pkg`);
      assertTrustedTree(tree);
      // Its target is walked like the rest of the tree.
      makeFile(`${pkg}/loose.js`, 0o666);
      assertTreeThrows(tree, `${pkg}/loose.js`, {}, /writable/);
    });
  },
});

Deno.test({
  name:
    "assertTrustedTree() refuses a link to a directory inside the tree that the walk skips",
  ignore,
  fn() {
    withBase((base) => {
      const tree = makeTree(base);
      const hidden = makeDir(`${tree}/.git`);
      makeFile(`${hidden}/loose.ts`, 0o666);
      Deno.symlinkSync(".git", `${tree}/code`);
      assertTreeThrows(
        tree,
        `${tree}/code`,
        { skip: (p) => p.endsWith("/.git") },
        /symbolic link to a directory/,
      );
    });
  },
});

Deno.test({
  name: "assertTrustedTree() rejects a tree below an untrusted ancestor",
  ignore,
  fn() {
    withBase((base) => {
      const parent = makeDir(`${base}/parent`);
      const tree = makeTree(parent);
      Deno.chownSync(parent, NOBODY, NOBODY);
      assertTreeThrows(
        tree,
        tree,
        {},
        new RegExp(`${quoted(parent).source} is owned by uid ${NOBODY}`),
      );
    });
  },
});

Deno.test({
  name: "assertTrustedTree() rejects a path that is not a directory",
  ignore,
  fn() {
    withBase((base) => {
      const file = makeFile(`${base}/file.ts`);
      assertTreeThrows(file, file, {}, /cannot be listed/, /Not a directory/);
    });
  },
});
