// The 1:1 conversion of the rootwrap filter `chmod: CommandFilter, chmod, root`
// (rootwrap.filters), kept OUTSIDE privsep/ on purpose: it is not an
// entrypoint and the daemon never loads it. It is here to be read, not used.
//
// As an entrypoint it would read:
//
//   export const chmod = fownerCtx.entrypoint(
//     import.meta,
//     async function chmod(path: string, mode: number): Promise<void> {
//       await Deno.chmod(path, mode);
//     },
//   );
//
// That is exactly as dangerous as the filter, whatever the context's user:
//
// - Any file: `chmod("/etc/shadow", 0o644)` publishes every password hash;
//   `chmod("/etc/sudoers.d/x", 0o666)` or `chmod("/etc/cron.d", 0o777)` lets
//   the service's user write rules that run as root.
// - Any mode: `chmod("/usr/bin/bash", 0o4755)` makes a setuid-root shell
//   (`bash -p` is then root for every local user). CAP_FOWNER lets a non-root
//   daemon chmod files it does not own, and chmod(2) keeps the setuid bit.
// - Dropping to a non-root user with only CAP_FOWNER does not help: the
//   capability is precisely "change the mode of any file". Deno permissions
//   (`write` limited to some directories) would be the only wall left, and a
//   compromised service would just ask for a path inside them that is a
//   symbolic link to /usr/bin/bash.
//
// So a service compromised through any bug can become root. The narrow
// replacement (privsep/modes.ts) has one function per real use, with the
// files and the mode fixed in the daemon:
//
//   makeLogsReadable()  chmod 0644 the regular files in LOGS_DIR
//   lockSecret(name)    chmod 0600 one file of a fixed list in SECRETS_DIR

/**
 * The broad function the filter amounts to: any path, any mode. Never make
 * this an entrypoint.
 */
export async function chmod(path: string, mode: number): Promise<void> {
  await Deno.chmod(path, mode);
}
