// The per-context kernel sandbox, against the real kernel and a real daemon:
// Landlock turns the context's write/read/net permissions into rules that
// every program the daemon starts inherits, and a seccomp filter makes the
// system calls no helper of this kind needs fail with EPERM. Checked from
// outside (files on disk, /proc/<pid>/task/*/status, a listener of this test).
import assert from "node:assert/strict";
import { init, RemoteError } from "../mod.ts";
import { CAP_KILL, CAP_SYS_ADMIN, CAP_SYS_TIME } from "../caps/table.ts";
import {
  buildFilter,
  buildSuidFilter,
  expandSyscallEntry,
} from "../caps/_seccomp.ts";
import type { PermissionsSetting } from "../core/config.ts";
import {
  gaps,
  planConfinement,
  prepareConfinement,
} from "../daemon/_confine.ts";
import { sandboxCtx } from "./fixtures/sandbox/mod.ts";
import * as ops from "./fixtures/sandbox/ops.ts";
import {
  captureLogs,
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

/** The context's user (unique to this file). */
const SBX_DAEMON = testUser(import.meta, "d");

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** `Seccomp` and `Seccomp_filters` of one /proc status text. */
function seccompOf(status: string): { mode: number; filters: number } {
  return {
    mode: Number(/\nSeccomp:\t(\d+)/.exec(status)?.[1] ?? -1),
    filters: Number(/\nSeccomp_filters:\t(\d+)/.exec(status)?.[1] ?? -1),
  };
}

/** A TCP port nobody listens on now. */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

const perlBind = (port: number) => [
  "-MIO::Socket::INET",
  "-e",
  `IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => ${port}, Listen => 1, ReuseAddr => 1) or die "bind: $!\\n"; print "bound\\n"`,
];
const bashConnect = (port: number) => [
  "-c",
  `exec 3<>/dev/tcp/127.0.0.1/${port} && echo connected`,
];

Deno.test(
  "the kernel sandbox confines what the daemon's programs may do",
  async (t) => {
    requireRoot();
    const logs = await captureLogs();
    const dir = await scratchDir();
    await ensureUser(SBX_DAEMON);
    const data = `${dir}/data`;
    await Deno.mkdir(data, { mode: 0o755 }); // root's: only CAP_DAC_OVERRIDE writes here
    const tag = crypto.randomUUID().slice(0, 8);
    const outside = `/etc/privsep-sbx-${tag}`;
    const viaLink = `/etc/privsep-sbx-${tag}-link`;
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const listenPort = (listener.addr as Deno.NetAddr).port;
    (async () => {
      for await (const c of listener) c.close();
    })().catch(() => {});
    let config = "";
    const use = async (section: Record<string, unknown>) => {
      await sandboxCtx.stop();
      config = await writeConfig(dir, {
        sandbox: {
          user: SBX_DAEMON,
          capabilities: ["CAP_DAC_OVERRIDE"],
          ...section,
        } as never,
      });
      init({ configFiles: [config] });
      return (await sandboxCtx.start()).pid;
    };
    const base = {
      write: [data],
      run: ["/bin/sh", "/bin/bash", "/usr/bin/unshare", "/usr/bin/perl"],
      ffi: true,
    };
    try {
      await t.step(
        "CAP_DAC_OVERRIDE and write = [dir]: a shell cannot write /etc",
        async () => {
          await use({ permissions: base });
          const r = await ops.exec("/bin/sh", ["-c", `echo x > ${outside}`]);
          assert.notEqual(r.code, 0, `the write succeeded: ${r.stderr}`);
          // Landlock, and the read-only mounts in front of it.
          assert.match(r.stderr, /Permission denied|Read-only file system/);
          assert.equal(await exists(outside), false, `${outside} was created`);
        },
      );

      await t.step("writing below the allowed directory works", async () => {
        const r = await ops.exec("/bin/sh", [
          "-c",
          `echo x > ${data}/f && mkdir ${data}/d && echo y > ${data}/d/g && rm ${data}/d/g`,
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(await Deno.readTextFile(`${data}/f`), "x\n");
      });

      await t.step(
        "a symbolic link planted in the allowed directory does not lead out",
        async () => {
          await Deno.symlink(viaLink, `${data}/link`);
          const r = await ops.exec("/bin/sh", ["-c", `echo x > ${data}/link`]);
          assert.notEqual(r.code, 0, "the write through the link succeeded");
          assert.equal(await exists(viaLink), false, `${viaLink} was created`);
        },
      );

      await t.step(
        "every thread of the daemon and of a child has the seccomp filter",
        async () => {
          const pid = sandboxCtx.daemon!.pid;
          const tasks: string[] = [];
          for await (const e of Deno.readDir(`/proc/${pid}/task`)) {
            tasks.push(e.name);
          }
          assert.ok(tasks.length > 1, "a multi-threaded daemon");
          for (const tid of tasks) {
            const s = seccompOf(
              await Deno.readTextFile(`/proc/${pid}/task/${tid}/status`),
            );
            assert.equal(s.mode, 2, `thread ${tid}: Seccomp ${s.mode}`);
            assert.ok(s.filters >= 1, `thread ${tid}: no filter`);
          }
          const child = await ops.exec("/bin/sh", [
            "-c",
            "cat /proc/self/status",
          ]);
          const s = seccompOf(child.stdout);
          assert.equal(s.mode, 2, "the child's Seccomp");
          assert.ok(s.filters >= 1, "the child's Seccomp_filters");
        },
      );

      await t.step(
        "privsep caps shows the filter; privsep inspect shows the rules",
        async () => {
          const pid = sandboxCtx.daemon!.pid;
          const cli = [DENO, "run", "-A", `--config=${ROOT}/deno.json`];
          const caps = await run([
            ...cli,
            `${ROOT}/cli/privsep.ts`,
            "caps",
            String(pid),
          ]);
          // The deny list's filter, and the one against setuid files.
          assert.match(caps.stdout, /seccomp=filter \(2 filters\)/);
          const inspect = await run([
            ...cli,
            `${ROOT}/cli/privsep.ts`,
            "inspect",
            `--config-file=${config}`,
            `${ROOT}/tests/fixtures/sandbox/mod.ts`,
          ]);
          assert.ok(
            inspect.stdout.includes(`write ${data}  (permissions.write)`),
            inspect.stdout,
          );
          assert.match(inspect.stdout, /landlock tcp: no bind, no connect/);
          assert.match(inspect.stdout, /seccomp: EPERM for .*keyctl/);
          assert.match(inspect.stdout, /everything above enforced/);
        },
      );

      await t.step(
        "a denied system call fails with EPERM and the daemon keeps serving",
        async () => {
          const pid = sandboxCtx.daemon!.pid;
          const error = await ops.keyctl().then(
            () => assert.fail("keyctl succeeded"),
            (e) => e,
          );
          assert.ok(error instanceof RemoteError, String(error));
          assert.equal(error.code, "EPERM");
          const r = await ops.exec("/usr/bin/unshare", ["-U", "/bin/true"]);
          assert.notEqual(r.code, 0, "unshare -U succeeded");
          assert.match(r.stderr, /Operation not permitted/);
          // clone(CLONE_NEWUSER | SIGCHLD) straight from a program.
          const c = await ops.exec("/usr/bin/perl", [
            "-e",
            'my $r = syscall(56, 0x10000011, 0, 0, 0, 0); exit 0 if $r == 0; print $r < 0 ? "denied: $!\\n" : "cloned\\n"',
          ]);
          assert.match(c.stdout, /denied: Operation not permitted/);
          assert.equal(await ops.ping(), "pong");
          assert.equal(sandboxCtx.daemon!.pid, pid, "the same daemon");
        },
      );

      await t.step(
        "the daemon's programs cannot signal a process of the same user outside the daemon",
        async () => {
          const victim = new Deno.Command("/usr/bin/setpriv", {
            args: [
              `--reuid=${SBX_DAEMON}`,
              `--regid=${SBX_DAEMON}`,
              "--clear-groups",
              "/usr/bin/sleep",
              "30",
            ],
            stdin: "null",
            stdout: "null",
            stderr: "null",
          }).spawn();
          try {
            await new Promise((r) => setTimeout(r, 100));
            const r = await ops.exec("/bin/sh", ["-c", `kill ${victim.pid}`]);
            assert.notEqual(r.code, 0, "the kill succeeded");
            assert.match(r.stderr, /Operation not permitted/);
            const status = await Deno.readTextFile(
              `/proc/${victim.pid}/status`,
            );
            assert.match(status, /\nState:\tS/, "the victim still sleeps");
          } finally {
            victim.kill("SIGKILL");
            await victim.status;
          }
        },
      );

      await t.step(
        "a context without net cannot connect to a listener on 127.0.0.1",
        async () => {
          const r = await ops.exec("/bin/bash", bashConnect(listenPort));
          assert.notEqual(r.code, 0, "the connect succeeded");
          assert.match(r.stderr, /Permission denied/);
          const b = await ops.exec("/usr/bin/perl", perlBind(freePort()));
          assert.notEqual(b.code, 0, "the bind succeeded");
        },
      );

      await t.step(
        "a context with a named port binds and connects to that port only",
        async () => {
          const port = freePort();
          await use({
            permissions: { ...base, net: [`127.0.0.1:${port}`] },
          });
          const ok = await ops.exec("/usr/bin/perl", perlBind(port));
          assert.equal(ok.code, 0, ok.stderr);
          const other = await ops.exec("/usr/bin/perl", perlBind(freePort()));
          assert.notEqual(other.code, 0, "a bind to another port succeeded");
          assert.match(other.stderr, /Permission denied/);
          const c = await ops.exec("/bin/bash", bashConnect(listenPort));
          assert.notEqual(c.code, 0, "a connect to another port succeeded");
        },
      );

      await t.step(
        "with a scoped read list, the daemon starts and its programs read only that",
        async () => {
          await use({ permissions: { ...base, read: [data] } });
          assert.equal(await ops.ping(), "pong");
          const r = await ops.exec("/bin/sh", ["-c", "cat /etc/shadow"]);
          assert.notEqual(r.code, 0, "/etc/shadow was read");
          assert.equal(r.stdout, "");
          const ok = await ops.exec("/bin/sh", ["-c", `cat ${data}/f`]);
          assert.equal(ok.stdout, "x\n", ok.stderr);
        },
      );

      await t.step(
        "with a scoped read list and unscoped writes, writes stay unconfined",
        async () => {
          await use({ permissions: { ...base, read: [data], write: true } });
          const r = await ops.exec("/bin/sh", [
            "-c",
            `echo x > ${dir}/anywhere && cat /etc/shadow`,
          ]);
          assert.equal(await exists(`${dir}/anywhere`), true, r.stderr);
          assert.notEqual(r.code, 0, "/etc/shadow was read");
        },
      );

      // The service account (here the context's own user, which counts as
      // one) owns a directory on the way to an allowed path: before the
      // daemon starts it puts a symbolic link, or a hard link, where the
      // allowed path is. Landlock's rule is made on what stage 1 opens, so
      // opening the path through the link would put the rule on the link's
      // target (found by a review: the write below landed in a root-only
      // directory).
      const secret = `${dir}/secret`; // root's, mode 0700
      const att = `${dir}/att`; // the non-root user's
      const planted = async () => {
        await Deno.mkdir(`${secret}/sub`, { recursive: true, mode: 0o700 });
        await Deno.chmod(secret, 0o700);
        await Deno.writeTextFile(`${secret}/file`, "root's\n", { mode: 0o600 });
        await Deno.mkdir(att, { mode: 0o755 });
        const uid = Number(
          (await run(["id", "-u", SBX_DAEMON])).stdout.trim(),
        );
        await Deno.chown(att, uid, uid);
        await Deno.symlink(secret, `${att}/spool`);
        await Deno.symlink(secret, `${att}/up`);
        await Deno.link(`${secret}/file`, `${att}/file`);
      };
      const warnedAbout = (path: string) =>
        logs.some((r) =>
          r.level === "warning" &&
          String(r.message.join("")).includes(`${path}: `) &&
          String(r.message.join("")).includes("no write rule for it")
        );

      await t.step(
        "an allowed path that a non-root user made a symbolic link gets no rule: the link does not lead out",
        async () => {
          await planted();
          await use({ permissions: { ...base, write: [`${att}/spool`] } });
          const r = await ops.exec("/bin/sh", [
            "-c",
            `echo x > ${att}/spool/pwned`,
          ]);
          assert.notEqual(r.code, 0, "the write through the link succeeded");
          assert.equal(await exists(`${secret}/pwned`), false);
          assert.ok(warnedAbout(`${att}/spool`), "no warning about the link");
        },
      );

      await t.step(
        "a symbolic link on the way to an allowed path, in a non-root user's directory, does not lead out",
        async () => {
          await use({ permissions: { ...base, write: [`${att}/up/sub`] } });
          const r = await ops.exec("/bin/sh", [
            "-c",
            `echo x > ${att}/up/sub/pwned`,
          ]);
          assert.notEqual(r.code, 0, "the write through the link succeeded");
          assert.equal(await exists(`${secret}/sub/pwned`), false);
          assert.ok(warnedAbout(`${att}/up/sub`), "no warning about the link");
        },
      );

      await t.step(
        "an allowed file that a non-root user hard-linked to a root-only file gets no rule",
        async () => {
          await use({ permissions: { ...base, write: [`${att}/file`] } });
          const r = await ops.exec("/bin/sh", ["-c", `echo x > ${att}/file`]);
          assert.notEqual(r.code, 0, "the write through the hard link worked");
          assert.equal(await Deno.readTextFile(`${secret}/file`), "root's\n");
          assert.ok(warnedAbout(`${att}/file`), "no warning about the link");
        },
      );

      await t.step(
        "a root-owned symbolic link in a root-owned directory is followed",
        async () => {
          await Deno.symlink(data, `${dir}/rootlink`);
          await use({ permissions: { ...base, write: [`${dir}/rootlink`] } });
          const r = await ops.exec("/bin/sh", [
            "-c",
            `echo x > ${dir}/rootlink/via-root-link`,
          ]);
          assert.equal(r.code, 0, r.stderr);
          assert.equal(await exists(`${data}/via-root-link`), true);
        },
      );

      await t.step(
        "a confined daemon makes no symbolic link, so none it made can lead the next daemon's rule out",
        async () => {
          // Found by a review: a uid-0 daemon whose write path did not
          // exist yet (its directory is then writable) put a link there to
          // another application's config. The link was root's, in a
          // root-owned directory, so the next start's rule followed it and
          // the daemon wrote the other application's config. (A uid-0
          // context whose write path does not exist now refuses to start,
          // unless its directory is declared too, as here.)
          const spool = `${dir}/spool`;
          await Deno.mkdir(spool, { mode: 0o755 });
          const state = `${spool}/state.json`;
          const uid0 = (write: string[]) =>
            use({
              user: "root",
              capabilities: [],
              permissions: { ...base, write },
            });
          await uid0([spool, state, data]);
          const r = await ops.exec("/bin/sh", [
            "-c",
            `ln -s ${secret}/file ${state}; ln -s ${secret} ${data}/out; ` +
            `echo o > ${data}/mine && ln ${data}/mine ${data}/mine-again; ` +
            `mkdir ${spool}/d && mv ${spool}/d ${spool}/e`,
          ]);
          assert.equal(
            (r.stderr.match(/Permission denied/g) ?? []).length,
            2,
            r.stderr,
          );
          assert.equal(await exists(state), false);
          assert.equal(await exists(`${data}/out`), false);
          // Hard links and renames in place, files and directories stay.
          assert.equal(await exists(`${data}/mine-again`), true, r.stderr);
          assert.equal(await exists(`${spool}/e`), true, r.stderr);
          await uid0([spool, state, data]);
          const w = await ops.exec("/bin/sh", ["-c", `echo pwned > ${state}`]);
          assert.equal(w.code, 0, w.stderr);
          assert.equal(await Deno.readTextFile(`${secret}/file`), "root's\n");
          assert.equal(await Deno.readTextFile(state), "pwned\n");
        },
      );

      // Landlock confines writing files, not changing their owner, mode or
      // extended attributes: a uid-0 context owns every root-owned file,
      // and CAP_CHOWN reaches every file (found by a review: a uid-0
      // context with no capability and scoped writes made a root-owned copy
      // of id setuid, and another application's code world-writable).
      const stat = async (path: string) => {
        const s = await Deno.stat(path);
        return `${(s.mode ?? 0) & 0o7777} ${s.uid}`;
      };
      await t.step(
        "a uid-0 context with scoped writes cannot chmod a root-owned file outside them",
        async () => {
          const before = await stat(`${secret}/file`);
          await use({ user: "root", capabilities: [], permissions: base });
          const r = await ops.exec("/bin/sh", [
            "-c",
            `chmod 4755 ${secret}/file; chmod 0777 ${secret}`,
          ]);
          assert.match(r.stderr, /Read-only file system/, r.stderr);
          assert.equal(await stat(`${secret}/file`), before);
          assert.equal(await stat(secret), "448 0"); // 0700
          // Below its write path it still may.
          const ok = await ops.exec("/bin/sh", [
            "-c",
            `echo x > ${data}/own && chmod 0600 ${data}/own`,
          ]);
          assert.equal(ok.code, 0, ok.stderr);
          assert.equal(await stat(`${data}/own`), "384 0"); // 0600
        },
      );

      await t.step(
        "no context makes a file setuid or setgid, even in its write path",
        async () => {
          // A uid-0 daemon's setuid file there would run as root for any
          // user who reaches it (found by a review). io_uring's operations
          // never reach seccomp: it is refused even where the context's
          // filter allows it.
          await use({
            user: "root",
            capabilities: [],
            permissions: base,
            syscall_filter: ["+@io-uring"],
          });
          const r = await ops.exec("/bin/sh", [
            "-c",
            `cp /bin/true ${data}/t && chmod 0755 ${data}/t && ` +
            `{ chmod 4755 ${data}/t; chmod 2755 ${data}/t; mkdir -m 2755 ${data}/sgid; ` +
            `python3 -c 'import ctypes; l = ctypes.CDLL(None, use_errno=True); ` +
            `print("io_uring_setup", l.syscall(425, 1, ctypes.create_string_buffer(120)), ctypes.get_errno())'; }`,
          ]);
          assert.equal(r.code, 0, r.stderr);
          assert.equal(
            (r.stderr.match(/Operation not permitted/g) ?? []).length,
            3,
            r.stderr,
          );
          assert.equal(await stat(`${data}/t`), "493 0"); // 0755
          // coreutils' mkdir -m passes the mode to mkdir(2), refused whole.
          assert.equal(await exists(`${data}/sgid`), false);
          assert.match(r.stdout, /^io_uring_setup -1 1$/m, r.stdout);
        },
      );

      await t.step(
        "a context that keeps CAP_DAC_READ_SEARCH cannot open a file by its handle past Landlock and the read-only mounts",
        async () => {
          // Found by a review: open_by_handle_at(), which the filter allowed
          // for CAP_DAC_READ_SEARCH, opens a file of the same filesystem on
          // the mount of the descriptor it is given (a write path's own
          // writable mount), and Landlock judges it by that mount's rule:
          // the daemon wrote a root-only file, the cache and sudoers.d.
          const handle = [
            "import ctypes, os, sys",
            "l = ctypes.CDLL(None, use_errno=True)",
            "h = ctypes.create_string_buffer(8 + 128)",
            "ctypes.c_uint.from_buffer(h).value = 128",
            "mid = ctypes.c_int()",
            "if l.name_to_handle_at(-100, sys.argv[1].encode(), h, ctypes.byref(mid), 0):",
            "    sys.exit('name_to_handle_at errno %d' % ctypes.get_errno())",
            "fd = l.open_by_handle_at(os.open(sys.argv[2], os.O_RDONLY), h, os.O_WRONLY | os.O_APPEND)",
            "if fd < 0: sys.exit('open_by_handle_at errno %d' % ctypes.get_errno())",
            "os.write(fd, b'pwned\\n')",
            "print('wrote')",
          ].join("\n");
          for (const user of ["root", SBX_DAEMON]) {
            await use({
              user,
              capabilities: ["CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH"],
              permissions: base,
            });
            const r = await ops.exec("/bin/sh", [
              "-c",
              `/usr/bin/python3 -c "$1" ${secret}/file ${data}`,
              "sh",
              handle,
            ]);
            assert.match(r.stderr, /^open_by_handle_at errno 1$/m, r.stderr);
            assert.equal(await Deno.readTextFile(`${secret}/file`), "root's\n");
          }
        },
      );

      await t.step(
        "a uid-0 context cannot take a descriptor from a process outside over a unix socket",
        async () => {
          // Found by a review: an unprivileged process outside sent the
          // daemon an O_PATH descriptor of / (SCM_RIGHTS). It is on the
          // host's writable mount, where Landlock does not judge a mode
          // change: a uid-0 daemon with no capability made a root-only file
          // world-writable through it. Nor could the read-only mounts hold
          // it to its write paths against root's services on unix sockets
          // (systemd, D-Bus): a confined daemon makes no unix socket.
          const sockDir = `${dir}/unix`;
          await Deno.mkdir(sockDir, { mode: 0o777 });
          await Deno.chmod(sockDir, 0o777);
          const sock = `${sockDir}/s`;
          const before = await stat(`${secret}/file`);
          const sender = new Deno.Command("setpriv", {
            args: [
              "--reuid=65534",
              "--regid=65534",
              "--clear-groups",
              "/usr/bin/python3",
              "-c",
              "import os, socket, sys\n" +
              "s = socket.socket(socket.AF_UNIX)\n" +
              "s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777); s.listen(1)\n" +
              "print('ready', flush=True)\n" +
              "s.settimeout(60); c, _ = s.accept()\n" +
              "socket.send_fds(c, [b'x'], [os.open('/', os.O_PATH)])\n",
              sock,
            ],
            stdout: "piped",
            stderr: "piped",
          }).spawn();
          try {
            const reader = sender.stdout.getReader();
            const first = await reader.read();
            reader.releaseLock();
            assert.match(new TextDecoder().decode(first.value), /^ready/);
            await use({ user: "root", capabilities: [], permissions: base });
            const r = await ops.exec("/bin/sh", [
              "-c",
              '/usr/bin/python3 -c "$1" "$2" "$3"',
              "sh",
              "import os, socket, sys\n" +
              "s = socket.socket(socket.AF_UNIX)\n" +
              "s.connect(sys.argv[1])\n" +
              "_, fds, _, _ = socket.recv_fds(s, 1, 1)\n" +
              "os.chmod(sys.argv[2], 0o777, dir_fd=fds[0])\n" +
              "print('changed through the descriptor')\n",
              sock,
              `${secret}/file`.slice(1),
            ]);
            assert.match(
              r.stderr,
              /PermissionError: \[Errno 1\]/,
              r.stderr + r.stdout,
            );
            assert.equal(await stat(`${secret}/file`), before);
            // syscall_filter = ["+socket"] gives them back (to a context
            // that talks to a local service, at that price).
            await use({
              user: "root",
              capabilities: [],
              permissions: base,
              syscall_filter: ["+socket"],
            });
            const back = await ops.exec("/bin/sh", [
              "-c",
              `/usr/bin/python3 -c 'import socket; socket.socket(socket.AF_UNIX).connect("${sockDir}/none")'`,
            ]);
            assert.match(back.stderr, /FileNotFoundError/, back.stderr);
          } finally {
            try {
              sender.kill();
            } catch { /* gone */ }
            await sender.output().catch(() => {});
          }
        },
      );

      await t.step(
        "a write path that holds a trusted path is refused for uid 0 (with a trailing slash too), and unscoped writes leave the trusted path read-only",
        async () => {
          // launcher_dir is one of the paths stage 1 protects (as the code,
          // the cache and the config are); here inside the write path. A
          // twelfth review: the host may remove such a path while the daemon
          // runs, and its read-only mount goes with it.
          const opt = `${dir}/opt`;
          await Deno.mkdir(`${opt}/app`, { recursive: true, mode: 0o755 });
          await Deno.writeTextFile(`${opt}/app/main.ts`, "// root's\n");
          await assert.rejects(
            use({
              user: "root",
              capabilities: [],
              launcher_dir: `${opt}/app`,
              permissions: { ...base, write: [`${opt}/`] },
            }),
            (error: Error) => {
              assert.match(
                `${error.message} ${(error.cause as Error)?.message}`,
                new RegExp(`the write path ${opt}/ holds ${opt}/app`),
              );
              return true;
            },
          );
          // Unscoped writes (root-equivalent, documented): the trusted path
          // stays read-only all the same.
          await use({
            user: "root",
            capabilities: [],
            launcher_dir: `${opt}/app`,
            permissions: { ...base, write: true },
          });
          const r = await ops.exec("/bin/sh", [
            "-c",
            `chmod 4755 ${opt}/app/main.ts; echo pwned >> ${opt}/app/main.ts`,
          ]);
          assert.match(r.stderr, /Read-only file system/, r.stderr);
          assert.equal(await stat(`${opt}/app/main.ts`), "420 0"); // 0644
          assert.equal(
            await Deno.readTextFile(`${opt}/app/main.ts`),
            "// root's\n",
          );
          const ok = await ops.exec("/bin/sh", ["-c", `echo x > ${opt}/other`]);
          assert.equal(ok.code, 0, ok.stderr);
        },
      );

      await t.step(
        "a mount the host makes later inside a trusted path does not come in writable",
        async () => {
          // Host mounts propagate into the daemon's namespace (a slave of
          // the host's) from a shared mount: this directory, made one.
          const opt = `${dir}/opt`;
          const later = `${opt}/app/later`;
          await Deno.mkdir(later, { recursive: true });
          await run(["mount", "--bind", opt, opt]);
          await run(["mount", "--make-shared", opt]);
          try {
            // Not uid 0 nor a DAC capability (those may not hold a trusted
            // path in a write path): a tmpfs is world-writable (1777).
            await use({
              capabilities: [],
              launcher_dir: `${opt}/app`,
              permissions: { ...base, write: [`${opt}/`] },
            });
            await run(["mount", "-t", "tmpfs", "tmpfs", later]);
            const r = await ops.exec("/bin/sh", ["-c", `touch ${later}/x`]);
            assert.notEqual(r.code, 0, "touch succeeded");
            assert.equal(await exists(`${later}/x`), false);
          } finally {
            await sandboxCtx.stop();
            await run(["umount", later], { allowFail: true });
            await run(["umount", opt], { allowFail: true });
          }
        },
      );

      await t.step(
        'write = ["/"] leaves writes where Landlock leaves them, and with a capability past directory modes it is refused (it holds the code)',
        async () => {
          // With CAP_DAC_OVERRIDE (or uid 0) the daemon could create a
          // deno.json, package.json or node_modules above the code that
          // the next root first stage loads (a sixth review).
          await assert.rejects(
            use({ permissions: { ...base, write: ["/"] } }),
            (error: Error) => {
              assert.match(
                `${error.message} ${(error.cause as Error)?.message}`,
                /the write path \/ holds .*, which the root first stage trusts/,
              );
              return true;
            },
          );
          const mine = `${data}/daemon-owned`;
          await Deno.mkdir(mine, { recursive: true });
          const { uid, gid } = await ensureUser(SBX_DAEMON);
          await Deno.chown(mine, uid, gid);
          await use({
            capabilities: [],
            permissions: { ...base, write: ["/"] },
          });
          const r = await ops.exec("/bin/sh", [
            "-c",
            `echo x > ${mine}/via-slash`,
          ]);
          assert.equal(r.code, 0, r.stderr);
        },
      );

      await t.step(
        "a mount the host made read-only inside a write path stays read-only",
        async () => {
          const sub = `${data}/host-ro`;
          await Deno.mkdir(sub, { recursive: true });
          await run(["mount", "--bind", sub, sub]);
          try {
            await run(["mount", "-o", "remount,bind,ro", sub, sub]);
            await use({ user: "root", capabilities: [], permissions: base });
            const r = await ops.exec("/bin/sh", ["-c", `echo x > ${sub}/g`]);
            assert.match(r.stderr, /Read-only file system/, r.stderr);
            assert.equal(await exists(`${sub}/g`), false);
          } finally {
            await run(["umount", sub], { allowFail: true });
          }
        },
      );

      await t.step(
        "a confined daemon makes no device node, even with CAP_MKNOD (a seventeenth review)",
        async () => {
          // A block device node in a write path is the host's disk for
          // whoever may open it, the daemon's user first: every file on it,
          // the code stage 1 runs included, past Landlock and the read-only
          // mounts (the review wrote a root-only file on a loop device).
          await use({
            user: "root",
            capabilities: ["CAP_MKNOD"],
            permissions: base,
          });
          const r = await ops.exec("/bin/sh", [
            "-c",
            `mknod ${data}/blk b 7 0; echo "block $?"; mknod ${data}/chr c 1 3; echo "char $?"; mkfifo ${data}/fifo; echo "fifo $?"`,
          ]);
          assert.match(r.stdout, /^block [1-9]/m, r.stdout + r.stderr);
          assert.match(r.stdout, /^char [1-9]/m, r.stdout + r.stderr);
          assert.match(r.stdout, /^fifo 0$/m, r.stdout + r.stderr);
          assert.equal(await exists(`${data}/blk`), false);
          assert.equal(await exists(`${data}/chr`), false);
          await Deno.remove(`${data}/fifo`);
        },
      );

      await t.step(
        "a context that keeps CAP_CHOWN cannot chown a file outside its write paths",
        async () => {
          const before = await stat(`${secret}/file`);
          await use({ capabilities: ["CAP_CHOWN"], permissions: base });
          const r = await ops.exec("/bin/sh", [
            "-c",
            `chown ${SBX_DAEMON} ${secret}/file`,
          ]);
          assert.notEqual(r.code, 0, "chown succeeded");
          assert.equal(await stat(`${secret}/file`), before);
          const ok = await ops.exec("/bin/sh", [
            "-c",
            `chown ${SBX_DAEMON} ${data}/own`,
          ]);
          assert.equal(ok.code, 0, ok.stderr);
        },
      );

      await t.step(
        "a context of uid 0, or keeping CAP_DAC_OVERRIDE or CAP_SETUID, whose write path does not exist yet refuses to start (fourteenth and fifteenth reviews)",
        async () => {
          // Landlock names existing files only: a missing write path's
          // rule (and writable mount) goes to its directory. With
          // write = ["/etc/app.conf"] a uid-0 daemon whose program a caller
          // could steer wrote /etc/sudoers.d, and the service account had
          // root. Here the directory is `data`, which holds the other
          // steps' files.
          const conf = `${data}/app.conf`;
          const beside = `${data}/sudoers-like`;
          for (
            const section of [
              { user: "root", capabilities: [] },
              { capabilities: ["CAP_DAC_OVERRIDE"] },
              // setuid(0) in a program makes it uid 0 (a fifteenth review).
              { capabilities: ["CAP_SETUID", "CAP_SETGID"] },
            ]
          ) {
            const error = await use({
              ...section,
              permissions: { ...base, write: [conf] },
            }).then(() => undefined, (e: Error) => e);
            if (!error) {
              // The attack, where the start is not refused.
              const r = await ops.exec("/usr/bin/perl", [
                "-e",
                `$( = $) = 0; $< = $> = 0; exec "/bin/sh", "-c", "echo x > ${beside}"`,
              ]);
              assert.fail(
                `${JSON.stringify(section)} started, and its shell ${
                  r.code === 0
                    ? `wrote ${beside}`
                    : `could not write: ${r.stderr}`
                }`,
              );
            }
            assert.match(
              `${error.message} ${(error.cause as Error)?.message}`,
              new RegExp(
                `the write path ${conf} does not exist: .*its directory ${data}.*create ${conf} first`,
              ),
            );
            assert.equal(await exists(beside), false, `${beside} was created`);
          }
          // Its directory declared too: the rule gives nothing more.
          await use({
            user: "root",
            capabilities: [],
            permissions: { ...base, write: [data, conf] },
          });
          // Made first: the file alone, not what is beside it.
          await Deno.writeTextFile(conf, "");
          await use({
            user: "root",
            capabilities: [],
            permissions: { ...base, write: [conf] },
          });
          const r = await ops.exec("/bin/sh", ["-c", `echo x > ${beside}`]);
          assert.notEqual(r.code, 0, "the write beside the file succeeded");
          assert.equal(await exists(beside), false, `${beside} was created`);
          const ok = await ops.exec("/bin/sh", ["-c", `echo x >> ${conf}`]);
          assert.equal(ok.code, 0, ok.stderr);
          await Deno.remove(conf);
        },
      );

      await t.step(
        "what the kernel cannot enforce is logged when the daemon starts",
        async () => {
          // A context without uid 0 or a root-like capability: a missing write
          // path gets its directory's rule, with a warning (the step
          // above: others refuse to start).
          const missing = `${data}/not-yet/state.json`;
          await use({
            capabilities: [],
            permissions: { ...base, write: [missing] },
          });
          assert.equal(await ops.ping(), "pong");
          const warned = logs.some((r) =>
            r.level === "warning" &&
            String(r.message.join("")).includes(
              `kernel sandbox not enforced: ${missing} does not exist`,
            )
          );
          assert.ok(warned, "no warning about the missing write path");
        },
      );

      await t.step(
        'confinement = "off" applies nothing (the checks above can fail)',
        async () => {
          await use({ permissions: base, confinement: "off" });
          const r = await ops.exec("/bin/sh", ["-c", `echo x > ${outside}`]);
          assert.equal(r.code, 0, r.stderr);
          assert.equal(await exists(outside), true);
          const s = seccompOf(
            (await ops.exec("/bin/sh", ["-c", "cat /proc/self/status"]))
              .stdout,
          );
          assert.equal(s.mode, 0);
        },
      );
    } finally {
      listener.close();
      await sandboxCtx.stop();
      await Deno.remove(outside).catch(() => {});
      await Deno.remove(viaLink).catch(() => {});
      await Deno.remove(dir, { recursive: true });
      await removeUser(SBX_DAEMON);
    }
  },
);

Deno.test("the sandbox plan follows the context's permissions", () => {
  const plan = (permissions: PermissionsSetting, capabilities: number[] = []) =>
    planConfinement({
      capabilities,
      permissions,
      confinement: "best-effort",
      syscallFilter: [],
    }, { keeperFifo: "/run/privsep/tree-1/keeper" });
  // No write permission: nothing but /dev/null and the keeper's FIFO.
  assert.deepEqual(plan({}).fs?.rules.map((r) => r.path), [
    "/dev/null",
    "/run/privsep/tree-1/keeper",
  ]);
  assert.deepEqual(plan({}).tcpPorts, []);
  assert.equal(plan({ write: [] }).fs, undefined, "unscoped write");
  assert.equal(plan("all").fs, undefined);
  assert.equal(plan("all").tcpPorts, undefined);
  assert.deepEqual(plan({ net: ["127.0.0.1:8080", "[::1]:53"] }).tcpPorts, [
    53,
    8080,
  ]);
  assert.equal(plan({ net: ["example.com"] }).tcpPorts, undefined);
  assert.ok(plan({}).scope.includes("signal"));
  assert.ok(!plan({}, [CAP_KILL]).scope.includes("signal"));
  // Capability-aware: CAP_SYS_ADMIN keeps mount, CAP_SYS_TIME the clock.
  assert.ok(plan({}).deny.includes("mount"));
  assert.ok(!plan({}, [CAP_SYS_ADMIN]).deny.includes("mount"));
  assert.ok(!plan({}, [CAP_SYS_TIME]).deny.includes("clock_settime"));
  assert.ok(plan({}, [CAP_SYS_TIME]).deny.includes("reboot"));
  // Landlock refuses every mount to a domain that handles file access: a
  // context that keeps CAP_SYS_ADMIN (ip netns, ip -n) gets no file rules,
  // but keeps its TCP rules and scopes.
  assert.equal(plan({ write: ["/var/lib/x"] }, [CAP_SYS_ADMIN]).fs, undefined);
  assert.deepEqual(plan({}, [CAP_SYS_ADMIN]).tcpPorts, []);
  assert.ok(
    plan({}, [CAP_SYS_ADMIN]).notes.some((n) => n.includes("CAP_SYS_ADMIN")),
  );
  const tuned = planConfinement({
    capabilities: [CAP_SYS_ADMIN],
    permissions: {},
    confinement: "best-effort",
    syscallFilter: ["+@keyring", "-@mount"],
  }, {});
  assert.ok(!tuned.deny.includes("keyctl"));
  assert.ok(tuned.deny.includes("mount"), "-@mount beats CAP_SYS_ADMIN");
  assert.throws(() => expandSyscallEntry("@mount"), TypeError);
  assert.throws(() => expandSyscallEntry("+@nope"), /valid|group/);
});

Deno.test("best-effort reports what an older kernel cannot enforce; required refuses", () => {
  const settings = {
    capabilities: [],
    permissions: { write: ["/nonexistent-privsep-sbx/x"] },
    syscallFilter: [],
  };
  const best = prepareConfinement(
    planConfinement({ ...settings, confinement: "best-effort" }, {}),
    3,
  );
  assert.ok(best.unenforced.some((u) => /TCP ports are not confined/.test(u)));
  assert.ok(best.unenforced.some((u) => /not scoped/.test(u)));
  assert.ok(best.unenforced.some((u) => /does not exist/.test(u)));
  assert.throws(
    () =>
      prepareConfinement(
        planConfinement({ ...settings, confinement: "required" }, {}),
        0,
      ),
    /confinement = "required" but Landlock is not available/,
  );
});

Deno.test("gaps() names fs.protected_hardlinks = 0 for a plan with path rules: a hard link would bring any file under a rule", () => {
  const plan = planConfinement({
    capabilities: [],
    permissions: { write: ["/var/lib/app"] },
    syscallFilter: [],
    confinement: "required",
  }, {});
  const off = gaps(plan, 7, true, false);
  assert.ok(
    off.some((g) => /fs\.protected_hardlinks is not 1/.test(g)),
    off.join("; "),
  );
  assert.deepEqual(gaps(plan, 7, true, true), []);
  // Without path rules it does not matter.
  const noPaths = planConfinement({
    capabilities: [],
    permissions: "all",
    syscallFilter: [],
    confinement: "required",
  }, {});
  assert.ok(!gaps(noPaths, 7, true, false).some((g) => /hardlinks/.test(g)));
});

Deno.test("best-effort starts a context without file rules on a kernel whose Landlock knows neither TCP nor scopes", () => {
  // ABI 2 is Debian 12's kernel (6.1); such a ruleset would handle nothing,
  // which landlock_create_ruleset refuses (found by a review).
  for (const permissions of ["all", { write: [] as string[] }] as const) {
    for (const abi of [1, 2, 3, 5]) {
      const prepared = prepareConfinement(
        planConfinement({
          capabilities: [],
          permissions: permissions as PermissionsSetting,
          syscallFilter: [],
          confinement: "best-effort",
        }, {}),
        abi,
      );
      assert.ok(prepared.unenforced.length > 0, `ABI ${abi}: nothing reported`);
    }
  }
});

Deno.test("buildSuidFilter() builds for both architectures, every jump in range, ending in allow, EPERM and ENOSYS", () => {
  for (const arch of ["x86_64", "aarch64"]) {
    const prog = buildSuidFilter(arch);
    const view = new DataView(prog.buffer);
    const n = prog.length / 8;
    for (let i = 0; i < n; i++) {
      if ((view.getUint16(i * 8, true) & 0x07) !== 0x05) continue; // BPF_JMP
      assert.ok(i + 1 + view.getUint8(i * 8 + 2) < n, `${arch} jt at ${i}`);
      assert.ok(i + 1 + view.getUint8(i * 8 + 3) < n, `${arch} jf at ${i}`);
    }
    const ret = (i: number) => view.getUint32(i * 8 + 4, true);
    assert.deepEqual([ret(n - 3), ret(n - 2), ret(n - 1)], [
      0x7fff0000,
      0x00050000 | 1,
      0x00050000 | 38,
    ]);
  }
  assert.throws(() => buildSuidFilter("riscv64"), RangeError);
});

Deno.test("the BPF filter checks the architecture and denies x32 and the listed calls", () => {
  const prog = buildFilter(["ptrace", "bpf"], "x86_64");
  const view = new DataView(prog.buffer);
  const insn = (i: number) => ({
    code: view.getUint16(i * 8, true),
    jt: view.getUint8(i * 8 + 2),
    k: view.getUint32(i * 8 + 4, true),
  });
  assert.equal(prog.length / 8, 4 + 3 + 2);
  assert.equal(insn(1).k, 0xc000003e);
  assert.equal(insn(4).k, 0x40000000);
  assert.equal(insn(5).k, 101);
  assert.equal(insn(6).k, 321);
  // Every check jumps to the last instruction: return EPERM.
  for (const i of [4, 5, 6]) assert.equal(i + 1 + insn(i).jt, 8);
  assert.equal(insn(8).k, 0x00050001);
  assert.equal(insn(7).k, 0x7fff0000);
});

Deno.test("the seccomp filter refuses a new limit for another process whatever the kept capabilities (an eighteenth review)", async () => {
  requireRoot();
  // With CAP_SYS_RESOURCE kept, prlimit64 was allowed whole: the daemon's
  // programs gave its keeper (the daemon's uid) a 1 s CPU-time limit and fed
  // it lines until the kernel killed it, and could limit any process of the
  // host. The filter a context keeping it gets, applied to a process on this
  // kernel (this machine's root may lack CAP_SYS_RESOURCE, so no daemon that
  // keeps it can start here): another process's limit stays refused, its own
  // and reading still work; `+prlimit64` allows it whole.
  const script = (filter: string) => `
    import { planConfinement, prepareConfinement } from "${ROOT}/daemon/_confine.ts";
    const other = new Deno.Command("/usr/bin/sleep", { args: ["30"] }).spawn();
    const plan = planConfinement({ capabilities: [24], permissions: "all",
      confinement: "required", syscallFilter: ${filter} }, {});
    prepareConfinement(plan).apply();
    const libc = Deno.dlopen("libc.so.6", {
      prlimit: { parameters: ["i32", "i32", "buffer", "buffer"], result: "i32" },
      __errno_location: { parameters: [], result: "pointer" },
    }).symbols;
    const errno = () => new Deno.UnsafePointerView(libc.__errno_location()!).getInt32();
    const limit = new BigUint64Array([1000n, 1000n]);
    const old = new BigUint64Array(2);
    const RLIMIT_CPU = 0;
    const set = (pid) => libc.prlimit(pid, RLIMIT_CPU, new Uint8Array(limit.buffer), null) === 0 ? "ok" : "errno " + errno();
    const read = libc.prlimit(other.pid, RLIMIT_CPU, null, new Uint8Array(old.buffer)) === 0 ? "ok" : "errno " + errno();
    console.log(JSON.stringify({ other: set(other.pid), own: set(0), read }));
    other.kill("SIGKILL");
    await other.status;`;
  const probe = async (filter: string) =>
    JSON.parse(
      (await run([
        DENO,
        "eval",
        `--config=${ROOT}/deno.json`,
        script(filter),
      ])).stdout,
    );
  assert.deepEqual(await probe("[]"), {
    other: "errno 1",
    own: "ok",
    read: "ok",
  });
  assert.deepEqual(await probe('["+prlimit64"]'), {
    other: "ok",
    own: "ok",
    read: "ok",
  });
});

Deno.test("best-effort refuses to start when this kernel has seccomp but the filter cannot be installed", async () => {
  requireRoot();
  // Found by a review: best-effort took any failure to install the filter
  // for a kernel without seccomp, and the daemon served without one (unix
  // sockets, io_uring, keyrings back). The filter's memory is charged to the
  // caller's cgroup, whose limits a service may set; here the kernel's
  // budget of filter instructions per process is used up first (allow-all
  // filters, inherited across the exec), which fails the same way (ENOMEM).
  const fill = [
    "import ctypes, os, sys",
    "libc = ctypes.CDLL(None, use_errno=True)",
    "libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4",
    "def install(n):",
    "    prog = (ctypes.c_uint64 * n)()",
    "    for i in range(n - 1): prog[i] = 0x20 | (4 << 32)  # ld [4]",
    "    prog[n - 1] = 0x06 | (0x7fff0000 << 32)  # ret allow",
    "    fprog = (ctypes.c_uint64 * 2)(n, ctypes.addressof(prog))",
    "    return libc.prctl(22, 2, ctypes.addressof(fprog), 0, 0) == 0",
    "for size in (4096, 1024, 256, 64, 16, 4, 2, 1):",
    "    while install(size): pass",
    "os.execv(sys.argv[1], sys.argv[1:])",
  ].join("\n");
  const script = `
    import { planConfinement, prepareConfinement } from "${ROOT}/daemon/_confine.ts";
    const plan = planConfinement({ capabilities: [], permissions: "all",
      confinement: "best-effort", syscallFilter: [] }, {});
    const p = prepareConfinement(plan);
    try {
      p.apply();
      console.log("started without: " + JSON.stringify(p.unenforced));
    } catch (error) {
      console.log("refused: " + error.message);
    }`;
  const out = await run([
    "/usr/bin/python3",
    "-c",
    fill,
    DENO,
    "eval",
    `--config=${ROOT}/deno.json`,
    script,
  ]);
  assert.match(
    out.stdout,
    /^refused: .*seccomp filter could not be installed.*Cannot allocate memory/m,
    out.stdout,
  );
});
