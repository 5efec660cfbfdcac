// Directories the operator CLI makes as root (launchers, the vendored copy).
// Private: cli/install.ts and cli/vendor.ts use it.
import { dirname } from "node:path";
import { untrustedReason } from "../core/trust.ts";

/**
 * Makes `dir` and its missing parents as root, each root-owned and 0755,
 * once the nearest of them that exists is one that only root may modify
 * (`untrustedReason()` in core/trust.ts): below it no other user can put a
 * link on the way, so `mkdir` and `chmod` act where they say. Returns why it
 * refuses, having made nothing (a review had root follow a service user's
 * link, `vendor -> /etc`, and a twenty-seventh one `libexec -> ` a root-only
 * directory, and make a directory there before refusing); `null` when it
 * made them, or `dir` was there (whose trust the caller checks).
 */
export function makeRootDirs(dir: string): string | null {
  const missing: string[] = [];
  let existing = dir;
  for (;;) {
    try {
      Deno.lstatSync(existing);
      break;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      missing.unshift(existing);
      const up = dirname(existing);
      if (up === existing) break;
      existing = up;
    }
  }
  if (missing.length === 0) return null;
  const above = untrustedReason(existing);
  if (above) return above;
  for (const d of missing) {
    Deno.mkdirSync(d, { mode: 0o755 });
    Deno.chmodSync(d, 0o755);
  }
  return null;
}
