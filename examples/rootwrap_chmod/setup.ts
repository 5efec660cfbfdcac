// Root's one-time set-up of the demo's layout (what a package's postinst would
// do); not part of privsep/, so the daemon never loads it.
//
// CAP_FOWNER does not let the daemon through directories: path lookup needs
// search (x) permission, which only CAP_DAC_OVERRIDE or CAP_DAC_READ_SEARCH
// would bypass, and those let it read or write any file. Instead the daemon's
// own group gets exactly the directory access it needs:
//
//   /var/lib/privsep-demo          root:privsep-chmod 0710  pass through only
//   /var/lib/privsep-demo/logs     root:privsep-chmod 0750  list the logs
//   /var/lib/privsep-demo/secrets  root:privsep-chmod 0710  names, no listing
//
// Only root writes these directories, so nobody else can plant a symbolic
// link or a hard link for the daemon to chmod.
import { DAEMON_USER, DEMO_DIR, LOGS_DIR, SECRETS_DIR } from "./privsep/mod.ts";

async function run(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed: ${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/** Creates the daemon's system user (and group) unless it exists; returns its gid. */
export async function ensureDaemonUser(): Promise<number> {
  const exists = await new Deno.Command("id", {
    args: ["-u", DAEMON_USER],
    stdout: "null",
    stderr: "null",
  }).output();
  if (!exists.success) {
    await run(
      "useradd",
      "--system",
      "--user-group",
      "--no-create-home",
      "--home-dir",
      "/nonexistent",
      "--shell",
      "/usr/sbin/nologin",
      DAEMON_USER,
    );
  }
  return Number(await run("id", "-g", DAEMON_USER));
}

/** Creates (or fixes) the directories above; as root. */
export async function prepareLayout(): Promise<void> {
  if (Deno.uid() !== 0) {
    throw new Error("prepareLayout() must run as root");
  }
  const gid = await ensureDaemonUser();
  for (
    const [dir, mode] of [
      [DEMO_DIR, 0o710],
      [LOGS_DIR, 0o750],
      [SECRETS_DIR, 0o710],
    ] as const
  ) {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    await Deno.chown(dir, 0, gid);
    await Deno.chmod(dir, mode);
  }
}
