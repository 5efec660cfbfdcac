// privsep caps [pid]: the capability sets of a process, per thread.
import { parseArgs } from "node:util";
import { formatCapabilities } from "../caps/parse.ts";
import { readProcessCredentials } from "../caps/proc.ts";

const USAGE = `usage: privsep caps [--json] [pid]

Shows the capability sets (effective, permitted, inheritable, bounding,
ambient), uids, gids, no_new_privs and seccomp state (mode and number of
filters) of every thread of a process (this one by default), with readable
names. Landlock domains are not visible in /proc: "privsep inspect" shows the
rules a context's daemon applies.`;

const SECCOMP_MODES: Record<number, string> = {
  0: "off",
  1: "strict",
  2: "filter",
};

/** Runs `privsep caps`; returns the exit code. */
export async function capsMain(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const target = positionals[0] === undefined ? "self" : Number(positionals[0]);
  if (target !== "self" && (!Number.isSafeInteger(target) || target < 1)) {
    console.error(`not a process id: "${positionals[0]}"\n${USAGE}`);
    return 2;
  }
  let creds;
  try {
    creds = await readProcessCredentials(target);
  } catch (error) {
    console.error(`privsep caps: ${(error as Error).message}`);
    return 1;
  }
  const sets = (t: (typeof creds.threads)[number]) => ({
    effective: formatCapabilities(t.capEff),
    permitted: formatCapabilities(t.capPrm),
    inheritable: formatCapabilities(t.capInh),
    bounding: formatCapabilities(t.capBnd),
    ambient: formatCapabilities(t.capAmb),
  });
  if (values.json) {
    console.log(JSON.stringify(
      {
        pid: creds.pid,
        threads: creds.threads.map((t) => ({
          tid: t.tid,
          name: t.name,
          uid: t.uid,
          gid: t.gid,
          groups: t.groups,
          noNewPrivs: t.noNewPrivs,
          seccomp: t.seccomp,
          seccompFilters: t.seccompFilters,
          ...sets(t),
        })),
      },
      null,
      2,
    ));
    return 0;
  }
  const short = (names: string[]) =>
    names.length === 0
      ? "-"
      : names.length > 12
      ? `(${names.length} capabilities)`
      : names.map((n) => n.slice(4).toLowerCase()).join(",");
  console.log(
    `process ${creds.pid} (${
      creds.threads[0]?.name ?? "?"
    }), ${creds.threads.length} thread(s)`,
  );
  for (const t of creds.threads) {
    const s = sets(t);
    console.log(
      `  thread ${t.tid}: uid ${t.uid.real}/${t.uid.effective}/${t.uid.saved}/${t.uid.fs} gid ${t.gid.real}/${t.gid.effective}/${t.gid.saved}/${t.gid.fs} no_new_privs=${
        t.noNewPrivs ? 1 : 0
      } seccomp=${SECCOMP_MODES[t.seccomp ?? -1] ?? "unknown"}${
        t.seccompFilters ? ` (${t.seccompFilters} filters)` : ""
      }`,
    );
    for (const [k, v] of Object.entries(s)) {
      console.log(`    ${k.padEnd(11)} ${short(v)}`);
    }
  }
  return 0;
}
