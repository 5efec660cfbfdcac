// Timeouts that really stop the privileged work, and bounded concurrency, with
// a real daemon (started directly as root).
import assert from "node:assert/strict";
import { reset } from "@logtape/logtape";
import {
  callWith,
  DaemonExitedError,
  init,
  PrivsepQueueFull,
  PrivsepTimeout,
} from "../mod.ts";
import { testCtx } from "./fixtures/privsep/mod.ts";
import * as ops from "./fixtures/privsep/ops.ts";
import * as slow from "./fixtures/privsep/slow.ts";
import {
  captureLogs,
  childrenOf,
  requireRoot,
  scratchDir,
  waitGone,
  writeConfig,
} from "./_helpers.ts";

/** The keeper of daemon `pid`: its child named keeper-shell. */
function keeperOf(pid: number): number {
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid && stat.includes("(keeper-shell)")) {
        return Number(e.name);
      }
    } catch { /* gone */ }
  }
  throw new Error(`no keeper below daemon ${pid}`);
}

async function timed<T>(
  p: Promise<T>,
): Promise<[PromiseSettledResult<T>, number]> {
  const t0 = performance.now();
  const [r] = await Promise.allSettled([p]);
  return [r, performance.now() - t0];
}

function assertTimeout(
  r: PromiseSettledResult<unknown>,
  entrypoint: string,
): PrivsepTimeout {
  assert.equal(r.status, "rejected");
  const e = (r as PromiseRejectedResult).reason;
  assert.ok(e instanceof PrivsepTimeout, String(e));
  assert.equal(e.entrypoint, entrypoint);
  return e;
}

Deno.test("timeouts and concurrency", async (t) => {
  requireRoot();
  const dir = await scratchDir();
  const records = await captureLogs();
  const use = async (section: Record<string, unknown>) => {
    await testCtx.stop();
    init({
      configFiles: [
        await writeConfig(dir, {
          e2e: {
            user: "root",
            capabilities: [],
            permissions: { run: ["/usr/bin/sleep"] },
            ...section,
          } as never,
        }),
      ],
    });
    return (await testCtx.start()).pid;
  };
  // A daemon with cancel_grace_ms 1500 that may write in `out`.
  const useWritable = async () => {
    const out = `${dir}/out`;
    await Deno.mkdir(out, { recursive: true });
    const pid = await use({
      permissions: { write: [out] },
      cancel_grace_ms: 1_500,
    });
    return { pid, out };
  };
  try {
    await t.step(
      "the timeout fires for an async function that never resolves",
      async () => {
        await use({
          timeout_ms: 300,
          cancel_grace_ms: 60_000,
          on_stuck: "report",
        });
        const [r, ms] = await timed(slow.hang());
        const e = assertTimeout(r, "slow.ts#hang");
        assert.ok(ms < 300 + 1000, `${ms} ms`);
        assert.ok(e.elapsedMs >= 300);
      },
    );

    await t.step(
      "the timeout fires for a sync busy loop that blocks the daemon",
      async () => {
        await use({
          timeout_ms: 300,
          cancel_grace_ms: 60_000,
          on_stuck: "report",
        });
        const [r, ms] = await timed(slow.spin(2_000));
        assertTimeout(r, "slow.ts#spin");
        assert.ok(ms < 300 + 1000, `${ms} ms`);
      },
    );

    await t.step(
      "the timeout fires for a subprocess, which is killed",
      async () => {
        const pid = await use({ timeout_ms: 500 });
        const call = timed(slow.sleepCommand(31));
        let children: number[] = [];
        for (let i = 0; i < 50 && children.length === 0; i++) {
          await new Promise((r) => setTimeout(r, 20));
          children = await childrenOf(pid, "/usr/bin/sleep 31");
        }
        assert.equal(children.length, 1, "the subprocess runs");
        const [r, ms] = await call;
        assertTimeout(r, "slow.ts#sleepCommand");
        assert.ok(ms < 500 + 1000, `${ms} ms`);
        await waitGone(children[0], 2_000);
        // The child is gone (or a zombie) a moment before the daemon has
        // reaped it and freed the slot: a busy machine widens that moment.
        let status = await testCtx.status();
        for (let i = 0; i < 100 && status.running !== 0; i++) {
          await new Promise((r) => setTimeout(r, 20));
          status = await testCtx.status();
        }
        assert.equal(status.cancelled, 1);
        assert.equal(status.stuck, 0);
        assert.equal(status.running, 0, "the slot is free again");
        assert.equal(testCtx.daemon?.pid, pid, "no recycle needed");
      },
    );

    await t.step(
      "a cooperative function sees its signal and finishes; its slot is free at once",
      async () => {
        await use({ timeout_ms: 200, concurrency: 1 });
        const [r] = await timed(slow.cooperative(10_000));
        assertTimeout(r, "slow.ts#cooperative");
        const [next, ms] = await timed(ops.echo("next"));
        assert.deepEqual(next, { status: "fulfilled", value: "next" });
        assert.ok(ms < 150, `the next call waited ${ms} ms`);
        assert.deepEqual((await slow.counters()).events, ["aborted"]);
      },
    );

    await t.step(
      "an uncooperative function gets its daemon recycled; calls in flight on it reject; later calls run on a fresh one",
      async () => {
        const pid = await use({
          timeout_ms: 200,
          cancel_grace_ms: 300,
          on_stuck: "recycle",
        });
        records.length = 0;
        const bystander = timed(
          callWith({ timeout: 10_000 }, () => ops.sleep(5_000)),
        );
        const [r] = await timed(slow.hang());
        assertTimeout(r, "slow.ts#hang");
        const [b] = await bystander;
        assert.equal(b.status, "rejected");
        const e = (b as PromiseRejectedResult).reason;
        assert.ok(e instanceof DaemonExitedError, String(e));
        assert.match(
          e.message,
          /recycled because slow\.ts#hang did not stop within 300 ms/,
        );
        await waitGone(pid, 2_000);
        assert.notEqual(await ops.daemonPid(), pid);
        const logged = records.map((x) =>
          `${x.category.join(".")} ${x.message.join("")}`
        );
        assert.ok(
          logged.some((m) => m.includes("ignored its cancellation")),
          logged.join("\n"),
        );
        assert.ok(
          logged.some((m) => m.startsWith("privsep.client recycling")),
          logged.join("\n"),
        );
      },
    );

    await t.step(
      "a blocked daemon is recycled as well (SIGTERM relayed to it)",
      async () => {
        const pid = await use({ timeout_ms: 200, cancel_grace_ms: 300 });
        const [r] = await timed(slow.spin(60_000));
        assertTimeout(r, "slow.ts#spin");
        await waitGone(pid, 3_000);
        assert.equal(await ops.echo("fresh"), "fresh");
      },
    );

    await t.step(
      "with report, a stuck call is counted and logged but the daemon stays",
      async () => {
        const pid = await use({
          timeout_ms: 100,
          cancel_grace_ms: 200,
          on_stuck: "report",
        });
        await timed(slow.hang());
        await new Promise((r) => setTimeout(r, 1_000));
        const status = await testCtx.status();
        assert.equal(status.pid, pid);
        assert.equal(status.stuck, 1);
        assert.equal(status.stuckNow, 1);
      },
    );

    await t.step(
      "concurrency N runs at most N at once; the rest queue in order and complete",
      async () => {
        await use({ concurrency: 2 });
        const results = await Promise.all(
          Array.from({ length: 7 }, () => slow.probe(100)),
        );
        assert.equal(results.length, 7);
        assert.equal((await slow.counters()).maxActive, 2);
      },
    );

    await t.step(
      "the queue bound refuses calls clearly instead of growing",
      async () => {
        await use({ concurrency: 1, queue_limit: 2 });
        const settled = await Promise.allSettled(
          Array.from({ length: 5 }, () => slow.probe(300)),
        );
        const ok = settled.filter((s) => s.status === "fulfilled").length;
        const refused = settled.filter((s) =>
          s.status === "rejected" && s.reason instanceof PrivsepQueueFull
        );
        assert.equal(ok, 3);
        assert.equal(refused.length, 2);
        assert.match(
          (refused[0] as PromiseRejectedResult).reason.message,
          /raise concurrency or queue_limit/,
        );
      },
    );

    await t.step(
      "entrypointWithTimeout overrides the context's timeout",
      async () => {
        await use({ timeout_ms: 5_000 });
        const [r, ms] = await timed(slow.quick(3_000));
        assertTimeout(r, "slow.ts#quick");
        assert.ok(ms < 200 + 1000, `${ms} ms`);
        assert.equal(await slow.quick(10), 10);
      },
    );

    await t.step(
      "a per-call signal aborts the call and the function in the daemon",
      async () => {
        await use({});
        const controller = new AbortController();
        setTimeout(() => controller.abort(new Error("caller gave up")), 100);
        const [r, ms] = await timed(
          callWith(
            { signal: controller.signal },
            () => slow.cooperative(10_000),
          ),
        );
        assert.equal(r.status, "rejected");
        assert.match(
          String((r as PromiseRejectedResult).reason),
          /caller gave up/,
        );
        assert.ok(ms < 1_000);
        await new Promise((r) => setTimeout(r, 100));
        assert.deepEqual((await slow.counters()).events, ["aborted"]);
        // A per-call timeout too.
        const [r2] = await timed(
          callWith({ timeout: 100 }, () => slow.cooperative(10_000)),
        );
        assertTimeout(r2, "slow.ts#cooperative");
        // A signal aborted while the arguments are encoded (by a getter).
        const mid = new AbortController();
        const arg = {
          get n() {
            mid.abort(new Error("aborted during encoding"));
            return 1;
          },
        };
        const [r3, ms3] = await timed(
          callWith({ signal: mid.signal }, () => ops.echo(arg)),
        );
        assert.equal(r3.status, "rejected");
        assert.match(
          String((r3 as PromiseRejectedResult).reason),
          /aborted during encoding/,
        );
        assert.ok(ms3 < 1_000);
      },
    );

    await t.step(
      "delayed work an entrypoint scheduled runs on time while the daemon is idle",
      async () => {
        await use({});
        const scheduled = await slow.later(200);
        // Nothing else is sent for a while: the daemon must not sleep in a
        // blocking read past the timer.
        await new Promise((r) => setTimeout(r, 700));
        const fired = await slow.laterFired();
        assert.ok(fired !== null, "the timer did not fire");
        assert.ok(
          fired - scheduled < 500,
          `fired ${fired - scheduled} ms after scheduling`,
        );
      },
    );

    await t.step(
      "a late reply after a timeout is dropped without noise",
      async () => {
        const pid = await use({ timeout_ms: 100, cancel_grace_ms: 1_000 });
        records.length = 0;
        const [r] = await timed(ops.sleep(300)); // ignores the signal, but ends within the grace
        assertTimeout(r, "ops.ts#sleep");
        await new Promise((r) => setTimeout(r, 2_000));
        assert.equal(testCtx.daemon?.pid, pid, "not recycled");
        assert.equal(await ops.echo("fine"), "fine");
        assert.deepEqual(
          records.filter((x) => x.level === "warning" || x.level === "error"),
          [],
        );
      },
    );

    await t.step(
      "stop() lets a running call that ignores its signal return within cancel_grace_ms, its finally block included, and its reply still comes; a call made meanwhile runs on a new daemon only once the old one has exited",
      async () => {
        // The caller can always end its daemon (closing the channel, killing
        // its sudo): this is what a stop() that is not an attack gives.
        const { pid: oldPid, out } = await useWritable();
        const late = `${out}/late-${crypto.randomUUID()}`;
        const retry = `${out}/retry-${crypto.randomUUID()}`;
        const call = slow.finishLate(late, 600);
        await new Promise((r) => setTimeout(r, 100));
        const stopping = timed(testCtx.stop());
        // Made while the old daemon still runs the first call, as a retry.
        const next = slow.finishLate(retry, 0);
        assert.equal(await call, undefined, "its reply, not DaemonExitedError");
        const [stopped, ms] = await stopping;
        assert.equal(stopped.status, "fulfilled");
        assert.ok(ms < 3_500, `stop() took ${ms} ms`);
        await next;
        assert.notEqual(testCtx.daemon?.pid, oldPid);
        const at = async (path: string) => {
          const text = await Deno.readTextFile(path);
          assert.match(text, /^finally ran at \d+$/);
          return Number(text.split(" ").at(-1));
        };
        assert.ok(
          await at(late) <= await at(retry),
          "the call made after stop() ran after the stopped daemon's call",
        );
      },
    );

    await t.step(
      "a daemon that leaves (SIGTERM, relayed by sudo) runs no call that arrives after; the running one still answers",
      async () => {
        const { pid, out } = await useWritable();
        const first = `${out}/first-${crypto.randomUUID()}`;
        const after = `${out}/after-${crypto.randomUUID()}`;
        const running = slow.finishLate(first, 800).catch((e) => e);
        await new Promise((r) => setTimeout(r, 100));
        // systemd signals the daemon and its sudo, which relays: two at once
        // must not cut the grace short.
        Deno.kill(pid, "SIGTERM");
        await new Promise((r) => setTimeout(r, 5));
        Deno.kill(pid, "SIGTERM");
        await new Promise((r) => setTimeout(r, 100));
        const late = await slow.finishLate(after, 0).catch((e) => e);
        assert.ok(late instanceof DaemonExitedError, String(late));
        assert.equal(await running, undefined);
        await assert.rejects(Deno.stat(after), Deno.errors.NotFound);
        assert.match(await Deno.readTextFile(first), /^finally ran at/);
      },
    );

    await t.step(
      "stop(): replies of calls that return within the grace still come, a call cancelled before does not recycle the daemon meanwhile, and a second stop() resolves only once the daemon has exited",
      async () => {
        const pid = await use({ cancel_grace_ms: 1_500, concurrency: 8 });
        // Cancelled at 50 ms, it counts as stuck ~2.05 s in (its grace and
        // the margin), while the stop's grace (from ~1.8 s) runs to ~3.3 s:
        // `last` returns in between (margins of ~0.5 s for a busy machine).
        const stuck = callWith({ timeout: 50 }, () => slow.hang()).catch((
          e,
        ) => e);
        const last = slow.lateBytes(2_600, 10);
        await new Promise((r) => setTimeout(r, 1_700));
        const several = [1, 2, 3].map(() => slow.lateBytes(300, 20_000));
        await new Promise((r) => setTimeout(r, 100));
        const first = testCtx.stop();
        const second = testCtx.stop();
        for (const r of await Promise.all(several)) {
          assert.equal(r.length, 20_000);
        }
        assert.equal((await last).length, 10);
        assert.ok(await stuck instanceof PrivsepTimeout);
        await second;
        await assert.rejects(
          Deno.stat(`/proc/${pid}/status`),
          Deno.errors.NotFound,
          "the daemon is gone when the second stop() resolves",
        );
        await first;
      },
    );

    await t.step(
      "stop(): the large reply of the last call to return is written before the daemon exits",
      async () => {
        await use({ cancel_grace_ms: 1_500 });
        const big = slow.lateBytes(300, 8 << 20);
        await new Promise((r) => setTimeout(r, 100));
        await testCtx.stop();
        assert.equal((await big).length, 8 << 20);
      },
    );

    await t.step(
      "systemd's stop (SIGTERM to every process of the unit: the daemon and its keeper) lets a running call finish within the grace while the caller lives",
      async () => {
        const { pid, out } = await useWritable();
        const keeper = keeperOf(pid);
        const done = `${out}/done-${crypto.randomUUID()}`;
        const running = slow.finishLate(done, 600).catch((e) => e);
        await new Promise((r) => setTimeout(r, 100));
        Deno.kill(keeper, "SIGTERM");
        Deno.kill(pid, "SIGTERM");
        assert.equal(await running, undefined);
        assert.match(await Deno.readTextFile(done), /^finally ran at/);
      },
    );

    await t.step(
      "a keeper sent SIGTERM still kills a daemon that does not leave (blocked in a busy loop), 3-4 s later",
      async () => {
        const pid = await use({ cancel_grace_ms: 1_500 });
        const keeper = keeperOf(pid);
        const call = slow.spin(20_000).catch((e) => e);
        await new Promise((r) => setTimeout(r, 200));
        const sent = performance.now();
        Deno.kill(keeper, "SIGTERM");
        assert.ok(await call instanceof DaemonExitedError);
        const ms = performance.now() - sent;
        assert.ok(ms > 2_500 && ms < 6_000, `the daemon ended ${ms} ms after`);
      },
    );
  } finally {
    await testCtx.stop();
    init({ configFiles: [] });
    await reset();
    await Deno.remove(dir, { recursive: true });
  }
});
