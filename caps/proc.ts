import { formatCapabilities } from "./parse.ts";

/**
 * The four user or group IDs of a thread, as listed in `/proc/<pid>/status`.
 *
 * @example
 * ```ts
 * import { type IdSet, parseProcStatus } from "@privsep/privsep/caps";
 * import assert from "node:assert/strict";
 *
 * const status = parseProcStatus(
 *   "Name:\tsh\nUid:\t1000\t0\t0\t0\nGid:\t100\t100\t100\t100\nGroups:\t\n" +
 *     "CapInh:\t0\nCapPrm:\t0\nCapEff:\t0\nCapBnd:\t0\nCapAmb:\t0\nNoNewPrivs:\t0\n",
 * );
 * const uid: IdSet = status.uid; // a setuid-root program run by user 1000
 * assert.deepEqual(uid, { real: 1000, effective: 0, saved: 0, fs: 0 });
 * ```
 */
export interface IdSet {
  /** The real ID. */
  real: number;
  /** The effective ID, used for most permission checks. */
  effective: number;
  /** The saved set-ID. */
  saved: number;
  /** The file system ID, used for file permission checks. */
  fs: number;
}

/**
 * The credentials of one thread, parsed from `/proc/<pid>/task/<tid>/status`.
 * Capability sets are 64-bit masks; see {@linkcode maskToCapabilities}.
 *
 * @example
 * ```ts
 * import {
 *   CAP_NET_ADMIN,
 *   maskToCapabilities,
 *   parseProcStatus,
 *   type StatusCredentials,
 * } from "@privsep/privsep/caps";
 * import assert from "node:assert/strict";
 *
 * const status: StatusCredentials = parseProcStatus(
 *   "Name:\tdeno\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t4 27\n" +
 *     "CapInh:\t0000000000001000\nCapPrm:\t0000000000001000\n" +
 *     "CapEff:\t0000000000001000\nCapBnd:\t0000000000001000\n" +
 *     "CapAmb:\t0000000000001000\nNoNewPrivs:\t1\nSeccomp:\t2\n",
 * );
 * assert.deepEqual(maskToCapabilities(status.capEff), [CAP_NET_ADMIN]);
 * assert.deepEqual(status.groups, [4, 27]);
 * assert.equal(status.noNewPrivs, true);
 * assert.equal(status.seccomp, 2);
 * ```
 */
export interface StatusCredentials {
  /** The command name (`Name`), escaped by the kernel. */
  name: string;
  /** The user IDs (`Uid`). */
  uid: IdSet;
  /** The group IDs (`Gid`). */
  gid: IdSet;
  /** The supplementary group IDs (`Groups`). */
  groups: number[];
  /** The inheritable capability set (`CapInh`). */
  capInh: bigint;
  /** The permitted capability set (`CapPrm`). */
  capPrm: bigint;
  /** The effective capability set (`CapEff`). */
  capEff: bigint;
  /** The capability bounding set (`CapBnd`). */
  capBnd: bigint;
  /** The ambient capability set (`CapAmb`). */
  capAmb: bigint;
  /** Whether the `no_new_privs` bit is set (`NoNewPrivs`). */
  noNewPrivs: boolean;
  /**
   * The seccomp mode (`Seccomp`): 0 disabled, 1 strict, 2 filter; `undefined`
   * if the kernel was built without seccomp.
   */
  seccomp?: number;
  /** How many seccomp filters are installed (`Seccomp_filters`), when shown. */
  seccompFilters?: number;
}

/**
 * The credentials of one thread of a process.
 *
 * @example
 * ```ts
 * import { readProcessCredentialsSync, type ThreadCredentials } from "@privsep/privsep/caps";
 * import assert from "node:assert/strict";
 *
 * const threads: ThreadCredentials[] = readProcessCredentialsSync("self").threads;
 * const main = threads.find((thread) => thread.tid === Deno.pid); // the main thread
 * assert.equal(main?.uid.real, Deno.uid());
 * ```
 */
export interface ThreadCredentials extends StatusCredentials {
  /** The thread ID. */
  tid: number;
}

/**
 * The credentials of every thread of a process.
 *
 * @example
 * ```ts
 * import { type ProcessCredentials, readProcessCredentials } from "@privsep/privsep/caps";
 * import assert from "node:assert/strict";
 *
 * const self: ProcessCredentials = await readProcessCredentials("self");
 * assert.equal(self.pid, Deno.pid);
 * assert(self.threads.length > 1); // Deno runs several threads
 * ```
 */
export interface ProcessCredentials {
  /** The process ID. */
  pid: number;
  /** Every thread that still existed when it was read, sorted by thread ID. */
  threads: ThreadCredentials[];
}

/**
 * Parses the credential lines of a `/proc/<pid>/status` file.
 *
 * @param text The file's contents.
 * @returns The parsed credentials.
 * @throws {SyntaxError} If a required line is missing or malformed.
 *
 * @example Usage
 * ```ts
 * import { parseProcStatus } from "@privsep/privsep/caps";
 * import assert from "node:assert/strict";
 *
 * const status = parseProcStatus(
 *   "Name:\tsleep\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t \n" +
 *     "CapInh:\t0000000000000000\nCapPrm:\t0000000000001000\n" +
 *     "CapEff:\t0000000000001000\nCapBnd:\t0000000000001000\n" +
 *     "CapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t0\n",
 * );
 * assert.equal(status.capEff, 0x1000n);
 * assert.equal(status.noNewPrivs, true);
 * ```
 */
export function parseProcStatus(text: string): StatusCredentials {
  const fields = new Map<string, string>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  const field = (key: string): string => {
    const value = fields.get(key);
    if (value === undefined) {
      throw new SyntaxError(`Cannot parse process status: no "${key}" line`);
    }
    return value;
  };
  const ids = (key: string): number[] => {
    const value = field(key).trim();
    if (!/^(\d+(\s+\d+)*)?$/.test(value)) {
      throw new SyntaxError(
        `Cannot parse process status: malformed "${key}" line`,
      );
    }
    return value === "" ? [] : value.split(/\s+/).map(Number);
  };
  const idSet = (key: string): IdSet => {
    const values = ids(key);
    if (values.length !== 4) {
      throw new SyntaxError(
        `Cannot parse process status: expected 4 IDs on the "${key}" line`,
      );
    }
    const [real, effective, saved, fs] = values;
    return { real, effective, saved, fs };
  };
  const mask = (key: string): bigint => {
    const value = field(key).trim();
    if (!/^[0-9a-f]{1,16}$/i.test(value)) {
      throw new SyntaxError(
        `Cannot parse process status: malformed "${key}" line`,
      );
    }
    return BigInt(`0x${value}`);
  };
  const number = (key: string): number => {
    const values = ids(key);
    if (values.length !== 1) {
      throw new SyntaxError(
        `Cannot parse process status: malformed "${key}" line`,
      );
    }
    return values[0];
  };

  const credentials: StatusCredentials = {
    name: field("Name").replace(/^\t/, ""),
    uid: idSet("Uid"),
    gid: idSet("Gid"),
    groups: ids("Groups"),
    capInh: mask("CapInh"),
    capPrm: mask("CapPrm"),
    capEff: mask("CapEff"),
    capBnd: mask("CapBnd"),
    capAmb: mask("CapAmb"),
    noNewPrivs: number("NoNewPrivs") !== 0,
  };
  if (fields.has("Seccomp")) credentials.seccomp = number("Seccomp");
  if (fields.has("Seccomp_filters")) {
    credentials.seccompFilters = number("Seccomp_filters");
  }
  return credentials;
}

/**
 * Reads the credentials of every thread of a process from
 * `/proc/<pid>/task/<tid>/status`. Capabilities are per thread, so all of them
 * must be checked. A thread that exits while the process is read is skipped.
 *
 * Deno requires `--allow-all` to read `/proc`.
 *
 * @param pid The process ID, or `"self"` for the current process.
 * @returns The credentials of each thread.
 * @throws {Deno.errors.NotFound} If the process does not exist.
 * @throws {RangeError} If `pid` is not a positive integer or `"self"`.
 *
 * @example Usage
 * ```ts
 * import { readProcessCredentials } from "@privsep/privsep/caps";
 * import assert from "node:assert/strict";
 *
 * const { pid, threads } = await readProcessCredentials("self");
 * assert.equal(pid, Deno.pid);
 * // Capabilities are per thread: a check must look at every one.
 * const capabilityFree = threads.every((thread) => thread.capEff === 0n);
 * if (!capabilityFree) console.warn("this process holds capabilities");
 * ```
 */
export async function readProcessCredentials(
  pid: number | "self",
): Promise<ProcessCredentials> {
  const id = processId(pid);
  const dir = `/proc/${pid}/task`;
  let tids: number[];
  try {
    tids = taskIds(await Array.fromAsync(Deno.readDir(dir)));
  } catch (error) {
    throw notFound(error, pid);
  }
  const threads = await Promise.all(tids.map(async (tid) => {
    try {
      const text = await Deno.readTextFile(`${dir}/${tid}/status`);
      return { tid, ...parseProcStatus(text) };
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  }));
  return result(id, pid, threads);
}

/**
 * Synchronously reads the credentials of every thread of a process; see
 * {@linkcode readProcessCredentials}.
 *
 * @param pid The process ID, or `"self"` for the current process.
 * @returns The credentials of each thread.
 * @throws {Deno.errors.NotFound} If the process does not exist.
 * @throws {RangeError} If `pid` is not a positive integer or `"self"`.
 *
 * @example Usage
 * ```ts
 * import { readProcessCredentialsSync } from "@privsep/privsep/caps";
 * import assert from "node:assert/strict";
 *
 * const { threads } = readProcessCredentialsSync("self");
 * assert(threads.some((thread) => thread.tid === Deno.pid));
 * ```
 */
export function readProcessCredentialsSync(
  pid: number | "self",
): ProcessCredentials {
  const id = processId(pid);
  const dir = `/proc/${pid}/task`;
  let tids: number[];
  try {
    tids = taskIds([...Deno.readDirSync(dir)]);
  } catch (error) {
    throw notFound(error, pid);
  }
  const threads = tids.map((tid) => {
    try {
      const text = Deno.readTextFileSync(`${dir}/${tid}/status`);
      return { tid, ...parseProcStatus(text) };
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  });
  return result(id, pid, threads);
}

/**
 * Describes credentials in one short line, for logs and error messages.
 *
 * @param credentials The credentials to describe.
 * @returns A line such as
 * `uid=0/0/0/0 gid=0/0/0/0 groups= eff=[CAP_NET_ADMIN] prm=[CAP_NET_ADMIN] inh=[] bnd=[CAP_NET_ADMIN] amb=[] nnp=1`,
 * with IDs given as real/effective/saved/fs.
 *
 * @example Usage
 * ```ts
 * import { describeCredentials, parseProcStatus } from "@privsep/privsep/caps";
 * import assert from "node:assert/strict";
 *
 * const status = parseProcStatus(
 *   "Name:\tsleep\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t \n" +
 *     "CapInh:\t0000000000000000\nCapPrm:\t0000000000001000\n" +
 *     "CapEff:\t0000000000001000\nCapBnd:\t0000000000001000\n" +
 *     "CapAmb:\t0000000000000000\nNoNewPrivs:\t1\n",
 * );
 * assert.equal(
 *   describeCredentials(status),
 *   "uid=0/0/0/0 gid=0/0/0/0 groups= eff=[CAP_NET_ADMIN] prm=[CAP_NET_ADMIN] " +
 *     "inh=[] bnd=[CAP_NET_ADMIN] amb=[] nnp=1",
 * );
 * ```
 */
export function describeCredentials(credentials: StatusCredentials): string {
  const ids = ({ real, effective, saved, fs }: IdSet) =>
    `${real}/${effective}/${saved}/${fs}`;
  const caps = (mask: bigint) => `[${formatCapabilities(mask).join(",")}]`;
  const c = credentials;
  return [
    `uid=${ids(c.uid)}`,
    `gid=${ids(c.gid)}`,
    `groups=${c.groups.join(",")}`,
    `eff=${caps(c.capEff)}`,
    `prm=${caps(c.capPrm)}`,
    `inh=${caps(c.capInh)}`,
    `bnd=${caps(c.capBnd)}`,
    `amb=${caps(c.capAmb)}`,
    `nnp=${c.noNewPrivs ? 1 : 0}`,
  ].join(" ");
}

function processId(pid: number | "self"): number {
  if (pid === "self") return Deno.pid;
  if (!Number.isInteger(pid) || pid <= 0) {
    throw new RangeError(
      `Invalid process ID ${
        String(pid)
      }: expected a positive integer or "self"`,
    );
  }
  return pid;
}

function taskIds(entries: Deno.DirEntry[]): number[] {
  return entries
    .filter((entry) => /^\d+$/.test(entry.name))
    .map((entry) => Number(entry.name))
    .sort((a, b) => a - b);
}

function notFound(error: unknown, pid: number | "self"): unknown {
  if (!(error instanceof Deno.errors.NotFound)) return error;
  return new Deno.errors.NotFound(`No such process: ${pid}`, {
    cause: error,
  });
}

function result(
  id: number,
  pid: number | "self",
  threads: (ThreadCredentials | undefined)[],
): ProcessCredentials {
  const alive = threads.filter((thread) => thread !== undefined);
  // Every thread exited between listing and reading: the process is gone.
  if (alive.length === 0) {
    throw new Deno.errors.NotFound(`No such process: ${pid}`);
  }
  return { pid: id, threads: alive };
}
