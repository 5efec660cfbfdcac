// Privileged functions that stop when their call is cancelled (it timed out,
// or the caller aborted it): every wait listens to callSignal().
import { callSignal, sleep, throwIfCancelled } from "../../../mod.ts";
import { READY_DIR, waitCtx } from "./mod.ts";

/** A file name in READY_DIR: no `/`, no leading `.` (so not `..`) or `-`. */
const PLAIN_NAME = /^[a-z0-9][a-z0-9_.-]{0,254}$/;

/** Throws a TypeError unless `name` is a plain file name in READY_DIR. */
function checkName(name: unknown): asserts name is string {
  if (typeof name !== "string" || !PLAIN_NAME.test(name)) {
    throw new TypeError(`not a plain file name: ${JSON.stringify(name)}`);
  }
}

/**
 * Waits until `READY_DIR/<name>` exists and returns its text (`name` a plain
 * file name: lower-case letters, digits, `_`, `.` and `-`, starting with a
 * letter or digit). Polls every 50 ms with `sleep()`, which rejects as soon
 * as the call is cancelled (a `setTimeout` promise would not); the read
 * takes the call's signal too.
 */
export const waitForFile = waitCtx.entrypoint(
  import.meta,
  async function waitForFile(name: string): Promise<string> {
    checkName(name);
    const path = `${READY_DIR}/${name}`;
    while (!(await exists(path))) await sleep(50);
    return await Deno.readTextFile(path, { signal: callSignal() });
  },
);

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Asks a local health endpoint for its status line. `fetch` takes the
 * call's signal, so a server that never answers does not hold the call.
 */
export const healthOf = waitCtx.entrypoint(
  import.meta,
  async function healthOf(port: number): Promise<string> {
    if (!Number.isSafeInteger(port) || port < 1 || port > 65535) {
      throw new RangeError(`not a port: ${port}`);
    }
    const response = await fetch(`http://127.0.0.1:${port}/health`, {
      signal: callSignal(),
    });
    return `${response.status} ${await response.text()}`;
  },
);

/**
 * Counts the names present in READY_DIR, checking each in turn, a step that
 * takes no signal; between steps, `throwIfCancelled()` stops the batch once
 * the call is cancelled. Every name must be a plain file name, as for
 * `waitForFile`: a TypeError before any is checked otherwise.
 */
export const countPresent = waitCtx.entrypoint(
  import.meta,
  async function countPresent(names: string[]): Promise<number> {
    if (!Array.isArray(names)) throw new TypeError("names must be an array");
    for (const name of names) checkName(name);
    let present = 0;
    for (const name of names) {
      throwIfCancelled();
      try {
        await Deno.lstat(`${READY_DIR}/${name}`);
        present++;
      } catch { /* absent */ }
      await sleep(10);
    }
    return present;
  },
);
