/**
 * A narrow way for a privileged function to run one fixed program: an
 * absolute path, an argument list (no shell), an explicit environment, and
 * the call's cancellation. The child runs in a session and process group of
 * its own; when the call is cancelled the whole group gets SIGTERM, then
 * SIGKILL after a grace period, and the promise rejects.
 *
 * @module
 */

import { callSignal } from "../core/call_scope.ts";
import { groupDone, killGroup, trackGroup } from "./_children.ts";

/** Children started by runCommand() that have not exited yet. */
const children = new Set<Deno.ChildProcess>();

/**
 * Kills (SIGKILL) every child that {@linkcode runCommand} started and that
 * still runs, with its process group: the daemon calls this when it exits, so
 * that no program it ran outlives it with its credentials (in a daemon, the
 * kernel also kills whatever escaped its group when the daemon ends).
 *
 * @example
 * ```ts ignore
 * import { killRunningCommands } from "./run_command.ts"; // the daemon's, not exported
 * killRunningCommands(); // 0 when nothing runs
 * ```
 */
export function killRunningCommands(): number {
  let n = 0;
  for (const child of children) {
    signalTree(child, "SIGKILL");
    n++;
  }
  return n;
}

/** Signals the child's process group, and the child itself. */
function signalTree(
  child: Deno.ChildProcess,
  signal: "SIGTERM" | "SIGKILL",
): void {
  killGroup(child.pid, signal);
  try {
    child.kill(signal);
  } catch { /* already gone */ }
}

/**
 * Options of {@linkcode runCommand}.
 *
 * @example
 * ```ts
 * import { runCommand, type RunCommandOptions } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * const options: RunCommandOptions = {
 *   env: { PATH: "/usr/bin:/bin", LC_ALL: "C" },
 *   stdin: "hello\n",
 *   cwd: "/tmp",
 *   killGraceMs: 500,
 * };
 * const { stdout } = await runCommand("/bin/cat", [], options);
 * assert.equal(new TextDecoder().decode(stdout), "hello\n");
 *
 * // an aborted signal (by default: the call's) rejects before anything runs
 * const controller = new AbortController();
 * controller.abort(new Error("cancelled"));
 * await assert.rejects(
 *   runCommand("/bin/sleep", ["10"], { signal: controller.signal }),
 *   /cancelled/,
 * );
 * ```
 */
export interface RunCommandOptions {
  /** Cancels the child; the running call's {@linkcode callSignal} by default. */
  signal?: AbortSignal;
  /** The child's whole environment (default: only a fixed `PATH`). */
  env?: Record<string, string>;
  /** Bytes written to the child's stdin, then closed (default: no stdin). */
  stdin?: Uint8Array | string;
  /**
   * Milliseconds between SIGTERM and SIGKILL of the child's process group on
   * cancellation (default 1000). A cancelled call's promise rejects at the
   * latest this long after the child exited, even if a process that left
   * the group still holds its output open.
   */
  killGraceMs?: number;
  /** Working directory (default `/`). */
  cwd?: string;
}

/**
 * What the child did.
 *
 * @example
 * ```ts
 * import { runCommand, type RunCommandResult } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * const result: RunCommandResult = await runCommand("/bin/sh", [
 *   "-c",
 *   "echo oops >&2; exit 3",
 * ]);
 * assert.equal(result.code, 3);
 * assert.equal(result.success, false);
 * assert.equal(result.signal, null);
 * assert.equal(new TextDecoder().decode(result.stderr), "oops\n");
 * ```
 */
export interface RunCommandResult {
  /** Exit code (128 + n when killed by signal n). */
  code: number;
  /** Whether it exited with code 0. */
  success: boolean;
  /** The signal that killed it, if one did. */
  signal: Deno.Signal | null;
  /** Everything it wrote on stdout. */
  stdout: Uint8Array;
  /** Everything it wrote on stderr. */
  stderr: Uint8Array;
}

/**
 * Runs `program` (an absolute path) with `args` and waits for it.
 *
 * @example
 * ```ts
 * import { PrivContext, runCommand } from "@privsep/privsep";
 * import assert from "node:assert/strict";
 *
 * // app/privsep/dhcp.ts: an entrypoint that runs one fixed program
 * const dhcp = new PrivContext({
 *   module: "file:///virtual/run-command/privsep/mod.ts", // import.meta in real code
 *   name: "dhcp",
 *   capabilities: ["CAP_NET_ADMIN"],
 *   permissions: { run: ["/usr/bin/dhcp_release"] },
 * });
 * export const releaseLease = dhcp.entrypoint(
 *   "file:///virtual/run-command/privsep/dhcp.ts",
 *   async function releaseLease(dev: string, ip: string, mac: string) {
 *     const { success, stderr } = await runCommand("/usr/bin/dhcp_release", [dev, ip, mac]);
 *     if (!success) throw new Error(new TextDecoder().decode(stderr));
 *   },
 * );
 *
 * // Outside a privileged call it works too (nothing cancels it):
 * const { success, stdout } = await runCommand("/bin/echo", ["hello"]);
 * assert(success);
 * assert.equal(new TextDecoder().decode(stdout), "hello\n");
 * ```
 */
export async function runCommand(
  program: string,
  args: readonly string[],
  options: RunCommandOptions = {},
): Promise<RunCommandResult> {
  if (typeof program !== "string" || !program.startsWith("/")) {
    throw new TypeError(
      `runCommand() runs a fixed program by absolute path, got ${
        JSON.stringify(program)
      }`,
    );
  }
  if (!Array.isArray(args) || !args.every((a) => typeof a === "string")) {
    throw new TypeError(
      "runCommand() needs its arguments as an array of strings",
    );
  }
  const signal = options.signal ?? callSignal();
  signal.throwIfAborted();
  const child = new Deno.Command(program, {
    args: [...args],
    env: options.env ?? { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
    clearEnv: true,
    cwd: options.cwd ?? "/",
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    // setsid(): a process group of its own, which cancellation kills whole.
    detached: true,
  }).spawn();
  trackGroup(child.pid);
  children.add(child);
  child.status.finally(() => children.delete(child));
  const graceMs = options.killGraceMs ?? 1000;
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  let giveUpTimer: ReturnType<typeof setTimeout> | undefined;
  let settled = false;
  let giveUp: (reason: unknown) => void = () => {};
  const gaveUp = new Promise<never>((_, reject) => giveUp = reject);
  gaveUp.catch(() => {});
  const onAbort = () => {
    signalTree(child, "SIGTERM");
    killTimer = setTimeout(() => signalTree(child, "SIGKILL"), graceMs);
    // Whatever left the group and holds the pipes open does not hold the
    // call: it answers once the child has exited and the grace has passed.
    child.status.then(() => {
      if (settled) return;
      giveUpTimer = setTimeout(() => giveUp(signal.reason), graceMs);
    });
  };
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    if (options.stdin !== undefined) {
      const writer = child.stdin.getWriter();
      await writer.write(
        typeof options.stdin === "string"
          ? new TextEncoder().encode(options.stdin)
          : options.stdin,
      );
      await writer.close();
    }
    const output = child.output();
    output.catch(() => {});
    const out = await Promise.race([output, gaveUp]);
    signal.throwIfAborted();
    return {
      code: out.code,
      success: out.success,
      signal: out.signal,
      stdout: out.stdout,
      stderr: out.stderr,
    };
  } finally {
    signal.removeEventListener("abort", onAbort);
    // Nothing the command started outlives the call.
    groupDone(child.pid);
    settled = true;
    clearTimeout(killTimer);
    clearTimeout(giveUpTimer);
  }
}
