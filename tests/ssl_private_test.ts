// Review 3: the "system" read rules of a context with a scoped `read` list
// include all of /etc/ssl, so a uid-0 daemon (no capabilities) whose reads
// are confined to one directory still reads TLS private keys in
// /etc/ssl/private (root:ssl-cert 0710, keys root 0600/0640) through a
// program it runs.
import assert from "node:assert/strict";
import { init } from "../mod.ts";
import { sandboxCtx } from "./fixtures/sandbox/mod.ts";
import * as ops from "./fixtures/sandbox/ops.ts";
import { requireRoot, scratchDir, writeConfig } from "./_helpers.ts";

Deno.test(
  "a daemon with a scoped read list cannot read /etc/ssl/private",
  async () => {
    requireRoot();
    const dir = await scratchDir();
    const data = `${dir}/data`;
    await Deno.mkdir(data, { mode: 0o755 });
    await Deno.mkdir("/etc/ssl/private", { recursive: true });
    const key = `/etc/ssl/private/privsep-ssl-${
      crypto.randomUUID().slice(0, 8)
    }.key`;
    await Deno.writeTextFile(key, "SECRET-KEY\n", { mode: 0o600 });
    await Deno.chmod(key, 0o600);
    const config = await writeConfig(dir, {
      sandbox: {
        user: "root",
        capabilities: [],
        permissions: { read: [data], write: [data], run: ["/bin/sh"] },
      } as never,
    });
    init({ configFiles: [config] });
    try {
      await sandboxCtx.start();
      // Control: a root-only file outside the read list is refused.
      const shadow = await ops.exec("/bin/sh", ["-c", "cat /etc/shadow"]);
      assert.notEqual(shadow.code, 0, "read /etc/shadow: Landlock not active");
      const r = await ops.exec("/bin/sh", ["-c", `cat ${key}`]);
      assert.doesNotMatch(r.stdout, /SECRET-KEY/, `read ${key}`);
    } finally {
      await sandboxCtx.stop();
      await Deno.remove(key).catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
);
