// Runs as root: an in-process unit test of the handler (testing kit), then
// 100 concurrent requests through the real daemon (nobody, CAP_DAC_OVERRIDE,
// concurrency 4).
import assert from "node:assert/strict";
import { caps } from "../../mod.ts";
import { capabilitiesToMask, readProcessCredentials } from "../../caps/mod.ts";
import { forbidDaemon, inProcess, recordCalls } from "../../testing/mod.ts";
import { handler, startWebService } from "./main.ts";
import { VISITS_LOG, visitsCtx } from "./privsep/mod.ts";
import * as visits from "./privsep/visits.ts";
import { prepareVisitsLog } from "./setup.ts";

const REQUESTS = 100;

function requireRoot(): void {
  if (Deno.uid() !== 0) {
    throw new Error("this example's test runs the real daemon: run it as root");
  }
}

Deno.test(
  "examples/web_service: the handler records each visit through recordVisit() (in-process)",
  async () => {
    requireRoot();
    await prepareVisitsLog();
    using _noDaemon = forbidDaemon("web_service in-process unit test");
    using _inProcess = inProcess();
    using calls = recordCalls();
    const path = `/unit-${Deno.pid}`;
    const ok = await handler(new Request(`http://127.0.0.1${path}`));
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(), `visit to ${path} recorded\n`);
    calls.assertCalled(visits.recordVisit, path);
    assert.match(await Deno.readTextFile(VISITS_LOG), new RegExp(` ${path}\n`));

    const long = `/${"x".repeat(300)}`;
    const bad = await handler(new Request(`http://127.0.0.1${long}`));
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
    calls.assertCalled(visits.recordVisit, long); // called, refused by the schema

    calls.clear();
    const post = await handler(
      new Request("http://127.0.0.1/x", { method: "POST" }),
    );
    assert.equal(post.status, 405);
    await post.body?.cancel();
    assert.deepEqual(calls.calls, []);
  },
);

Deno.test(
  "examples/web_service: 100 concurrent requests, at most 4 privileged calls at once",
  async () => {
    requireRoot();
    await prepareVisitsLog();
    const server = startWebService(0);
    const base = `http://127.0.0.1:${server.addr.port}`;
    try {
      const info = await visitsCtx.start();
      const mask = capabilitiesToMask([caps.CAP_DAC_OVERRIDE]);
      for (const t of (await readProcessCredentials(info.pid)).threads) {
        assert.equal(t.uid.effective, 65534);
        assert.equal(t.capEff, mask);
        assert.equal(t.capBnd, mask);
      }

      // One round of REQUESTS concurrent requests, every one answered.
      const load = async (marker: string) => {
        const answers = await Promise.all(
          Array.from({ length: REQUESTS }, async (_, i) => {
            const res = await fetch(`${base}${marker}/${i}`);
            return { status: res.status, text: await res.text() };
          }),
        );
        for (const [i, a] of answers.entries()) {
          assert.equal(a.status, 200, `request ${i}: ${a.text}`);
        }
      };
      const marker = `/load-${Deno.pid}`;
      await load(marker);
      let stats = await visits.concurrencyStats();
      // Whether two calls overlap depends on how the scheduler interleaves
      // the server, the caller and the daemon: on a busy machine one round
      // may run them one after the other. More rounds until they overlap;
      // the bound of 4 holds in every round.
      let rounds = 1;
      for (; stats.maxRunning < 2 && rounds < 5; rounds++) {
        await load(`${marker}-again-${rounds}`);
        stats = await visits.concurrencyStats();
      }
      if (stats.maxRunning < 2) {
        // Still none: each request is its own task in the server, so on a
        // loaded machine the daemon may finish each call before the next one
        // arrives. Calls made in one tick go out as one write
        // (contexts/_child.ts), so the daemon reads them together: the bound
        // must hold then too.
        await Promise.all(
          Array.from(
            { length: REQUESTS },
            (_, i) => visits.recordVisit(`${marker}-at-once/${i}`),
          ),
        );
        rounds++;
        stats = await visits.concurrencyStats();
      }

      const status = await visitsCtx.status();
      assert.ok(status.completed >= REQUESTS * rounds, JSON.stringify(status));
      assert.equal(status.stuck, 0);
      assert.equal(status.concurrency, 4);
      assert.equal(stats.recorded, REQUESTS * rounds);
      assert.equal(stats.running, 0);
      assert.ok(
        stats.maxRunning <= 4,
        `${stats.maxRunning} recordVisit() calls ran at once`,
      );
      assert.ok(
        stats.maxRunning >= 2,
        `the daemon never ran two calls at once in ${rounds} rounds (${stats.maxRunning})`,
      );

      // Every visit is in the log exactly once; the log is still root's 0600.
      const lines = (await Deno.readTextFile(VISITS_LOG)).split("\n")
        .filter((l) => l.includes(` ${marker}/`));
      assert.equal(lines.length, REQUESTS);
      assert.equal(
        new Set(lines.map((l) => l.split(" ")[1])).size,
        REQUESTS,
      );
      const st = await Deno.stat(VISITS_LOG);
      assert.equal(st.mode! & 0o7777, 0o600);
      assert.equal(st.uid, 0);
    } finally {
      await server.shutdown();
      await visitsCtx.stop();
    }
  },
);
