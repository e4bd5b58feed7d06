"""Bootstrap refits of a model with one random-effects term, many at a time.

One evaluation of the criterion is a few dozen numpy operations on arrays of one block per level;
for a refit that is mostly interpreter overhead (sleepstudy: 18 levels) or, on hundreds of levels,
operations too small to run at full speed.  So the refits of a chunk run in lockstep: each has its
own BOBYQA (NLopt, in a thread of its own, the same optimizer and steps as a single refit), and each
evaluation it asks for waits until every refit still running has asked for one; then one batched
evaluation computes the criterion for all of them, each at its own theta with its own response:

    M_l = T' (Z_l'Z_l) T + I = L_l L_l',   R_l = L_l^{-1} T' Z_l'[X y],
    [X y]'[X y] - sum_l R_l'R_l = L_F L_F'   (lower-right element: sqrt(pwrss)),

with the same criterion, the refits' GaussianResponse's (response.py).  A refit whose batched value
is not to be trusted (a non-positive-definite block, or the cancellation blocks.FixedDiagonal
guards against) is evaluated by its own BlockedFactor instead.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from mlmcli.engine.blocks import CANCELLATION, batched_cholesky
from mlmcli.engine.crossprod import CrossProducts
from mlmcli.engine.factor import BlockedFactor
from mlmcli.engine.fit import FAILED_VALUE, Objective
from mlmcli.engine.response import GaussianResponse

R = TypeVar("R")


class BatchedCriterion:
    """The profiled REML criterion or ML deviance of one-term models sharing Z and X, one response each."""

    def __init__(self, cps: list[CrossProducts], reml: bool) -> None:
        cp = cps[0]
        self.p = cp.p
        s = cp.structures[0]
        self.k, self.rows, self.cols = s.k, s.tri_rows, s.tri_cols
        self.A = cp.A_diag[0]  # (ell, k, k), shared
        self.AF = np.stack([c.A_F[0] for c in cps])  # (B, ell, p+1, k)
        self.AFF = np.stack([c.A_FF for c in cps])  # (B, p+1, p+1)
        self.AFk = [np.ascontiguousarray(self.AF[..., a]) for a in range(self.k)]
        # each refit's own response (the penalized RSS read off the factor: no pass over the rows);
        # the batch's values come from the same formula, so that they and the fallback's are one function
        responses = [GaussianResponse.of(c, reml, direct_rows=0) for c in cps]
        self.response = responses[0]  # n, p, ldW and REML, the same for all
        self.fallback = [Objective(BlockedFactor(c), r) for c, r in zip(cps, responses, strict=True)]

    def _small(self, which: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ldL2 and the Schur complement for k <= 2: the level blocks' Cholesky factors in closed
        form on arrays over (refit, level), level-last and contiguous."""
        m, k = len(which), self.k
        ell = self.A.shape[0]
        AF = [a[which] for a in self.AFk]  # (m, ell, p+1) per column of Z_l
        t = T[:, :, :, None, None]  # broadcast over level and column
        if k == 1:
            l11 = np.sqrt(self.A[None, :, 0, 0] * T[:, 0, 0, None] ** 2 + 1.0)
            R = [AF[0] * (t[:, 0, 0] / l11[:, :, None])]
            ldL2 = 2.0 * np.log(l11).sum(axis=1)
        else:
            K = np.einsum("mba,mcd->mbcad", T, T).reshape(m, 4, 4)
            M = self.A.reshape(1, ell, 4) @ K  # T' A_l T, flattened
            l11 = np.sqrt(M[:, :, 0] + 1.0)
            l21 = M[:, :, 2] / l11
            l22 = np.sqrt(M[:, :, 3] + 1.0 - l21 * l21)
            C0 = AF[0] * t[:, 0, 0] + AF[1] * t[:, 1, 0]  # Z_l'[X y] T, column by column
            C1 = AF[1] * t[:, 1, 1]
            R0 = C0 / l11[:, :, None]
            R = [R0, (C1 - l21[:, :, None] * R0) / l22[:, :, None]]
            ldL2 = 2.0 * (np.log(l11) + np.log(l22)).sum(axis=1)
        if not np.all(np.isfinite(ldL2)):
            raise np.linalg.LinAlgError("not positive definite")
        S = self.AFF[which].copy()
        for Ri in R:
            S -= np.swapaxes(Ri, 1, 2) @ Ri
        return ldL2, S

    def _general(self, which: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ldL2 and the Schur complement for any k (LAPACK per block)."""
        m, k, p = len(which), self.k, self.p
        ell = self.A.shape[0]
        # T' A_l T for every level as one gemm per refit against kron(T, T) (blocks.congruence)
        K = np.einsum("mba,mcd->mbcad", T, T).reshape(m, k * k, k * k)
        M = (self.A.reshape(1, ell, k * k) @ K).reshape(m * ell, k, k)
        M[:, np.arange(k), np.arange(k)] += 1.0
        L, Linv = batched_cholesky(M)
        Linv = Linv.reshape(m, ell, k, k)
        AF = self.AF[which]  # (m, ell, p+1, k)
        C = (AF.reshape(m, ell * (p + 1), k) @ T).reshape(m, ell, p + 1, k)  # Z_l'[X y] T
        S = self.AFF[which].copy()
        for i in range(k):  # row i of L_l^{-1} T' Z_l'[X y]
            Ri = Linv[:, :, i, 0, None] * C[:, :, :, 0]
            for j in range(1, i + 1):
                Ri = Ri + Linv[:, :, i, j, None] * C[:, :, :, j]
            S -= np.swapaxes(Ri, 1, 2) @ Ri
        ldL2 = 2.0 * np.log(np.diagonal(L.reshape(m, ell, k, k), axis1=2, axis2=3)).sum(axis=(1, 2))
        return ldL2, S

    def __call__(self, which: np.ndarray, thetas: np.ndarray) -> np.ndarray:
        """The criterion of refits `which`, each at its row of `thetas`."""
        m, k, p = len(which), self.k, self.p
        T = np.zeros((m, k, k))
        T[:, self.rows, self.cols] = thetas
        out = np.full(m, FAILED_VALUE)
        try:
            with np.errstate(invalid="ignore", divide="ignore"):
                ldL2, S = self._small(which, T) if k <= 2 else self._general(which, T)
        except np.linalg.LinAlgError:
            return self._each(which, thetas, np.ones(m, dtype=bool), out)
        diag = np.diagonal(S, axis1=1, axis2=2)
        bad = np.any(np.diagonal(self.AFF[which], axis1=1, axis2=2) > CANCELLATION * np.abs(diag), axis=1)
        good = ~bad
        if good.any():
            try:
                LF = np.linalg.cholesky(S[good])
            except np.linalg.LinAlgError:
                return self._each(which, thetas, np.ones(m, dtype=bool), out)
            with np.errstate(divide="ignore", invalid="ignore"):
                ldRX2 = 2.0 * np.log(np.diagonal(LF[:, :p, :p], axis1=1, axis2=2)).sum(axis=1)
                pwrss = LF[:, p, p] ** 2
                v = self.response.profiled(ldL2[good], pwrss, ldRX2)
            out[good] = np.where(np.isfinite(v) & (pwrss > 0), v, FAILED_VALUE)
        return self._each(which, thetas, bad, out)

    def _each(self, which: np.ndarray, thetas: np.ndarray, mask: np.ndarray, out: np.ndarray) -> np.ndarray:
        for r in np.flatnonzero(mask):
            out[r] = self.fallback[which[r]](thetas[r])
        return out


class Lockstep:
    """Runs tasks in threads; each task's evaluations are gathered and computed in one batch.  Each
    task waits on its own event, so a round wakes each thread once (a shared condition would wake
    every waiting thread at every request)."""

    def __init__(self, criterion: BatchedCriterion) -> None:
        self.criterion = criterion
        self.lock = threading.Lock()
        self.ready = threading.Event()  # every running task has asked: the batch is due
        self.pending: dict[int, np.ndarray] = {}
        self.results: dict[int, float] = {}
        self.answered: list[threading.Event] = []
        self.active = 0

    def evaluate(self, j: int, theta: np.ndarray) -> float:
        """Task j's criterion at theta (called from task j's thread; waits for the batch)."""
        answered = self.answered[j]
        answered.clear()
        with self.lock:
            self.pending[j] = np.array(theta, dtype=float)
            if len(self.pending) >= self.active:
                self.ready.set()
        answered.wait()
        return self.results.pop(j)

    def run(self, tasks: list[Callable[[], R]]) -> list[R | BaseException]:
        """Each task's result, or the exception it raised."""
        out: list[R | BaseException] = [RuntimeError("not run")] * len(tasks)

        def body(j: int) -> None:
            try:
                out[j] = tasks[j]()
            except BaseException as e:  # handed to the caller, which decides
                out[j] = e
            finally:
                with self.lock:
                    self.active -= 1
                    if len(self.pending) >= self.active:
                        self.ready.set()

        self.answered = [threading.Event() for _ in tasks]
        self.active = len(tasks)
        threads = [threading.Thread(target=body, args=(j,), daemon=True) for j in range(len(tasks))]
        for th in threads:
            th.start()
        while True:
            self.ready.wait()
            with self.lock:
                self.ready.clear()
                if self.active == 0 and not self.pending:
                    break
                if len(self.pending) < self.active:
                    continue
                batch, self.pending = self.pending, {}
            which = np.array(sorted(batch))
            values = self.criterion(which, np.stack([batch[j] for j in which]))
            for j, v in zip(which.tolist(), values.tolist(), strict=True):
                self.results[j] = v
                self.answered[j].set()
        for th in threads:
            th.join()
        return out


class LockstepObjective(Objective):
    """Task j's objective in a Lockstep (its own system and response are the fallback's `own`; the
    system is factored at the end)."""

    def __init__(self, lockstep: Lockstep, j: int, own: Objective) -> None:
        super().__init__(own.system, own.response)
        self.lockstep, self.j = lockstep, j

    def __call__(self, theta: np.ndarray) -> float:
        self.count += 1
        v = self.lockstep.evaluate(self.j, theta)
        return v if math.isfinite(v) else FAILED_VALUE
