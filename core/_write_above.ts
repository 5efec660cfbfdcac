// Whether a context's write paths hold what the root first stage trusts
// (stage 1 refuses such a context of uid 0 or with ROOT_LIKE_CAPS;
// privsep inspect warns). Private.
import { readFileViaLibc, realPathViaLibc } from "../caps/_ffi.ts";
import { missingWritePathDirectory } from "../caps/_landlock.ts";

/** The keeper's directory: its shell copy and FIFOs (daemon/_keeper.ts). */
export const KEEPER_RUN_DIR = "/run/privsep";

/** What stage 1 trusts of a daemon's command and settings. */
export interface TrustedInputs {
  denoDir: string;
  codeRoots: readonly string[];
  deno: string;
  /** The deno.json, if any. */
  config?: string;
  configFiles: readonly string[];
  libcap?: string;
  launcherDir: string;
}

/**
 * The paths the root first stage trusts and runs or reads again at the next
 * start: the daemon sees each read-only (`protectTrustedPaths()`), and a
 * uid-0 context, or one with a capability of {@linkcode ROOT_LIKE_CAPS},
 * may not have a write path that holds one ({@linkcode writePathAboveCode},
 * which adds the deno.json's directory).
 * `/run/privsep` holds the keeper's shell copy, which stage 1 runs as root
 * outside the sandbox (a thirteenth review: a uid-0 daemon with
 * `write = ["/run/app.pid"]` replaced it).
 */
export function trustedPaths(t: TrustedInputs): string[] {
  return [
    KEEPER_RUN_DIR,
    t.denoDir,
    ...t.codeRoots,
    t.deno,
    ...(t.config ? [t.config] : []),
    ...t.configFiles,
    ...(t.libcap?.startsWith("/") ? [t.libcap] : []),
    t.launcherDir,
  ];
}

/**
 * The capabilities that write where root may: CAP_CHOWN, CAP_DAC_OVERRIDE and
 * CAP_FOWNER get past a root-owned directory's mode, CAP_SETGID and
 * CAP_SETUID let a program of the daemon become gid or uid 0 (a fifteenth
 * review: user nobody with CAP_SETUID and a missing write path in /etc wrote
 * /etc/sudoers.d through `setuid(0)` in perl). A context of uid 0 or keeping
 * one of them is held to the write-path refusals of stage 1.
 */
export const ROOT_LIKE_CAPS: readonly number[] = [0, 1, 3, 6, 7];

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
  mountinfo: string = readMountinfo(),
): { write: string; root: string } | undefined {
  // As written and as resolved: a link on either way names the same place
  // (stage 1 may not read the write paths through Deno).
  const real = (path: string) => realPathViaLibc(path) ?? path;
  const mounts = parseMounts(mountinfo);
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
        // Another mount of the same filesystem (a bind mount, a subvolume
        // mounted twice) reaches the same files by another path (a
        // thirteenth review: write = ["/mnt/alias"], a bind of the
        // directory that holds the code, wrote the code).
        const w = place(mounts, real(dir === "" ? "/" : dir));
        const t = place(mounts, real(root));
        if (
          w && t && w.dev === t.dev &&
          (t.path === w.path ||
            t.path.startsWith(`${w.path === "/" ? "" : w.path}/`))
        ) return { write, root };
      }
    }
  }
  return undefined;
}

/**
 * The write path of `writes` that does not exist, whose directory would
 * therefore get its rule and writable mount (Landlock names existing files
 * only), when no other write path already covers that directory; with the
 * directory, or `undefined`. Stage 1 refuses such a context of uid 0 or with
 * a capability of {@linkcode ROOT_LIKE_CAPS} (a fourteenth review:
 * `write = ["/etc/app.conf"]` let a uid-0 daemon write /etc/sudoers.d).
 */
export function missingWritePath(
  writes: readonly string[],
  realPath: (path: string) => string | undefined = realPathViaLibc,
): { write: string; directory: string } | undefined {
  const norm = (path: string) => path.replace(/\/+$/, "") || "/";
  const covers = (outer: string, inner: string) =>
    outer === "/" || inner === outer || inner.startsWith(`${outer}/`);
  for (const write of writes) {
    if (realPath(write) !== undefined) continue;
    const directory = missingWritePathDirectory(norm(write));
    const dirs = new Set([directory, realPath(directory) ?? directory]);
    const covered = writes.some((other) => {
      const real = realPath(other);
      if (real === undefined) return false;
      const forms = new Set([norm(other), real]);
      return [...forms].some((o) => [...dirs].some((d) => covers(o, d)));
    });
    if (!covered) return { write, directory };
  }
  return undefined;
}

/** This process's mount table (through libc: stage 1 may not read /proc). */
function readMountinfo(): string {
  try {
    return new TextDecoder().decode(
      readFileViaLibc("/proc/self/mountinfo", 1 << 24),
    );
  } catch {
    return "";
  }
}

interface Mount {
  dev: string;
  /** The mount's root within its filesystem. */
  root: string;
  /** Where it is mounted. */
  point: string;
}

function parseMounts(mountinfo: string): Mount[] {
  const unescape = (text: string) =>
    text.replace(
      /\\([0-7]{3})/g,
      (_, o) => String.fromCharCode(parseInt(o, 8)),
    );
  const out: Mount[] = [];
  for (const line of mountinfo.split("\n")) {
    const f = line.split(" ");
    if (f.length < 5) continue;
    out.push({ dev: f[2], root: unescape(f[3]), point: unescape(f[4]) });
  }
  return out;
}

/**
 * The filesystem that holds `path` (a resolved path) and where in it: the
 * last-mounted mount whose mount point holds the path.
 */
function place(
  mounts: readonly Mount[],
  path: string,
): { dev: string; path: string } | undefined {
  let best: Mount | undefined;
  for (const m of mounts) {
    const holds = m.point === "/" || path === m.point ||
      path.startsWith(`${m.point}/`);
    if (holds && (!best || m.point.length >= best.point.length)) best = m;
  }
  if (!best) return undefined;
  const rest = best.point === "/" ? path : path.slice(best.point.length);
  const inside = `${best.root === "/" ? "" : best.root}${rest}` || "/";
  return { dev: best.dev, path: inside.replace(/\/+$/, "") || "/" };
}
