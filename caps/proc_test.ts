import assert from "node:assert/strict";
import {
  describeCredentials,
  parseProcStatus,
  readProcessCredentials,
  readProcessCredentialsSync,
  type StatusCredentials,
} from "./proc.ts";

/** `cat /proc/self/status` as root on the development machine (Linux 6.x). */
const CAT_STATUS = `Name:\tcat
Umask:\t0022
State:\tR (running)
Tgid:\t3319
Ngid:\t0
Pid:\t3319
PPid:\t3316
TracerPid:\t0
Uid:\t0\t0\t0\t0
Gid:\t0\t0\t0\t0
FDSize:\t256
Groups:\t 
NStgid:\t3319
NSpid:\t3319
NSpgid:\t3316
NSsid:\t2050
Kthread:\t0
VmPeak:\t    3060 kB
VmSize:\t    3060 kB
VmLck:\t       0 kB
VmPin:\t       0 kB
VmHWM:\t    1760 kB
VmRSS:\t    1760 kB
RssAnon:\t     116 kB
RssFile:\t    1644 kB
RssShmem:\t       0 kB
VmData:\t     360 kB
VmStk:\t     132 kB
VmExe:\t      20 kB
VmLib:\t    1528 kB
VmPTE:\t      48 kB
VmSwap:\t       0 kB
HugetlbPages:\t       0 kB
CoreDumping:\t0
THP_enabled:\t1
untag_mask:\t0xffffffffffffffff
Threads:\t1
SigQ:\t0/96365
SigPnd:\t0000000000000000
ShdPnd:\t0000000000000000
SigBlk:\t0000000000000000
SigIgn:\t0000000000000000
SigCgt:\t0000000000000000
CapInh:\t0000000000000000
CapPrm:\t000001fffeffffff
CapEff:\t000001fffeffffff
CapBnd:\t000001fffeffffff
CapAmb:\t0000000000000000
NoNewPrivs:\t0
Seccomp:\t0
Seccomp_filters:\t0
Speculation_Store_Bypass:\tvulnerable
SpeculationIndirectBranch:\talways enabled
Cpus_allowed:\t3
Cpus_allowed_list:\t0-1
Mems_allowed:\t00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000001
Mems_allowed_list:\t0
voluntary_ctxt_switches:\t1
nonvoluntary_ctxt_switches:\t0
`;

const LIMITED_STATUS = [
  "Name:\tdeno serve",
  "Uid:\t1000\t1001\t1002\t1003",
  "Gid:\t2000\t2001\t2002\t2003",
  "Groups:\t4 24 27 ",
  "CapInh:\t0000000000001001",
  "CapPrm:\t0000000000001001",
  "CapEff:\t0000000000001000",
  "CapBnd:\t0000000000001001",
  "CapAmb:\t0000000000001001",
  "NoNewPrivs:\t1",
  "",
].join("\n");

Deno.test("parseProcStatus() parses a real status file", () => {
  const all = 0x1fffeffffffn; // every capability but CAP_SYS_RESOURCE (24)
  assert.deepEqual(parseProcStatus(CAT_STATUS), {
    name: "cat",
    uid: { real: 0, effective: 0, saved: 0, fs: 0 },
    gid: { real: 0, effective: 0, saved: 0, fs: 0 },
    groups: [],
    capInh: 0n,
    capPrm: all,
    capEff: all,
    capBnd: all,
    capAmb: 0n,
    noNewPrivs: false,
    seccomp: 0,
    seccompFilters: 0,
  });
});

Deno.test("parseProcStatus() parses distinct IDs, groups and sets", () => {
  const status = parseProcStatus(LIMITED_STATUS);
  assert.equal(status.name, "deno serve");
  assert.deepEqual(status.uid, {
    real: 1000,
    effective: 1001,
    saved: 1002,
    fs: 1003,
  });
  assert.deepEqual(status.gid, {
    real: 2000,
    effective: 2001,
    saved: 2002,
    fs: 2003,
  });
  assert.deepEqual(status.groups, [4, 24, 27]);
  assert.equal(status.capInh, 0x1001n);
  assert.equal(status.capEff, 0x1000n);
  assert.equal(status.capAmb, 0x1001n);
  assert.equal(status.noNewPrivs, true);
  assert.equal(status.seccomp, undefined);
  assert.ok(!("seccomp" in status));
});

Deno.test("parseProcStatus() parses the full 64-bit width of a set", () => {
  const text = LIMITED_STATUS.replace(
    "CapBnd:\t0000000000001001",
    "CapBnd:\tffffffffffffffff",
  );
  assert.equal(parseProcStatus(text).capBnd, (1n << 64n) - 1n);
});

Deno.test("parseProcStatus() rejects a missing or malformed line", () => {
  const cases: [string, RegExp][] = [
    [LIMITED_STATUS.replace(/^CapAmb:.*\n/m, ""), /no "CapAmb" line/],
    [LIMITED_STATUS.replace(/^NoNewPrivs:.*\n/m, ""), /no "NoNewPrivs" line/],
    [
      LIMITED_STATUS.replace("1000\t1001\t1002\t1003", "0\t0\t0"),
      /4 IDs.*"Uid"/,
    ],
    [LIMITED_STATUS.replace("Gid:\t2000", "Gid:\tx"), /malformed "Gid"/],
    [LIMITED_STATUS.replace("CapEff:\t0", "CapEff:\tz"), /malformed "CapEff"/],
    ["", /no "Name" line/],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseProcStatus(text), SyntaxError);
    assert.throws(() => parseProcStatus(text), message);
  }
});

Deno.test("describeCredentials() gives a short line", () => {
  assert.equal(
    describeCredentials(parseProcStatus(LIMITED_STATUS)),
    "uid=1000/1001/1002/1003 gid=2000/2001/2002/2003 groups=4,24,27 " +
      "eff=[CAP_NET_ADMIN] prm=[CAP_CHOWN,CAP_NET_ADMIN] " +
      "inh=[CAP_CHOWN,CAP_NET_ADMIN] bnd=[CAP_CHOWN,CAP_NET_ADMIN] " +
      "amb=[CAP_CHOWN,CAP_NET_ADMIN] nnp=1",
  );
  const none: StatusCredentials = {
    ...parseProcStatus(CAT_STATUS),
    capPrm: 0n,
    capEff: 0n,
    capBnd: 0n,
  };
  assert.equal(
    describeCredentials(none),
    "uid=0/0/0/0 gid=0/0/0/0 groups= eff=[] prm=[] inh=[] bnd=[] amb=[] nnp=0",
  );
});

Deno.test("readProcessCredentials() reads every thread of this process", async () => {
  const { pid, threads } = await readProcessCredentials("self");
  assert.equal(pid, Deno.pid);
  assert.ok(threads.length >= 1);
  const tids = threads.map((thread) => thread.tid);
  assert.ok(tids.includes(Deno.pid));
  assert.deepEqual(tids, [...new Set(tids)].sort((a, b) => a - b));
  for (const thread of threads) {
    assert.equal(thread.uid.real, Deno.uid());
    assert.equal(thread.gid.real, Deno.gid());
    assert.equal(typeof thread.capEff, "bigint");
    assert.equal(thread.capEff & ~thread.capPrm, 0n);
    assert.equal(typeof thread.noNewPrivs, "boolean");
  }
});

Deno.test("readProcessCredentialsSync() reads every thread of this process", () => {
  const { pid, threads } = readProcessCredentialsSync(Deno.pid);
  assert.equal(pid, Deno.pid);
  assert.ok(threads.length >= 1);
  assert.ok(threads.some((thread) => thread.tid === Deno.pid));
  if (Deno.uid() === 0) assert.equal(threads[0].uid.effective, 0);
});

Deno.test("readProcessCredentials() reads a child process by pid", async () => {
  const child = new Deno.Command("sleep", {
    args: ["30"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    // Wait for the exec: until then the child still runs as a Deno thread.
    let credentials = await readProcessCredentials(child.pid);
    for (let i = 0; credentials.threads[0].name !== "sleep" && i < 100; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      credentials = await readProcessCredentials(child.pid);
    }
    assert.equal(credentials.pid, child.pid);
    assert.equal(credentials.threads.length, 1);
    const [thread] = credentials.threads;
    assert.equal(thread.tid, child.pid);
    assert.equal(thread.name, "sleep");
    assert.equal(thread.uid.real, Deno.uid());
    assert.deepEqual(readProcessCredentialsSync(child.pid), credentials);
  } finally {
    child.kill();
    await child.status;
  }
});

Deno.test("readProcessCredentials() throws NotFound for a missing process", async () => {
  const pidMax = Number(
    await Deno.readTextFile("/proc/sys/kernel/pid_max"),
  );
  const missing = pidMax + 1;
  await assert.rejects(
    readProcessCredentials(missing),
    (error: unknown) => {
      assert.ok(error instanceof Deno.errors.NotFound);
      assert.match(error.message, new RegExp(`\\b${missing}\\b`));
      return true;
    },
  );
  assert.throws(
    () => readProcessCredentialsSync(missing),
    Deno.errors.NotFound,
  );
});

Deno.test("readProcessCredentials() rejects an invalid pid", async () => {
  for (const pid of [0, -1, 1.5, NaN]) {
    await assert.rejects(readProcessCredentials(pid), RangeError);
    assert.throws(() => readProcessCredentialsSync(pid), RangeError);
  }
});
