/**
 * privsep: privilege separation for Deno services. Define a
 * {@linkcode PrivContext} (capabilities, user, Deno permissions, timeout),
 * bind narrow privileged functions to it with `entrypoint`, and call them
 * like any async function: each call runs in a helper daemon started through
 * sudo and reduced to exactly that context, over stdio as length-prefixed
 * msgpack.
 *
 * @example
 * ```ts ignore
 * // app/privsep/mod.ts
 * import { caps, PrivContext } from "@privsep/privsep";
 * export const sysAdmin = new PrivContext({
 *   module: import.meta,
 *   name: "sysAdmin",
 *   cfgSection: "app_sys_admin",
 *   capabilities: [caps.CAP_CHOWN, caps.CAP_DAC_OVERRIDE],
 * });
 *
 * // app/privsep/motd.ts
 * import { sysAdmin } from "./mod.ts";
 * export const updateMotd = sysAdmin.entrypoint(
 *   import.meta,
 *   async function updateMotd(message: string): Promise<void> {
 *     await Deno.writeTextFile("/etc/motd", message);
 *   },
 * );
 *
 * // app/main.ts
 * import * as motd from "./privsep/motd.ts";
 * await motd.updateMotd("This node is currently idle");
 * ```
 *
 * @example Run an entrypoint in-process, as a unit test does
 * ```ts
 * import { PrivContext } from "@privsep/privsep";
 * import { inProcess } from "@privsep/privsep/testing";
 * import assert from "node:assert/strict";
 *
 * const ops = new PrivContext({
 *   module: "file:///virtual/mod/privsep/mod.ts", // import.meta in real code
 *   name: "ops",
 *   capabilities: [],
 * });
 * const hostname = ops.entrypoint(
 *   "file:///virtual/mod/privsep/host.ts", // import.meta in real code
 *   function hostname(): string {
 *     return "node-1"; // a stand-in for privileged work
 *   },
 * );
 *
 * using _ = inProcess(); // no daemon, no privilege; still through the codec
 * assert.equal(await hostname(), "node-1");
 * ```
 *
 * @module
 */

export * as caps from "./caps/table.ts";
export {
  type DaemonInfo,
  type DaemonStatus,
  PrivContext,
  setClientMode,
} from "./contexts/priv_context.ts";
export {
  init,
  type PrivContextOptions,
  type ResolvedSettings,
  resolveSettings,
  type StartMethod,
} from "./core/settings.ts";
export {
  daemonArgv,
  daemonCommand,
  type DaemonCommandSpec,
  findDenoConfig,
  launcherDigest,
  launcherPath,
  launcherScript,
  sudoersRule,
  type SudoersRuleOptions,
} from "./core/command.ts";
export {
  ConfigError,
  type ContextSettings,
  type DenoPermissions,
  type PermissionList,
  type PermissionsSetting,
} from "./core/config.ts";
export {
  type EntrypointOptions,
  InvalidArgument,
  type StandardIssue,
  type StandardResult,
  type StandardSchemaV1,
} from "./core/schema.ts";
export { type CallOptions, callSignal, callWith } from "./core/call_scope.ts";
export {
  sleep,
  type SleepOptions,
  throwIfCancelled,
} from "./contexts/cancel.ts";
export {
  runCommand,
  type RunCommandOptions,
  type RunCommandResult,
} from "./daemon/run_command.ts";
export {
  DaemonExitedError,
  FailedToDropPrivileges,
  PrivsepQueueFull,
  PrivsepTimeout,
  ProtocolError,
  RemoteError,
  type RemoteErrorInfo,
} from "./errors.ts";
