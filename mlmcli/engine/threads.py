"""How many BLAS threads the engine runs on: one, and every core for a big dense factorization.

The engine's dense work is mostly many small products, where OpenBLAS's threads cost more in waking
and spinning than they save: the command runs OpenBLAS on one thread (cli/__init__.py).  A crossed
design's dense tail of a thousand levels or more is the exception: its Cholesky factorization, once
per evaluation of the criterion, runs at 1.6x the speed on two threads (InstEval's 1128 x 1128
block: 10 ms on one, 6 ms on two), and it is most of a glmer fit's time there.  So that one call
runs on every core (up to MAX_THREADS), unless the user chose a number of OpenBLAS threads, which is
then kept.  threadpoolctl sets OpenBLAS's thread count around the call (~10 microseconds).

Every core, that is, that other processes leave free.  OpenBLAS's threads wait for each other at
every step of a factorization, so one of them sharing its core with another process holds all of
them up (InstEval with the other core busy: 1.0 to 1.1 s on two threads, 0.72 s on one).  The
cores' busy time since start-up (/proc/stat, on the CPUs this process may use), less this
process's own CPU time, says how many cores others keep busy; that many fewer threads are used,
decided once, at the first big factorization.
"""

from __future__ import annotations

import os
import time
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from typing import Any

# captured when the engine is first imported: the command imports this module before it sets its
# own default of one thread, so this is the user's choice (None: no choice made)
USER_THREADS = os.environ.get("OPENBLAS_NUM_THREADS")
# set by the command once it has started OpenBLAS on one thread (cli/__init__.py): then nothing
# needs limiting around the engine's work
SINGLE_THREADED = False
# a factorization smaller than this (its order) stays on the threads it has: waking others costs
# more than they save below a few hundred rows
MIN_ORDER = 512
MAX_THREADS = 4
# clock ticks (/proc/stat's units, USER_HZ) per CPU below which the time since start-up is too short
# to tell other processes' load from noise: every core is then taken
MIN_TICKS = 10


def cpu_ticks() -> tuple[int, int, int] | None:
    """(busy, all, CPUs) clock ticks of the CPUs this process may run on since boot (/proc/stat: busy
    is all but idle and iowait; steal counts as busy, a core the hypervisor gives elsewhere); None
    where there is no /proc/stat."""
    try:
        allowed = os.sched_getaffinity(0)
        busy = total = ncpu = 0
        with open("/proc/stat", "rb") as fh:
            fh.readline()  # the first line sums every CPU
            for line in fh:
                if not line.startswith(b"cpu"):
                    break  # the CPUs' lines come first
                name, *fields = line.split()
                if int(name[3:]) not in allowed:
                    continue
                v = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
                total += sum(v)
                busy += sum(v) - v[3] - v[4]
                ncpu += 1
        return (busy, total, ncpu) if ncpu else None
    except (OSError, ValueError, AttributeError):
        return None


# at start-up: the command imports this module first
_STARTED = (cpu_ticks(), time.process_time())


@cache
def _openblas() -> Any | None:
    """threadpoolctl's handle on the OpenBLAS libraries (numpy's and scipy's), or None.  scipy's
    is loaded first: a handle made before it would leave it out (the engine's factorizations are
    scipy's LAPACK calls)."""
    try:
        import scipy.linalg  # noqa: F401
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - core dependencies
        return None
    found = ThreadpoolController().select(internal_api="openblas")
    return found if found.lib_controllers else None


def engine_threads() -> AbstractContextManager[object]:
    """One OpenBLAS thread for the engine's work from Python (the command has it from its start),
    unless the user chose a count: a library fit runs as the command's does, and the caller's own
    numpy work keeps its threads outside it."""
    if SINGLE_THREADED or USER_THREADS is not None:
        return nullcontext()
    lib = _openblas()
    return nullcontext() if lib is None else lib.limit(limits=1)


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def busy_elsewhere(start: tuple[int, int, int] | None, now: tuple[int, int, int] | None, own_seconds: float) -> float:
    """How many cores other processes kept busy between two readings of cpu_ticks, this process's
    own CPU time (`own_seconds`) taken off; 0 where the readings cannot tell."""
    if start is None or now is None or start[2] != now[2]:
        return 0.0
    busy, total, ncpu = now[0] - start[0], now[1] - start[1], now[2]
    elapsed = total / ncpu  # ticks per CPU
    if elapsed < MIN_TICKS:
        return 0.0
    return max(0.0, (busy - own_seconds * os.sysconf("SC_CLK_TCK")) / elapsed)


@cache
def big_threads() -> int:
    """The threads for a big factorization: the cores (up to MAX_THREADS) less those other processes
    kept busy since start-up, at least one."""
    n = min(cores(), MAX_THREADS)
    if n < 2:
        return n
    ticks, cpu = _STARTED
    others = busy_elsewhere(ticks, cpu_ticks(), time.process_time() - cpu)
    return max(1, n - int(others + 0.5))


def for_factorization(order: int) -> AbstractContextManager[object]:
    """The thread count for factoring a dense matrix of this order: every free core (big_threads)
    for a big one unless the user chose, otherwise as it is."""
    if order < MIN_ORDER or USER_THREADS is not None:
        return nullcontext()
    n = big_threads()
    if n < 2:
        return nullcontext()
    lib = _openblas()
    return nullcontext() if lib is None else lib.limit(limits=n)
