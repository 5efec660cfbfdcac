// Deno's permission errors end in "run again with the --allow-read flag",
// which is no advice for a daemon: its permissions come from its context,
// and for /proc and /sys no --allow-read is enough in Deno 2.9 (it wants
// --allow-all). This rewrites that advice into what works.
import type { RemoteErrorInfo } from "../errors.ts";

/** The context the daemon serves, as the advice names it. */
export interface HintContext {
  /** The context's export name. */
  name: string;
  /** Its TOML section, when it has one. */
  cfgSection?: string;
}

const DENO_ADVICE =
  /^Requires (\w+) access to (.*?), (?:run again with the --allow-\w+ flag|specify the required permissions during compilation.*)$/s;

/** Paths Deno 2.9 reads or writes only with all permissions. */
const ALL_ONLY = /^"\/(?:proc|sys)(?:\/|")/;

function where(ctx: HintContext): string {
  return ctx.cfgSection
    ? `of the context ${ctx.name} (in its TOML section [${ctx.cfgSection}], or in new PrivContext())`
    : `of the context ${ctx.name} (in new PrivContext())`;
}

/**
 * The advice for a Deno permission error thrown in the daemon, or `info`
 * unchanged for any other error.
 */
export function permissionHint(
  info: RemoteErrorInfo,
  ctx: HintContext,
): RemoteErrorInfo {
  if (info.name !== "NotCapable" && info.name !== "PermissionDenied") {
    return info;
  }
  const m = DENO_ADVICE.exec(info.message);
  if (!m) return info;
  const [, kind, target] = m;
  const needsAll = kind === "all" || ALL_ONLY.test(target);
  const advice = needsAll
    ? `Deno ${
      Deno.version.deno.split(".").slice(0, 2).join(".")
    } opens /proc, /sys and most of /dev only with all permissions, whatever --allow-read says: set permissions = "all" ${
      where(ctx)
    }, or read it in the caller and pass the value`
    : `the daemon's Deno permissions come from its context, not from flags: add it to permissions.${kind} ${
      where(ctx)
    }`;
  return {
    ...info,
    message: `Requires ${kind} access to ${target}: ${advice}`,
  };
}
