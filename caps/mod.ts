/**
 * Linux capabilities: the kernel's capability table, parsing and formatting
 * of capability names and masks, and reading the credentials of every thread
 * of a process from `/proc`.
 *
 * ```ts
 * import {
 *   CAP_NET_ADMIN,
 *   capabilitiesToMask,
 *   formatCapabilities,
 *   parseCapabilities,
 * } from "@privsep/privsep/caps";
 * import assert from "node:assert/strict";
 *
 * const keep = parseCapabilities(["net_admin", "CAP_CHOWN"]);
 * assert.deepEqual(keep, [0, CAP_NET_ADMIN]);
 * assert.equal(capabilitiesToMask(keep), 0x1001n);
 * assert.deepEqual(formatCapabilities(keep), ["CAP_CHOWN", "CAP_NET_ADMIN"]);
 * ```
 *
 * @module
 */

export * from "./table.ts";
export * from "./parse.ts";
export * from "./proc.ts";
export { kernelLastCap } from "./_drop.ts";
