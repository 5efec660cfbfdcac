// Bug 3 (reliability/REPORT.md): when the caller dies during a call that
// runs a program through runCommand(), the daemon exits (EOF) but the
// program keeps running, reparented to init, with the daemon's credentials.
// Run as root: deno run -A reliability/repro/orphan_child.ts
import {
  DENO,
  ensureUser,
  removeUser,
  ROOT,
  scratchDir,
  testUser,
  waitGone,
  writeConfig,
} from "../../tests/_helpers.ts";

const DAEMON_USER = testUser(import.meta, "d");

const dir = await scratchDir();
await ensureUser(DAEMON_USER);
const config = await writeConfig(dir, {
  e2e: {
    user: DAEMON_USER,
    capabilities: ["CAP_NET_BIND_SERVICE"],
    permissions: { run: ["/usr/bin/sleep"] },
  },
});
const caller = new Deno.Command(DENO, {
  args: [
    "run",
    "-A",
    `${ROOT}/reliability/fault_caller.ts`,
    config,
    "sleep-command",
    "37",
  ],
  stdout: "piped",
}).spawn();
const reader = caller.stdout.getReader();
const { pid } = JSON.parse(
  new TextDecoder().decode((await reader.read()).value),
);
reader.releaseLock();
const pgrep = () =>
  new TextDecoder().decode(
    new Deno.Command("pgrep", { args: ["-f", "^/usr/bin/sleep 37$"] })
      .outputSync().stdout,
  ).trim().split("\n").filter(Boolean).map(Number);
console.log(`daemon ${pid}, its child: ${pgrep().join(" ")}`);
caller.kill("SIGKILL");
await caller.status;
await caller.stdout.cancel();
console.log(`daemon gone after ${(await waitGone(pid, 2000)).toFixed(0)} ms`);
await new Promise((r) => setTimeout(r, 1000));
const left = pgrep();
for (const p of left) {
  const status = Deno.readTextFileSync(`/proc/${p}/status`).split("\n")
    .filter((l) => /^(PPid|Uid|CapPrm|CapEff|CapAmb|NoNewPrivs)/.test(l))
    .map((l) => l.replace(/\s+/g, " ")).join("; ");
  console.log(`BUG: /usr/bin/sleep ${p} still runs 1 s later: ${status}`);
  Deno.kill(p, "SIGKILL");
}
if (!left.length) console.log("fixed: no child left");
await Deno.remove(dir, { recursive: true });
await removeUser(DAEMON_USER);
