// Allowed read and write paths that a non-root user can redirect. Deno's
// path permissions follow symbolic links: if a non-root user can create or
// replace an entry at an allowed path (it owns, or may write to, the path
// or a directory on the way to it), it can point that entry anywhere, and
// the daemon then reads or writes the target with its own credentials
// (docs/security/permissions.md). Used by `privsep inspect` and `privsep
// doctor`.
import { dirname, isAbsolute, normalize } from "node:path";
import { lookupUser } from "../caps/_ffi.ts";
import type { PrivContext } from "../contexts/priv_context.ts";
import { DEFAULT_DENO_DIR } from "../core/command.ts";
import type { PermissionsSetting } from "../core/config.ts";
import {
  missingWritePath,
  ROOT_LIKE_CAPS,
  trustedPaths,
  writePathAboveCode,
} from "../core/_write_above.ts";

/** Why `path` (one entry on the way to an allowed path) is redirectable. */
function entryProblem(path: string): string | undefined {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    return `${path} cannot be inspected (${(error as Error).message})`;
  }
  const mode = info.mode ?? 0;
  if (info.uid !== 0) {
    return `${path} is owned by uid ${info.uid}, not root`;
  }
  if (info.isSymlink) return undefined; // its target is checked too
  if (mode & 0o002) {
    return `${path} is world-writable${
      mode & 0o1000 ? " (sticky: anyone can still create new names)" : ""
    }`;
  }
  if (mode & 0o020) return `${path} is writable by group ${info.gid}`;
  return undefined;
}

/** Every problem on the way to `path`: `/`, each ancestor, the path itself. */
function chainProblems(path: string): string[] {
  const chain: string[] = [];
  for (let p = path;; p = dirname(p)) {
    chain.unshift(p);
    if (dirname(p) === p) break;
  }
  const problems: string[] = [];
  for (const p of chain) {
    const problem = entryProblem(p);
    if (problem) problems.push(problem);
    let info: Deno.FileInfo | undefined;
    try {
      info = Deno.lstatSync(p);
    } catch {
      break; // below a missing entry, whoever may create it decides
    }
    if (info.isSymlink) {
      let target: string;
      try {
        target = Deno.realPathSync(p);
      } catch {
        problems.push(`${p} is a symbolic link that does not resolve`);
        break;
      }
      const rest = path.slice(p.length);
      problems.push(
        ...chainProblems(normalize(target + rest)).map((problem) =>
          `${problem} (${p} is a symbolic link to ${target})`
        ),
      );
      break;
    }
  }
  return problems;
}

/**
 * Warnings for each allowed read or write path of `permissions` that a
 * non-root user could redirect with a symbolic link: the path or a directory
 * on the way to it is owned by a non-root user (the daemon's own user
 * included, unless it is root) or is group- or world-writable. An empty list
 * means none was found; unscoped and `"all"` permissions are flagged
 * elsewhere.
 */
export function redirectablePathWarnings(
  permissions: PermissionsSetting,
): string[] {
  if (permissions === "all") return [];
  const warnings: string[] = [];
  for (const kind of ["write", "read"] as const) {
    for (const path of permissions[kind] ?? []) {
      if (!isAbsolute(path)) continue;
      const problems = [...new Set(chainProblems(normalize(path)))];
      if (problems.length === 0) continue;
      warnings.push(
        `allowed ${kind} path ${path} can be redirected by a non-root user: ${
          problems.join("; ")
        }. Deno follows symbolic links, so the daemon would ${kind} whatever such a link points to with its own credentials; make the path and every directory on the way to it root-owned and not group- or world-writable`,
      );
    }
  }
  return warnings;
}

/**
 * What stage 1 refuses of `ctx`'s write paths (daemon/start.ts), said before
 * any start: for a context of uid 0 or with a capability of ROOT_LIKE_CAPS,
 * a write path that holds something stage 1 trusts, and one that does not
 * exist yet (its directory would get the rule) unless another write path
 * covers that directory. The write path and why, each; empty when it would
 * start.
 */
export function writePathRefusals(
  ctx: PrivContext,
): { write: string; message: string }[] {
  const s = ctx.settings();
  const writes = s.permissions === "all" ? undefined : s.permissions.write;
  const rootLike = lookupUser(s.user)?.id === 0 || s.user === "root" ||
    s.capabilities.some((c) => ROOT_LIKE_CAPS.includes(c));
  if (!writes || s.confinement === "off" || !rootLike) return [];
  const refusals: { write: string; message: string }[] = [];
  let spec: ReturnType<PrivContext["commandSpec"]> | undefined;
  try {
    spec = ctx.commandSpec();
  } catch { /* no daemon command here: doctor says why */ }
  const above = spec && writePathAboveCode(writes, [
    ...trustedPaths({
      denoDir: spec.denoDir ?? DEFAULT_DENO_DIR,
      codeRoots: spec.codeRoots,
      deno: spec.denoPath,
      config: spec.denoConfig,
      configFiles: spec.configFiles ?? [],
      libcap: s.libcap,
      launcherDir: s.launcherDir,
    }),
    ...(spec.denoConfig ? [dirname(spec.denoConfig)] : []),
  ]);
  if (above) {
    refusals.push({
      write: above.write,
      message:
        `the write path ${above.write} holds ${above.root}, which the root first stage trusts: the daemon refuses to start (it could put files beside it that Deno reads, or rebuild it); narrow permissions.write`,
    });
  }
  const missing = missingWritePath(writes);
  if (missing) {
    refusals.push({
      write: missing.write,
      message:
        `the write path ${missing.write} does not exist yet: the kernel sandbox would give its directory ${missing.directory} the rule (Landlock names existing files only), so this daemon (uid 0, or keeping CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_SETGID or CAP_SETUID) refuses to start; create ${missing.write} first, or declare ${missing.directory} if it may write all of it`,
    });
  }
  return refusals;
}
