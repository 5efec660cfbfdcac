import assert from "node:assert/strict";
import { callWith, PrivsepTimeout, RemoteError } from "../../mod.ts";
import * as wait from "./privsep/wait.ts";
import { READY_DIR, waitCtx } from "./privsep/mod.ts";

async function assertTimesOut(
  call: () => Promise<unknown>,
  entrypoint: string,
) {
  await assert.rejects(callWith({ timeout: 300 }, call), (e: unknown) => {
    assert.ok(e instanceof PrivsepTimeout, String(e));
    assert.equal(e.entrypoint, entrypoint);
    return true;
  });
}

Deno.test(
  "examples/cancellable: sleep(), fetch and file reads with callSignal() stop when the call times out",
  async () => {
    if (Deno.uid() !== 0) {
      throw new Error(
        "this example's test runs the real daemon: run it as root",
      );
    }
    await Deno.mkdir(READY_DIR, { recursive: true, mode: 0o755 });
    const name = `test-${Deno.pid}`;
    // A server that accepts and never answers.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const held: Deno.Conn[] = [];
    (async () => {
      for await (const conn of listener) held.push(conn);
    })().catch(() => {});
    try {
      setTimeout(
        () => Deno.writeTextFileSync(`${READY_DIR}/${name}`, "ready"),
        200,
      );
      assert.equal(await wait.waitForFile(name), "ready");
      const { pid } = await waitCtx.status();

      await assertTimesOut(
        () => wait.waitForFile("never"),
        "wait.ts#waitForFile",
      );
      await assertTimesOut(
        () => wait.healthOf(listener.addr.port),
        "wait.ts#healthOf",
      );
      const names = Array.from({ length: 500 }, (_, i) => `n${i}`);
      await assertTimesOut(
        () => wait.countPresent(names),
        "wait.ts#countPresent",
      );

      // Past the grace period: every cancelled call stopped, none is stuck,
      // and the daemon was not recycled.
      await new Promise((r) => setTimeout(r, 700));
      const status = await waitCtx.status();
      assert.equal(status.pid, pid, "the same daemon: nothing was recycled");
      assert.equal(status.running, 0);
      assert.equal(status.cancelled, 3);
      assert.equal(status.stuck, 0);
      assert.equal(await wait.countPresent([name, "never"]), 1);
      // Names only, checked as waitForFile checks them: no path out of
      // READY_DIR.
      for (
        const hostile of ["../../../etc/passwd", "..", "a/b", "/etc/shadow"]
      ) {
        await assert.rejects(
          wait.countPresent([name, hostile]),
          (e: unknown) => {
            assert.ok(e instanceof RemoteError, String(e));
            assert.equal(e.remoteName, "TypeError", hostile);
            return true;
          },
        );
      }
    } finally {
      listener.close();
      for (const conn of held) conn.close();
      await waitCtx.stop();
      await Deno.remove(`${READY_DIR}/${name}`).catch(() => {});
    }
  },
);
