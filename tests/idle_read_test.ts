// How an idle daemon waits for the next call (idle_read): by default its
// event loop keeps turning between calls, so work an entrypoint left running
// finishes while no call arrives; "blocking" waits in a blocking read, in
// which nothing runs until the next call.
import assert from "node:assert/strict";
import { init } from "../mod.ts";
import {
  backgroundSteps,
  idleCtx,
  startBackground,
} from "./fixtures/idle_read/mod.ts";
import { requireRoot, scratchDir, writeConfig } from "./_helpers.ts";

const STEPS = 50;

/** Starts the background work, waits without calling, counts what ran. */
async function stepsWhileIdle(): Promise<number> {
  await startBackground(STEPS);
  await new Promise((r) => setTimeout(r, 500));
  return await backgroundSteps();
}

/** Runs `fn` with idleCtx configured by `section` (plus root, no caps). */
async function withIdleCtx(
  section: Record<string, unknown>,
  fn: () => Promise<void>,
): Promise<void> {
  requireRoot();
  const dir = await scratchDir();
  try {
    init({
      configFiles: [
        await writeConfig(dir, {
          idle_read_e2e: { user: "root", capabilities: [], ...section },
        }),
      ],
    });
    await fn();
  } finally {
    await idleCtx.stop();
    init({ configFiles: [] });
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test(
  'an idle daemon runs background I/O between calls by default (idle_read "event-loop")',
  () =>
    withIdleCtx({}, async () => {
      assert.equal(await stepsWhileIdle(), STEPS);
    }),
);

Deno.test(
  'idle_read "blocking": nothing runs between calls, the next call resumes it',
  () =>
    withIdleCtx({ idle_read: "blocking" }, async () => {
      // The daemon waited in a blocking read the whole 500 ms.
      assert.ok((await stepsWhileIdle()) < STEPS);
    }),
);
