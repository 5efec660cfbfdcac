import assert from "node:assert/strict";
import { callWith, PrivContext, PrivsepTimeout } from "../mod.ts";
import { inProcess } from "../testing/mod.ts";
import { sleep, throwIfCancelled } from "./cancel.ts";

const ctx = new PrivContext({
  module: "file:///virtual/cancel-test/privsep/mod.ts",
  name: "ctx",
  capabilities: [],
});
let ticks = 0;
const tick = ctx.entrypoint(
  "file:///virtual/cancel-test/privsep/tick.ts",
  async function tick(ms: number): Promise<string> {
    for (;;) {
      throwIfCancelled();
      ticks++;
      await sleep(ms);
    }
  },
);

Deno.test("sleep() resolves after ms outside a call, and refuses a bad ms", async () => {
  const t0 = performance.now();
  await sleep(30);
  assert.ok(performance.now() - t0 >= 25);
  await sleep(0);
  for (const bad of [-1, NaN, Infinity, "5" as unknown as number]) {
    assert.throws(() => sleep(bad), RangeError);
  }
});

Deno.test("sleep() rejects with the reason of options.signal and clears its timer", async () => {
  const controller = new AbortController();
  const reason = new Error("stop");
  const pending = sleep(60_000, { signal: controller.signal });
  controller.abort(reason);
  await assert.rejects(pending, (e) => e === reason);
  // Already aborted: rejects at once. (The test sanitizer fails on a timer
  // left running.)
  await assert.rejects(
    sleep(60_000, { signal: controller.signal }),
    (e) => e === reason,
  );
});

Deno.test("throwIfCancelled() does nothing outside a call", () => {
  throwIfCancelled();
});

Deno.test("sleep() and throwIfCancelled() stop an entrypoint when its call times out", async () => {
  using _ = inProcess();
  await assert.rejects(
    callWith({ timeout: 100 }, () => tick(10)),
    PrivsepTimeout,
  );
  const after = ticks;
  assert.ok(after >= 3, `ticked ${after} times`);
  await sleep(100);
  assert.equal(ticks, after, "no tick after the timeout");
});
