/**
 * How the serving stage kills a command's whole process tree: every command
 * runs in a session and process group of its own (`detached`), and a group is
 * signalled through the keeper that stage 1 started (see `_keeper.ts`), or
 * directly when there is none and Deno allows it (an unscoped `--allow-run`).
 *
 * @module
 */

let keeper: Deno.FsFile | undefined;
const encoder = new TextEncoder();
/** Whether the daemon has a cgroup of its own (`--cgroup=`). */
let cgroup = false;
/** Commands of runCommand() running now. */
let live = 0;
/** Whether a command ran since the last look for leftovers. */
let ran = false;

/**
 * Opens the keeper's FIFO (`--keeper=`), before any entrypoint loads. Throws
 * when it cannot: a daemon without its keeper must not run commands.
 * `inCgroup` is the daemon's cgroup (`--cgroup=`), if it has one. The path's
 * directory is root's (see `_keeper.ts`): no process of the daemon's user
 * can have put another file under the FIFO's name.
 */
export function connectKeeper(path: string, inCgroup?: string): void {
  keeper = Deno.openSync(path, { write: true });
  cgroup = !!path && !!inCgroup;
}

/** Tells the keeper about a group, or what to do with it. */
function tell(op: string, pid: number): boolean {
  if (!keeper) return false;
  try {
    // One short write: atomic on a pipe.
    keeper.writeSync(encoder.encode(`${op} ${pid}\n`));
    return true;
  } catch {
    return false; // the keeper is gone
  }
}

/** A command leads a new group: the keeper kills it if the daemon dies. */
export function trackGroup(pid: number): void {
  live++;
  ran = true;
  tell("track", pid);
}

/** A command finished: what is left of its group is killed. */
export function groupDone(pid: number): void {
  live--;
  if (!tell("done", pid)) killGroup(pid, "SIGKILL");
}

/**
 * Called when no call runs: if a command ran since the last time and none
 * runs now, the keeper kills every process of the daemon's cgroup whose
 * parents do not lead to the daemon: what left its command's process group
 * and was orphaned. Returns whether it asked.
 */
export function reapLeftovers(): boolean {
  if (!cgroup || !ran || live > 0) return false;
  ran = false;
  return tell("sweep", 0);
}

/**
 * Sends `signal` to every process of the group that `pid` leads (the pid as
 * this process sees it). Never throws: a gone group or keeper is no error.
 */
export function killGroup(pid: number, signal: "SIGTERM" | "SIGKILL"): void {
  if (tell(signal.slice(3), pid)) return;
  try {
    Deno.kill(-pid, signal);
  } catch { /* not allowed, or the group is gone */ }
}
