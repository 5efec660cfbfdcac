// The capability bits of linux/capability.h, each documented in one line
// summarised from capabilities(7). CAPABILITIES below lists them all by name
// and carries the example for the whole table.

/** Make arbitrary changes to file UIDs and GIDs. */
export const CAP_CHOWN = 0;
/** Bypass file read, write, and execute permission checks. */
export const CAP_DAC_OVERRIDE = 1;
/** Bypass file read permission checks and directory read and execute permission checks. */
export const CAP_DAC_READ_SEARCH = 2;
/** Bypass permission checks on operations that normally require the file system UID of the process to match the UID of the file. */
export const CAP_FOWNER = 3;
/** Don't clear set-user-ID and set-group-ID mode bits when a file is modified. */
export const CAP_FSETID = 4;
/** Bypass permission checks for sending signals. */
export const CAP_KILL = 5;
/** Make arbitrary manipulations of process GIDs and the supplementary GID list. */
export const CAP_SETGID = 6;
/** Make arbitrary manipulations of process UIDs. */
export const CAP_SETUID = 7;
/** Modify the bounding set and securebits, and grant permitted capabilities to the inheritable set. */
export const CAP_SETPCAP = 8;
/** Set the `FS_APPEND_FL` and `FS_IMMUTABLE_FL` inode flags. */
export const CAP_LINUX_IMMUTABLE = 9;
/** Bind a socket to Internet domain privileged ports (below 1024). */
export const CAP_NET_BIND_SERVICE = 10;
/** Make socket broadcasts and listen to multicasts (unused by the kernel). */
export const CAP_NET_BROADCAST = 11;
/** Perform network administration: interfaces, routing, firewall, and more. */
export const CAP_NET_ADMIN = 12;
/** Use RAW and PACKET sockets, and bind to any address for transparent proxying. */
export const CAP_NET_RAW = 13;
/** Lock memory (`mlock`, `mlockall`, `mmap`, `shmctl`). */
export const CAP_IPC_LOCK = 14;
/** Bypass permission checks for operations on System V IPC objects. */
export const CAP_IPC_OWNER = 15;
/** Load and unload kernel modules. */
export const CAP_SYS_MODULE = 16;
/** Perform I/O port operations and access `/dev/mem` and raw devices. */
export const CAP_SYS_RAWIO = 17;
/** Use `chroot` and change mount namespaces with `setns`. */
export const CAP_SYS_CHROOT = 18;
/** Trace arbitrary processes with `ptrace` and inspect them. */
export const CAP_SYS_PTRACE = 19;
/** Use `acct` to switch process accounting on or off. */
export const CAP_SYS_PACCT = 20;
/** Perform a wide range of system administration operations (mount, namespaces, and much more). */
export const CAP_SYS_ADMIN = 21;
/** Use `reboot` and `kexec_load`. */
export const CAP_SYS_BOOT = 22;
/** Raise process nice values and set real-time scheduling and CPU affinity of arbitrary processes. */
export const CAP_SYS_NICE = 23;
/** Override resource limits and quotas. */
export const CAP_SYS_RESOURCE = 24;
/** Set the system clock and the real-time hardware clock. */
export const CAP_SYS_TIME = 25;
/** Use `vhangup` and privileged `ioctl` operations on virtual terminals. */
export const CAP_SYS_TTY_CONFIG = 26;
/** Create special files using `mknod`. */
export const CAP_MKNOD = 27;
/** Establish leases on arbitrary files. */
export const CAP_LEASE = 28;
/** Write records to the kernel auditing log. */
export const CAP_AUDIT_WRITE = 29;
/** Enable and disable kernel auditing and change its filter rules. */
export const CAP_AUDIT_CONTROL = 30;
/** Set arbitrary capabilities on a file. */
export const CAP_SETFCAP = 31;
/** Override Mandatory Access Control (used by Smack). */
export const CAP_MAC_OVERRIDE = 32;
/** Change Mandatory Access Control configuration (used by Smack). */
export const CAP_MAC_ADMIN = 33;
/** Perform privileged `syslog` operations and see kernel addresses. */
export const CAP_SYSLOG = 34;
/** Trigger something that will wake up the system. */
export const CAP_WAKE_ALARM = 35;
/** Employ features that can block system suspend. */
export const CAP_BLOCK_SUSPEND = 36;
/** Read the audit log via a multicast netlink socket. */
export const CAP_AUDIT_READ = 37;
/** Employ performance monitoring and observability operations. */
export const CAP_PERFMON = 38;
/** Employ privileged BPF operations. */
export const CAP_BPF = 39;
/** Perform checkpoint/restore operations (e.g. set `ns_last_pid`). */
export const CAP_CHECKPOINT_RESTORE = 40;

/**
 * The highest capability bit known to this module (`CAP_CHECKPOINT_RESTORE`,
 * Linux 5.9). The running kernel may know fewer or more.
 *
 * @example Usage
 * ```ts
 * import { CAP_LAST_CAP } from "@privsep/privsep/caps";
 * import assert from "node:assert/strict";
 *
 * assert.equal(CAP_LAST_CAP, 40);
 * ```
 */
export const CAP_LAST_CAP = 40;

/**
 * The name of a capability known to this module, in the kernel's spelling.
 *
 * @example Usage
 * ```ts
 * import type { CapabilityName } from "@privsep/privsep/caps";
 *
 * const name: CapabilityName = "CAP_NET_ADMIN";
 * ```
 */
export type CapabilityName =
  | "CAP_CHOWN"
  | "CAP_DAC_OVERRIDE"
  | "CAP_DAC_READ_SEARCH"
  | "CAP_FOWNER"
  | "CAP_FSETID"
  | "CAP_KILL"
  | "CAP_SETGID"
  | "CAP_SETUID"
  | "CAP_SETPCAP"
  | "CAP_LINUX_IMMUTABLE"
  | "CAP_NET_BIND_SERVICE"
  | "CAP_NET_BROADCAST"
  | "CAP_NET_ADMIN"
  | "CAP_NET_RAW"
  | "CAP_IPC_LOCK"
  | "CAP_IPC_OWNER"
  | "CAP_SYS_MODULE"
  | "CAP_SYS_RAWIO"
  | "CAP_SYS_CHROOT"
  | "CAP_SYS_PTRACE"
  | "CAP_SYS_PACCT"
  | "CAP_SYS_ADMIN"
  | "CAP_SYS_BOOT"
  | "CAP_SYS_NICE"
  | "CAP_SYS_RESOURCE"
  | "CAP_SYS_TIME"
  | "CAP_SYS_TTY_CONFIG"
  | "CAP_MKNOD"
  | "CAP_LEASE"
  | "CAP_AUDIT_WRITE"
  | "CAP_AUDIT_CONTROL"
  | "CAP_SETFCAP"
  | "CAP_MAC_OVERRIDE"
  | "CAP_MAC_ADMIN"
  | "CAP_SYSLOG"
  | "CAP_WAKE_ALARM"
  | "CAP_BLOCK_SUSPEND"
  | "CAP_AUDIT_READ"
  | "CAP_PERFMON"
  | "CAP_BPF"
  | "CAP_CHECKPOINT_RESTORE";

/**
 * Every capability known to this module, by name: the same bits as the
 * `CAP_*` constants. The object is frozen.
 *
 * @example Usage
 * ```ts
 * import {
 *   CAP_CHOWN,
 *   CAP_NET_ADMIN,
 *   CAPABILITIES,
 *   capabilityName,
 * } from "@privsep/privsep/caps";
 * import assert from "node:assert/strict";
 *
 * assert.equal(CAP_CHOWN, 0);
 * assert.equal(CAPABILITIES.CAP_NET_ADMIN, CAP_NET_ADMIN);
 * assert.equal(capabilityName(CAP_NET_ADMIN), "CAP_NET_ADMIN");
 * assert.equal(Object.keys(CAPABILITIES).length, 41);
 * ```
 */
export const CAPABILITIES: Readonly<Record<CapabilityName, number>> = Object
  .freeze({
    CAP_CHOWN,
    CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH,
    CAP_FOWNER,
    CAP_FSETID,
    CAP_KILL,
    CAP_SETGID,
    CAP_SETUID,
    CAP_SETPCAP,
    CAP_LINUX_IMMUTABLE,
    CAP_NET_BIND_SERVICE,
    CAP_NET_BROADCAST,
    CAP_NET_ADMIN,
    CAP_NET_RAW,
    CAP_IPC_LOCK,
    CAP_IPC_OWNER,
    CAP_SYS_MODULE,
    CAP_SYS_RAWIO,
    CAP_SYS_CHROOT,
    CAP_SYS_PTRACE,
    CAP_SYS_PACCT,
    CAP_SYS_ADMIN,
    CAP_SYS_BOOT,
    CAP_SYS_NICE,
    CAP_SYS_RESOURCE,
    CAP_SYS_TIME,
    CAP_SYS_TTY_CONFIG,
    CAP_MKNOD,
    CAP_LEASE,
    CAP_AUDIT_WRITE,
    CAP_AUDIT_CONTROL,
    CAP_SETFCAP,
    CAP_MAC_OVERRIDE,
    CAP_MAC_ADMIN,
    CAP_SYSLOG,
    CAP_WAKE_ALARM,
    CAP_BLOCK_SUSPEND,
    CAP_AUDIT_READ,
    CAP_PERFMON,
    CAP_BPF,
    CAP_CHECKPOINT_RESTORE,
  });

const NAMES: readonly string[] = Object.keys(CAPABILITIES).sort((a, b) =>
  CAPABILITIES[a as CapabilityName] - CAPABILITIES[b as CapabilityName]
);

/**
 * Returns the kernel name of a capability bit, such as `"CAP_CHOWN"` for 0.
 * A bit above {@linkcode CAP_LAST_CAP} that a newer kernel may define is
 * named `"CAP_<n>"`.
 *
 * @param value The capability bit, an integer from 0 to 63.
 * @returns The capability's name.
 * @throws {RangeError} If `value` is not an integer from 0 to 63.
 *
 * @example Usage
 * ```ts
 * import { capabilityName } from "@privsep/privsep/caps";
 * import assert from "node:assert/strict";
 *
 * assert.equal(capabilityName(0), "CAP_CHOWN");
 * assert.equal(capabilityName(12), "CAP_NET_ADMIN");
 * assert.equal(capabilityName(41), "CAP_41");
 * ```
 */
export function capabilityName(value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > 63) {
    throw new RangeError(
      `Cannot name capability ${
        String(value)
      }: expected an integer from 0 to 63`,
    );
  }
  return NAMES[value] ?? `CAP_${value}`;
}
