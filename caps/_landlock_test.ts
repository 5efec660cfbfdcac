// openUnredirected(): the walk that Landlock's path rules are made on, on
// the real file system. Needs root (it makes entries owned by another uid).
import assert from "node:assert/strict";
import { openUnredirected, RedirectablePath } from "./_landlock.ts";
import { SystemCallError } from "./_ffi.ts";

const NOBODY = 65534;
const libc = Deno.dlopen("libc.so.6", {
  close: { parameters: ["i32"], result: "i32" },
}).symbols;

/** What `fd` (an O_PATH descriptor) is open on; closes it. */
function opened(fd: number): string {
  try {
    return Deno.readLinkSync(`/proc/self/fd/${fd}`);
  } finally {
    libc.close(fd);
  }
}

/** A root-owned 0755 directory (mkdtemp's 0700 widened), removed after `fn`. */
async function inTree(fn: (dir: string) => void | Promise<void>) {
  assert.equal(Deno.uid(), 0, "this test needs root: run it as root");
  const dir = Deno.realPathSync(await Deno.makeTempDir());
  try {
    await Deno.chmod(dir, 0o755);
    await Deno.mkdir(`${dir}/target`);
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("openUnredirected() follows links in a root-only directory, relative, absolute and through ..", () =>
  inTree((dir) => {
    Deno.symlinkSync("target", `${dir}/rel`);
    Deno.symlinkSync(`${dir}/target`, `${dir}/abs`);
    Deno.mkdirSync(`${dir}/sub`);
    Deno.symlinkSync("../rel", `${dir}/sub/up`);
    for (const p of ["rel", "abs", "sub/up", "sub/../abs", "./target/"]) {
      assert.equal(opened(openUnredirected(`${dir}/${p}`)), `${dir}/target`);
    }
  }));

Deno.test("openUnredirected() refuses a link in a directory another user owns or may write", () =>
  inTree((dir) => {
    for (
      const [sub, mode, uid] of [["theirs", 0o755, NOBODY], [
        "world",
        0o1777,
        0,
      ], ["group", 0o775, 0]] as const
    ) {
      Deno.mkdirSync(`${dir}/${sub}`);
      Deno.chmodSync(`${dir}/${sub}`, mode);
      Deno.chownSync(`${dir}/${sub}`, uid, 0);
      Deno.symlinkSync(`${dir}/target`, `${dir}/${sub}/link`);
      assert.throws(
        () => openUnredirected(`${dir}/${sub}/link/file`),
        (e: unknown) =>
          e instanceof RedirectablePath &&
          e.message.startsWith(`${dir}/${sub}/link is a symbolic link`),
      );
      // A real directory there is opened: the rule is on what it is.
      Deno.mkdirSync(`${dir}/${sub}/real`);
      assert.equal(
        opened(openUnredirected(`${dir}/${sub}/real`)),
        `${dir}/${sub}/real`,
      );
    }
  }));

Deno.test("openUnredirected() refuses a link another user owns, even in a root-only directory", () =>
  inTree((dir) => {
    Deno.symlinkSync(`${dir}/target`, `${dir}/link`);
    const chown = new Deno.Command("chown", {
      args: ["-h", `${NOBODY}:${NOBODY}`, `${dir}/link`], // the link itself
    }).outputSync();
    assert.ok(chown.success, new TextDecoder().decode(chown.stderr));
    assert.throws(() => openUnredirected(`${dir}/link`), RedirectablePath);
  }));

Deno.test("openUnredirected() refuses a file with more than one link in another user's directory", () =>
  inTree((dir) => {
    Deno.writeTextFileSync(`${dir}/target/file`, "x");
    Deno.mkdirSync(`${dir}/theirs`);
    Deno.chownSync(`${dir}/theirs`, NOBODY, NOBODY);
    Deno.linkSync(`${dir}/target/file`, `${dir}/theirs/file`);
    assert.throws(
      () => openUnredirected(`${dir}/theirs/file`),
      /theirs\/file has 2 hard links/,
    );
    // In a root-only directory, a second link is root's doing.
    assert.equal(
      opened(openUnredirected(`${dir}/target/file`)),
      `${dir}/target/file`,
    );
  }));

Deno.test("openUnredirected() says NotFound for a missing or dangling path and ELOOP for a loop", () =>
  inTree((dir) => {
    Deno.symlinkSync(`${dir}/nowhere`, `${dir}/dangling`);
    Deno.symlinkSync("loop", `${dir}/loop`);
    assert.throws(
      () => openUnredirected(`${dir}/missing/x`),
      Deno.errors.NotFound,
    );
    assert.throws(
      () => openUnredirected(`${dir}/dangling`),
      Deno.errors.NotFound,
    );
    assert.throws(
      () => openUnredirected(`${dir}/loop`),
      (e: unknown) => e instanceof SystemCallError && e.errno === 40,
    );
  }));

Deno.test("openUnredirected() follows no link on procfs: /dev/stderr would lead to a descriptor the caller chose", () => {
  // /dev/stderr -> /proc/self/fd/2, whose text names the file in the view
  // of whoever opened it (found by a review: a root-only file of the same
  // name got the rule).
  for (const path of ["/dev/stderr", "/proc/self/root", "/proc/self/cwd/x"]) {
    assert.throws(
      () => openUnredirected(path),
      (e: unknown) =>
        e instanceof RedirectablePath && /on procfs/.test(e.message),
      path,
    );
  }
  // Entries of procfs that are not links open as they are.
  assert.equal(opened(openUnredirected("/proc/sys")), "/proc/sys");
});

Deno.test('openUnredirected() refuses ".." out of a directory another user may change', () =>
  inTree((dir) => {
    Deno.mkdirSync(`${dir}/theirs`);
    Deno.chownSync(`${dir}/theirs`, NOBODY, NOBODY);
    assert.throws(
      () => openUnredirected(`${dir}/theirs/../target`),
      /theirs\/\.\. leaves a directory that uid 65534 \(its owner\) may change/,
    );
    assert.equal(
      opened(openUnredirected(`${dir}/target/../target`)),
      `${dir}/target`,
    );
  }));
