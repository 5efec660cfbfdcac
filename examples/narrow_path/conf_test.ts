import assert from "node:assert/strict";
import { RemoteError } from "../../mod.ts";
import * as conf from "./privsep/conf.ts";
import { CONF_DIR, confCtx } from "./privsep/mod.ts";

Deno.test(
  "examples/narrow_path: writeConfFile() writes only .conf files in conf.d",
  async () => {
    if (Deno.uid() !== 0) {
      throw new Error(
        "this example's test runs the real daemon: run it as root",
      );
    }
    await Deno.mkdir(CONF_DIR, { recursive: true, mode: 0o700 });
    const file = `${CONF_DIR}/99-test-${Deno.pid}.conf`;
    try {
      await conf.writeConfFile(file, "x = 1\n");
      assert.equal(await Deno.readTextFile(file), "x = 1\n");
      for (
        const bad of [
          `${CONF_DIR}/../motd`,
          "/etc/passwd",
          `${CONF_DIR}/sub/a.conf`,
          `${CONF_DIR}/a.sh`,
        ]
      ) {
        await assert.rejects(conf.writeConfFile(bad, ""), (e: unknown) => {
          assert.ok(e instanceof RemoteError);
          assert.equal(e.remoteName, "InvalidArgument");
          assert.match(
            e.message,
            /argument 1 \(path\) of conf\.ts#writeConfFile is invalid/,
          );
          return true;
        });
      }
    } finally {
      await confCtx.stop();
      await Deno.remove(file).catch(() => {});
    }
  },
);
