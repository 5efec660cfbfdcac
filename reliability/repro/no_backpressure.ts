// Bug 2 (reliability/REPORT.md): the daemon's outbox has no bound. A caller
// that keeps sending calls but does not read the replies makes the daemon
// buffer every reply: its memory grows with what the caller sends.
// Run as root: deno run -A reliability/repro/no_backpressure.ts [calls]
import { init } from "../../mod.ts";
import { encodeMessage, Kind } from "../../protocol/messages.ts";
import { testCtx } from "../../tests/fixtures/privsep/mod.ts";
import { scratchDir, writeConfig } from "../../tests/_helpers.ts";
import { procKb, RawDaemon } from "../_raw.ts";

const calls = Number(Deno.args[0] ?? 2000);
const dir = await scratchDir();
init({
  configFiles: [
    await writeConfig(dir, { e2e: { user: "root", capabilities: [] } }),
  ],
});
const d = new RawDaemon(testCtx.command());
try {
  await d.handshake();
  const start = procKb(d.pid, "VmRSS")!;
  d.pause();
  const payload = new Uint8Array(256 << 10);
  // Fixed: the daemon stops reading while 8 MiB of replies wait to be
  // written, so the caller's writes block; stop writing when they do.
  let sent = 0;
  for (; sent < calls; sent++) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const blocked = await Promise.race([
      d.write(encodeMessage([Kind.Call, 10 + sent, "ops.ts#echo", [payload]]))
        .then(() => false),
      new Promise<boolean>((r) => timer = setTimeout(() => r(true), 3000)),
    ]);
    clearTimeout(timer);
    if (blocked) break;
  }
  await new Promise((r) => setTimeout(r, 2000));
  const end = procKb(d.pid, "VmRSS")!;
  console.log(
    `${sent} of ${calls} calls written before the daemon stopped reading; daemon VmRSS ${
      Math.round(start / 1024)
    } MiB -> ${Math.round(end / 1024)} MiB`,
  );
} finally {
  await d.kill();
  init({ configFiles: [] });
  await Deno.remove(dir, { recursive: true });
}
