// privsep inspect <module…>: every context and entrypoint an application
// defines, with what each may do, and the ones that look too broad.
import { fileURLToPath } from "node:url";
import { missingWritePathDirectory } from "../caps/_landlock.ts";
import { capabilityName } from "../caps/table.ts";
import { moduleFiles } from "../core/_modules.ts";
import { entrypointsOf, registry } from "../core/_registry.ts";
import type { PrivContext } from "../contexts/priv_context.ts";
import { parameterNames } from "../core/schema.ts";
import { CONFIG_KEYS } from "../core/config.ts";
import type { ResolvedSettings } from "../core/settings.ts";
import { contextCommandArgs, loadContexts } from "./_load.ts";
import { redirectablePathWarnings, writePathRefusals } from "./_write_paths.ts";
import {
  type ConfinementPlan,
  confinementReport,
  describePlan,
} from "../daemon/_confine.ts";

const USAGE =
  `usage: privsep inspect [--json] [--config-file=<abs path>]… <module.ts[#context]>…

Lists every privilege context the modules define and every entrypoint below
each context's prefix: the value of every config key after the config files
(capabilities, user and group, Deno permissions, timeout, concurrency, ...),
and which entrypoints validate their arguments. Flags what is broad: capabilities that amount to root, a root
target user, permissions "all", allowed read or write paths that a non-root
user could redirect with a symbolic link, and entrypoints that take a path or a command
line without a schema ("privileged functions must be as narrow as possible").
Shows each context's kernel sandbox (Landlock paths, ports and scopes, the
system calls the seccomp filter denies) and what this kernel cannot enforce.`;

/** Why a capability is flagged: it amounts to (nearly) full root. */
const BROAD_CAPS: Record<string, string> = {
  CAP_SYS_ADMIN:
    "does almost anything (mounts, namespaces, many ioctls): the new root",
  CAP_DAC_OVERRIDE: "reads and writes any file",
  CAP_DAC_READ_SEARCH: "reads any file",
  CAP_FOWNER: "changes the mode of any file",
  CAP_CHOWN: "takes ownership of any file",
  CAP_SETUID: "becomes any user",
  CAP_SETGID: "becomes any group",
  CAP_SETFCAP:
    "grants file capabilities: a program it marks in a write path gives whoever runs it those capabilities",
  CAP_FSETID:
    "keeps setuid and setgid bits: a uid-0 daemon's setuid program runs as root for whoever runs it",
  CAP_SETPCAP: "changes capability sets",
  CAP_SYS_MODULE: "loads kernel modules",
  CAP_SYS_PTRACE: "reads and writes other processes' memory",
  CAP_SYS_RAWIO: "raw device and port I/O",
  CAP_BPF: "loads BPF programs",
  CAP_SYS_RESOURCE: "overrides resource limits and quotas",
  CAP_SYS_NICE: "changes any process's priority and scheduling",
  CAP_MKNOD:
    "creates device files (not where its writes are confined; with unscoped writes, a node of the host's disks)",
};

const BROAD_PARAM =
  /^(path|paths|file|files|filename|filepath|dir|directory|target|dest|destination|src|source|cmd|command|commandline|args|argv|program|exe|executable|url|script)$|path$|file$|cmd$|command$/i;

/** One context's inventory. */
export interface ContextReport {
  id: string;
  cfgSection?: string;
  prefix: string;
  user: string;
  group?: string;
  capabilities: string[];
  permissions: unknown;
  timeoutMs?: number;
  concurrency: number;
  /** Whether the caller checks the daemon's credentials in /proc. */
  verify: boolean;
  /** The kernel sandbox the daemon applies, and what this kernel cannot enforce. */
  confinement: {
    plan: ConfinementPlan;
    landlockAbi?: number;
    unenforced: string[];
  };
  /** The modules the daemon loads at start: every module below the prefix. */
  modules: string[];
  entrypoints: {
    key: string;
    module: string;
    parameters: string[];
    validates: boolean;
    timeoutMs?: number;
    auditArgs: boolean;
    warnings: string[];
  }[];
  warnings: string[];
  /**
   * Every config key (core/config.ts's CONFIG_KEYS, in its order) with its
   * effective value after the options and config files; a key whose default
   * is not a fixed value (timeout_ms, group, deno_dir, libcap) is absent
   * when unset.
   */
  settings: Record<string, unknown>;
}

/** A resolved setting as its config key would write it. */
function settingValue(
  s: ResolvedSettings,
  field: keyof ResolvedSettings,
): unknown {
  if (field === "loggerName") return s.loggerName.join(".");
  if (field === "capabilities") return s.capabilities.map(capabilityName);
  return s[field];
}

/** The inventory of `contexts` (exported for tests and the doctor). */
export function inventory(contexts: readonly PrivContext[]): ContextReport[] {
  return contexts.map((ctx) => {
    const s = ctx.settings();
    const warnings: string[] = [];
    for (const c of s.capabilities) {
      const name = capabilityName(c);
      if (BROAD_CAPS[name]) warnings.push(`keeps ${name}: ${BROAD_CAPS[name]}`);
    }
    if (s.user === "root" || s.user === "0") {
      warnings.push(
        'runs as uid 0: it owns every root-owned file (/etc/sudoers, privsep\'s own and every other privsep application\'s on this host, whose next daemon start runs what it writes there as root) and may change the mode of those below its write paths (of all of them where its writes are not confined), and root services that trust uid 0 over unix sockets (systemd, D-Bus) act for it where it may make one (syscall_filter "+socket", confinement "off"): prefer a dedicated user',
      );
    }
    // What the daemon loads at start: every module below the prefix, so
    // another context's code below it runs in this daemon too.
    const modules = ctx.prefix.startsWith("file:")
      ? moduleFiles(fileURLToPath(ctx.prefix))
      : [];
    // Another context's entrypoint modules below this prefix run their
    // top-level code in this daemon too.
    for (const other of registry().contexts.values()) {
      if (other.id === ctx.id || !other.prefix.startsWith("file:")) continue;
      const theirs = new Set(
        [...entrypointsOf(other).keys()].map((key) =>
          fileURLToPath(new URL(key.slice(0, key.indexOf("#")), other.prefix))
        ),
      );
      const shared = modules.filter((m) => theirs.has(m));
      if (shared.length) {
        warnings.push(
          `loads ${shared.length} entrypoint module(s) of context ${other.id} (below this context's prefix): give each context a directory of its own (prefix)`,
        );
      }
    }
    if (s.permissions === "all") {
      warnings.push('Deno permissions "all": only the kernel drop limits it');
    } else {
      for (const kind of ["run", "ffi", "write", "read"] as const) {
        if (s.permissions[kind]?.length === 0) {
          warnings.push(
            `unscoped --allow-${kind}${
              kind === "run" || kind === "ffi"
                ? " (as broad as --allow-all)"
                : ""
            }`,
          );
        }
      }
      warnings.push(...redirectablePathWarnings(s.permissions));
      // What stage 1 refuses (daemon/start.ts), said before any start; and
      // for other contexts, that a missing write path's rule goes to its
      // directory (Landlock names only existing files: caps/_landlock.ts).
      const refusals = writePathRefusals(ctx);
      warnings.push(...refusals.map((r) => r.message));
      const refused = new Set(refusals.map((r) => r.write));
      for (const write of s.permissions.write ?? []) {
        if (refused.has(write)) continue;
        try {
          Deno.lstatSync(write);
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) continue;
          warnings.push(
            `the write path ${write} does not exist yet: the kernel sandbox gives its directory ${
              missingWritePathDirectory(write)
            } the rule (Landlock names existing files only), so the daemon may write all of it; create ${write} first, or give it a directory of its own`,
          );
        }
      }
    }
    if (!s.verify) {
      warnings.push(
        "verify = false: the caller does not check the daemon's credentials in /proc",
      );
    }
    const confinement = confinementReport(s);
    if (s.confinement === "off") {
      warnings.push(
        'confinement = "off": no Landlock rules and no seccomp filter',
      );
    }
    for (const u of confinement.unenforced) {
      warnings.push(`kernel sandbox not enforced here: ${u}`);
    }
    const entrypoints = [...entrypointsOf(ctx).values()].map((ep) => {
      const parameters = parameterNames(ep.fn);
      const schemas = ep.options?.args ?? [];
      const epWarnings = parameters.flatMap((p, i) =>
        BROAD_PARAM.test(p) && !schemas[i]
          ? [
            `parameter "${p}" looks like a path or command and has no schema: a caller could point it anywhere`,
          ]
          : []
      );
      const hash = ep.key.lastIndexOf("#");
      return {
        key: ep.key,
        module: fileURLToPath(new URL(ep.key.slice(0, hash), ctx.prefix)),
        parameters,
        validates: schemas.some(Boolean) || ep.options?.result !== undefined,
        timeoutMs: ep.timeoutMs ?? s.timeoutMs,
        auditArgs: ep.options?.auditArgs ?? false,
        warnings: epWarnings,
      };
    }).sort((a, b) => a.key < b.key ? -1 : 1);
    return {
      id: ctx.id,
      cfgSection: ctx.cfgSection,
      prefix: ctx.prefix,
      user: s.user,
      group: s.group,
      capabilities: s.capabilities.map(capabilityName),
      permissions: s.permissions,
      timeoutMs: s.timeoutMs,
      concurrency: s.concurrency,
      verify: s.verify,
      confinement,
      modules,
      entrypoints,
      warnings,
      settings: Object.fromEntries(
        CONFIG_KEYS.map((k) => [k.key, settingValue(s, k.field)]),
      ),
    };
  });
}

/** Runs `privsep inspect`; returns the exit code. */
export async function inspectMain(args: string[]): Promise<number> {
  const parsed = contextCommandArgs(args, USAGE);
  if (typeof parsed === "number") return parsed;
  const reports = inventory(await loadContexts(parsed.specs));
  if (parsed.json) {
    console.log(JSON.stringify(reports, null, 2));
    return 0;
  }
  for (const r of reports) {
    console.log(`context ${r.id}${r.cfgSection ? ` [${r.cfgSection}]` : ""}`);
    // One line per config key, from the same table the parser follows.
    for (const k of CONFIG_KEYS) {
      const value = r.settings[k.key];
      console.log(
        `  ${k.key} = ${
          value === undefined
            ? `(default: ${k.default.replaceAll("`", "")})`
            : value === "all"
            ? '"all"  <-- --allow-all'
            : JSON.stringify(value)
        }`,
      );
    }
    for (const line of describePlan(r.confinement.plan)) {
      console.log(`  ${line}`);
    }
    console.log(
      `  kernel: Landlock ABI ${r.confinement.landlockAbi ?? "unknown"}${
        r.confinement.unenforced.length ? "" : ", everything above enforced"
      }`,
    );
    for (const w of r.warnings) console.log(`  ! ${w}`);
    console.log(`  loads ${r.modules.length} modules at start`);
    console.log(`  entrypoints (${r.entrypoints.length}):`);
    for (const e of r.entrypoints) {
      console.log(
        `    ${e.key}(${e.parameters.join(", ")})${
          e.validates ? "  [validated]" : ""
        }${e.auditArgs ? "  [args audited]" : ""}${
          e.timeoutMs ? `  timeout ${e.timeoutMs} ms` : ""
        }`,
      );
      for (const w of e.warnings) console.log(`      ! ${w}`);
    }
  }
  return 0;
}
