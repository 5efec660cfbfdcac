// The daemon's V8 runs in predictable mode (core/command.ts, DAEMON_V8_FLAGS),
// which would give every daemon the same Math.random() sequence: the serving
// stage gets a random seed of its own at each start.
import assert from "node:assert/strict";
import { init } from "../mod.ts";
import { testCtx } from "./fixtures/privsep/mod.ts";
import * as ops from "./fixtures/privsep/ops.ts";
import { requireRoot, scratchDir, writeConfig } from "./_helpers.ts";

/** The serving stage's `--v8-flags` argument, from the kernel. */
async function v8Flags(pid: number): Promise<string> {
  const argv = (await Deno.readTextFile(`/proc/${pid}/cmdline`)).split("\0");
  const flags = argv.find((a) => a.startsWith("--v8-flags="));
  assert.ok(flags, `no --v8-flags in ${argv.join(" ")}`);
  return flags;
}

Deno.test("privileged daemon: each daemon draws its own V8 random seed", async () => {
  requireRoot();
  const dir = await scratchDir();
  try {
    const config = await writeConfig(dir, {
      e2e: { user: "nobody", capabilities: [] },
    });
    init({ configFiles: [config] });
    const seen: { seed: string; random: number }[] = [];
    for (let i = 0; i < 2; i++) {
      const info = await testCtx.start();
      try {
        const flags = await v8Flags(info.pid);
        assert.ok(flags.includes(",--predictable"), flags);
        const seed = /,--random-seed=(-?\d+)$/.exec(flags)?.[1];
        assert.ok(seed && seed !== "0", flags);
        seen.push({ seed, random: await ops.random() });
      } finally {
        await testCtx.stop();
      }
    }
    assert.notEqual(seen[0].seed, seen[1].seed);
    // Without a seed, predictable mode starts every daemon's Math.random()
    // at the same value.
    assert.notEqual(seen[0].random, seen[1].random);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
