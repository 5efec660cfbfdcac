/**
 * The daemon's first stage. It runs as root (through sudo, or directly),
 * checks that everything it will load is root-owned, loads the context,
 * applies its config section, reduces the main thread to the context's
 * capabilities and user, and `execve`s the serving stage with an explicit
 * environment and exactly the context's Deno permissions.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { dirname, isAbsolute } from "node:path";
import { fileURLToPath } from "node:url";
import { dropPrivileges, execve } from "../caps/drop.ts";
import {
  check,
  cString,
  lookupGroup,
  lookupUser,
  lstatViaLibc,
  openLibc,
  readFileViaLibc,
  readLinkViaLibc,
} from "../caps/_ffi.ts";
import type { PermissionsSetting } from "../contexts/config.ts";
import { registry } from "../contexts/_registry.ts";
import { type PrivContext, resolveSettings } from "../contexts/priv_context.ts";
import { assertTrusted, assertTrustedTree, useFileProbe } from "./trust.ts";

/** Where per-user DENO_DIRs of serving daemons live by default. */
export const DEFAULT_DENO_DIR_BASE = "/var/cache/privsep";

/** A start-up failure: printed on stderr, exit code 2. */
export class StartError extends Error {
  /** Always `"StartError"`. */
  override name = "StartError";
}

/** The flags a root daemon's command line must carry. */
const REQUIRED_FLAGS = ["--no-prompt", "--cached-only"];

/** This process's own command line, as the kernel has it. */
function ownCommandLine(): string[] {
  const raw = new TextDecoder().decode(readFileViaLibc("/proc/self/cmdline"));
  return raw.split("\0").slice(0, -1);
}

interface DenoFlags {
  config?: string;
  reads: string[];
}

/** Checks the pins of DESIGN.md §3.5 on our own command line. */
function checkOwnFlags(argv: string[], daemonPath: string): DenoFlags {
  const end = argv.indexOf(daemonPath);
  if (argv[1] !== "run" || end < 0) {
    throw new StartError(
      `unexpected command line (${
        argv.slice(0, 3).join(" ")
      } …); start the daemon as "deno run <flags> ${daemonPath}"`,
    );
  }
  const flags = argv.slice(2, end);
  for (const flag of REQUIRED_FLAGS) {
    if (!flags.includes(flag)) {
      throw new StartError(
        `refusing to run as root without ${flag} on the deno command line; use the command from ctx.command() / the generated sudoers rule`,
      );
    }
  }
  const config = flags.find((f) => f.startsWith("--config="))?.slice(9);
  if (!config && !flags.includes("--no-config")) {
    throw new StartError(
      "refusing to run as root without --no-config or an absolute --config=: a deno.json or package.json above the daemon could change what runs as root",
    );
  }
  if (config && !isAbsolute(config)) {
    throw new StartError(`--config must be an absolute path, got "${config}"`);
  }
  const bad = flags.find((f) =>
    /^--(allow-(all|read|write|net|env|sys|run|import)|import-map|reload|unstable|A$)/
      .test(f) &&
    !f.startsWith("--allow-read=")
  );
  if (bad || flags.includes("-A")) {
    throw new StartError(
      `refusing the flag ${
        bad ?? "-A"
      } on the first stage's command line: it only needs --allow-ffi and --allow-read=<code roots>`,
    );
  }
  const reads = flags.filter((f) => f.startsWith("--allow-read="))
    .flatMap((f) => f.slice(13).split(","));
  for (const r of reads) {
    if (!isAbsolute(r)) {
      throw new StartError(`--allow-read paths must be absolute, got "${r}"`);
    }
  }
  return { config, reads };
}

function permissionFlags(
  permissions: PermissionsSetting,
  codeRoots: readonly string[],
): string[] {
  if (permissions === "all") return ["--allow-all"];
  const flags: string[] = [];
  const kinds = [
    "read",
    "write",
    "net",
    "env",
    "sys",
    "run",
    "ffi",
    "import",
  ] as const;
  for (const kind of kinds) {
    let list = permissions[kind];
    if (kind === "read") {
      // The daemon may always read (import) its own code.
      list = list && list.length === 0 ? [] : [...codeRoots, ...(list ?? [])];
    }
    if (list === undefined) continue;
    for (const item of list) {
      if (item.includes(",")) {
        throw new StartError(
          `a ${kind} permission cannot contain ",": "${item}"`,
        );
      }
    }
    flags.push(
      list.length ? `--allow-${kind}=${list.join(",")}` : `--allow-${kind}`,
    );
  }
  return flags;
}

function ensureDenoDir(path: string, uid: number, gid: number): void {
  const libc = openLibc();
  const parent = dirname(path);
  if (libc.mkdir(cString(parent), 0o755) < 0) {
    // EEXIST is fine; anything else shows up at the next step.
  }
  libc.mkdir(cString(path), 0o700);
  check(`chown(${path})`, libc.chown(cString(path), uid, gid));
  check(`chmod(${path})`, libc.chmod(cString(path), 0o700));
}

/**
 * Runs the first stage. Never returns: it either `execve`s the serving stage
 * or throws {@linkcode StartError}.
 *
 * @example
 * ```ts ignore
 * await startDaemon(["--context=file:///opt/app/privsep/mod.ts#sysAdmin"]);
 * ```
 */
export async function startDaemon(args: string[]): Promise<never> {
  const { values } = parseArgs({
    args,
    options: {
      context: { type: "string" },
      "config-file": { type: "string", multiple: true },
    },
    strict: true,
  });
  const contextId = values.context;
  if (!contextId || !/^file:\/\/\/\S+#[A-Za-z_$][\w$]*$/.test(contextId)) {
    throw new StartError(
      `--context=file:///abs/module.ts#exportName is required, got ${
        JSON.stringify(contextId)
      }`,
    );
  }
  const configFiles = values["config-file"] ?? [];
  const libc = openLibc();
  if (libc.geteuid() !== 0) {
    throw new StartError(
      "the privsep daemon must start as root (through sudo, or directly as root) to drop to its context",
    );
  }

  // Everything that could change what runs as root must be root-owned.
  // Ancestors are inspected through libc: Deno may only read the code roots.
  useFileProbe({ lstat: lstatViaLibc, readLink: readLinkViaLibc });
  const daemonPath = fileURLToPath(new URL("../daemon.ts", import.meta.url));
  const argv = ownCommandLine();
  const flags = checkOwnFlags(argv, daemonPath);
  assertTrusted(Deno.execPath());
  if (flags.config) assertTrusted(flags.config);
  for (const file of configFiles) {
    if (!isAbsolute(file)) {
      throw new StartError(
        `--config-file must be an absolute path, got "${file}"`,
      );
    }
    assertTrusted(file);
  }
  const codeRoots = flags.reads.filter((r) => !configFiles.includes(r));
  for (const root of codeRoots) {
    assertTrustedTree(root, { skip: (p) => p.endsWith("/.git") });
  }

  const [moduleUrl, name] = contextId.split("#");
  await import(moduleUrl);
  const ctx = registry().contexts.get(contextId) as PrivContext | undefined;
  if (!ctx) {
    throw new StartError(
      `${moduleUrl} defines no PrivContext named "${name}" (check the context's name option)`,
    );
  }
  const settings = resolveSettings(ctx, configFiles);
  const user = lookupUser(settings.user);
  if (!user) {
    throw new StartError(
      `the context's user "${settings.user}" does not exist; create it (useradd --system ${settings.user}) or change "user"`,
    );
  }
  const group = settings.group === undefined
    ? { name: String(user.gid), id: user.gid! }
    : lookupGroup(settings.group);
  if (!group) {
    throw new StartError(
      `the context's group "${settings.group}" does not exist; create it (groupadd --system ${settings.group}) or change "group"`,
    );
  }
  const denoDir = settings.denoDir ??
    `${DEFAULT_DENO_DIR_BASE}/deno-${user.id}`;
  ensureDenoDir(denoDir, user.id, group.id);

  const serveArgv = [
    Deno.execPath(),
    "run",
    "--no-prompt",
    "--cached-only",
    "--no-lock",
    flags.config ? `--config=${flags.config}` : "--no-config",
    ...permissionFlags(settings.permissions, codeRoots),
    daemonPath,
    "--stage=serve",
    `--context=${contextId}`,
    `--concurrency=${settings.concurrency}`,
    `--queue-limit=${settings.queueLimit}`,
    `--cancel-grace-ms=${settings.cancelGraceMs}`,
    `--uid=${user.id}`,
    `--gid=${group.id}`,
    `--capabilities=${settings.capabilities.join(",")}`,
    ...(settings.logDaemonTraceback ? ["--log-daemon-traceback"] : []),
  ];
  const env = {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: user.home ?? "/",
    DENO_DIR: denoDir,
    DENO_NO_UPDATE_CHECK: "1",
    NO_COLOR: "1",
    LANG: "C.UTF-8",
  };
  dropPrivileges({
    keep: settings.capabilities,
    uid: user.id,
    gid: group.id,
  });
  return execve(Deno.execPath(), serveArgv, env);
}
