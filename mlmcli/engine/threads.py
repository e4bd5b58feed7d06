"""How many BLAS threads the engine runs on: one, and every core for a big dense factorization.

The engine's dense work is mostly many small products, where OpenBLAS's threads cost more in waking
and spinning than they save: the command runs OpenBLAS on one thread (cli/__init__.py).  A crossed
design's dense tail of a thousand levels or more is the exception: its Cholesky factorization, once
per evaluation of the criterion, runs at 1.6x the speed on two threads (InstEval's 1128 x 1128
block: 10 ms on one, 6 ms on two), and it is most of a glmer fit's time there.  So that one call
runs on every core (up to MAX_THREADS), unless the user chose a number of OpenBLAS threads, which is
then kept.  threadpoolctl sets OpenBLAS's thread count around the call (~10 microseconds).
"""

from __future__ import annotations

import os
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


def for_factorization(order: int) -> AbstractContextManager[object]:
    """The thread count for factoring a dense matrix of this order: every core (up to MAX_THREADS)
    for a big one unless the user chose, otherwise as it is."""
    n = min(cores(), MAX_THREADS)
    if order < MIN_ORDER or USER_THREADS is not None or n < 2:
        return nullcontext()
    lib = _openblas()
    return nullcontext() if lib is None else lib.limit(limits=n)
