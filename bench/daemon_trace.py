#!/usr/bin/env python3
"""Where the daemon's slow calls come from, with V8's own traces beside them.

The daemon's stdout is its channel, and V8 prints its traces (--trace-gc,
--trace-opt, --trace-deopt, ...) to stdout, so a real caller cannot trace the
daemon. This script plays the caller itself, in Python (no V8 of its own to
add collections or compilations to the figures): it starts the serving stage
directly, as root and without the first stage (no privilege drop, no sandbox:
for timing only, never a deployment), with the daemon's V8 flags plus the
trace flags asked for, tells the daemon's frames (which start with a zero
byte) from V8's text lines on the same pipe, and prints each trace line under
the call during which it came. Then, like a bench profile: the caller's
warm-up, the sequential calls, 8 then 64 in flight, the 1 MiB echoes, and the
measured phase: chown calls as the bench makes them (owner alternating), or
echo(null) with --echo. Each measured call slower than --slow-us is printed
with its position, then p50, p99 and max.

Run as root from the repository (its Deno and its cached dependencies):

    python3 bench/daemon_trace.py [--profile full|quick] [--calls 1000]
        [--idle-read event-loop|blocking] [--trace=--trace-gc,--trace-opt]
        [--slow-us 150] [--echo] [--phase chown|seq] [--serve-flags=...]

Findings made with it are in bench/HISTORY.md ("2026-12-05 last").
"""

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DENO = os.path.join(ROOT, "node_modules", "deno", "deno")


def project_constants():
    """The daemon's V8 flags, protocol version and warm-up, from the code."""
    code = (
        "import { DAEMON_V8_FLAGS, serveV8Flags } from './core/command.ts';"
        "import { PROTOCOL_VERSION, WARM_UP_NAMES } from './protocol/messages.ts';"
        "import { WARM_UP_ARGUMENT, WARM_UP_PLAN } from './contexts/_warm_up.ts';"
        "console.log(JSON.stringify({ flags: DAEMON_V8_FLAGS, serve: serveV8Flags(),"
        " version: PROTOCOL_VERSION,"
        " names: WARM_UP_NAMES, plan: WARM_UP_PLAN, typical: WARM_UP_ARGUMENT },"
        f" (_, v) => v === undefined ? '{UNDEFINED}' : v));"
    )
    import json

    out = subprocess.check_output([DENO, "eval", code], cwd=ROOT)
    return json.loads(out)


UNDEFINED = "\\u0000undefined"  # JSON for JavaScript's undefined (packed d4 00 00)


def pack(v):
    """The msgpack subset the calls need."""
    if v is None:
        return b"\xc0"
    if v == "\0undefined":
        return b"\xd4\x00\x00"
    if v is False:
        return b"\xc2"
    if v is True:
        return b"\xc3"
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, int):
        if -32 <= v < 0:
            return bytes([v & 0xFF])
        if 0 <= v < 128:
            return bytes([v])
        if 0 <= v < 65536:
            return b"\xcd" + struct.pack(">H", v)
        return b"\xce" + struct.pack(">I", v)
    if isinstance(v, str):
        b = v.encode()
        head = bytes([0xA0 | len(b)]) if len(b) < 32 else b"\xd9" + bytes([len(b)])
        return head + b
    if isinstance(v, bytes):
        return b"\xc6" + struct.pack(">I", len(v)) + v
    if isinstance(v, list):
        return bytes([0x90 | len(v)]) + b"".join(pack(x) for x in v)
    if isinstance(v, dict):
        return bytes([0x80 | len(v)]) + b"".join(pack(k) + pack(x) for k, x in v.items())
    raise TypeError(f"cannot pack {v!r}")


def frame(message):
    body = pack(message)
    return struct.pack(">I", len(body)) + body


class Channel:
    """The daemon's pipes: frames out, frames and V8's text lines in."""

    def __init__(self, proc):
        self.w = proc.stdin.fileno()
        self.r = proc.stdout.fileno()
        self.buf = bytearray()
        self.text = []
        self.next_id = 0

    def _fill(self):
        data = os.read(self.r, 1 << 20)
        if not data:
            sys.exit("the daemon closed its stdout (its stderr says why)")
        self.buf.extend(data)

    def frame(self):
        """The next frame's body; V8's lines on the way go to self.text."""
        buf = self.buf
        while True:
            while not buf:
                self._fill()
            if buf[0] != 0:  # a frame's length starts with a zero byte
                while b"\n" not in buf:
                    self._fill()
                end = buf.index(b"\n")
                self.text.append(buf[:end].decode(errors="replace"))
                del buf[: end + 1]
                continue
            while len(buf) < 4:
                self._fill()
            n = struct.unpack(">I", buf[:4])[0]
            while len(buf) < 4 + n:
                self._fill()
            body = bytes(buf[4 : 4 + n])
            del buf[: 4 + n]
            if n > 1:  # not a padding frame
                return body

    def send(self, message):
        os.write(self.w, frame(message))

    def call(self, name, args):
        self.next_id += 1
        self.send([1, self.next_id, name, args])

    def reply(self):
        """Waits for the next result or error (log records are skipped)."""
        while True:
            body = self.frame()
            # [kind, ...]: a fixarray, then the kind.
            if body[1] == 2:
                return
            if body[1] == 3:
                sys.exit(f"the daemon answered with an error: {body[:300]!r}")

    def calls(self, name, args, n, together):
        done = 0
        while done < n:
            k = min(together, n - done)
            for _ in range(k):
                self.call(name, args)
            for _ in range(k):
                self.reply()
            done += k


def measure(ch, a, n, echo, target, what):
    """Makes n measured calls, prints the slow ones with V8's lines."""
    print(f"{what}: {n} calls, idle_read {a.idle_read}", flush=True)
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        if target is None or a.echo:
            ch.call(echo, [None])
        else:
            owner = 65534 if i % 2 == 0 else 0
            ch.call("mod.ts#chown", [target, owner, owner])
        ch.reply()
        us = (time.perf_counter() - t0) * 1e6
        times.append(us)
        for line in ch.text:
            print("    " + line[:200])
        ch.text.clear()
        if us > a.slow_us:
            print(f"slow: call {i}, {us:.0f} µs", flush=True)
    times.sort()
    p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    print(f"p50 {p(0.5):.0f} µs, p99 {p(0.99):.0f} µs, max {times[-1]:.0f} µs")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", choices=["full", "quick"], default="full")
    ap.add_argument("--calls", type=int, default=None)
    ap.add_argument("--idle-read", choices=["event-loop", "blocking"], default="event-loop")
    ap.add_argument("--trace", default="--trace-gc,--trace-opt,--trace-deopt")
    ap.add_argument("--slow-us", type=float, default=150)
    ap.add_argument("--echo", action="store_true", help="measure echo(null), not chown")
    ap.add_argument("--phase", choices=["chown", "seq"], default="chown",
                    help="measure the profile's last phase (chown), or its first "
                    "sequential calls right after the warm-up (seq: echo(null), "
                    "the calls after the first 300)")
    ap.add_argument("--serve-flags", default=None,
                    help="the serving stage's DENO_V8_FLAGS instead of serveV8Flags()")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the serving stage starts directly and chowns a file")
    full = a.profile == "full"
    n_measured = a.calls if a.calls is not None else (1000 if full else 100)
    k = project_constants()

    # The config the daemon loads is root-owned, in a directory only root writes.
    tmp = tempfile.mkdtemp(prefix="privsep-trace-", dir="/var/lib")
    os.chmod(tmp, 0o755)
    target = os.path.join(tmp, "target")
    with open(target, "w") as f:
        f.write("x")
    flags = k["flags"] + ("," + a.trace.lstrip(",") if a.trace else "")
    argv = [
        "stdbuf", "-oL",  # V8's lines whole and on time, between the frames
        DENO, "run", "--no-prompt", "--cached-only", "--no-lock", flags,
        f"--config={ROOT}/deno.json", f"--allow-write={target}", "--allow-read",
        "--allow-sys=uid,gid",
        f"{ROOT}/daemon.ts", "--stage=serve",
        f"--context=file://{ROOT}/bench/privsep/mod.ts#benchCtx",
        "--concurrency=64", "--uid=0", "--gid=0", "--capabilities=",
        f"--idle-read={a.idle_read}",
    ]
    # As daemon/start.ts gives the serving stage.
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/", "DENO_NO_UPDATE_CHECK": "1", "NO_COLOR": "1", "LANG": "C.UTF-8",
        "MALLOC_MMAP_THRESHOLD_": str((4 << 20) + 1),
        "MALLOC_TRIM_THRESHOLD_": str(8 << 20), "MALLOC_ARENA_MAX": "1",
        "DENO_V8_FLAGS": k["serve"] if a.serve_flags is None else a.serve_flags,
    }
    if "DENO_DIR" in os.environ:
        env["DENO_DIR"] = os.environ["DENO_DIR"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            cwd="/", bufsize=0, env=env)
    try:
        ch = Channel(proc)
        ch.send([0, {"v": k["version"], "pid": os.getpid(), "audit": False}])
        ch.frame()  # the daemon's hello
        # The caller's warm-up (contexts/_warm_up.ts): every other call with
        # the typical argument.
        plan, names = k["plan"], k["names"]
        kinds = [(names[0], [None]), (names[1], [k["typical"]])]
        for rnd in range(plan["rounds"]):
            if rnd == plan["largeAfterRounds"]:
                for size in plan["largeBytes"]:
                    ch.call(names[0], [bytes(size)])
                    ch.reply()
            for i in range(plan["together"]):
                ch.call(*kinds[i % 2])
            for i in range(plan["together"]):
                ch.reply()
        for i in range(plan["sequential"]):
            ch.call(*kinds[i % 2])
            ch.reply()
        # The profile's phases before chown (bench/bench.ts).
        echo = "mod.ts#echo"
        if a.phase == "seq":
            ch.calls(echo, [None], 300, 1)
            ch.text.clear()
            n_measured = a.calls if a.calls is not None else (20700 if full else 2000)
            measure(ch, a, n_measured, echo, None, "echo(null) after the warm-up")
            return
        ch.calls(echo, [None], 21000 if full else 2300, 1)
        for together, n in ([(8, 40000), (64, 64000)] if full else [(8, 8000), (64, 16000)]):
            ch.calls(echo, [None], n, together)
        mib = bytes([1]) * (1 << 20)
        for _ in range(103 if full else 23):
            ch.call(echo, [mib])
            ch.reply()
        ch.text.clear()
        what = "echo(null)" if a.echo else "chown"
        measure(ch, a, n_measured, echo, target, f"{what}, {a.profile} profile")
    finally:
        proc.stdin.close()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
