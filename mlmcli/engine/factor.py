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
from mlmcli.engine.small_term import SmallTermBlocks, SmallTermFactor, factor_small_term
from mlmcli.engine.tail import TailGram, TailLambda, block_diag_or_vector, block_diag_or_vector_stack, scale_right

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
        # one term of one or two columns: the closed-form kernel (small_term.py), on big data only:
        # its sums round differently in the last bits, and on small data BOBYQA should follow
        # lme4's path as closely as the per-row penalized RSS lets it
        big = cp.n > DIRECT_PWRSS_ROWS
        one_small = big and len(cp.structures) == 1 and cp.q_tail == 0 and cp.structures[0].k <= 2
        self.small = SmallTermBlocks.of(cp.A_diag[0], cp.A_F[0]) if one_small else None
        self._small_factor: SmallTermFactor | None = None
        self._stacks: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] | None = None
        self._gram0: TailGram | bool | None = None if big else False  # False: not used (as above)

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

    # the diagonal blocks of L_ZZ, their inverses and L_FZ, per leading term; the closed-form
    # kernel forms these stacks only when something after the fit asks for them
    @property
    def Ldiag(self) -> list[np.ndarray]:
        return self._stacked()[0]

    @property
    def Linv(self) -> list[np.ndarray]:
        return self._stacked()[1]

    @property
    def LF(self) -> list[np.ndarray]:
        return self._stacked()[2]

    def _stacked(self) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        if self._stacks is None:
            L, Linv, LF = self._small_factor.stacks()
            self._stacks = ([L], [Linv], [LF])
        return self._stacks

    def _factor(self) -> None:
        if self.small is not None:
            self._factor_small()
            return
        cp, T = self.cp, self.T
        nbd = cp.nbd
        tail = cp.q_tail > 0
        Ldiag: list[np.ndarray] = []  # (ell, k, k) per leading term
        Linvs: list[np.ndarray] = []
        self.Lnest: dict[tuple[int, int], Nested] = {}
        LFs: list[np.ndarray] = []  # (ell, p+1, k) per leading term
        self._stacks = (Ldiag, Linvs, LFs)
        self.Lt: list[object] = []  # tail rows against each leading term (CSR)
        if tail:
            Lam_t = TailLambda(T[nbd:], [s.ell for s in cp.structures[nbd:]])
        for j in range(nbd):
            Tj = T[j]
            D = congruence(Tj, cp.A_diag[j], Tj)
            D = D + np.eye(Tj.shape[0])
            for m in range(j):
                D -= self.Lnest[j, m].gram()
            L, Linv = batched_cholesky(D)
            Ldiag.append(L)
            Linvs.append(Linv)
            LinvT = t(Linv)
            for i in range(j + 1, nbd):
                V = cp.A_nested[i, j].scaled(T[i], Tj).values
                for m in range(j):
                    V = V - self.Lnest[i, m].times_t(self.Lnest[j, m], cp.parents[m, j], cp.structures[j].ell)
                self.Lnest[i, j] = Nested(cp.parents[j, i], bmm(V, LinvT), cp.structures[i].ell)
            R = bmm(cp.A_F[j], Tj)
            for m in range(j):
                Lm = self.Lnest[j, m]
                R = R - segment_sum(bmm(LFs[m], t(Lm.values)), cp.parents[m, j], cp.structures[j].ell)
            LFs.append(bmm(R, LinvT))
            if tail:
                Rt = Lam_t.left_t(cp.A_tail[j])
                ell = cp.structures[j].ell
                if j == 0:  # one product: Lambda_0 L_00^{-T}
                    R0 = bmm(Tj, LinvT)
                    self.Lt.append(scale_right(Rt, block_diag_or_vector_stack(R0)))
                else:
                    Rt = scale_right(Rt, block_diag_or_vector(Tj, ell))
                    for m in range(j):
                        Rt = Rt - self.Lt[m] @ self.Lnest[j, m].to_csr().T
                    self.Lt.append(scale_right(Rt.tocsr(), block_diag_or_vector_stack(LinvT)))
        LF_flat = [self._flat(F) for F in LFs]
        if tail:
            from scipy.linalg import solve_triangular

            gram0 = self._tail_gram()
            if gram0 is not None:  # Lt_0 Lt_0' = Lambda_t' A_t0 R0 R0' A_t0' Lambda_t
                # a diagonal Lambda_t keeps triangles apart, so G's lower triangle serves: LAPACK's
                # Cholesky (lower) reads nothing above the diagonal
                W0 = bmm(R0, t(R0))
                D = Lam_t.sandwich(cp.A_tt - (gram0.lower(W0) if Lam_t.M is None else gram0(W0)))
            else:
                D = Lam_t.sandwich(cp.A_tt)
            D[np.diag_indices_from(D)] += 1.0
            RF = Lam_t.right(cp.A_Ft)
            for j in range(nbd):
                if j > 0 or gram0 is None:
                    D -= (self.Lt[j] @ self.Lt[j].T).toarray()
                RF -= np.asarray((self.Lt[j] @ LF_flat[j].T).T)
            self.Ltt = np.linalg.cholesky(D)
            self.LFt = solve_triangular(self.Ltt, RF.T, lower=True, check_finite=False).T
            LF_flat.append(self.LFt)
        MFF = cp.A_FF.copy()
        for F in LF_flat:
            MFF -= F @ F.T
        self._finish(MFF, LF_flat)

    def _tail_gram(self) -> TailGram | None:
        """The laid-out product for the tail's rows against the first term, where it pays: its
        products number at most a few times the dense tail block they fill."""
        if self._gram0 is None:
            A, k = self.cp.A_tail[0], self.structures[0].k
            self._gram0 = TailGram.of(A, k) if TailGram.pairs(A, k) <= 3 * self.cp.q_tail**2 else False
        return self._gram0 or None

    def _factor_small(self) -> None:
        sf = factor_small_term(self.small, self.T[0])
        self._small_factor, self._stacks = sf, None
        self.Lnest, self.Lt = {}, []  # one term: no off-diagonal blocks
        self._finish(self.cp.A_FF - sf.gram_F(), sf.LF)

    def _finish(self, MFF: np.ndarray, LF_flat: list[np.ndarray]) -> None:
        """L_FF from the Schur complement of [X y]'[X y]; LF_flat holds L_FZ's columns in any order."""
        if np.any(np.diag(self.cp.A_FF) > CANCELLATION * np.abs(np.diag(MFF))):
            MFF = _schur_exact(self.cp.A_FF, LF_flat)
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
        if self.small is not None:
            return self._small_factor.ldL2()
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
        direct = self.n <= self.direct_rows and self.cp.rows_available
        return self.pwrss_direct() if direct else self.pwrss

    def objective(self, reml: bool) -> float:
        """lme4's profiled REML criterion or ML deviance at the current theta."""
        if not self.ok:
            return float("inf")
        pwrss = self.objective_pwrss()
        if pwrss <= 0.0:
            return float("inf")
        n, p = self.n, self.p
        ldL2 = self.ldL2 - self.cp.log_weights  # lme4's ldL2 - ldW: prior weights' constant
        if reml:
            nmp = n - p
            return ldL2 + self.ldRX2 + nmp * (1.0 + LOG_2PI + np.log(pwrss / nmp))
        return ldL2 + n * (1.0 + LOG_2PI + np.log(pwrss / n))

    def beta(self) -> np.ndarray:
        return np.linalg.solve(self.RXt.T, self.L_FF[self.p, : self.p])

    def LF_rows(self, rows: slice | int) -> list[np.ndarray]:
        """Rows of the [X y] block of L as right-hand sides per term: (ell, k, m) arrays."""
        sel = slice(rows, rows + 1) if isinstance(rows, int) else rows
        out = [F[:, sel, :].transpose(0, 2, 1) for F in self.LF]
        if self.cp.q_tail:
            Ft = self.LFt[sel].T  # (q_tail, m)
            offs = self.cp.tail_offsets
            for i, s in enumerate(self.structures[self.cp.nbd :]):
                out.append(Ft[offs[i] : offs[i + 1]].reshape(s.ell, s.k, -1))
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

            Ct = np.concatenate([c.reshape(c.shape[0] * c.shape[1], m) for c in rhs[cp.nbd :]])
            ut = solve_triangular(self.Ltt, Ct, lower=True, trans="T")
            offs = cp.tail_offsets
            for i in range(len(cp.tail_sizes)):
                U[cp.nbd + i] = ut[offs[i] : offs[i + 1]]
        for j in range(cp.nbd - 1, -1, -1):
            r = rhs[j]
            for i in range(j + 1, cp.nbd):
                si = self.structures[i]
                r = r - self.Lnest[i, j].t_times(U[i].reshape(si.ell, si.k, m))
            if ut is not None:
                r = r - np.asarray(self.Lt[j].T @ ut).reshape(r.shape)
            U[j] = np.einsum("lab,lam->lbm", self.Linv[j], r).reshape(self.structures[j].q, m)  # L_jj^{-T} r
        return U

    def solve_lower(self, rhs: list[np.ndarray]) -> list[np.ndarray]:
        """Solve L_ZZ U = C by block forward substitution (leading terms first, the tail last); C and
        U per term as (ell, k, m) arrays."""
        cp, S = self.cp, self.structures
        m = rhs[0].shape[-1]
        U: list[np.ndarray] = [np.empty(0)] * len(S)
        for j in range(cp.nbd):
            r = rhs[j]
            for i in range(j):
                Ln = self.Lnest[j, i]
                r = r - segment_sum(bmm(Ln.values, U[i]), Ln.parent, S[j].ell)
            U[j] = np.einsum("lab,lbm->lam", self.Linv[j], r)
        if cp.q_tail:
            from scipy.linalg import solve_triangular

            Ct = np.concatenate([c.reshape(c.shape[0] * c.shape[1], m) for c in rhs[cp.nbd :]])
            for j in range(cp.nbd):
                Ct = Ct - np.asarray(self.Lt[j] @ U[j].reshape(S[j].q, m))
            ut = solve_triangular(self.Ltt, Ct, lower=True)
            offs = cp.tail_offsets
            for i, s in enumerate(S[cp.nbd :]):
                U[cp.nbd + i] = ut[offs[i] : offs[i + 1]].reshape(s.ell, s.k, m)
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
        """||y - X beta - Z b||^2 + ||u||^2 (rows weighted), summed from the solution as lme4 does."""
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


def refit_system(cp: CrossProducts) -> BlockedFactor:
    """A refit's factor: the penalized RSS read off the factor, no pass over the rows."""
    system = BlockedFactor(cp)
    system.direct_rows = 0
    return system


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
