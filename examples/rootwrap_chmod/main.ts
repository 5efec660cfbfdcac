// `deno task example:rootwrap_chmod`: the rootwrap filter
// `chmod: CommandFilter, chmod, root` (rootwrap.filters) converted to privsep
// the way the oslo.privsep docs advise: not one chmod(path, mode) function
// (broad_version.ts shows why that is root for the taking), but one narrow
// function per real use (privsep/modes.ts), in a daemon that runs as a
// dedicated user with CAP_FOWNER only.
import { RemoteError } from "../../mod.ts";
import * as modes from "./privsep/modes.ts";
import { fownerCtx, LOGS_DIR, SECRETS_DIR } from "./privsep/mod.ts";

/**
 * The service's calling code (the part that used to run `sudo chmod …` through
 * rootwrap): after rotating its logs and installing its secrets it makes the
 * logs readable and locks the secrets.
 */
export async function fixPermissions(
  secrets: readonly string[],
): Promise<modes.LogsResult> {
  const logs = await modes.makeLogsReadable();
  for (const name of secrets) await modes.lockSecret(name);
  return logs;
}

async function mode(path: string): Promise<string> {
  return ((await Deno.stat(path)).mode! & 0o7777).toString(8).padStart(4, "0");
}

if (import.meta.main) {
  if (Deno.uid() === 0) {
    const { prepareLayout } = await import("./setup.ts");
    await prepareLayout();
    // Demo files, root-owned, as the service's installer would leave them.
    for (
      const [path, fileMode] of [
        [`${LOGS_DIR}/app.log`, 0o600],
        [`${LOGS_DIR}/access.log`, 0o640],
        [`${SECRETS_DIR}/db_password`, 0o644],
      ] as const
    ) {
      await Deno.writeTextFile(path, "demo\n", { mode: fileMode });
      await Deno.chmod(path, fileMode);
    }
  } else {
    console.log(
      "not root: the daemon starts through sudo (run this example once as root to create the layout)",
    );
  }
  try {
    const logs = await fixPermissions(["db_password"]);
    console.log(
      `makeLogsReadable(): changed ${logs.changed.join(", ") || "nothing"}${
        logs.skipped.length ? `, skipped ${logs.skipped.join(", ")}` : ""
      }`,
    );
    if (Deno.uid() === 0) {
      for (const name of logs.changed) {
        console.log(
          `  ${LOGS_DIR}/${name}: ${await mode(`${LOGS_DIR}/${name}`)}`,
        );
      }
      console.log(
        `lockSecret("db_password"): ${SECRETS_DIR}/db_password is ${await mode(
          `${SECRETS_DIR}/db_password`,
        )}`,
      );
    }
    for (const name of ["../../../../etc/shadow", "passwd"]) {
      try {
        await modes.lockSecret(name);
      } catch (error) {
        if (!(error instanceof RemoteError)) throw error;
        console.log(
          `lockSecret(${JSON.stringify(name)}) refused: ${error.message}`,
        );
      }
    }
  } finally {
    await fownerCtx.stop();
  }
}
