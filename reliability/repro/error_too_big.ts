// Bug 1 (reliability/REPORT.md): an error whose envelope is larger than
// maxFrameBytes crashes the daemon (unhandled rejection), and every call in
// flight is lost. Run as root: deno run -A reliability/repro/error_too_big.ts
import { DaemonExitedError, init, RemoteError } from "../../mod.ts";
import { testCtx } from "../../tests/fixtures/privsep/mod.ts";
import * as ops from "../../tests/fixtures/privsep/ops.ts";
import { scratchDir, writeConfig } from "../../tests/_helpers.ts";

const dir = await scratchDir();
init({
  configFiles: [
    await writeConfig(dir, { e2e: { user: "root", capabilities: [] } }),
  ],
});
try {
  const bystander = ops.sleep(2_000);
  // fail() throws RangeError(`out of range: ${kind}`): 14 bytes more than
  // the argument, so the error reply does not fit where the call did.
  const big = "x".repeat((16 << 20) - 40);
  const [r1, r2] = await Promise.allSettled([ops.fail(big), bystander]);
  const show = (r: PromiseSettledResult<unknown>) =>
    r.status === "fulfilled"
      ? "fulfilled"
      : `${(r.reason as Error).name}: ${
        (r.reason as Error).message.slice(0, 300)
      }`;
  console.log("fail(16 MiB − 40 chars):", show(r1));
  console.log("a bystander call in flight:", show(r2));
  const crashed = r1.status === "rejected" &&
    r1.reason instanceof DaemonExitedError;
  const expected = r1.status === "rejected" && r1.reason instanceof RemoteError;
  console.log(
    crashed
      ? "BUG: the daemon crashed"
      : expected
      ? "fixed: a RemoteError"
      : "?",
  );
} finally {
  await testCtx.stop();
  init({ configFiles: [] });
  await Deno.remove(dir, { recursive: true });
}
