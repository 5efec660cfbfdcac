// A root service that starts its daemon directly (no sudo, which closes
// descriptors above 2) must not hand the descriptors it holds to the daemon's
// serving stage, which runs as another user: through them, that user could
// read and write files only root may open.
import assert from "node:assert/strict";
import { daemonArgv } from "../core/command.ts";
import {
  DENO,
  ensureUser,
  removeUser,
  requireRoot,
  ROOT,
  run,
  scratchDir,
  testUser,
  writeConfig,
} from "./_helpers.ts";

/** The daemon's user: unique to this file, so parallel test files never race. */
const FD_USER = testUser(import.meta, "d");

interface Descriptor {
  fd: number;
  target: string;
  dev?: number;
  ino?: number;
  flags?: number;
}

/** O_CLOEXEC as /proc/<pid>/fdinfo reports it. */
const O_CLOEXEC = 0o2000000;

interface Attempt {
  code: number;
  stdout: string;
  stderr: string;
}

Deno.test(
  "direct start: the daemon's serving stage inherits no descriptor of the root caller",
  async (t) => {
    requireRoot();
    const dir = await scratchDir();
    try {
      await ensureUser(FD_USER);
      const rootOnly = `${dir}/root-only.log`;
      await Deno.writeTextFile(rootOnly, "root's log\n", { mode: 0o600 });
      await Deno.chmod(rootOnly, 0o600);
      const config = await writeConfig(dir, {
        fds: { user: FD_USER, capabilities: [], permissions: "all" },
      });
      const marker = `written by ${FD_USER} ${crypto.randomUUID()}`;
      // The caller runs as root with /etc/shadow open for reading on 7 and
      // the root-only file open for appending on 8, both inheritable.
      const out = await run([
        "/bin/sh",
        "-c",
        'exec 7</etc/shadow 8>>"$1"; shift; exec "$@"',
        "sh",
        rootOnly,
        DENO,
        "run",
        "-A",
        `--config=${ROOT}/deno.json`,
        `${ROOT}/tests/fixtures/fds_caller.ts`,
        config,
        marker,
      ]);
      const report = JSON.parse(out.stdout.trim().split("\n").at(-1)!) as {
        pid: number;
        daemon: Descriptor[];
        caller: Descriptor[];
        read: Attempt;
        write: Attempt;
      };
      // The files as the caller holds them (/etc/shadow is replaced by every
      // useradd and userdel: its path may name another file by now).
      const held = (fd: number) => {
        const d = report.caller.find((d) => d.fd === fd);
        assert.ok(d, `caller's descriptors: ${JSON.stringify(report.caller)}`);
        return d;
      };
      const same = (a: Descriptor, b: Descriptor) =>
        a.dev === b.dev && a.ino === b.ino;
      const logFile = await Deno.stat(rootOnly);

      await t.step("precondition: the caller holds both descriptors", () => {
        assert.match(held(7).target, /^\/etc\/shadow/);
        assert.equal(held(8).target, rootOnly);
        assert.equal(held(8).ino, logFile.ino);
        for (const fd of [7, 8]) {
          assert.equal(held(fd).flags! & O_CLOEXEC, 0, `${fd} is inheritable`);
        }
      });

      await t.step(
        "no descriptor of the serving stage refers to the caller's files",
        () => {
          const leaked = report.daemon.filter((d) =>
            same(d, held(7)) || same(d, held(8))
          );
          assert.deepEqual(
            leaked,
            [],
            `daemon ${report.pid} holds: ${JSON.stringify(report.daemon)}`,
          );
        },
      );

      await t.step(
        "every descriptor above 2 of the serving stage is its own",
        () => {
          // A descriptor that crossed the exec into the serving stage was
          // inheritable and stays so; the serving stage's own (epoll, its
          // cache, sockets) are all opened close-on-exec.
          const inherited = report.daemon.filter((d) =>
            d.fd > 2 && (d.flags! & O_CLOEXEC) === 0
          );
          assert.deepEqual(
            inherited,
            [],
            `daemon ${report.pid} holds: ${JSON.stringify(report.daemon)}`,
          );
          assert.ok(report.daemon.every((d) => d.flags !== undefined));
        },
      );

      await t.step(
        "the daemon's user cannot read /etc/shadow through 7",
        () => {
          assert.notEqual(report.read.code, 0, "reading descriptor 7 worked");
          assert.doesNotMatch(report.read.stdout, /^root:/m);
          assert.match(report.read.stderr, /Bad file descriptor/);
        },
      );

      await t.step(
        "the daemon's user cannot append to the root-only file through 8",
        async () => {
          assert.notEqual(report.write.code, 0, "writing descriptor 8 worked");
          assert.match(report.write.stderr, /Bad file descriptor/);
          assert.equal(await Deno.readTextFile(rootOnly), "root's log\n");
        },
      );
    } finally {
      await removeUser(FD_USER);
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "close_range and its /proc fallback let only 0-2 cross an execve",
  async (t) => {
    requireRoot();
    const dir = await scratchDir();
    try {
      // A Deno process with 7 and 8 inherited (and its own descriptors)
      // marks from 3 up, then execs a shell that lists what it got.
      const execWith = async (mark: string) => {
        const code = `
          import * as ffi from "${ROOT}/caps/_ffi.ts";
          import { execve } from "${ROOT}/caps/_drop.ts";
          ${mark}
          execve("/bin/sh", ["sh", "-c", "ls /proc/$$/fd"], {});
        `;
        const out = await run([
          "/bin/sh",
          "-c",
          'exec 7</etc/hostname 8>>"$1"; shift; exec "$@"',
          "sh",
          `${dir}/appended`,
          DENO,
          "eval",
          "--no-config",
          code,
        ]);
        return out.stdout.trim().split("\n").map(Number).sort((a, b) => a - b);
      };
      await t.step("without marking, 7 and 8 cross (control)", async () => {
        const fds = await execWith("");
        assert.ok(fds.includes(7) && fds.includes(8), `got ${fds}`);
      });
      await t.step("close_range(3, ~0U, CLOSE_RANGE_CLOEXEC)", async () => {
        assert.deepEqual(await execWith("ffi.closeOnExecFrom(3);"), [0, 1, 2]);
      });
      await t.step("the /proc/self/fd fallback", async () => {
        assert.deepEqual(
          await execWith("ffi.markCloseOnExecViaProc(3);"),
          [0, 1, 2],
        );
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "a daemon whose channel is not a pipe refuses to start: the other end could pass it descriptors, or the descriptor is one",
  async (t) => {
    requireRoot();
    const dir = await scratchDir();
    try {
      await ensureUser(FD_USER);
      // A confined context (scoped writes), which refuses unix sockets. sudo
      // hands descriptors 0-2 through as they are, use_pty or not.
      const config = await writeConfig(dir, {
        fds: { user: FD_USER, capabilities: [], permissions: { write: [dir] } },
      });
      const argv = daemonArgv({
        denoPath: DENO,
        daemonPath: `${ROOT}/daemon.ts`,
        denoConfig: `${ROOT}/deno.json`,
        codeRoots: [ROOT],
        configFiles: [config],
        contextId: `file://${ROOT}/tests/fixtures/fds/mod.ts#fdCtx`,
      });
      // The daemon's first stage with each of 0, 1 and 2 a pipe, a socket
      // pair's end or an O_PATH descriptor of a path; this end then closes
      // its side, so a daemon that started sees its channel end and exits.
      // Prints the exit code, then what came on a piped stderr.
      const start = (channel: Record<number, string>) =>
        run([
          "/usr/bin/python3",
          "-c",
          "import json, os, socket, subprocess, sys\n" +
          "spec = json.loads(sys.argv[1]); fds = []; keep = []\n" +
          "a, b = socket.socketpair()\n" +
          "for n in range(3):\n" +
          "    kind = spec.get(str(n), 'pipe')\n" +
          "    if kind == 'socket': fds.append(b)\n" +
          "    elif kind == 'pipe': fds.append(subprocess.PIPE)\n" +
          "    elif kind.startswith('long:'):\n" +
          "        d = os.open(kind[5:], os.O_RDONLY | os.O_DIRECTORY)\n" +
          "        for i in range(18):\n" +
          "            n = 'd%02d' % i + 'a' * 245\n" +
          "            os.mkdir(n, dir_fd=d)\n" +
          "            e = os.open(n, os.O_RDONLY | os.O_DIRECTORY, dir_fd=d); os.close(d); d = e\n" +
          "        fds.append(os.open('.', os.O_PATH | os.O_DIRECTORY, dir_fd=d))\n" +
          "    else: fds.append(os.open(kind, os.O_PATH))\n" +
          "p = subprocess.Popen(sys.argv[2:], stdin=fds[0], stdout=fds[1], stderr=fds[2])\n" +
          "b.close(); a.shutdown(socket.SHUT_WR)\n" +
          "if p.stdin: p.stdin.close()\n" +
          "if p.stdout: p.stdout.read()\n" +
          "err = p.stderr.read() if p.stderr else b''\n" +
          "sys.stdout.write(str(p.wait(timeout=120)) + '\\n' + err.decode())\n",
          JSON.stringify(channel),
          ...argv,
        ]);
      const refused = async (
        channel: Record<number, string>,
        why?: RegExp,
      ) => {
        const out = await start(channel);
        assert.equal(out.stdout.split("\n")[0], "2", out.stdout);
        if (why) assert.match(out.stdout, why);
      };
      await t.step(
        "a unix socket on 0 and 1 is refused, with why",
        async () => {
          await refused(
            { 0: "socket", 1: "socket" },
            /descriptor 0 is a socket \(socket:\[\d+\]\).*SCM_RIGHTS.*"\+socket"/,
          );
        },
      );
      await t.step(
        "a descriptor of / or of a root-only file on 0-2 is refused",
        async () => {
          // Found by a review: the service account started the daemon with
          // 2 an O_RDONLY descriptor of / (sudo hands it through), and a
          // uid-0 daemon with no capability chmod-ed a root-only file
          // through /proc/<daemon>/fd/2/etc/...: the host's writable mount,
          // past the read-only mounts. An O_PATH descriptor needs no
          // permission on the file itself.
          await refused(
            { 1: "/" },
            /descriptor 1 is \/ \(not a pipe\).*\/proc\/self\/fd\/1/,
          );
          await refused({ 2: "/" });
          await refused({ 2: "/etc/shadow" });
          // Found by a second review: a path longer than a page, whose
          // readlink fails (ENAMETOOLONG), passed for a closed descriptor;
          // the daemon climbed from it with .. to the host's /.
          await Deno.mkdir(`${dir}/long`);
          await refused({ 2: `long:${dir}/long` });
        },
      );
      await t.step(
        "/dev/null on 0-2 is opened anew, on the daemon's read-only /dev",
        async () => {
          // sudo puts /dev/null on a descriptor its caller closed; the
          // host's is writable, and a uid-0 daemon owns it.
          const out = await run([
            "/usr/bin/python3",
            "-c",
            "import os, subprocess, sys, time\n" +
            "null = os.open('/dev/null', os.O_RDWR)\n" +
            "p = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=null)\n" +
            "for _ in range(400):\n" +
            "    if b'--stage=serve' in open('/proc/%d/cmdline' % p.pid, 'rb').read(): break\n" +
            "    time.sleep(0.05)\n" +
            "mnt = open('/proc/%d/fdinfo/2' % p.pid).read().split('mnt_id:')[1].split()[0]\n" +
            "line = [l for l in open('/proc/%d/mountinfo' % p.pid) if l.split()[0] == mnt]\n" +
            "print(os.readlink('/proc/%d/fd/2' % p.pid), line[0].split()[5] if line else 'not in its namespace')\n" +
            "p.stdin.close(); p.stdout.read(); print(p.wait(timeout=120))\n",
            ...argv,
          ]);
          assert.match(out.stdout, /^\/dev\/null ro(,\S*)?\n0\n$/, out.stdout);
        },
      );
      await t.step("pipes start it (control)", async () => {
        const out = await start({});
        assert.doesNotMatch(out.stdout, /not a pipe|is a socket/, out.stdout);
        assert.equal(out.stdout.split("\n")[0], "0", out.stdout);
      });
    } finally {
      await removeUser(FD_USER);
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "a caller's full stderr pipe does not hold a failed stage 1, which runs as root (a reading)",
  async () => {
    // A start that fails writes why to stderr, which is the caller's. A
    // caller that fills that pipe, sets it blocking and never reads it held
    // the failed stage 1 (root, ~55 MB) in its write for good, once per start.
    requireRoot();
    const argv = daemonArgv({
      denoPath: DENO,
      daemonPath: `${ROOT}/daemon.ts`,
      codeRoots: [ROOT],
      contextId: `file://${ROOT}/tests/fixtures/privsep/none.ts#noSuchCtx`,
      denoConfig: `${ROOT}/deno.json`,
    });
    const script = `
import os, subprocess, sys, time, fcntl
r, w = os.pipe()
fcntl.fcntl(w, fcntl.F_SETFL, fcntl.fcntl(w, fcntl.F_GETFL) | os.O_NONBLOCK)
try:
    while True:
        os.write(w, b"x" * 4096)
except BlockingIOError:
    pass
fcntl.fcntl(w, fcntl.F_SETFL, fcntl.fcntl(w, fcntl.F_GETFL) & ~os.O_NONBLOCK)
t0 = time.time()
p = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=w)
try:
    code = p.wait(timeout=15)
except subprocess.TimeoutExpired:
    p.kill()
    code = "held"
print(code, round(time.time() - t0, 1))
`;
    const out = await run(["/usr/bin/python3", "-c", script, ...argv]);
    const [code, seconds] = out.stdout.trim().split(" ");
    assert.notEqual(code, "held", `stage 1 was still writing after 15 s`);
    assert.equal(code, "2", out.stdout);
    assert.ok(Number(seconds) < 10, out.stdout);
  },
);
