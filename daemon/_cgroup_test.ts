// The daemon's cgroup: where stage 1 may make it. delegatedAbove() is pure
// given the owners; createCgroup() runs against the real cgroup2 hierarchy
// (as root, in this process's own cgroup).
import assert from "node:assert/strict";
import {
  cgroupDir,
  createCgroup,
  daemonAlive,
  delegatedAbove,
  KeeperHomeError,
  keeperHomes,
  type Owner,
  pickKeeperHome,
} from "./_cgroup.ts";

const MOUNT = "/sys/fs/cgroup";
const UNIT = `${MOUNT}/system.slice/app.service`;

function owners(table: Record<string, Owner>) {
  return (path: string): Owner | undefined =>
    table[path] ??
      { uid: 0, mode: path.endsWith("cgroup.procs") ? 0o644 : 0o755 };
}

Deno.test("delegatedAbove() accepts a cgroup that is root's up to the hierarchy's root", () => {
  assert.equal(delegatedAbove(UNIT, MOUNT, owners({})), undefined);
  assert.equal(delegatedAbove(MOUNT, MOUNT, owners({})), undefined);
});

Deno.test("delegatedAbove() names a delegated unit's cgroup (systemd's Delegate=yes with User=)", () => {
  const delegated = owners({
    [UNIT]: { uid: 1001, mode: 0o755 },
    [`${UNIT}/cgroup.procs`]: { uid: 1001, mode: 0o644 },
  });
  assert.equal(
    delegatedAbove(UNIT, MOUNT, delegated),
    `${UNIT} is owned by uid 1001`,
  );
  // Below it too: the common ancestor of a move may be any cgroup above.
  assert.equal(
    delegatedAbove(`${UNIT}/sub`, MOUNT, delegated),
    `${UNIT} is owned by uid 1001`,
  );
});

Deno.test("delegatedAbove() names a cgroup.procs others may write, and one it cannot inspect", () => {
  assert.equal(
    delegatedAbove(
      UNIT,
      MOUNT,
      owners({
        [`${MOUNT}/system.slice/cgroup.procs`]: { uid: 0, mode: 0o664 },
      }),
    ),
    `${MOUNT}/system.slice/cgroup.procs is writable by its group`,
  );
  assert.equal(
    delegatedAbove(
      UNIT,
      MOUNT,
      (p) => p === UNIT ? undefined : { uid: 0, mode: 0o755 },
    ),
    `${UNIT} cannot be inspected`,
  );
});

Deno.test("keeperHomes() lists privsep-keepers below every cgroup above a delegated one that only root may write, nearest first", () => {
  const delegated = owners({
    [UNIT]: { uid: 1001, mode: 0o755 },
    [`${UNIT}/cgroup.procs`]: { uid: 1001, mode: 0o644 },
  });
  assert.deepEqual(keeperHomes(`${UNIT}/sub`, MOUNT, delegated), [
    `${MOUNT}/system.slice/privsep-keepers`,
    `${MOUNT}/privsep-keepers`,
  ]);
  // A slice the user may write is skipped, not a reason to stop.
  const slice = owners({
    [`${MOUNT}/system.slice`]: { uid: 1001, mode: 0o755 },
  });
  assert.deepEqual(keeperHomes(UNIT, MOUNT, slice), [
    `${MOUNT}/privsep-keepers`,
  ]);
  const all = (path: string): Owner => ({
    uid: 1001,
    mode: path.endsWith("cgroup.procs") ? 0o644 : 0o755,
  });
  assert.deepEqual(keeperHomes(UNIT, MOUNT, all), []);
});

/** Steps that record what they did and fail where `fail` says. */
function steps(fail: Record<string, string>) {
  const done: string[] = [];
  const step = (kind: string) => (path: string) => {
    done.push(`${kind} ${path}`);
    return fail[`${kind} ${path}`];
  };
  return { done, steps: { mkdir: step("mkdir"), unsafe: step("unsafe") } };
}

Deno.test("pickKeeperHome() takes the first home it can make that only root may write", () => {
  const homes = [`${MOUNT}/a/privsep-keepers`, `${MOUNT}/privsep-keepers`];
  // A cgroup.max.descendants above the user's cgroup, filled by that user,
  // fails the nearest mkdir (a second reading): the next one up is used.
  const { done, steps: s } = steps({
    [`mkdir ${homes[0]}`]: "mkdir: Resource temporarily unavailable",
  });
  assert.equal(pickKeeperHome(homes, UNIT, MOUNT, s), homes[1]);
  assert.deepEqual(done, [
    `mkdir ${homes[0]}`,
    `mkdir ${homes[1]}`,
    `unsafe ${homes[1]}`,
  ]);
});

Deno.test("pickKeeperHome() refuses where no home will do, and says why", () => {
  const home = `${MOUNT}/privsep-keepers`;
  const none = steps({
    [`unsafe ${home}`]: `${home} is writable by its group`,
  });
  assert.throws(
    () => pickKeeperHome([home], UNIT, MOUNT, none.steps),
    (e: Error) =>
      e instanceof KeeperHomeError &&
      e.message.includes(`${home} is writable by its group`) &&
      e.message.includes(`the caller's cgroup ${UNIT} is delegated`) &&
      e.message.includes("Delegate=yes"),
  );
  assert.throws(
    () => pickKeeperHome([], UNIT, MOUNT, none.steps),
    /every cgroup up to \/sys\/fs\/cgroup may be written/,
  );
});

Deno.test("daemonAlive() takes a cgroup for its daemon's only while a process of that pid has the recorded start time", () => {
  const record = new Map([["/cg/privsep-7", "500"]]);
  const recorded = (dir: string) => record.get(dir);
  const alive = (dir: string, start: string | undefined) =>
    daemonAlive(dir, "7", recorded, () => start);
  assert.equal(alive("/cg/privsep-7", "500"), true);
  // The pid of a dead daemon, taken by a process forked later.
  assert.equal(alive("/cg/privsep-7", "9123"), false);
  // No process (or a zombie) of that pid.
  assert.equal(alive("/cg/privsep-7", undefined), false);
  // A cgroup made before the record existed: the pid alone.
  assert.equal(alive("/cg/privsep-8", "9123"), true);
  assert.equal(alive("/cg/privsep-8", undefined), false);
});

Deno.test("createCgroup() replaces a dead daemon's cgroup of the same pid instead of taking it", async () => {
  assert.equal(Deno.uid(), 0, "this test needs root: run it as root");
  const own = cgroupDir(
    Deno.readTextFileSync("/proc/self/mountinfo"),
    Deno.readTextFileSync("/proc/self/cgroup"),
  );
  if (!("path" in own)) {
    throw new Error(
      `this kernel has no cgroup2 hierarchy for this process (${own.missing}): the daemon's cgroup cannot be tested here`,
    );
  }
  const path = `${own.path}/privsep-${Deno.pid}`;
  await Deno.mkdir(path);
  try {
    // As a dead daemon of another context's user (65534) left it.
    await Deno.chown(`${path}/cgroup.kill`, 65534, 65534);
    const before = (await Deno.stat(path)).ino;
    const made = createCgroup();
    assert.deepEqual(made, { path });
    assert.notEqual(
      (await Deno.stat(path)).ino,
      before,
      "the old cgroup was kept",
    );
    // Root's: the keeper gets it open, the daemon's user may not chmod it.
    assert.equal((await Deno.stat(`${path}/cgroup.kill`)).uid, 0);
    // It records this process's start time: a process that gets this pid
    // later has another one, and its cgroup counts as a dead daemon's.
    assert.equal(daemonAlive(path, String(Deno.pid)), true);
    assert.equal(
      daemonAlive(path, String(Deno.pid), undefined, () => "1"),
      false,
    );
  } finally {
    await Deno.remove(path).catch(() => {});
  }
});
