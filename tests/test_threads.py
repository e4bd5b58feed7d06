"""engine/threads.py: a big dense factorization runs on every core (up to four) unless the user chose
OpenBLAS's thread count; everything else keeps the threads it has.  And the command's other choice
for its process: on large data, glibc's malloc keeps freed memory (cli/common.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from mlmcli.engine import threads
from mlmcli.engine.tail import DenseTail


def openblas_threads() -> set[int]:
    return {i["num_threads"] for i in threadpool_info() if i["internal_api"] == "openblas"}


def readings(monkeypatch, busy_cores: float, own_seconds: float = 0.1, seconds: float = 0.5) -> None:
    """cpu_ticks and the process's CPU time as if `busy_cores` cores were kept busy since start-up,
    besides this process's own `own_seconds`, over `seconds` on two CPUs."""
    hz = os.sysconf("SC_CLK_TCK")
    elapsed = int(seconds * hz)
    busy = int((busy_cores * seconds + own_seconds) * hz)
    monkeypatch.setattr(threads, "_STARTED", ((1000, 5000, 2), 1.0))
    monkeypatch.setattr(threads, "cpu_ticks", lambda: (1000 + busy, 5000 + 2 * elapsed, 2))
    monkeypatch.setattr(threads.time, "process_time", lambda: 1.0 + own_seconds)
    monkeypatch.setattr(threads, "cores", lambda: 2)
    threads.big_threads.cache_clear()


@pytest.fixture
def one_thread(monkeypatch):
    monkeypatch.setattr(threads, "USER_THREADS", None)
    readings(monkeypatch, busy_cores=0.0)  # an idle machine: the count does not depend on its load
    with threadpool_limits(limits=1, user_api="blas"):
        yield
    threads.big_threads.cache_clear()


def test_a_big_factorization_runs_on_every_core(one_thread):
    with threads.for_factorization(threads.MIN_ORDER):
        inside = openblas_threads()
    assert inside == {2}
    assert openblas_threads() == {1}  # and the count is restored after it


def test_a_core_other_processes_keep_busy_is_left_to_them(one_thread, monkeypatch):
    """OpenBLAS's threads wait for each other: one sharing a core with another process holds the
    factorization up, so a core kept busy by others since start-up gets no thread."""
    readings(monkeypatch, busy_cores=0.9)
    assert threads.busy_elsewhere(threads._STARTED[0], threads.cpu_ticks(), 0.1) == pytest.approx(0.9, abs=0.03)
    assert threads.big_threads() == 1
    with threads.for_factorization(4 * threads.MIN_ORDER):
        assert openblas_threads() == {1}
    readings(monkeypatch, busy_cores=0.3)  # a little load elsewhere: both cores still
    assert threads.big_threads() == 2


def test_busy_elsewhere_needs_readings_that_can_tell():
    """No /proc/stat, another set of CPUs, or too short a time: no load assumed."""
    start = (1000, 5000, 2)
    assert threads.busy_elsewhere(None, start, 0.0) == 0.0
    assert threads.busy_elsewhere(start, (1500, 6000, 3), 0.0) == 0.0
    assert threads.busy_elsewhere(start, (1010, 5000 + 2 * (threads.MIN_TICKS - 1), 2), 0.0) == 0.0
    hz = os.sysconf("SC_CLK_TCK")
    # 100 ticks a CPU; 150 busy, of which 50 this process's own: one core's worth elsewhere
    assert threads.busy_elsewhere(start, (1150, 5200, 2), 50 / hz) == pytest.approx(1.0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat")
def test_cpu_ticks_reads_this_processs_cpus():
    busy, total, ncpu = threads.cpu_ticks()
    assert ncpu == len(os.sched_getaffinity(0))
    assert 0 < busy <= total


def test_a_small_one_and_a_users_choice_keep_the_threads(one_thread, monkeypatch):
    with threads.for_factorization(threads.MIN_ORDER - 1):
        assert openblas_threads() == {1}
    monkeypatch.setattr(threads, "USER_THREADS", "1")
    with threads.for_factorization(4 * threads.MIN_ORDER):
        assert openblas_threads() == {1}


def test_the_tail_factor_is_the_same_on_any_number_of_threads(one_thread):
    rng = np.random.default_rng(3)
    M = rng.standard_normal((700, 700))
    A = M @ M.T + 700 * np.eye(700)
    factors = []
    for user in ("1", None):  # one thread, then every core
        threads.USER_THREADS = user
        tail = DenseTail()
        tail.D = A.copy()
        tail.factor()
        factors.append(np.tril(tail.L))
    np.testing.assert_allclose(factors[0], factors[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(factors[0] @ factors[0].T, A, rtol=1e-12, atol=1e-9)


def test_a_library_fit_runs_the_engine_on_one_thread(monkeypatch):
    """mlmcli.lmer from a Python process whose OpenBLAS has two threads: the engine's work runs on
    one, as the command's does, and the caller's threads are back afterwards."""
    import mlmcli
    from mlmcli.engine.factor import BlockedFactor

    monkeypatch.setattr(threads, "USER_THREADS", None)
    monkeypatch.setattr(threads, "SINGLE_THREADED", False)
    seen: set[int] = set()
    update = BlockedFactor.update

    def watched(self, theta):
        seen.update(openblas_threads())
        return update(self, theta)

    monkeypatch.setattr(BlockedFactor, "update", watched)
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(30), 10)
    y = rng.standard_normal(30)[g] + rng.standard_normal(300)
    import pandas as pd

    with threadpool_limits(limits=2, user_api="blas"):
        fit = mlmcli.lmer("y ~ 1 + (1|g)", pd.DataFrame({"y": y, "g": g}))
        after = openblas_threads()
    assert seen == {1}
    assert after == {2}
    assert fit.theta[0] > 0


HEAP_PROBE = """
import ctypes, sys
import subprocess
import sys

import numpy as np
from mlmcli.cli import common

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                     "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
common.ROOMY_HEAP_BYTES = int(sys.argv[2])
common._keep_freed_memory(sys.argv[1])
a = np.ones(6_000_000)  # 48 MB: above glibc's largest mmap threshold of its own choosing
print(libc.mallinfo2().hblkhd)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
@pytest.mark.parametrize(("limit", "mapped"), [(0, False), (1 << 40, True)])
def test_a_large_data_file_keeps_freed_memory_in_the_heap(tmp_path, limit, mapped):
    """At or above ROOMY_HEAP_BYTES the command has glibc serve row-length arrays from its heap (and
    keep them there when freed) rather than map fresh pages for each; below it malloc is left as it is."""
    data = tmp_path / "d.csv"
    data.write_text("y,x\n1,2\n")
    out = subprocess.run(
        [sys.executable, "-c", HEAP_PROBE, str(data), str(limit)], capture_output=True, text=True, check=True
    )
    assert (int(out.stdout) >= 48_000_000) is mapped
