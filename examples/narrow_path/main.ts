// `deno task example:narrow_path`: write an allowed file, then try one that
// the schema refuses.
import { RemoteError } from "../../mod.ts";
import * as conf from "./privsep/conf.ts";
import { CONF_DIR, confCtx } from "./privsep/mod.ts";

if (Deno.uid() === 0) {
  await Deno.mkdir(CONF_DIR, { recursive: true, mode: 0o700 });
}
try {
  await conf.writeConfFile(`${CONF_DIR}/10-demo.conf`, "answer = 42\n");
  console.log(`wrote ${CONF_DIR}/10-demo.conf`);
  try {
    await conf.writeConfFile(
      `${CONF_DIR}/../../../../etc/cron.d/evil.conf`,
      "",
    );
  } catch (error) {
    if (!(error instanceof RemoteError)) throw error;
    console.log(`refused: ${error.message}`);
  }
} finally {
  await confCtx.stop();
}
