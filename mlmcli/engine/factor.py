"""Penalized least squares on a blocked Cholesky factor.

The formulation is that of Bates, Maechler, Bolker & Walker (2015), JSS 67(1), with the blocked
factor of MixedModels.jl.  For a given theta each term's blocks of A (crossprod.py) are scaled by
its relative covariance factor Lambda_i, the identity is added to the diagonal blocks, and the
whole is factored block by block:

    L_ii L_ii' = Lambda_i' A_ii Lambda_i + I - sum_{m<i} L_im L_im'
    L_ij       = (Lambda_i' A_ij Lambda_j - sum_{m<j} L_im L_jm') L_jj^{-T}

Leading terms nested in each other keep uniform block-diagonal diagonal blocks and nested
off-diagonal blocks (blocks.py); the dense tail of crossed terms is one LAPACK factorization.  The
block of [X y] is last, so the last diagonal element of its factor is sqrt(penalized RSS) and the
rest of it is R_X'.
"""

from __future__ import annotations

import numpy as np

from mlmcli.engine.blocks import Nested, batched_cholesky, bmm, congruence, segment_sum, t
from mlmcli.engine.crossprod import CrossProducts
from mlmcli.engine.tail import TailLambda, block_diag_or_vector, block_diag_or_vector_stack, scale_right

LOG_2PI = float(np.log(2.0 * np.pi))
# When a diagonal element of [X y]'[X y] exceeds its Schur complement by this factor, half the
# digits are gone in the subtraction: recompute it with exact sums.
CANCELLATION = 1e6
# Up to this many rows the penalized RSS is summed from the residuals, as lme4 does, so that
# BOBYQA follows lme4's path to the last digits; above it the factor's value is used and no
# evaluation reads the rows.
DIRECT_PWRSS_ROWS = 50_000


class BlockedFactor:
    """L(theta) over the blocks of A; `update` refactors."""

    # up to this many rows the criterion sums the residuals (see DIRECT_PWRSS_ROWS); an instance
    # sets 0 for refits that need not follow lme4's path to the last digit (the bootstrap's)
    direct_rows = DIRECT_PWRSS_ROWS

    def __init__(self, cp: CrossProducts) -> None:
        self.cp = cp
        self.n, self.p = cp.n, cp.p
        self.structures = cp.structures
        self.ok = False

    # ------------------------------------------------------------------ factor
    def update(self, theta: np.ndarray) -> bool:
        """Factor L(theta).  False when a block is not positive definite."""
        self.theta = np.array(theta, dtype=float)
        self.T = self.cp.templates(self.theta)
        try:
            self._factor()
        except np.linalg.LinAlgError:
            self.ok = False
            return False
        self.ok = bool(np.isfinite(self.L_FF).all())
        return self.ok

    def _factor(self) -> None:
        cp, T = self.cp, self.T
        nbd = cp.nbd
        tail = cp.q_tail > 0
        self.Ldiag: list[np.ndarray] = []     # (ell, k, k) per leading term
        self.Linv: list[np.ndarray] = []
        self.Lnest: dict[tuple[int, int], Nested] = {}
        self.LF: list[np.ndarray] = []        # (ell, p+1, k) per leading term
        self.Lt: list[object] = []            # tail rows against each leading term (CSR)
        if tail:
            Lam_t = TailLambda(T[nbd:], [s.ell for s in cp.structures[nbd:]])
        for j in range(nbd):
            Tj = T[j]
            D = congruence(Tj, cp.A_diag[j], Tj)
            D = D + np.eye(Tj.shape[0])
            for m in range(j):
                D -= self.Lnest[j, m].gram()
            L, Linv = batched_cholesky(D)
            self.Ldiag.append(L)
            self.Linv.append(Linv)
            LinvT = t(Linv)
            for i in range(j + 1, nbd):
                V = cp.A_nested[i, j].scaled(T[i], Tj).values
                for m in range(j):
                    V = V - self.Lnest[i, m].times_t(self.Lnest[j, m], cp.parents[m, j], cp.structures[j].ell)
                self.Lnest[i, j] = Nested(cp.parents[j, i], bmm(V, LinvT), cp.structures[i].ell)
            R = bmm(cp.A_F[j], Tj)
            for m in range(j):
                Lm = self.Lnest[j, m]
                R = R - segment_sum(bmm(self.LF[m], t(Lm.values)), cp.parents[m, j], cp.structures[j].ell)
            self.LF.append(bmm(R, LinvT))
            if tail:
                Rt = Lam_t.left_t(cp.A_tail[j])
                ell = cp.structures[j].ell
                if j == 0:                                 # one product: Lambda_0 L_00^{-T}
                    self.Lt.append(scale_right(Rt, block_diag_or_vector_stack(bmm(Tj, LinvT))))
                else:
                    Rt = scale_right(Rt, block_diag_or_vector(Tj, ell))
                    for m in range(j):
                        Rt = Rt - self.Lt[m] @ self.Lnest[j, m].to_csr().T
                    self.Lt.append(scale_right(Rt.tocsr(), block_diag_or_vector_stack(LinvT)))
        LF_flat = [self._flat(F) for F in self.LF]
        if tail:
            from scipy.linalg import solve_triangular

            D = Lam_t.sandwich(cp.A_tt)
            D[np.diag_indices_from(D)] += 1.0
            RF = Lam_t.right(cp.A_Ft)
            for j in range(nbd):
                D -= (self.Lt[j] @ self.Lt[j].T).toarray()
                RF -= np.asarray((self.Lt[j] @ LF_flat[j].T).T)
            self.Ltt = np.linalg.cholesky(D)
            self.LFt = solve_triangular(self.Ltt, RF.T, lower=True).T
            LF_flat.append(self.LFt)
        self.LF_flat = LF_flat
        MFF = cp.A_FF.copy()
        for F in LF_flat:
            MFF -= F @ F.T
        if np.any(np.diag(cp.A_FF) > CANCELLATION * np.abs(np.diag(MFF))):
            MFF = _schur_exact(cp.A_FF, LF_flat)
        self.L_FF = np.linalg.cholesky(MFF)

    def _flat(self, F: np.ndarray) -> np.ndarray:
        """(ell, p+1, k) -> (p+1, ell*k)."""
        return F.transpose(1, 0, 2).reshape(self.p + 1, -1)

    # ------------------------------------------------------------------ pieces
    @property
    def pwrss(self) -> float:
        return float(self.L_FF[self.p, self.p] ** 2)

    @property
    def ldL2(self) -> float:
        v = sum(2.0 * float(np.log(np.diagonal(L, axis1=1, axis2=2)).sum()) for L in self.Ldiag)
        if self.cp.q_tail:
            v += 2.0 * float(np.log(np.diag(self.Ltt)).sum())
        return v

    @property
    def RXt(self) -> np.ndarray:
        """R_X' (lower triangular, p x p): R_X'R_X = X'V^{-1}X / sigma^2 in lme4's scaling."""
        return self.L_FF[: self.p, : self.p]

    @property
    def ldRX2(self) -> float:
        return 2.0 * float(np.log(np.diag(self.RXt)).sum())

    def objective_pwrss(self) -> float:
        """The penalized RSS the criterion uses: summed from the residuals on small data."""
        return self.pwrss_direct() if self.n <= self.direct_rows else self.pwrss

    def objective(self, reml: bool) -> float:
        """lme4's profiled REML criterion or ML deviance at the current theta."""
        if not self.ok:
            return float("inf")
        pwrss = self.objective_pwrss()
        if pwrss <= 0.0:
            return float("inf")
        n, p = self.n, self.p
        if reml:
            nmp = n - p
            return self.ldL2 + self.ldRX2 + nmp * (1.0 + LOG_2PI + np.log(pwrss / nmp))
        return self.ldL2 + n * (1.0 + LOG_2PI + np.log(pwrss / n))

    def beta(self) -> np.ndarray:
        return np.linalg.solve(self.RXt.T, self.L_FF[self.p, : self.p])

    def LF_rows(self, rows: slice | int) -> list[np.ndarray]:
        """Rows of the [X y] block of L as right-hand sides per term: (ell, k, m) arrays."""
        sel = slice(rows, rows + 1) if isinstance(rows, int) else rows
        out = [F[:, sel, :].transpose(0, 2, 1) for F in self.LF]
        if self.cp.q_tail:
            Ft = self.LFt[sel].T                            # (q_tail, m)
            offs = self.cp.tail_offsets
            for i, s in enumerate(self.structures[self.cp.nbd:]):
                out.append(Ft[offs[i]:offs[i + 1]].reshape(s.ell, s.k, -1))
        return out

    def solve_modes(self, rhs: list[np.ndarray]) -> list[np.ndarray]:
        """Solve L_ZZ' U = C by block back-substitution (tail first); C and U per term as
        (ell, k, m) arrays, U returned flattened to (q, m)."""
        cp = self.cp
        m = rhs[0].shape[-1]
        U: list[np.ndarray] = [np.empty(0)] * len(self.structures)
        ut = None
        if cp.q_tail:
            from scipy.linalg import solve_triangular

            Ct = np.concatenate([c.reshape(-1, m) for c in rhs[cp.nbd:]])
            ut = solve_triangular(self.Ltt, Ct, lower=True, trans="T")
            offs = cp.tail_offsets
            for i in range(len(cp.tail_sizes)):
                U[cp.nbd + i] = ut[offs[i]:offs[i + 1]]
        for j in range(cp.nbd - 1, -1, -1):
            r = rhs[j]
            for i in range(j + 1, cp.nbd):
                si = self.structures[i]
                r = r - self.Lnest[i, j].t_times(U[i].reshape(si.ell, si.k, m))
            if ut is not None:
                r = r - np.asarray(self.Lt[j].T @ ut).reshape(r.shape)
            U[j] = np.einsum("lab,lam->lbm", self.Linv[j], r).reshape(-1, m)   # L_jj^{-T} r, per level
        return U

    def spherical_modes(self) -> list[np.ndarray]:
        """u: solve L_ZZ' u = c_u - L_XZ' beta."""
        p = self.p
        beta = self.beta()
        rhs = [c[:, :, p:] - c[:, :, :p] @ beta[:, None] for c in self.LF_rows(slice(0, p + 1))]
        return [ui[:, 0] for ui in self.solve_modes(rhs)]

    def conditional_modes(self, u: list[np.ndarray]) -> list[np.ndarray]:
        """b_i = Lambda_i u_i, as (ell, k) arrays."""
        return [ui.reshape(s.ell, s.k) @ T.T for s, T, ui in zip(self.structures, self.T, u, strict=True)]

    def Zb(self, b: list[np.ndarray]) -> np.ndarray:
        return self.cp.Zb(b)

    def pwrss_direct(self) -> float:
        """||y - X beta - Z b||^2 + ||u||^2, summed from the solution as lme4 does."""
        u = self.spherical_modes()
        r = self.cp.y - self.cp.X @ self.beta() - self.Zb(self.conditional_modes(u))
        return float(r @ r + sum(float(ui @ ui) for ui in u))

    def unscaled_vcov(self) -> np.ndarray:
        """(R_X'R_X)^{-1}: vcov(beta) / sigma^2."""
        Rinv = np.linalg.inv(self.RXt)
        return Rinv.T @ Rinv

    def unscaled_condvar(self) -> list[np.ndarray]:
        """Per term, (ell, k, k) diagonal blocks of Lambda (L L')^{-1} Lambda' (lme4's condVar / sigma^2)."""
        from mlmcli.engine.selinv import inverse_diagonal_blocks

        blocks = inverse_diagonal_blocks(self)
        return [T @ B @ T.T for T, B in zip(self.T, blocks, strict=True)]


def _schur_exact(A: np.ndarray, LF: list[np.ndarray]) -> np.ndarray:
    """A - sum LF LF' with exactly rounded sums, for when the subtraction cancels most digits
    (predictors on a large scale whose variation the random effects absorb)."""
    import math

    F = np.hstack(LF)
    m = A.shape[0]
    out = np.empty((m, m))
    for i in range(m):
        for j in range(i + 1):
            out[i, j] = out[j, i] = math.fsum(np.concatenate(([A[i, j]], -(F[i] * F[j]))).tolist())
    return out

