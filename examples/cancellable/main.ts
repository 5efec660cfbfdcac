// `deno task example:cancellable`: a wait that succeeds, then two that time
// out and stop in the daemon (no call is left running: see status()).
import { callWith, PrivsepTimeout } from "../../mod.ts";
import * as wait from "./privsep/wait.ts";
import { READY_DIR, waitCtx } from "./privsep/mod.ts";

await Deno.mkdir(READY_DIR, { recursive: true, mode: 0o755 });
try {
  setTimeout(() => Deno.writeTextFileSync(`${READY_DIR}/demo`, "ready\n"), 300);
  console.log(`waitForFile("demo"): ${await wait.waitForFile("demo")}`.trim());
  try {
    await callWith({ timeout: 300 }, () => wait.waitForFile("never"));
  } catch (error) {
    if (!(error instanceof PrivsepTimeout)) throw error;
    console.log(`waitForFile("never"): timed out after ${error.elapsedMs} ms`);
  }
  const { running, cancelled, stuck } = await waitCtx.status();
  console.log(
    `daemon: ${running} running, ${cancelled} cancelled, ${stuck} stuck`,
  );
} finally {
  await Deno.remove(`${READY_DIR}/demo`).catch(() => {});
  await waitCtx.stop();
}
