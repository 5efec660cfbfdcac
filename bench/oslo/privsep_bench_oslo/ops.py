"""Entrypoints of the oslo.privsep benchmark context."""
import os

from privsep_bench_oslo import bench_ctx


@bench_ctx.entrypoint
def echo(value):
    """Returns its argument."""
    return value


@bench_ctx.entrypoint
def chown(path, uid, gid):
    """Changes the owner of one file (the narrow operation)."""
    os.chown(path, uid, gid)


@bench_ctx.entrypoint
def whoami():
    """The daemon's pid (for its peak RSS), ids and effective capabilities."""
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f)
    return {"pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid(),
            "capEff": status["CapEff"].strip()}
