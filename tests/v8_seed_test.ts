// The serving stage runs V8 in predictable mode (core/command.ts,
// serveV8Flags), which would give every daemon the same Math.random()
// sequence and heap addresses: each daemon gets a random seed of its own, in
// its environment (readable only by its user), not on its command line
// (readable by every local user).
import assert from "node:assert/strict";
import { init } from "../mod.ts";
import { testCtx } from "./fixtures/privsep/mod.ts";
import * as ops from "./fixtures/privsep/ops.ts";
import { requireRoot, scratchDir, writeConfig } from "./_helpers.ts";

/** A NUL-separated /proc file of the daemon, as a list. */
async function procList(pid: number, file: string): Promise<string[]> {
  return (await Deno.readTextFile(`/proc/${pid}/${file}`)).split("\0");
}

Deno.test("privileged daemon: each daemon draws its own V8 random seed, off its command line", async () => {
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
        const argv = (await procList(info.pid, "cmdline")).join(" ");
        assert.ok(argv.includes("--stage=serve"), argv);
        assert.ok(!argv.includes("--random-seed"), argv);
        const env = await procList(info.pid, "environ");
        const flags = env.find((e) => e.startsWith("DENO_V8_FLAGS="));
        assert.ok(flags, env.join(" "));
        const seed = /^DENO_V8_FLAGS=--predictable,--random-seed=(-?\d+)$/
          .exec(flags)?.[1];
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
