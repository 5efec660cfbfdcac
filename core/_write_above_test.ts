import assert from "node:assert/strict";
import { missingWritePath, writePathAboveCode } from "./_write_above.ts";

Deno.test("writePathAboveCode() finds a write path that holds or is a trusted path: as written, through a link, or as the directory of a path not made yet", async () => {
  const dir = await Deno.makeTempDir({ prefix: "privsep_above_" });
  try {
    const app = `${dir}/srv/app`;
    await Deno.mkdir(`${app}/data`, { recursive: true });
    await Deno.mkdir(`${dir}/srv/data`);
    await Deno.mkdir(`${dir}/srv/ap`);
    assert.deepEqual(writePathAboveCode([`${dir}/srv`], [app]), {
      write: `${dir}/srv`,
      root: app,
    });
    assert.deepEqual(writePathAboveCode(["/"], [app]), {
      write: "/",
      root: app,
    });
    // The trusted path itself (a review: the host may remove it while the
    // daemon runs, and its read-only mount goes with it).
    assert.deepEqual(writePathAboveCode([app], [app]), {
      write: app,
      root: app,
    });
    // Beside or below it (read-only there): neither.
    for (const write of ["srv/data", "srv/app/data", "srv/ap"]) {
      assert.equal(
        writePathAboveCode([`${dir}/${write}`], [app]),
        undefined,
        write,
      );
    }
    await Deno.symlink(`${dir}/srv`, `${dir}/data`);
    assert.deepEqual(writePathAboveCode([`${dir}/data`], [app]), {
      write: `${dir}/data`,
      root: app,
    });
    // A write path that does not exist yet: its directory gets the rule.
    assert.deepEqual(writePathAboveCode([`${dir}/srv/new-dir`], [app]), {
      write: `${dir}/srv/new-dir`,
      root: app,
    });
    assert.equal(writePathAboveCode([`${app}/data/new`], [app]), undefined);
    // The cache (a twelfth review: cleared by hand, rebuilt by the daemon).
    assert.deepEqual(
      writePathAboveCode([`${dir}/cache`], [`${dir}/cache/privsep/deno`]),
      { write: `${dir}/cache`, root: `${dir}/cache/privsep/deno` },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writePathAboveCode() finds a write path that reaches a trusted path through another mount of its filesystem (a bind mount)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "privsep_bind_" });
  try {
    await Deno.mkdir(`${dir}/opt/app`, { recursive: true });
    await Deno.mkdir(`${dir}/alias`);
    await Deno.mkdir(`${dir}/other`);
    // The root filesystem, and a bind of its ${dir}/opt at ${dir}/alias; a
    // tmpfs at ${dir}/other.
    const mountinfo = [
      "1 0 8:1 / / rw - ext4 /dev/vda rw",
      `2 1 8:1 ${dir}/opt ${dir}/alias rw - ext4 /dev/vda rw`,
      `3 1 0:40 / ${dir}/other rw - tmpfs tmpfs rw`,
    ].join("\n");
    assert.deepEqual(
      writePathAboveCode([`${dir}/alias`], [`${dir}/opt/app`], mountinfo),
      { write: `${dir}/alias`, root: `${dir}/opt/app` },
    );
    assert.equal(
      writePathAboveCode([`${dir}/other`], [`${dir}/opt/app`], mountinfo),
      undefined,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("missingWritePath() finds a write path not made yet whose directory no other write path covers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "privsep_missing_" });
  try {
    await Deno.mkdir(`${dir}/etc/sudoers.d`, { recursive: true });
    await Deno.writeTextFile(`${dir}/etc/made.conf`, "");
    const conf = `${dir}/etc/app.conf`;
    // Its directory would get the rule: all of etc.
    assert.deepEqual(missingWritePath([conf]), {
      write: conf,
      directory: `${dir}/etc`,
    });
    assert.deepEqual(missingWritePath([`${dir}/etc/made.conf`, conf]), {
      write: conf,
      directory: `${dir}/etc`,
    });
    // Made first, or its directory (or one above) declared: nothing more.
    assert.equal(missingWritePath([`${dir}/etc/made.conf`]), undefined);
    assert.equal(missingWritePath([conf, `${dir}/etc`]), undefined);
    assert.equal(missingWritePath([`${dir}/etc/`, conf]), undefined);
    assert.equal(missingWritePath([dir, conf]), undefined);
    assert.equal(missingWritePath(["/", conf]), undefined);
    // A declared directory that does not exist either covers nothing.
    assert.deepEqual(
      missingWritePath([`${dir}/spool`, `${dir}/spool/state`]),
      { write: `${dir}/spool`, directory: dir },
    );
    // Through a link: the same directory.
    await Deno.symlink(`${dir}/etc`, `${dir}/etc-link`);
    assert.equal(missingWritePath([`${dir}/etc-link`, conf]), undefined);
    assert.equal(
      missingWritePath([`${dir}/etc`, `${dir}/etc-link/new`]),
      undefined,
    );
    // A sibling directory whose name starts the same is not it.
    await Deno.mkdir(`${dir}/et`);
    assert.deepEqual(missingWritePath([`${dir}/et`, conf]), {
      write: conf,
      directory: `${dir}/etc`,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
