// The narrow replacement of `chmod: CommandFilter, chmod, root`: one function
// per real use, the files and the mode fixed here, in the daemon.
//
// chmod(2) follows symbolic links, and with CAP_FOWNER a link to /usr/bin/bash
// would be as good as the broad version. So both functions refuse anything
// but a plain regular file with one link (lstat), and the directories are
// writable by root only (setup.ts): nobody else can plant a link between the
// check and the chmod.
import {
  DEMO_DIR,
  fownerCtx,
  LOGS_DIR,
  SECRET_NAMES,
  SECRETS_DIR,
} from "./mod.ts";
import { oneOf } from "./schemas.ts";

/** What makeLogsReadable() did. */
export interface LogsResult {
  /** Files now 0644, sorted. */
  changed: string[];
  /** Entries left alone (links, directories, hard-linked files), sorted. */
  skipped: string[];
}

function plainFile(info: Deno.FileInfo): boolean {
  return info.isFile && !info.isSymlink && info.nlink === 1;
}

/** Makes every regular file directly in LOGS_DIR 0644. No arguments. */
export const makeLogsReadable = fownerCtx.entrypoint(
  import.meta,
  async function makeLogsReadable(): Promise<LogsResult> {
    const changed: string[] = [];
    const skipped: string[] = [];
    for await (const entry of Deno.readDir(LOGS_DIR)) {
      const path = `${LOGS_DIR}/${entry.name}`;
      if (entry.isFile && plainFile(await Deno.lstat(path))) {
        await Deno.chmod(path, 0o644);
        changed.push(entry.name);
      } else {
        skipped.push(entry.name);
      }
    }
    return { changed: changed.sort(), skipped: skipped.sort() };
  },
);

/** Makes one secret of the fixed list (SECRET_NAMES) 0600. */
export const lockSecret = fownerCtx.entrypoint(
  import.meta,
  async function lockSecret(name: string): Promise<void> {
    const path = `${SECRETS_DIR}/${name}`;
    if (!plainFile(await Deno.lstat(path))) {
      throw new TypeError(
        `${path} is not a plain file below ${DEMO_DIR}; refusing to chmod it`,
      );
    }
    await Deno.chmod(path, 0o600);
  },
  { args: [oneOf(SECRET_NAMES)], auditArgs: true },
);
