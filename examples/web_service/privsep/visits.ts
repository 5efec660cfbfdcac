// The privileged functions of the web service: one that appends a line to the
// root-only visits log, and one that reports how many calls ran at once in
// this daemon (module state lives as long as the daemon).
import { VISITS_LOG, visitsCtx } from "./mod.ts";
import { urlPath } from "./schemas.ts";

let running = 0;
let maxRunning = 0;
let recorded = 0;

/** How many recordVisit() calls ran at once in this daemon. */
export interface ConcurrencyStats {
  /** Running now. */
  running: number;
  /** The most that ever ran at once. */
  maxRunning: number;
  /** Visits recorded since the daemon started. */
  recorded: number;
}

/** Appends "<ISO time> <path>" to VISITS_LOG, which must exist (root-owned, 0600). */
export const recordVisit = visitsCtx.entrypoint(
  import.meta,
  async function recordVisit(path: string): Promise<void> {
    running++;
    maxRunning = Math.max(maxRunning, running);
    try {
      // create: false: a missing log is an installation error, and a file
      // created here would belong to "nobody".
      await Deno.writeTextFile(
        VISITS_LOG,
        `${new Date().toISOString()} ${path}\n`,
        { append: true, create: false },
      );
      recorded++;
    } finally {
      running--;
    }
  },
  { args: [urlPath()] },
);

/** The counters above. */
export const concurrencyStats = visitsCtx.entrypoint(
  import.meta,
  function concurrencyStats(): ConcurrencyStats {
    return { running, maxRunning, recorded };
  },
);
