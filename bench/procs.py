"""Run one child process and measure it: wall time, peak resident memory, exit status, output."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else shutil.which("gtime")


@dataclass
class Run:
    """One timed process. `seconds` is wall time from spawn to reaping, `cpu` its user + system CPU
    seconds (more than `seconds` for a multi-threaded child; less sensitive to a busy machine), `rss_mb`
    the child's peak RSS."""

    seconds: float
    rss_mb: float
    code: int
    timed_out: bool
    stdout: str
    stderr: str
    cpu: float = float("nan")

    @property
    def ok(self) -> bool:
        return self.code == 0 and not self.timed_out


def run(argv: list[str], timeout: float | None = None, env: dict[str, str] | None = None) -> Run:
    """Run argv to completion (or until `timeout` seconds), capturing output in files, not pipes.

    Files rather than pipes: a child that prints a lot never blocks on a full pipe, and reading the
    output costs the parent nothing while the clock runs. Peak RSS is the child's ru_maxrss (KiB on
    Linux), which covers the exec'd program too (Rscript execs R). Linux starts a forked child's
    high-water mark at the parent's resident size, so the child is spawned through GNU time (a 1 MB
    process) when it is installed; otherwise os.wait4's figure includes this runner's ~15 MB.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        wrapped = [GNU_TIME, "-f", "%M %U %S", "-o", rss.name, *argv] if GNU_TIME else argv
        t0 = time.perf_counter()
        p = subprocess.Popen(wrapped, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                             start_new_session=True)
        fired = threading.Event()

        def kill() -> None:
            fired.set()
            try:
                os.killpg(p.pid, signal.SIGKILL)   # the whole session: R may have children
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill) if timeout else None
        if timer:
            timer.daemon = True   # a pending timer must not keep an interrupted runner alive
            timer.start()
        try:
            _, status, usage = os.wait4(p.pid, 0)
        except BaseException:   # interrupted: take the child's whole session down with us
            if timer:
                timer.cancel()
            kill()
            raise
        seconds = time.perf_counter() - t0
        if timer:
            timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)   # reaped here, so Popen must not wait again
        kib, cpu = float(usage.ru_maxrss), usage.ru_utime + usage.ru_stime
        if GNU_TIME:
            # The last line is "%M %U %S"; "Command exited with non-zero status N" may come before it.
            last = (rss.read().strip().splitlines() or [""])[-1].split()
            try:
                kib, cpu = float(last[0]), float(last[1]) + float(last[2])
            except (IndexError, ValueError):   # killed before GNU time could write
                kib, cpu = float("nan"), float("nan")
        out.seek(0)
        err.seek(0)
        return Run(seconds, kib / 1024.0, p.returncode, fired.is_set(), out.read(), err.read(), cpu)
