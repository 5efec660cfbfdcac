import assert from "node:assert/strict";
import { writePathAboveCode } from "./start.ts";

Deno.test("writePathAboveCode() finds a write path above a code root, as written or through a link", async () => {
  assert.deepEqual(writePathAboveCode(["/srv"], ["/srv/app"]), {
    write: "/srv",
    root: "/srv/app",
  });
  assert.deepEqual(writePathAboveCode(["/"], ["/opt/app"]), {
    write: "/",
    root: "/opt/app",
  });
  // Beside, below or the root itself (read-only there): not above.
  for (const write of ["/srv/data", "/srv/app", "/srv/app/data", "/srv/ap"]) {
    assert.equal(writePathAboveCode([write], ["/srv/app"]), undefined, write);
  }
  const dir = await Deno.makeTempDir({ prefix: "privsep_above_" });
  try {
    await Deno.mkdir(`${dir}/srv/app`, { recursive: true });
    await Deno.symlink(`${dir}/srv`, `${dir}/data`);
    assert.deepEqual(writePathAboveCode([`${dir}/data`], [`${dir}/srv/app`]), {
      write: `${dir}/data`,
      root: `${dir}/srv/app`,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
