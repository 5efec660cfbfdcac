// Whether a context's write paths hold what the root first stage trusts
// (stage 1 refuses such a context of uid 0 or with DAC capabilities;
// privsep inspect warns). Private.
import { realPathViaLibc } from "../caps/_ffi.ts";
import { missingWritePathDirectory } from "../caps/_landlock.ts";

/** CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER: past a root-owned directory's mode. */
export const DAC_CAPS: readonly number[] = [0, 1, 3];

/**
 * The write path of `writes` that holds or is one of `trusted` (what stage 1
 * trusts: the code roots and the deno.json's directory, the cache, the deno
 * binary, the config files, the launcher directory), with that path, or
 * `undefined`. A daemon that may create files in such a directory (uid 0, or
 * a capability past a root-owned directory's mode) could put a deno.json,
 * package.json or node_modules beside the application, where Deno looks on
 * its way up from what the next first stage loads (a sixth review), or
 * rebuild a trusted directory the host removed while it ran: its read-only
 * mount goes with it (a twelfth review: the cache cleared by hand, refilled
 * with code of the daemon's through a write path above it).
 */
export function writePathAboveCode(
  writes: readonly string[],
  roots: readonly string[],
): { write: string; root: string } | undefined {
  // As written and as resolved: a link on either way names the same place
  // (stage 1 may not read the write paths through Deno).
  const real = (path: string) => realPathViaLibc(path) ?? path;
  for (const write of writes) {
    // A path that does not exist yet gets its directory's rule and mount
    // (missingWritePathDirectory()): that directory is what the daemon may
    // write (found by a review).
    const resolved = realPathViaLibc(write);
    const places = resolved === undefined
      ? [missingWritePathDirectory(write)]
      : [write, resolved];
    for (const base of new Set([...places, ...places.map(real)])) {
      const dir = base.replace(/\/+$/, "");
      for (const root of roots) {
        for (const r of new Set([root, real(root)])) {
          if (r === dir || r.startsWith(`${dir === "" ? "" : dir}/`)) {
            return { write, root };
          }
        }
      }
    }
  }
  return undefined;
}
