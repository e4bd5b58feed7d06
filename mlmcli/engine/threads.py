"""How many BLAS threads a big dense factorization runs on.

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
# a factorization smaller than this (its order) stays on the threads it has: waking others costs
# more than they save below a few hundred rows
MIN_ORDER = 512
MAX_THREADS = 4


@cache
def _openblas() -> Any | None:
    """threadpoolctl's handle on the OpenBLAS libraries loaded (numpy's and scipy's), or None."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a core dependency
        return None
    found = ThreadpoolController().select(internal_api="openblas")
    return found if found.lib_controllers else None


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
