"""Parametric bootstrap of a fitted model on every core (lme4's bootMer), and boot's percentile
intervals of its replicates (confint(fit, method = "boot"), boot.ci(type = "perc")).

The replicates are the pipeline's refits of simulated responses (lme4's refit(fit, newresp):
pipeline.bootstrap_refits, refit_simulated), done in chunks; within a chunk a one-term model's
refits run in lockstep (engine/lockstep.py).  The chunks are shared between two threads where the
lockstep's arrays are long enough for numpy to release the GIL (a term with many levels), else
between two worker processes, each given the shared blocks once (a refit of a small or multi-term
model is many small numpy calls that hold the GIL).  Each replicate has its own random stream
(engine/bootstrap.py), so the result depends on the seed alone,
not on the number of workers or on the order in which chunks finish.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mlmcli.engine.bootstrap import BootstrapModel, Replicates
    from mlmcli.engine.glmm_bootstrap import GlmmBootstrapModel
    from mlmcli.glmmodel import GlmmModel
    from mlmcli.model import FittedModel

WORKERS = 2
# replicates per task: a one-term model refits a task's replicates in lockstep, and a batch of 50
# amortizes the interpreter's cost per evaluation; still small enough for a smooth progress bar
# and an even share between the workers
CHUNK = 50
# below this many chunks the workers' start-up (a fresh interpreter each) is not worth it
MIN_CHUNKS = 4
# a one-term model with at least this many levels shares its chunks between threads (_threads_pay)
THREAD_LEVELS = 100
BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
SINGULAR_MESSAGE = "boundary (singular) fit: see help('isSingular')"

_shared: BootstrapModel | GlmmBootstrapModel | None = None


def _start_worker(bm: BootstrapModel | GlmmBootstrapModel) -> None:
    """Worker set-up: the model once per process; interrupts are the parent's to handle."""
    import signal

    global _shared
    _shared = bm
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _work(indices: range) -> Replicates:
    from mlmcli.pipeline import refit_simulated

    assert _shared is not None
    return refit_simulated(_shared, indices)


def bootstrap(
    model: FittedModel | GlmmModel,
    nsim: int,
    seed: int,
    progress: Callable[[int], None] | None = None,
    workers: int = WORKERS,
) -> Replicates:
    """nsim parametric bootstrap replicates of the model's sd/cor, sigma and fixed effects;
    `progress(k)` is called as each k more replicates are done."""
    from mlmcli.engine.bootstrap import Replicates
    from mlmcli.pipeline import bootstrap_refits, refit_simulated

    bm = bootstrap_refits(model, seed)
    chunks = [range(a, min(a + CHUNK, nsim)) for a in range(0, nsim, CHUNK)]
    workers = min(workers, os.cpu_count() or 1, len(chunks))
    parts: dict[int, Replicates] = {}
    if workers > 1 and _threads_pay(bm):
        parts = _in_threads(bm, chunks, workers, progress)
    elif workers > 1 and len(chunks) >= MIN_CHUNKS:
        parts = _in_processes(bm, chunks, workers, progress)
    for c, idx in enumerate(chunks):  # serially: one worker, or no process pool on this system
        if c not in parts:
            parts[c] = refit_simulated(bm, idx)
            if progress:
                progress(len(idx))
    ordered = [parts[c] for c in range(len(chunks))]
    return Replicates(
        values=np.vstack([p.values for p in ordered]),
        failed=sum(p.failed for p in ordered),
        singular=sum(p.singular for p in ordered),
        errors=[e for p in ordered for e in p.errors],
    )


def _threads_pay(bm: BootstrapModel | GlmmBootstrapModel) -> bool:
    """Whether threads share the chunks better than processes: refits in lockstep on a term with
    many levels spend their time in numpy operations on long arrays, which release the GIL.
    Measured on 2000 refits: heck2011's 419 schools 11.8 s in two threads, 16.6 s in two processes;
    sleepstudy's 18 subjects 12.9 s and 6.9 s."""
    from mlmcli.engine.bootstrap import BootstrapModel, one_term

    # a glmer refit is PIRLS's many small steps: processes
    return isinstance(bm, BootstrapModel) and one_term(bm.cp) and bm.cp.structures[0].ell >= THREAD_LEVELS


def _in_threads(
    bm: BootstrapModel | GlmmBootstrapModel, chunks: list[range], workers: int, progress: Callable[[int], None] | None
) -> dict[int, Replicates]:
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from mlmcli.pipeline import refit_simulated

    parts: dict[int, Replicates] = {}
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = {pool.submit(refit_simulated, bm, idx): c for c, idx in enumerate(chunks)}
        for fut in as_completed(futures):
            c = futures[fut]
            parts[c] = fut.result()
            if progress:
                progress(len(chunks[c]))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # an interrupt: no new chunks start
    return parts


def _in_processes(
    bm: BootstrapModel | GlmmBootstrapModel, chunks: list[range], workers: int, progress: Callable[[int], None] | None
) -> dict[int, Replicates]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # Fresh worker processes with one BLAS thread each: the processes already fill the cores, and a
    # threaded BLAS on a busy machine turns a 6 x 6 triangular solve into milliseconds of waiting
    # (crossed models refit three times faster).  A forked worker would keep the parent's threads.
    saved = {k: os.environ.get(k) for k in BLAS_THREADS}
    os.environ.update(dict.fromkeys(BLAS_THREADS, "1"))
    try:
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(bm,),
        )
        futures = {pool.submit(_work, idx): c for c, idx in enumerate(chunks)}
    except (OSError, ValueError, NotImplementedError):
        return {}  # no semaphores or processes here: the caller runs the chunks itself
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    parts: dict[int, Replicates] = {}
    try:
        for fut in as_completed(futures):
            c = futures[fut]
            parts[c] = fut.result()
            if progress:
                progress(len(chunks[c]))
    except BaseException:
        for proc in list(getattr(pool, "_processes", {}).values()):  # an interrupt: stop them now
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return parts


def percentile_interval(t: np.ndarray, level: float) -> tuple[float, float]:
    """boot.ci(type = "perc")'s ends: boot's norm.inter, order statistics of the finite replicates
    interpolated on the normal quantile scale where (R + 1) alpha is not a whole number."""
    t = np.sort(t[np.isfinite(t)])
    R = len(t)
    if R == 0:
        return math.nan, math.nan
    nd = NormalDist()
    out = []
    for alpha in ((1.0 - level) / 2.0, (1.0 + level) / 2.0):
        rk = (R + 1) * alpha
        k = math.trunc(rk)
        if k == rk:
            out.append(float(t[min(max(k, 1), R) - 1]))
        elif k == 0:
            out.append(float(t[0]))
        elif k >= R:
            out.append(float(t[R - 1]))
        else:
            z, z0, z1 = nd.inv_cdf(alpha), nd.inv_cdf(k / (R + 1)), nd.inv_cdf((k + 1) / (R + 1))
            tk, tk1 = float(t[k - 1]), float(t[k])
            out.append(tk + (z - z0) / (z1 - z0) * (tk1 - tk))
    return out[0], out[1]


def bootstrap_messages(reps: Replicates, nsim: int) -> list[str]:
    """What lme4's confint(method = "boot") says about the refits: the count of singular refits
    (print.bootWarnings) and of failed ones (bootMer's warning)."""
    out = []
    if reps.singular:
        out.append(f"{reps.singular} message(s): {SINGULAR_MESSAGE}")
    if reps.failed:
        first = reps.errors[0] if reps.errors else ""
        out.append(f"{reps.failed} error(s): {first}" if first else f"{reps.failed} error(s)")
        out.append(f"some bootstrap runs failed ({reps.failed}/{nsim})")
    return out
