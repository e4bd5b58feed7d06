"""Kenward and Roger's adjusted covariance of beta and the df of its tests, as pbkrtest 0.5.2.

vcovAdj: with Phi = vcov(beta) and P, Q, K over the variance-covariance parameters
(vc_information.py), the expected information IE2_rs = K_rs - 2 tr(Phi Q_rs) + tr(Phi P_r Phi P_s)
gives W = 2 IE2^-1 (a generalized inverse when IE2 is near singular) and

    Phi_A = Phi + 2 Phi U Phi,   U = sum_rs W_rs (Q_rs - P_r Phi P_s).

A hypothesis L beta = 0 of rank q then has (Lb_ddf, .KR_adjust) Theta = L'(L Phi L')^-1 L,
A1 = sum W_rs tr(Theta Phi P_r Phi) tr(Theta Phi P_s Phi), A2 = sum W_rs tr(Theta Phi P_r Phi Theta
Phi P_s Phi), the denominator df and the scaling of the Wald F from Phi_A.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mlmcli.engine.factor import BlockedFactor

SOLVE_CONDITION = 1e-10  # vcovAdj: IE2 is inverted by solve() when min |eigenvalue| exceeds this
GINV_TOL = math.sqrt(np.finfo(float).eps)  # MASS::ginv's tolerance
V0_ZERO = 1e-10
DIVZERO_TOL = 1e-14
FSCALE_TOL = 0.01  # .KR_adjust: no scaling of F when ddf is within this of 2


@dataclass
class KenwardRoger:
    vcov_beta: np.ndarray  # Phi
    vcov_adjusted: np.ndarray  # Phi_A
    P: list[np.ndarray]
    W: np.ndarray

    def _a1_a2(self, L: np.ndarray) -> tuple[float, float]:
        Phi = self.vcov_beta
        Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
        TP = Theta @ Phi
        u = [TP @ P @ Phi for P in self.P]
        tr = np.array([np.trace(x) for x in u])
        prod = np.array([[float(np.sum(a * b.T)) for b in u] for a in u])
        return float(tr @ self.W @ tr), float(np.sum(self.W * prod))

    def ddf(self, L: np.ndarray) -> float:
        """pbkrtest's Lb_ddf: the denominator df for L beta (q = its rows)."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        A1, A2 = self._a1_a2(L)
        return _ddf(A1, A2, L.shape[0])

    def ftest(self, L: np.ndarray, beta: np.ndarray) -> tuple[float, int, float, float]:
        """KRmodcomp for L beta = 0: (unscaled F from Phi_A, num df, den df, F scaling)."""
        L = full_row_rank(np.atleast_2d(np.asarray(L, dtype=float)))
        q = L.shape[0]
        A1, A2 = self._a1_a2(L)
        df2 = _ddf(A1, A2, q)
        scaling = 1.0 if abs(df2 - 2) < FSCALE_TOL else df2 * (1 - A2 / q) / (df2 - 2)
        Lb = L @ beta
        wald = float(Lb @ np.linalg.solve(L @ self.vcov_adjusted @ L.T, Lb))
        return wald / q, q, df2, scaling


def _ddf(A1: float, A2: float, q: int) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        A1, A2 = np.float64(A1), np.float64(A2)
        B = (A1 + 6 * A2) / (2 * q)
        g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
        den = 3 * q + 2 * (1 - g)
        c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
        V0 = 1 + c1 * B
        V1 = 1 - c2 * B
        V2 = 1 - c3 * B
        if abs(V0) < V0_ZERO:
            V0 = np.float64(0.0)
        x = 1 - A2 / q
        ratio = np.float64(1.0) if abs(x) < DIVZERO_TOL and abs(V1) < DIVZERO_TOL else x / V1
        rho = ratio**2 * V0 / V2 / q
        return float(4 + (q + 2) / (q * rho - 1))


def full_row_rank(L: np.ndarray) -> np.ndarray:
    """pbkrtest's force_full_rank: an orthonormal basis of L's rows when they are dependent (the
    test depends on the row space alone; the leading right singular vectors span it whatever the
    order of the rows)."""
    rank = int(np.linalg.matrix_rank(L))
    if rank == L.shape[0]:
        return L
    return np.linalg.svd(L)[2][:rank]


def kenward_roger(system: BlockedFactor, sigma: float, vcov_beta: np.ndarray) -> KenwardRoger:
    """vcovAdj at the REML optimum; the system must be factored at the fit's theta."""
    from mlmcli.engine.vc_information import vc_information

    info = vc_information(system, sigma)
    Phi = np.asarray(vcov_beta, dtype=float)
    P, Q, K = info.P, info.Q, info.K
    m = len(P)
    PhiP = [Phi @ Pr for Pr in P]
    IE2 = np.empty((m, m))
    for r in range(m):
        for s in range(r, m):
            IE2[r, s] = IE2[s, r] = K[r, s] - 2 * float(np.sum(Phi * Q[r][s])) + float(np.sum(PhiP[r] * PhiP[s].T))
    if np.min(np.abs(np.linalg.eigvalsh(IE2))) > SOLVE_CONDITION:
        W = 2 * np.linalg.inv(IE2)
    else:
        W = 2 * np.linalg.pinv(IE2, rcond=GINV_TOL)
    W = (W + W.T) / 2
    U = np.zeros_like(Phi)
    for r in range(m):
        for s in range(m):
            U += W[r, s] * (Q[r][s] - P[r] @ Phi @ P[s])
    return KenwardRoger(vcov_beta=Phi, vcov_adjusted=Phi + 2 * Phi @ U @ Phi, P=P, W=W)
