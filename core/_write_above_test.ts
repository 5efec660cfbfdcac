import assert from "node:assert/strict";
import { writePathAboveCode } from "./_write_above.ts";

Deno.test("writePathAboveCode() finds a write path above a code root: as written, through a link, or as the directory of a path not made yet", async () => {
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
    // Beside, below or the root itself (read-only there): not above.
    for (const write of ["srv/data", "srv/app", "srv/app/data", "srv/ap"]) {
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
    assert.equal(writePathAboveCode([`${app}/new-file`], [app]), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
