// What the caller checks about a new daemon beyond its credentials in /proc:
// who it must run as, resolved on this side from the context's settings (not
// from the daemon's hello), and that the process the hello names is one this
// caller started (a descendant of the spawned child), not any process that
// happens to hold the right credentials.
import { lookupGroup, lookupUser } from "../caps/_ffi.ts";

/** The uid and gid a daemon must run as. */
export interface ExpectedIds {
  uid: number;
  gid: number;
  /** How the settings named them, for error messages (`user "app"`). */
  user: string;
  group: string;
}

/**
 * Resolves the context's `user` and `group` as the daemon's first stage does
 * (`daemon/start.ts`): names or numeric ids through the system's name service;
 * without a group, the user's primary group. Throws an `Error` naming what is
 * unknown.
 */
export function expectedIds(
  settings: { user: string; group?: string },
): ExpectedIds {
  const user = lookupUser(settings.user);
  if (!user) {
    throw new Error(`the context's user "${settings.user}" does not exist`);
  }
  if (settings.group === undefined) {
    return {
      uid: user.id,
      gid: user.gid!,
      user: `user "${settings.user}"`,
      group: `the primary group of user "${settings.user}"`,
    };
  }
  const group = lookupGroup(settings.group);
  if (!group) {
    throw new Error(`the context's group "${settings.group}" does not exist`);
  }
  return {
    uid: user.id,
    gid: group.id,
    user: `user "${settings.user}"`,
    group: `group "${settings.group}"`,
  };
}

/**
 * The parent pid in the text of `/proc/<pid>/stat`. The command name (field
 * 2, in parentheses) may itself contain spaces and parentheses: the fields
 * after it start after its last `)`.
 */
export function parseStatParent(text: string): number {
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const ppid = Number(rest[1]);
  if (!Number.isSafeInteger(ppid) || ppid < 0) {
    throw new Error(`no parent pid in /proc/<pid>/stat: ${text.slice(0, 80)}`);
  }
  return ppid;
}

/** Reads a process's parent pid from `/proc/<pid>/stat`. */
export async function readParent(pid: number): Promise<number> {
  return parseStatParent(await Deno.readTextFile(`/proc/${pid}/stat`));
}

/**
 * The chain of pids from `pid` up to `ancestor` (both included), or
 * `undefined` when `pid` is not `ancestor` or one of its descendants
 * (the walk reached pid 1 or 0, a process that is gone, or too many levels).
 */
export async function ancestry(
  pid: number,
  ancestor: number,
  parentOf: (pid: number) => Promise<number> = readParent,
): Promise<number[] | undefined> {
  const chain = [pid];
  let current = pid;
  // sudo, its monitor and the daemon are a few levels at most.
  for (let depth = 0; depth < 32; depth++) {
    if (current === ancestor) return chain;
    if (current <= 1) return undefined;
    try {
      current = await parentOf(current);
    } catch {
      return undefined;
    }
    chain.push(current);
  }
  return undefined;
}
