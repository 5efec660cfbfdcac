// Runs as root: an in-process unit test of the calling code (testing kit),
// then the real daemon as "nobody" with CAP_NET_BIND_SERVICE only.
import assert from "node:assert/strict";
import { caps, RemoteError } from "../../mod.ts";
import { capabilitiesToMask, readProcessCredentials } from "../../caps/mod.ts";
import { forbidDaemon, inProcess, recordCalls } from "../../testing/mod.ts";
import { isListening, startStatusPage } from "./main.ts";
import { bindCtx, HOSTNAME } from "./privsep/mod.ts";
import * as status from "./privsep/status.ts";

const PORT = 81;

async function requireRootAndFreePort(): Promise<void> {
  if (Deno.uid() !== 0) {
    throw new Error("this example's test runs the real daemon: run it as root");
  }
  if (await isListening(PORT)) {
    throw new Error(
      `${HOSTNAME}:${PORT} is in use by another program; this test needs it free`,
    );
  }
}

/** Binds and releases the port: proves nothing holds it any more. */
function assertPortFree(port: number): void {
  const listener = Deno.listen({ hostname: HOSTNAME, port });
  listener.close();
}

Deno.test(
  "examples/port_below_1024: startStatusPage() calls serveStatus(port) and stops it (in-process)",
  async () => {
    await requireRootAndFreePort();
    using _noDaemon = forbidDaemon("port_below_1024 in-process unit test");
    using _inProcess = inProcess();
    using calls = recordCalls();
    const page = await startStatusPage(PORT);
    assert.equal(page.url, `http://${HOSTNAME}:${PORT}/`);
    assert.equal(await (await fetch(page.url)).text(), status.STATUS_TEXT);
    await page.stop();
    calls.assertCalled(status.serveStatus, PORT);
    assertPortFree(PORT);
    // In-process, errors arrive as over the wire: RemoteError.
    await assert.rejects(startStatusPage(8080), {
      name: "RemoteError",
      remoteName: "InvalidArgument",
    });
  },
);

Deno.test(
  "examples/port_below_1024: a nobody daemon with only CAP_NET_BIND_SERVICE serves port 81",
  async () => {
    await requireRootAndFreePort();
    try {
      const info = await bindCtx.start();
      assert.ok(info.verified);
      const mask = capabilitiesToMask([caps.CAP_NET_BIND_SERVICE]);
      const creds = await readProcessCredentials(info.pid);
      for (const t of creds.threads) {
        for (const ids of [t.uid, t.gid]) {
          assert.deepEqual(
            [ids.real, ids.effective, ids.saved, ids.fs],
            [65534, 65534, 65534, 65534],
            `thread ${t.tid}`,
          );
        }
        assert.deepEqual(t.groups, []);
        for (const set of [t.capEff, t.capPrm, t.capInh, t.capBnd, t.capAmb]) {
          assert.equal(set, mask, `thread ${t.tid}`);
        }
        assert.ok(t.noNewPrivs);
      }

      const page = await startStatusPage(PORT);
      const res = await fetch(page.url);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), status.STATUS_TEXT);

      // Ports outside the list are refused before anything is bound,
      // privileged (80, 443) or not.
      for (const port of [80, 443, 8080, 0, -1, 81.5]) {
        await assert.rejects(status.serveStatus(port), (e: unknown) => {
          assert.ok(e instanceof RemoteError, String(e));
          assert.equal(e.remoteName, "InvalidArgument");
          assert.match(
            e.message,
            /argument 1 \(port\) of status\.ts#serveStatus is invalid: must be one of the ports 81, 444/,
          );
          return true;
        });
      }
      // The same port twice: the caller's check refuses it, and so does the
      // daemon's bind; the first server goes on.
      await assert.rejects(startStatusPage(PORT), /already in use/);
      await assert.rejects(status.serveStatus(PORT), (e: unknown) => {
        assert.ok(e instanceof RemoteError, String(e));
        assert.equal(e.remoteName, "AddrInUse");
        return true;
      });
      assert.equal(await (await fetch(page.url)).text(), status.STATUS_TEXT);

      await page.stop();
      assertPortFree(PORT);
      // The port closes when Deno.serve stops listening; the call ends a few
      // turns of the daemon's event loop later, when server.finished settles
      // (under a loaded CI machine a status request once came in between).
      const deadline = performance.now() + 5_000;
      let counters = await bindCtx.status();
      while (counters.running !== 0 && performance.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
        counters = await bindCtx.status();
      }
      assert.equal(counters.running, 0, JSON.stringify(counters));
      assert.ok(counters.cancelled >= 1, JSON.stringify(counters));
      assert.equal(counters.stuck, 0);
    } finally {
      await bindCtx.stop();
    }
  },
);
