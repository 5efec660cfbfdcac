"""The oslo.privsep caller of `deno task bench`, run as the unprivileged bench
user with /usr/bin/python3. Prints one JSON object on stdout.

    driver.py command <config> <sockdir>         -> the helper argv oslo spawns
    driver.py run <config> <sockdir> <params>    -> the figures of one round

oslo.privsep puts its listening socket in a fresh tempfile.mkdtemp()
directory, so the helper command differs on every start and no exact sudoers
rule could allow it. The driver pins that directory to <sockdir> (created
0700, owned by the caller, removed by oslo after each start) so the rule stays
exact, without a wildcard; nothing else in oslo.privsep is changed.
"""
import json
import os
import resource
import sys
import threading
import time

from oslo_config import cfg
from oslo_privsep import daemon as privsep_daemon
from oslo_privsep import priv_context

from privsep_bench_oslo import bench_ctx
from privsep_bench_oslo import ops

mode, config, sockdir = sys.argv[1:4]


class _PinnedTempfile:
    """Stands in for the tempfile module inside oslo_privsep.daemon."""

    @staticmethod
    def mkdtemp():
        os.mkdir(sockdir, 0o700)
        return sockdir


privsep_daemon.tempfile = _PinnedTempfile
cfg.CONF(args=["--config-file", config], project="privsep_bench",
         default_config_files=[], default_config_dirs=[])
priv_context.init(root_helper=["sudo", "-n"])

if mode == "command":
    print(json.dumps(bench_ctx.helper_command(
        os.path.join(sockdir, "privsep.sock"))))
    sys.exit(0)

params = json.loads(sys.argv[4])


def pct(xs, p):
    s = sorted(xs)
    return s[min(len(s) - 1, int(p * len(s)))]


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


out = {}

# Cold start: sudo, privsep-helper (a fresh python3), socket, drop, reply.
starts = []
for _ in range(params["coldStarts"]):
    t0 = time.perf_counter()
    ops.echo(None)
    starts.append((time.perf_counter() - t0) * 1000)
    bench_ctx.stop()
    time.sleep(0.05)  # let the old daemon go before the next start
out["coldStartMs"] = starts

ops.echo(None)
for _ in range(params["warmup"]):
    ops.echo(None)

# Sequential no-op calls, with the caller's CPU time over the run.
n = params["seq"]
lat = []
c0 = cpu()
w0 = time.perf_counter()
for _ in range(n):
    t0 = time.perf_counter()
    ops.echo(None)
    lat.append(time.perf_counter() - t0)
wall = time.perf_counter() - w0
c1 = cpu()
out["seqP50Us"] = pct(lat, 0.5) * 1e6
out["seqP99Us"] = pct(lat, 0.99) * 1e6
out["seqCallsPerSec"] = n / wall
out["callerCpuUsPerCall"] = (c1 - c0) * 1e6 / n

# Calls in flight: one client thread per call in flight.
for threads in (8, 64):
    total = params["inflight"][str(threads)]
    per = total // threads
    lats = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def worker(mine):
        barrier.wait()
        for _ in range(per):
            t0 = time.perf_counter()
            ops.echo(None)
            mine.append(time.perf_counter() - t0)

    pool = [threading.Thread(target=worker, args=(lats[i],))
            for i in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    w0 = time.perf_counter()
    for t in pool:
        t.join()
    wall = time.perf_counter() - w0
    flat = [x for xs in lats for x in xs]
    out[f"inFlight{threads}CallsPerSec"] = len(flat) / wall
    out[f"inFlight{threads}P50Us"] = pct(flat, 0.5) * 1e6
    out[f"inFlight{threads}P99Us"] = pct(flat, 0.99) * 1e6

# 1 MiB bytes echo.
mib = b"\x01" * (1 << 20)
for _ in range(3):
    ops.echo(mib)
big = []
for _ in range(params["mib"]):
    t0 = time.perf_counter()
    r = ops.echo(mib)
    big.append((time.perf_counter() - t0) * 1000)
    assert len(r) == len(mib)
out["echo1MiBMs"] = pct(big, 0.5)

# The narrow operation: chown to the bench user and back, one call each.
target, uid, gid = params["target"], params["uid"], params["gid"]
ch = []
for i in range(params["chown"]):
    to = (uid, gid) if i % 2 == 0 else (0, 0)
    t0 = time.perf_counter()
    ops.chown(target, *to)
    ch.append((time.perf_counter() - t0) * 1000)
if params["chown"] % 2:
    ops.chown(target, 0, 0)
out["chownP50Ms"] = pct(ch, 0.5)
out["chownP99Ms"] = pct(ch, 0.99)

# Daemon peak RSS and its anonymous memory after all of the above.
out["daemon"] = ops.whoami()
with open(f"/proc/{out['daemon']['pid']}/status") as f:
    for line in f:
        if line.startswith("VmHWM:"):
            out["daemonPeakRssMiB"] = int(line.split()[1]) / 1024
        if line.startswith("RssAnon:"):
            out["daemonRssAnonMiB"] = int(line.split()[1]) / 1024

# The first large calls of a fresh daemon: started by a no-op call, then
# 1 MiB echoes at once (bench/drivers/_common.ts, FRESH_LARGE_CALLS).
bench_ctx.stop()
time.sleep(0.05)
ops.echo(None)
fresh = []
for _ in range(5):
    t0 = time.perf_counter()
    r = ops.echo(mib)
    fresh.append((time.perf_counter() - t0) * 1000)
    assert len(r) == len(mib)
out["echo1MiBFresh5Ms"] = sum(fresh) / len(fresh)
bench_ctx.stop()
print(json.dumps(out))
