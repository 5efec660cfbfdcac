# privsep launcher: the check of the daemon's DENO_DIR before deno starts.
# Sourced by the root-owned per-context launcher; POSIX sh, coreutils/findutils.
#
# privsep_check_cache DIR
#   Succeeds when DIR, every ancestor of it and everything below it is owned
#   by root and not writable by group or others (symbolic links: owned by
#   root), or when DIR does not exist yet and its nearest existing ancestor
#   and that one's ancestors pass (stage 1 creates DIR root-owned, 0755).
#   Otherwise prints what failed and how to fix it on stderr and returns 1.
#   This is what stage 1 runs its first modules from: it cannot see what a
#   uid-0 process wrote (the serving daemons see DENO_DIR through read-only
#   mounts, see docs/security/cache.md), only what anyone else could have.
privsep_check_cache() {
  case $1 in
    /*) ;;
    *) echo "privsep: DENO_DIR must be an absolute path, got \"$1\"" >&2; return 1 ;;
  esac
  _pc_path=$1
  while [ ! -e "$_pc_path" ] && [ ! -L "$_pc_path" ]; do
    _pc_path=${_pc_path%/*}
    [ -n "$_pc_path" ] || _pc_path=/
  done
  _pc_p=$_pc_path
  while :; do
    # shellcheck disable=SC2046
    set -- $(stat -c '%u %a' -- "$_pc_p") || return 1
    if [ "$1" != 0 ] || [ $((0$2 & 022)) -ne 0 ]; then
      echo "privsep: refusing DENO_DIR $_pc_path: $_pc_p is owned by uid $1 with mode $2; make it root-owned and not writable by group or others (chown root:root, chmod go-w)" >&2
      return 1
    fi
    [ "$_pc_p" = / ] && break
    _pc_p=${_pc_p%/*}
    [ -n "$_pc_p" ] || _pc_p=/
  done
  if [ -d "$_pc_path" ]; then
    _pc_bad=$(find "$_pc_path" \( ! -user 0 -o \( ! -type l -perm /022 \) \) -print -quit) || return 1
    if [ -n "$_pc_bad" ]; then
      echo "privsep: refusing DENO_DIR $_pc_path: $_pc_bad is not root-owned or is writable by group or others; remove the cache (rm -rf $_pc_path), the daemon rebuilds it" >&2
      return 1
    fi
  fi
  return 0
}
