/**
 * The daemon's serving stage: it runs with exactly its context's
 * credentials (the first stage made sure of that before `execve`), loads the
 * context's entrypoint modules, says hello, and serves calls from stdin to
 * stdout until stdin closes.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseLogLevel } from "@logtape/logtape";
import { fileURLToPath } from "node:url";
import type { RemoteErrorInfo } from "../errors.ts";
import { connectKeeper } from "./_children.ts";
import {
  entrypointsOf,
  findContext,
  setDaemonMode,
} from "../core/_registry.ts";
import { DEFAULT_MAX_FRAME_BYTES } from "../protocol/frame.ts";
import { encodeMessage, Kind, PROTOCOL_VERSION } from "../protocol/messages.ts";
import { warmCodec } from "../protocol/_warm.ts";
import { permissionHint } from "./_permission_hint.ts";
import { moduleFiles } from "../core/_modules.ts";
import { Audit } from "./_audit.ts";
import { bridgeLogs } from "./_log_bridge.ts";
import { Outbox } from "./_outbox.ts";
import { Session } from "./_session.ts";
import { warmSession } from "./_warm_session.ts";
import { trackTimers } from "./_timers.ts";
import { channelReader, parseIdleRead } from "./_idle_read.ts";

/**
 * Runs the serving stage until stdin closes.
 *
 * @example
 * ```ts ignore
 * await serveDaemon(["--context=file:///opt/app/privsep/mod.ts#sysAdmin", "--concurrency=4"]);
 * ```
 */
export async function serveDaemon(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      context: { type: "string" },
      concurrency: { type: "string" },
      uid: { type: "string" },
      gid: { type: "string" },
      capabilities: { type: "string" },
      "queue-limit": { type: "string" },
      "caller-pid": { type: "string" },
      "caller-uid": { type: "string" },
      "caller-pid-unknown": { type: "string" },
      "cancel-grace-ms": { type: "string" },
      "idle-read": { type: "string" },
      "log-daemon-traceback": { type: "boolean" },
      "log-level": { type: "string" },
      keeper: { type: "string" },
      cgroup: { type: "string" },
      "cgroup-missing": { type: "string" },
      unconfined: { type: "string", multiple: true },
    },
    strict: true,
  });
  const contextId = values.context ?? "";
  const concurrency = Number(values.concurrency ?? "1");
  const withStack = values["log-daemon-traceback"] ?? false;
  const channel = await channelReader(parseIdleRead(values["idle-read"]));
  // Before any entrypoint can start a process (see _keeper.ts).
  if (values.keeper) connectKeeper(values.keeper, values.cgroup);
  const out = new Outbox();
  setDaemonMode();
  // Everything the daemon (and its entrypoints) log goes to the caller.
  const log = await bridgeLogs(
    out,
    parseLogLevel(values["log-level"] ?? "info"),
  );

  // Before any entrypoint module loads: the idle read must not delay a timer.
  const timers = trackTimers();
  const [moduleUrl] = contextId.split("#");
  await import(moduleUrl);
  const ctx = findContext(contextId);
  if (!ctx) throw new Error(`no PrivContext ${contextId}`);
  for (const file of moduleFiles(fileURLToPath(ctx.prefix))) await import(file);
  const maxFrameBytes = ctx.options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;

  const callerPid = Number(values["caller-pid"] ?? "0") || null;
  const callerUid = values["caller-uid"] === undefined
    ? null
    : Number(values["caller-uid"]);
  // Why callerPid is null although the caller is known (through sudo).
  const callerPidUnknown = values["caller-pid-unknown"];
  const audit = new Audit({
    context: contextId,
    callerUid,
    callerPid,
    ...(callerPidUnknown ? { callerPidUnknown } : {}),
    daemonPid: Deno.pid,
  }, (frame) => out.send(frame));

  // How calls are run and answered: the same for the warm-up (below).
  const shape = {
    concurrency,
    queueLimit: Number(values["queue-limit"] ?? "1000"),
    graceMs: Number(values["cancel-grace-ms"] ?? "2000"),
    limits: {
      maxFrameBytes,
      withStack,
      hint: (info: RemoteErrorInfo) => permissionHint(info, ctx),
    },
  };
  out.send(encodeMessage([Kind.Hello, {
    v: PROTOCOL_VERSION,
    pid: Deno.pid,
    context: contextId,
    maxFrameBytes,
    concurrency,
    deno: Deno.version.deno,
    // What the kernel says now, after the exec (the caller also reads
    // /proc/<pid>/task/*/status when it can).
    uid: Deno.uid(),
    gid: Deno.gid(),
    capabilities: (values.capabilities ?? "").split(",").filter(Boolean).map(
      Number,
    ),
  }]));
  if (values["cgroup-missing"]) {
    log(
      "warning",
      `the daemon runs without a cgroup of its own: ${
        values["cgroup-missing"]
      }; a process that its commands start and that leaves its process group (setsid, a daemonizing program) outlives its call and the daemon`,
    );
  }
  // What of the context's kernel sandbox this kernel could not enforce.
  for (const what of values.unconfined ?? []) {
    log("warning", `kernel sandbox not enforced: ${what}`);
  }

  // After the hello, while the caller reads it and checks this process: the
  // first call bringing a new kind of value must not pay for the codec's
  // compilation (see protocol/_warm.ts), nor the first thousands of calls
  // for the serving code's (see _warm_session.ts). No entrypoint runs.
  warmCodec();
  try {
    warmSession(shape);
  } catch (error) {
    // It only saves time: serve without it, and say so.
    log("warning", `serving without the warm-up, which failed: ${error}`);
  }
  // The serving session is made after the warm-up's. Made before it, each
  // call grew V8's old generation by ~150 bytes (allocated there directly,
  // not promoted) that only a full collection freed; made after, by none.
  // Why V8 allocates so for a session made before was not found
  // (bench/HISTORY.md, 2026-12-05).
  const session = new Session({
    contextName: ctx.name,
    entrypoints: entrypointsOf(ctx),
    ...shape,
    out,
    log,
    audit,
    timers,
    channel,
  });
  // sudo relays these from the caller (who may signal its own sudo): leave
  // the same way, children first, once, whatever signals follow (systemd
  // stopping a service signals the daemon and its sudo, which relays). A
  // blocked daemon runs no handler; its SIGKILL leaves the rest to the
  // kernel (see _keeper.ts).
  for (
    const [name, number] of [["SIGTERM", 15], ["SIGHUP", 1], [
      "SIGINT",
      2,
    ]] as const
  ) {
    Deno.addSignalListener(name, () => void session.leave(128 + number));
  }
  return await session.serve();
}
