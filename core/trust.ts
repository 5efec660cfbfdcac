// Copyright the privsep authors. Apache-2.0 license.

/**
 * Checks that code and config the root daemon loads cannot be modified by a
 * non-root user, in the spirit of sshd's `StrictModes`.
 *
 * A path is trusted when every directory entry the kernel visits while
 * resolving it is owned by uid 0 and is neither group- nor world-writable.
 * That covers each component of the real path from `/` down to the target,
 * each symbolic link met on the way (which must be root-owned), and every
 * directory a link's text walks through, including ones it leaves again with
 * `..`. A sticky world-writable directory such as `/tmp` is refused too, even
 * as an ancestor: nobody else can rename the root-owned entry below it, but
 * anyone can put a `deno.json`, `package.json` or `node_modules` beside it,
 * and Deno looks for those in every ancestor (a workspace root, npm packages).
 *
 * Only the classic mode bits are examined: ACLs, and group membership of
 * non-root users in a group that owns a file, are not.
 *
 * @example Refuse to start from an untrusted script
 * ```ts ignore
 * import { assertTrusted, assertTrustedTree } from "./trust.ts";
 *
 * assertTrusted("/usr/local/lib/app/privsep.toml");
 * assertTrustedTree("/usr/local/lib/app/privsep", {
 *   skip: (path) => path.endsWith("/README.md"),
 * });
 * ```
 *
 * @module
 */

/** The kernel's limit on symbolic links followed in one lookup (ELOOP). */
const MAX_SYMLINKS = 40;

// Not "chown it": what another user could write is that user's, whoever
// owns it afterwards (a twenty-eighth review had the operator chown a tree
// the service user had prepared, as this advice said, and root ran it).
const REMEDY_OWNER =
  "install the files afresh, root-owned, in a root-owned location (chown root:root only a directory no other user has written in)";
const REMEDY_LINK_OWNER =
  "install the files afresh, root-owned, in a root-owned location (chown -h root:root only a link root made)";
const REMEDY_MODE =
  "install the files afresh, root-owned and not group/world-writable, in a root-owned location (chmod go-w only what no other user has written in)";

/**
 * Raised when the daemon is asked to load a file or directory that a non-root
 * user could modify.
 *
 * @example
 * ```ts
 * import { UntrustedPathError } from "./trust.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new UntrustedPathError(
 *   "/tmp/x/daemon.ts",
 *   'refusing to load "/tmp/x/daemon.ts": "/tmp/x" is owned by uid 1000, not root',
 * );
 * assert.equal(error.name, "UntrustedPathError");
 * assert.equal(error.path, "/tmp/x/daemon.ts");
 * ```
 */
export class UntrustedPathError extends Error {
  /** The error's name, `"UntrustedPathError"`. */
  override name = "UntrustedPathError";
  /** The path that was refused, as it was given. */
  readonly path: string;

  /**
   * Constructs a new instance.
   *
   * @param path The path that was refused.
   * @param message Why it was refused, naming the offending path.
   */
  constructor(path: string, message: string) {
    super(message);
    this.path = path;
  }
}

type Role = "ancestor" | "target" | "symlink";

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function octal(mode: number): string {
  return mode.toString(8).padStart(4, "0");
}

function joinPath(directory: string, name: string): string {
  return directory === "/" ? `/${name}` : `${directory}/${name}`;
}

function parentPath(path: string): string {
  const index = path.lastIndexOf("/");
  return index <= 0 ? "/" : path.slice(0, index);
}

/**
 * Says why one directory entry, already `lstat`ed, makes a path untrusted, or
 * returns `null` when the entry itself is fine.
 */
function entryProblem(
  path: string,
  info: EntryInfo,
  role: Role,
): string | null {
  if (info.uid === null || info.mode === null) {
    return `"${path}" has no Unix owner or mode to check; install the files on a POSIX filesystem owned by root`;
  }
  if (info.uid !== 0) {
    const what = role === "symlink" ? " (a symbolic link)" : "";
    return `"${path}"${what} is owned by uid ${info.uid}, not root; ${
      role === "symlink" ? REMEDY_LINK_OWNER : REMEDY_OWNER
    }`;
  }
  // Linux ignores a symbolic link's own mode bits (always 0777).
  if (role === "symlink") return null;
  const mode = info.mode & 0o7777;
  const writable = mode & 0o022;
  if (writable === 0) return null;
  const sticky = (mode & 0o1000) !== 0 && info.isDirectory;
  const who = writable === 0o022
    ? "its group and by others"
    : writable === 0o020
    ? "its group"
    : "others";
  const note = sticky
    ? "; even with the sticky bit, anyone can put a deno.json, package.json or node_modules in it that Deno would pick up"
    : "";
  return `"${path}" is writable by ${who} (mode ${
    octal(mode)
  })${note}; ${REMEDY_MODE}`;
}

/** What the checks need to know of one directory entry. */
export type EntryInfo = Pick<
  Deno.FileInfo,
  "uid" | "gid" | "mode" | "isSymlink" | "isDirectory" | "isFile"
>;

/**
 * How the checks look at the filesystem. The default uses Deno's APIs, which
 * need read permission on every ancestor; the daemon's first stage, whose
 * reads are limited to its code roots, swaps in one built on libc.
 */
export interface FileProbe {
  /** `lstat(2)`. */
  lstat(path: string): EntryInfo;
  /** `readlink(2)`. */
  readLink(path: string): string;
  /** `stat(2)`: follows symbolic links. */
  stat(path: string): EntryInfo;
}

let probe: FileProbe = {
  lstat: (path) => Deno.lstatSync(path),
  readLink: (path) => Deno.readLinkSync(path),
  stat: (path) => Deno.statSync(path),
};

/**
 * Replaces how the checks look at the filesystem (see {@linkcode FileProbe}).
 *
 * @example
 * ```ts ignore
 * import { useFileProbe } from "./trust.ts";
 * useFileProbe({ lstat: (p) => Deno.lstatSync(p), readLink: (p) => Deno.readLinkSync(p) });
 * ```
 */
export function useFileProbe(next: FileProbe): void {
  probe = next;
}

/** Caches `lstat` results for the duration of one check. */
class Inspector {
  #cache = new Map<string, EntryInfo>();

  lstat(path: string): EntryInfo | string {
    const cached = this.#cache.get(path);
    if (cached !== undefined) return cached;
    try {
      const info = probe.lstat(path);
      this.#cache.set(path, info);
      return info;
    } catch (error) {
      return `"${path}" cannot be inspected (${
        errorMessage(error)
      }); check that the path exists and is readable by root`;
    }
  }
}

/**
 * Resolves `path` the way the kernel does, one component at a time, checking
 * every entry visited. Returns the problem without the "refusing to load"
 * prefix, or `null`.
 */
function resolutionProblem(path: string, inspector: Inspector): string | null {
  if (path === "") return "the path is empty; give an absolute path";
  let absolute = path;
  if (!path.startsWith("/")) {
    try {
      absolute = joinPath(Deno.cwd(), path);
    } catch (error) {
      return `the current directory, needed to resolve a relative path, cannot be found (${
        errorMessage(error)
      }); give an absolute path`;
    }
  }
  // A stack of the components still to resolve, the next one last.
  const pending = absolute.split("/").filter((part) => part !== "").reverse();
  let current = "/";
  let links = 0;

  const rootInfo = inspector.lstat("/");
  if (typeof rootInfo === "string") return rootInfo;
  const rootProblem = entryProblem("/", rootInfo, "ancestor");
  if (rootProblem !== null) return rootProblem;

  while (pending.length > 0) {
    const name = pending.pop()!;
    if (name === ".") continue;
    if (name === "..") {
      current = parentPath(current);
      continue;
    }
    const candidate = joinPath(current, name);
    const info = inspector.lstat(candidate);
    if (typeof info === "string") return info;
    if (info.isSymlink) {
      const problem = entryProblem(candidate, info, "symlink");
      if (problem !== null) return problem;
      links += 1;
      if (links > MAX_SYMLINKS) {
        return `more than ${MAX_SYMLINKS} symbolic links were followed while resolving it (the last was "${candidate}"); remove the symbolic link loop`;
      }
      let target: string;
      try {
        target = probe.readLink(candidate);
      } catch (error) {
        return `symbolic link "${candidate}" cannot be read (${
          errorMessage(error)
        }); check that it exists and is readable by root`;
      }
      if (target.startsWith("/")) current = "/";
      pending.push(
        ...target.split("/").filter((part) => part !== "").reverse(),
      );
      continue;
    }
    const problem = entryProblem(candidate, info, "ancestor");
    if (problem !== null) return problem;
    current = candidate;
  }

  // The target was checked above as if it were an ancestor; check it again
  // without the sticky-directory exception.
  const info = inspector.lstat(current);
  if (typeof info === "string") return info;
  return entryProblem(current, info, "target");
}

function refusal(path: string, problem: string): string {
  return `refusing to load "${path}": ${problem}`;
}

/**
 * Says why a path must not be loaded by the root daemon, or returns `null`
 * when it is trusted.
 *
 * The path is resolved one component at a time, as the kernel would, and
 * every entry visited must be owned by root and not group- or world-writable:
 * each directory from `/` down, each symbolic link (its owner; its target is
 * then resolved the same way) and the target itself. A sticky directory such
 * as `/tmp` is refused like any other writable one. A relative path
 * is resolved against the current directory, whose components are checked
 * too. A path that does not exist, or cannot be inspected, is not trusted.
 *
 * @param path The file or directory to check.
 * @returns `null` when the path is trusted; otherwise a sentence such as
 * `refusing to load "/tmp/x/daemon.ts": "/tmp/x" is owned by uid 1000, not
 * root; install the files afresh, root-owned, in a root-owned location
 * (...)`.
 *
 * @example
 * ```ts
 * import { untrustedReason } from "./trust.ts";
 *
 * const reason = untrustedReason("/usr/bin");
 * if (reason !== null) console.error(reason);
 * ```
 */
export function untrustedReason(path: string): string | null {
  const problem = resolutionProblem(path, new Inspector());
  return problem === null ? null : refusal(path, problem);
}

/**
 * Throws unless a path is trusted, as decided by {@linkcode untrustedReason}.
 *
 * @param path The file or directory to check.
 * @throws {UntrustedPathError} If a non-root user could modify the path, its
 * target, or a directory on the way to it, or if it cannot be inspected.
 *
 * @example
 * ```ts
 * import { assertTrusted, UntrustedPathError } from "./trust.ts";
 *
 * try {
 *   assertTrusted("/usr/bin");
 * } catch (error) {
 *   if (!(error instanceof UntrustedPathError)) throw error;
 *   console.error(error.message);
 * }
 * ```
 */
export function assertTrusted(path: string): void {
  const reason = untrustedReason(path);
  if (reason !== null) throw new UntrustedPathError(path, reason);
}

/** Options for {@linkcode assertTrustedTree}. */
export interface TrustedTreeOptions {
  /**
   * Called with the path of each entry below the directory (the directory
   * given, joined with the entry's relative path); return `true` to leave the
   * entry, and for a directory everything below it, unchecked.
   */
  skip?: (path: string) => boolean;
}

/**
 * Whether the directory a link inside the tree resolves to is itself a real
 * directory of the tree that the walk visits (not below a skipped entry):
 * `deno install` lays node_modules out as links into node_modules/.deno.
 */
function walkedTarget(
  link: string,
  root: string,
  skip: ((path: string) => boolean) | undefined,
): boolean {
  let realRoot: string;
  let target: string;
  try {
    realRoot = Deno.realPathSync(root === "" ? "/" : root);
    target = Deno.realPathSync(link);
  } catch {
    return false;
  }
  if (!target.startsWith(realRoot === "/" ? "/" : `${realRoot}/`)) return false;
  let path = root === "" ? "" : root;
  for (const part of target.slice(realRoot.length).split("/")) {
    if (part === "") continue;
    path = `${path}/${part}`;
    if (skip?.(path)) return false;
  }
  return true;
}

/**
 * Throws unless a directory, its ancestors and everything below it are
 * trusted.
 *
 * The directory itself is checked with {@linkcode assertTrusted}. Then every
 * entry below it is `lstat`ed, recursively: each must be owned by root and
 * not group- or world-writable (sticky directories inside the tree are not
 * accepted). Symbolic links inside the tree are not descended into: the link
 * must be root-owned, its target is checked like {@linkcode assertTrusted}
 * does (the target and the directories leading to it), and a link to a
 * directory is refused, since its contents would not be walked, unless it
 * resolves to a directory inside the tree that the walk visits anyway (as
 * `deno install` links node_modules/<name> to node_modules/.deno/…).
 *
 * @param dir The directory to check.
 * @param options Entries to leave unchecked.
 * @throws {UntrustedPathError} For the first entry found that a non-root user
 * could modify, or that cannot be inspected; its `path` is that entry.
 *
 * @example
 * ```ts
 * import { assertTrustedTree, UntrustedPathError } from "./trust.ts";
 *
 * try {
 *   assertTrustedTree("/usr/share/zoneinfo", {
 *     skip: (path) => path.endsWith(".tab"),
 *   });
 * } catch (error) {
 *   if (!(error instanceof UntrustedPathError)) throw error;
 *   console.error(error.message);
 * }
 * ```
 */
export function assertTrustedTree(
  dir: string,
  options: TrustedTreeOptions = {},
): void {
  const { skip } = options;
  assertTrusted(dir);
  const root = dir.length > 1 ? dir.replace(/\/+$/, "") : dir;
  const inspector = new Inspector();
  const directories = [root === "" ? "/" : root];

  while (directories.length > 0) {
    const directory = directories.pop()!;
    let names: string[];
    try {
      names = Array.from(Deno.readDirSync(directory), (entry) => entry.name)
        .sort();
    } catch (error) {
      throw new UntrustedPathError(
        directory,
        refusal(
          directory,
          `"${directory}" cannot be listed (${
            errorMessage(error)
          }); check that it is a directory readable by root`,
        ),
      );
    }
    const subdirectories: string[] = [];
    for (const name of names) {
      const path = joinPath(directory, name);
      if (skip?.(path)) continue;
      const info = inspector.lstat(path);
      if (typeof info === "string") {
        throw new UntrustedPathError(path, refusal(path, info));
      }
      if (info.isSymlink) {
        const problem = entryProblem(path, info, "symlink") ??
          resolutionProblem(path, inspector);
        if (problem !== null) {
          throw new UntrustedPathError(path, refusal(path, problem));
        }
        let linksToDirectory = true;
        try {
          linksToDirectory = probe.stat(path).isDirectory;
        } catch { /* cannot tell: refuse below */ }
        if (linksToDirectory && !walkedTarget(path, root, skip)) {
          // Deno follows it when importing, but this walk would not: refuse
          // rather than leave a tree unchecked.
          throw new UntrustedPathError(
            path,
            refusal(
              path,
              `"${path}" is a symbolic link to a directory, whose contents are not checked; replace it with the directory itself`,
            ),
          );
        }
        continue;
      }
      const problem = entryProblem(path, info, "target");
      if (problem !== null) {
        throw new UntrustedPathError(path, refusal(path, problem));
      }
      if (info.isDirectory) subdirectories.push(path);
    }
    // Visit subdirectories in name order.
    directories.push(...subdirectories.reverse());
  }
}
