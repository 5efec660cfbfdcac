// A service's main program for tests/faults_test.ts.
//   deno run -A reliability/fault_caller.ts <config.toml> sleep-command <s>
//     starts slow.ts#sleepCommand(<s>) (a /usr/bin/sleep child of the
//     daemon), prints {"pid": <daemon pid>} once the call is in flight, waits
//   deno run -A reliability/fault_caller.ts <config.toml> sleep <ms>
//     the same with ops.ts#sleep (no child process)
//   deno run -A reliability/fault_caller.ts <config.toml> start
//     starts the daemon; prints {"pid"} or {"error", "message"} and exits
import { init } from "../mod.ts";
import { testCtx } from "../tests/fixtures/privsep/mod.ts";
import * as ops from "../tests/fixtures/privsep/ops.ts";
import * as slow from "../tests/fixtures/privsep/slow.ts";

const [config, mode, arg] = Deno.args;
init({ configFiles: [config] });
if (mode === "start") {
  try {
    const info = await testCtx.start();
    console.log(JSON.stringify({ pid: info.pid }));
    await testCtx.stop();
  } catch (e) {
    const error = e as Error;
    console.log(JSON.stringify({ error: error.name, message: error.message }));
  }
  Deno.exit(0);
}
const info = await testCtx.start();
const call = mode === "sleep-command"
  ? slow.sleepCommand(Number(arg))
  : mode === "sleep"
  ? ops.sleep(Number(arg))
  : Promise.reject(new Error(`unknown mode ${mode}`));
call.catch((e) => console.error(String(e)));
// Let the call reach the daemon (and its child start).
await new Promise((r) => setTimeout(r, 300));
console.log(JSON.stringify({ pid: info.pid }));
await call;
