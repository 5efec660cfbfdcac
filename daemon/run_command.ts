/**
 * A narrow way for a privileged function to run one fixed program: an
 * absolute path, an argument list (no shell), an explicit environment, and
 * the call's cancellation. When the call is cancelled the child gets SIGTERM,
 * then SIGKILL after a grace period, and the promise rejects.
 *
 * @module
 */

import { callSignal } from "../contexts/call_scope.ts";

/** Options of {@linkcode runCommand}. */
export interface RunCommandOptions {
  /** Cancels the child; the running call's {@linkcode callSignal} by default. */
  signal?: AbortSignal;
  /** The child's whole environment (default: only a fixed `PATH`). */
  env?: Record<string, string>;
  /** Bytes written to the child's stdin, then closed (default: no stdin). */
  stdin?: Uint8Array | string;
  /** Milliseconds between SIGTERM and SIGKILL on cancellation (default 1000). */
  killGraceMs?: number;
  /** Working directory (default `/`). */
  cwd?: string;
}

/** What the child did. */
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
 * ```ts ignore
 * import { runCommand } from "@privsep/privsep";
 * export const releaseLease = dhcp.entrypoint(import.meta, async function releaseLease(dev: string, ip: string, mac: string) {
 *   const { success, stderr } = await runCommand("/usr/bin/dhcp_release", [dev, ip, mac]);
 *   if (!success) throw new Error(new TextDecoder().decode(stderr));
 * });
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
  }).spawn();
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const onAbort = () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    killTimer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    }, options.killGraceMs ?? 1000);
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
    const out = await child.output();
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
    clearTimeout(killTimer);
  }
}
