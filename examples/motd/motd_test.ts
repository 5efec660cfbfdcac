import assert from "node:assert/strict";
import { inProcess, recordCalls } from "../../testing/mod.ts";
import { sysAdmin } from "./privsep/mod.ts";
import * as motd from "./privsep/motd.ts";

Deno.test(
  "examples/motd: updateMotd() writes the message through the daemon",
  async () => {
    if (Deno.uid() !== 0) {
      throw new Error(
        "this example's test runs the real daemon: run it as root",
      );
    }
    const dir = motd.MOTD_PATH.slice(0, motd.MOTD_PATH.lastIndexOf("/"));
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    await Deno.writeFile(motd.MOTD_PATH, new Uint8Array(), { append: true });
    try {
      const info = await sysAdmin.start();
      assert.equal(info.verified, true);
      assert.deepEqual(info.capabilities, [0, 1, 2, 3, 12, 21]);
      await motd.updateMotd(`idle since ${Deno.pid}`);
      assert.equal(
        await Deno.readTextFile(motd.MOTD_PATH),
        `idle since ${Deno.pid}`,
      );
    } finally {
      await sysAdmin.stop();
    }
  },
);

Deno.test("examples/motd: the calling code can be tested in-process", async () => {
  using _ = inProcess();
  using calls = recordCalls();
  // In-process the function runs in this test process, unprivileged or not:
  // whether the write succeeds here does not matter, what was called does.
  await motd.updateMotd("hello").catch(() => {});
  calls.assertCalled(motd.updateMotd, "hello");
});
