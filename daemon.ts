/**
 * The privsep daemon, in two stages. Started as root (through sudo, or
 * directly), the first stage checks that everything it loads is root-owned
 * (before it loads anything but this file, `daemon/preflight.ts`,
 * `core/trust.ts` and the libc bindings), drops to the context's
 * capabilities and user and `execve`s the second, which serves calls over
 * stdin/stdout. Services never run this by hand: `PrivContext` builds the
 * exact command (`ctx.command()`), which a root-owned launcher per context
 * runs (`ctx.launcherScript()`, written by `privsep install`), and
 * `ctx.sudoersRule(user)` lets the service's user run that launcher with no
 * arguments.
 *
 * ```sh
 * /usr/bin/env DENO_DIR=/var/cache/privsep/deno /usr/local/bin/deno run \
 *   --no-prompt --cached-only --no-lock --config=/opt/app/deno.json \
 *   --allow-ffi --allow-read=/opt/app /opt/app/vendor/privsep/daemon.ts \
 *   --context=file:///opt/app/privsep/mod.ts#sysAdmin
 * ```
 *
 * @example
 * ```ts
 * import { main } from "@privsep/privsep/daemon";
 *
 * // Root only, and a PrivContext starts it, never a service: not run here.
 * async function startDaemon(): Promise<void> {
 *   await main(["--context=file:///opt/app/privsep/mod.ts#sysAdmin"]);
 * }
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { preflight, StartError } from "./daemon/preflight.ts";

/**
 * Runs the daemon stage that `args` selects (`--stage=serve` for the second).
 * Start-up failures print one line on stderr and exit with code 2.
 *
 * @example
 * ```ts
 * import { main } from "@privsep/privsep/daemon";
 *
 * // What daemon.ts does when it is the program that runs (not here):
 * if (import.meta.main) await main(Deno.args);
 * ```
 */
export async function main(args: string[]): Promise<void> {
  const stage = args.find((a) => a.startsWith("--stage="));
  const rest = args.filter((a) => a !== stage);
  try {
    if (stage === "--stage=serve") {
      // Stage 1 checked everything before it exec'd this process.
      const { serveDaemon } = await import("./daemon/serve.ts");
      await serveDaemon(rest);
    } else if (stage === undefined) {
      const { values } = parseArgs({
        args: rest,
        options: {
          context: { type: "string" },
          "config-file": { type: "string", multiple: true },
          unprivileged: { type: "boolean" },
        },
        strict: true,
      });
      const facts = preflight(
        values["config-file"] ?? [],
        fileURLToPath(import.meta.url),
        values.unprivileged ?? false,
      );
      // Only now: privsep's other modules and its npm dependencies. The
      // serving stage's module is loaded too (not run): stage 1 writes the
      // transpile cache that stage 2 may only read.
      const [{ startDaemon }] = await Promise.all([
        import("./daemon/start.ts"),
        import("./daemon/serve.ts"),
      ]);
      await startDaemon(values.context, facts);
    } else {
      throw new StartError(
        `unknown ${stage}; the stages are "start" (default) and "serve"`,
      );
    }
  } catch (error) {
    const e = error as Error;
    const expected = e instanceof StartError ||
      ["UntrustedPathError", "ConfigError", "SystemCallError", "TypeError"]
        .includes(e?.name);
    // Straight to stderr: in the serving stage console.* is the wire. Not a
    // write that may block for good: stderr is the caller's, and a full
    // pipe it never reads held a failed stage 1, root, in its write (a
    // reading). An asynchronous write, then the exit within a second.
    const said = new TextEncoder().encode(
      `privsep daemon: ${expected ? e.message : e?.stack ?? String(e)}\n`,
    );
    await Promise.race([
      Deno.stderr.write(said).catch(() => 0),
      new Promise((done) => setTimeout(done, 1000)),
    ]);
    Deno.exit(2);
  }
}

if (import.meta.main) await main(Deno.args);
