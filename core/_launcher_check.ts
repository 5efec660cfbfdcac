// The launcher's check of the cache that stage 1 runs its first modules from,
// before deno starts: POSIX sh with absolute coreutils/findutils paths, as it
// runs with whatever environment root was given.

/**
 * `privsep_check_cache DIR` succeeds when DIR, every ancestor and everything
 * below it is root-owned and not writable by group or others (links: owned
 * by root), or when DIR does not exist yet and its nearest existing ancestor
 * and that ancestor's ancestors pass (stage 1 creates DIR root-owned; what
 * else the ancestor holds is not judged: on a fresh host /var/cache/man is
 * owned by user man). Otherwise it says on stderr what failed and how to
 * fix it (naming DIR, never an ancestor, in its advice), and returns 1. It
 * sees what anyone but root could have written; what a uid-0 daemon could
 * write it cannot, which is why daemons see the cache through read-only
 * mounts (daemon/_readonly.ts).
 */
export const CACHE_CHECK_SH: string = `privsep_check_cache() {
  case $1 in
    /*) ;;
    *) echo "privsep: DENO_DIR must be an absolute path, got \\"$1\\"" >&2; return 1 ;;
  esac
  _pc_dir=$1
  _pc_path=$1
  while [ ! -e "$_pc_path" ] && [ ! -L "$_pc_path" ]; do
    _pc_path=\${_pc_path%/*}
    [ -n "$_pc_path" ] || _pc_path=/
  done
  _pc_p=$_pc_path
  while :; do
    set -- $(/usr/bin/stat -c '%u %a' -- "$_pc_p") || return 1
    if [ "$1" != 0 ] || [ $((0$2 & 022)) -ne 0 ]; then
      echo "privsep: refusing DENO_DIR $_pc_dir: $_pc_p is owned by uid $1 with mode $2; make it root-owned and not writable by group or others, and remove the cache if another user could write in it (root fills it again)" >&2
      return 1
    fi
    [ "$_pc_p" = / ] && break
    _pc_p=\${_pc_p%/*}
    [ -n "$_pc_p" ] || _pc_p=/
  done
  # The tree below DIR only when DIR itself exists: an ancestor's other
  # entries are none of the cache's business.
  if [ "$_pc_path" = "$_pc_dir" ] && [ -d "$_pc_dir" ]; then
    _pc_bad=$(/usr/bin/find "$_pc_dir" \\( ! -user 0 -o \\( ! -type l -perm /022 \\) \\) -print -quit) || return 1
    if [ -n "$_pc_bad" ]; then
      echo "privsep: refusing DENO_DIR $_pc_dir: $_pc_bad is not root-owned or is writable by group or others; stop the services, remove the cache (rm -rf $_pc_dir), and the daemon rebuilds it" >&2
      return 1
    fi
  fi
  return 0
}
`;

/**
 * What root runs or loads before the daemon's first stage checks anything
 * itself, relative to privsep's directory: `daemon.ts` and the modules its
 * first stage imports statically (`core/_launcher_check_test.ts` compares
 * the list with Deno's module graph). Deno resolves them through the
 * application's deno.json, whose import map could replace any of them.
 */
export const PRELOADED_MODULES: readonly string[] = [
  "daemon.ts",
  "daemon/preflight.ts",
  "caps/_ffi.ts",
  "core/command.ts",
  "core/_launcher_check.ts",
  "core/trust.ts",
];

/**
 * `privsep_check_files FILE...` succeeds when each FILE (absolute, without
 * white space) and every directory on the way to it is root-owned and not
 * writable by group or others (a link: root-owned, and what it resolves to
 * checked the same way). The launcher runs it on the deno binary, the
 * application's deno.json and {@linkcode PRELOADED_MODULES} before deno
 * starts: the first stage's own checks run only once those are loaded.
 * One `find` for all (two more where a link is on the way). Otherwise it
 * says on stderr which path failed and returns 1.
 */
export const FILES_CHECK_SH: string = `privsep_check_files() {
  set -f
  _pf_all=
  _pf_files=
  for _pf_f; do
    _pf_files="$_pf_files $_pf_f"
    _pf_p=$_pf_f
    while :; do
      _pf_all="$_pf_all $_pf_p"
      [ "$_pf_p" = / ] && break
      _pf_p=\${_pf_p%/*}
      [ -n "$_pf_p" ] || _pf_p=/
    done
  done
  _pf_bad=$(/usr/bin/find $_pf_all -maxdepth 0 \\( ! -user 0 -o \\( ! -type l -perm /022 \\) \\) -printf '%p is owned by uid %U with mode %m\\n' -quit) || _pf_bad=\${_pf_bad:-a file or a directory on the way to it cannot be inspected (see find above)}
  if [ -n "$_pf_bad" ]; then
    echo "privsep: refusing to start the daemon: $_pf_bad; root runs or loads it before any other check. Install it afresh as root from its source, root-owned and not writable by group or others (what another user could write is theirs, whoever owns it after), then run privsep doctor" >&2
    return 1
  fi
  if [ -n "$(/usr/bin/find $_pf_all -maxdepth 0 -type l -print -quit)" ]; then
    _pf_real=$(/usr/bin/realpath -e -- $_pf_files) || return 1
    privsep_check_files $_pf_real || return 1
  fi
  return 0
}
`;

/**
 * Whether a deno.json's text makes it a workspace root: a top-level
 * `"workspace"` key (`"workspace": []` for an application of one folder),
 * read as Deno reads the file (JSONC: comments and trailing commas). Deno
 * looks no further up from a workspace root; from any other deno.json it
 * reads a deno.json or package.json in a directory above that names it as a
 * member, whose import map then applies to everything root loads (found by a
 * review: a daemon that could create files in a directory above the
 * application planted one there). Text that does not parse is none.
 */
export function isWorkspaceRoot(text: string): boolean {
  const value = topLevel(text);
  return value !== undefined && Object.hasOwn(value, "workspace");
}

/**
 * Why the application's deno.json (`path`, its text `text`) may not be the
 * configuration of the root daemon, or `undefined`: it must be a workspace
 * root ({@linkcode isWorkspaceRoot}), and it may not name an import map
 * file (`"importMap"`), which Deno reads as root before anything is checked
 * and which no check covers (found by a review: the service account's map
 * replaced `daemon/preflight.ts`); its `"imports"` and `"scopes"` belong in
 * the deno.json itself.
 */
export function denoConfigProblem(
  path: string,
  text: string,
): string | undefined {
  const value = topLevel(text);
  if (value === undefined) {
    return `${path} does not parse as JSON(C) with an object at its top`;
  }
  if (!Object.hasOwn(value, "workspace")) {
    return `${path} has no "workspace" key: Deno would read a deno.json or package.json in a directory above it as a workspace root, whose imports apply to what the root daemon loads; add "workspace": [] to it (privsep install --vendor-dir does)`;
  }
  if (Object.hasOwn(value, "importMap")) {
    return `${path} names an import map file ("importMap"), which Deno reads as root before any check; move its "imports" and "scopes" into ${path} and remove the key`;
  }
  return undefined;
}

/** The top-level object of a JSON(C) text, or `undefined`. */
function topLevel(text: string): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(plainJson(text));
  } catch {
    return undefined;
  }
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : undefined;
}

/** JSONC as JSON: comments and trailing commas out, strings kept. */
function plainJson(text: string): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j;
    } else if (c === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++;
      out += "\n";
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? text.length : end + 1;
      out += " ";
    } else if (c === ",") {
      const rest =
        /^(\s|\/\/[^\n]*\n|\/\*[^]*?\*\/)*/.exec(text.slice(i + 1))![0];
      const next = text[i + 1 + rest.length];
      if (next !== "}" && next !== "]") out += c;
    } else out += c;
  }
  return out;
}

/**
 * `privsep_check_config CONFIG` succeeds when the deno.json CONFIG has a
 * line that starts a top-level `"workspace"` key as install and `deno fmt`
 * write one (two spaces, or `{`, then the key), no `"importMap"` anywhere and no
 * `\\u` escape (a review spelled `"import\\u004dap"`, which Deno decodes):
 * a guard against a deno.json changed after install, which checked it with
 * {@linkcode denoConfigProblem}, as stage 1 does again. Otherwise it says on
 * stderr what to change and returns 1.
 */
export const CONFIG_CHECK_SH: string = `privsep_check_config() {
  if /usr/bin/grep -q '\\\\u' -- "$1"; then
    echo "privsep: refusing to start the daemon: $1 holds a \\\\u escape, which could spell a key this check looks for; write the characters themselves" >&2
    return 1
  fi
  if /usr/bin/grep -q '"importMap"' -- "$1"; then
    echo "privsep: refusing to start the daemon: $1 names an import map file (\\"importMap\\"), which Deno reads as root before any check; move its \\"imports\\" and \\"scopes\\" into $1" >&2
    return 1
  fi
  /usr/bin/grep -Eq '^(  |[{][[:space:]]*)"workspace"[[:space:]]*:' -- "$1" && return 0
  echo "privsep: refusing to start the daemon: $1 has no \\"workspace\\" key; Deno would then read a deno.json or package.json in a directory above it as a workspace root, whose imports apply to what root loads. Add \\"workspace\\": [] to it (privsep install --vendor-dir does)" >&2
  return 1
}
`;

/**
 * The launcher's `privsep_raise <flag> <wanted> <floor> <what>`: raises the
 * caller's soft limit `flag` (of `ulimit`) toward `wanted` as far as the hard
 * one allows (and the hard one too where root may: CAP_SYS_RESOURCE), never
 * lowering either, and refuses with a message below `floor`.
 */
export const RAISE_LIMITS_SH: string = `privsep_raise() {
  _pr_h=$(ulimit -H "$1")
  if [ "$_pr_h" != unlimited ] && { [ "$2" = unlimited ] || [ "$_pr_h" -lt "$2" ]; }; then
    ulimit -H "$1" "$2" 2>/dev/null && _pr_h=$2
  fi
  _pr_s=$(ulimit -S "$1")
  if [ "$_pr_s" != unlimited ] && [ "$_pr_s" != "$_pr_h" ] &&
    { [ "$2" = unlimited ] || [ "$_pr_s" -lt "$2" ]; }; then
    if [ "$_pr_h" = unlimited ] || { [ "$2" != unlimited ] && [ "$_pr_h" -ge "$2" ]; }; then
      ulimit -S "$1" "$2"
    else
      ulimit -S "$1" "$_pr_h"
    fi
  fi
  _pr_s=$(ulimit -S "$1")
  [ "$_pr_s" = unlimited ] || [ "$_pr_s" -ge "$3" ] || {
    echo "privsep: the caller's $4 limit ($_pr_h) is below the $3 the daemon needs; start the service with ulimit $1 $2" >&2
    return 1
  }
}
`;

/**
 * What Deno reads in a directory on its way up from the code: configuration
 * and npm resolution (a package.json's dependencies, aliases included, and
 * node_modules, in every directory above the importing file, past the
 * workspace root).
 */
export const ABOVE_NAMES: readonly string[] = [
  "package.json",
  "deno.json",
  "deno.jsonc",
  "node_modules",
];

/**
 * The directories above `roots` (the code roots and the deno.json's
 * directory), nearest first: each strict ancestor of a root that no other
 * root holds. The daemon's read-only mounts cover the roots, not these; a
 * daemon of uid 0 with unscoped writes may create files in them (a review
 * had one plant a package.json whose alias sent stage 1's own npm import
 * to its code).
 *
 * @example
 * ```ts ignore
 * dirsAbove(["/opt/app", "/opt/app/vendor/privsep"]); // ["/opt", "/"]
 * ```
 */
export function dirsAbove(roots: readonly string[]): string[] {
  const clean = roots.map((r) => r.replace(/\/+$/, "") || "/");
  const outer = clean.filter((r) =>
    !clean.some((o) => o !== r && (o === "/" || r.startsWith(`${o}/`)))
  );
  const out: string[] = [];
  for (const root of outer) {
    let dir = root;
    while (dir !== "/") {
      dir = dir.slice(0, dir.lastIndexOf("/")) || "/";
      if (!out.includes(dir)) out.push(dir);
    }
  }
  return out;
}

/**
 * Why what is in `dirs` ({@linkcode dirsAbove}) may not be there, or
 * `undefined`: none of {@linkcode ABOVE_NAMES} may exist in any of them.
 * `exists` tells whether a path exists (a link counts).
 */
export function aboveProblem(
  dirs: readonly string[],
  exists: (path: string) => boolean,
): string | undefined {
  for (const dir of dirs) {
    for (const name of ABOVE_NAMES) {
      const path = `${dir === "/" ? "" : dir}/${name}`;
      if (exists(path)) {
        return `${path} is above the application's code: Deno reads it on its way up (configuration, npm resolution, package.json aliases included) as root at the next start, and a daemon that may write there could have put it there; remove it, or install the application below a directory without it`;
      }
    }
  }
  return undefined;
}

/**
 * `privsep_check_above DIR...` succeeds when no DIR holds any of
 * {@linkcode ABOVE_NAMES} (shell tests only, no program), and otherwise
 * says on stderr which path and returns 1: the launcher's copy of
 * {@linkcode aboveProblem}, on {@linkcode dirsAbove} of the code.
 */
export const ABOVE_CHECK_SH: string = `privsep_check_above() {
  for _pa_d; do
    [ "$_pa_d" = / ] && _pa_d=
    for _pa_n in ${ABOVE_NAMES.join(" ")}; do
      if [ -e "$_pa_d/$_pa_n" ] || [ -L "$_pa_d/$_pa_n" ]; then
        echo "privsep: refusing to start the daemon: $_pa_d/$_pa_n is above the application's code; Deno reads it on its way up (configuration, npm resolution) as root. Remove it, or install the application below a directory without it" >&2
        return 1
      fi
    done
  done
  return 0
}
`;
