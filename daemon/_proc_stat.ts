// What stage 1 reads of another process in /proc/<pid>/stat. Private: the
// cgroup's record of its daemon (_cgroup.ts) and what the keeper watches
// (_keeper.ts).

import { readFileViaLibc } from "../caps/_ffi.ts";

/** The fields of /proc/<pid>/stat that stage 1 uses. */
export interface ProcStat {
  /** The name (`comm`), between the first `(` and the last `)`. */
  name: string;
  /** The state letter (`Z`: a zombie, `X`: dead). */
  state: string;
  /** The parent's pid. */
  ppid: number;
  /** Field 22: when it started, in clock ticks since boot. */
  start: string;
}

/**
 * /proc/`pid`/stat, parsed after the last `)` (a name may hold spaces, `)`
 * and newlines); undefined when the process is gone.
 *
 * @example
 * ```ts ignore
 * procStat(Deno.pid)?.start; // "2556068"
 * ```
 */
export function procStat(pid: number | string): ProcStat | undefined {
  let stat: string;
  try {
    stat = new TextDecoder().decode(readFileViaLibc(`/proc/${pid}/stat`));
  } catch {
    return undefined;
  }
  const end = stat.lastIndexOf(")");
  const fields = stat.slice(end + 2).split(" ");
  return {
    name: stat.slice(stat.indexOf("(") + 1, end),
    state: fields[0],
    ppid: Number(fields[1]),
    start: fields[19],
  };
}
