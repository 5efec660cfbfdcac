import assert from "node:assert/strict";
import { RemoteError } from "../../mod.ts";
import { defaultCtx } from "./privsep/mod.ts";
import { linkDevices, NetworkNamespaceNotFound } from "./main.ts";

async function ip(...args: string[]): Promise<void> {
  const out = await new Deno.Command("/usr/sbin/ip", { args, stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(
      `ip ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
}

Deno.test(
  "examples/link_devices: getLinkDevices() lists a namespace's links in the daemon",
  async () => {
    if (Deno.uid() !== 0) {
      throw new Error(
        "this example's test runs the real daemon: run it as root",
      );
    }
    const ns = `privsep-test-${Deno.pid}`;
    // Network namespaces need CAP_SYS_ADMIN in the initial user namespace and
    // /run/netns; a container without them cannot run this part.
    await ip("netns", "add", ns);
    try {
      const inNs = await linkDevices(ns);
      assert.deepEqual(inNs.map((l) => l.name), ["lo"]);
      const host = await linkDevices(null);
      assert.ok(host.some((l) => l.name === "lo"));
      await assert.rejects(
        linkDevices("privsep-no-such-ns"),
        NetworkNamespaceNotFound,
      );
      // A name, not a path (ip -n takes a path too), nor an option.
      for (const hostile of [".", "..", "-n", "../netns", "a/b", ""]) {
        await assert.rejects(linkDevices(hostile), (e: unknown) => {
          assert.ok(e instanceof RemoteError, String(e));
          assert.equal(e.remoteName, "TypeError", hostile);
          return true;
        });
      }
    } finally {
      await defaultCtx.stop();
      await ip("netns", "delete", ns);
    }
  },
);
