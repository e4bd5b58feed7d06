"""Penalized least squares on a blocked Cholesky factor.

The formulation is that of Bates, Maechler, Bolker & Walker (2015), JSS 67(1), with the blocked
factor of MixedModels.jl.  The rows and columns of

    A = [Z_1 ... Z_k X y]' [Z_1 ... Z_k X y]

are split into one block per random-effects term plus one block for [X y].  For a given theta each
term's block is scaled by its relative covariance factor Lambda_i, the identity is added to the
diagonal blocks, and the whole is factored block by block:

    L_ii L_ii' = Lambda_i' A_ii Lambda_i + I - sum_{m<i} L_im L_im'
    L_ij       = (Lambda_i' A_ij Lambda_j - sum_{m<j} L_im L_jm') L_jj^{-T}

The first term's diagonal block is block diagonal (one k x k block per level) and is factored in a
single batched call; its off-diagonal blocks against later terms stay sparse.  Later terms, which
receive fill-in from crossed factors, are dense.  The block of [X y] is last, so the last diagonal
element of its factor is sqrt(penalized RSS) and the rest of it is R_X'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mlmcli.design import ReTerm

LOG_2PI = float(np.log(2.0 * np.pi))
# When a diagonal element of [X y]'[X y] exceeds its Schur complement by this factor, half the
# digits are gone in the subtraction: recompute it with exact sums.
CANCELLATION = 1e6


@dataclass
class TermStructure:
    """Static structure of one random-effects term: ell levels of k columns each."""

    k: int
    ell: int
    codes: np.ndarray
    X: np.ndarray
    # positions of theta in the k x k lower-triangular template, column by column
    tri_rows: np.ndarray
    tri_cols: np.ndarray

    @property
    def q(self) -> int:
        return self.k * self.ell

    @property
    def ntheta(self) -> int:
        return self.k * (self.k + 1) // 2

    def lower_bounds(self) -> np.ndarray:
        """Zero on the diagonal of the factor, unbounded below elsewhere (lme4's lower)."""
        return np.where(self.tri_rows == self.tri_cols, 0.0, -np.inf)

    def template(self, theta_i: np.ndarray) -> np.ndarray:
        """The k x k lower-triangular relative covariance factor T_i."""
        T = np.zeros((self.k, self.k))
        T[self.tri_rows, self.tri_cols] = theta_i
        return T


def term_structure(term: ReTerm) -> TermStructure:
    k = term.X.shape[1]
    rows, cols = [], []
    for j in range(k):  # column-major lower triangle, as lme4 lays out theta
        for i in range(j, k):
            rows.append(i)
            cols.append(j)
    return TermStructure(k=k, ell=len(term.levels), codes=np.asarray(term.codes, dtype=np.int64),
                         X=np.asarray(term.X, dtype=float), tri_rows=np.array(rows), tri_cols=np.array(cols))


def _scipy_sparse():
    import scipy.sparse as sp

    return sp


def _block_diag_sparse(blocks: np.ndarray):
    """A block-diagonal scipy BSR matrix from an (ell, k, k) array."""
    sp = _scipy_sparse()
    ell, k, _ = blocks.shape
    return sp.bsr_matrix((blocks, np.arange(ell), np.arange(ell + 1)), shape=(ell * k, ell * k))


class BlockedSystem:
    """The blocks of A, and their Cholesky factor L(theta) once `update` has run."""

    def __init__(self, terms: list[ReTerm], X: np.ndarray, y: np.ndarray) -> None:
        self.structures = [term_structure(t) for t in terms]
        self.n, self.p = X.shape
        self.X = np.asarray(X, dtype=float)
        self.y = np.asarray(y, dtype=float)
        XY = np.column_stack([self.X, self.y])
        self.XY = XY
        self.theta_sizes = [s.ntheta for s in self.structures]
        self.ntheta = sum(self.theta_sizes)
        S = self.structures
        # Diagonal random blocks: (ell, k, k) arrays of per-level cross products
        self.A_diag = [self._level_crossprod(s) for s in S]
        # [X y]' Z_i as dense (p+1, ell, k)
        self.A_F = [self._xy_crossprod(s) for s in S]
        self.A_F_levels = [np.ascontiguousarray(a.transpose(1, 0, 2)) for a in self.A_F]   # (ell, p+1, k)
        self.A_FF = XY.T @ XY
        # Z_i' Z_j for i > j, sparse
        self.A_off: dict[tuple[int, int], object] = {}
        for i in range(1, len(S)):
            for j in range(i):
                self.A_off[i, j] = self._z_crossprod(S[i], S[j])
        self.ok = False

    # ------------------------------------------------------------------ set-up
    @staticmethod
    def _level_crossprod(s: TermStructure) -> np.ndarray:
        out = np.empty((s.ell, s.k, s.k))
        for a in range(s.k):
            for b in range(a, s.k):
                v = np.bincount(s.codes, weights=s.X[:, a] * s.X[:, b], minlength=s.ell)
                out[:, a, b] = v
                out[:, b, a] = v
        return out

    def _xy_crossprod(self, s: TermStructure) -> np.ndarray:
        m = self.XY.shape[1]
        out = np.empty((m, s.ell, s.k))
        for c in range(m):
            for a in range(s.k):
                out[c, :, a] = np.bincount(s.codes, weights=self.XY[:, c] * s.X[:, a], minlength=s.ell)
        return out

    @staticmethod
    def _z_crossprod(si: TermStructure, sj: TermStructure):
        sp = _scipy_sparse()
        rows, cols, vals = [], [], []
        for a in range(si.k):
            for b in range(sj.k):
                rows.append(si.codes * si.k + a)
                cols.append(sj.codes * sj.k + b)
                vals.append(si.X[:, a] * sj.X[:, b])
        M = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(si.q, sj.q))
        return M.tocsr()

    # ------------------------------------------------------------------ theta
    def split_theta(self, theta: np.ndarray) -> list[np.ndarray]:
        out, pos = [], 0
        for size in self.theta_sizes:
            out.append(np.asarray(theta[pos:pos + size], dtype=float))
            pos += size
        return out

    def lower_bounds(self) -> np.ndarray:
        return np.concatenate([s.lower_bounds() for s in self.structures])

    def templates(self, theta: np.ndarray) -> list[np.ndarray]:
        return [s.template(t) for s, t in zip(self.structures, self.split_theta(theta), strict=True)]

    # ------------------------------------------------------------------ factor
    def update(self, theta: np.ndarray) -> bool:
        """Factor L(theta).  False when a block is not positive definite."""
        S = self.structures
        T = self.templates(theta)
        self.theta = np.array(theta, dtype=float)
        self.T = T
        try:
            self._factor(S, T)
        except np.linalg.LinAlgError:
            self.ok = False
            return False
        self.ok = bool(np.isfinite(self.L_FF).all())
        return self.ok

    def _factor(self, S: list[TermStructure], T: list[np.ndarray]) -> None:
        nt = len(S)
        s0, T0 = S[0], T[0]
        # term 0: batched k x k factors of T0' A_l T0 + I
        M0 = T0.T @ self.A_diag[0] @ T0   # batched over levels
        M0 += np.eye(s0.k)
        L0, L0inv = _batched_cholesky(M0)
        self.L0 = L0
        self.L0inv = L0inv
        # W_l = T0 L0_l^{-T}: right factor that maps A_.0 to L_.0
        W0 = T0 @ L0inv.transpose(0, 2, 1)
        # L_F0 as (p+1, ell, k)
        LF = [(self.A_F_levels[0] @ W0).transpose(1, 0, 2).reshape(self.p + 1, s0.q)]
        Loff: dict[tuple[int, int], object] = {}
        Ldiag: list[np.ndarray | None] = [None]
        if nt > 1:
            W0s = _block_diag_sparse(W0)
            for i in range(1, nt):
                Lam_i_t = _block_diag_sparse(np.broadcast_to(T[i].T, (S[i].ell, S[i].k, S[i].k)).copy())
                Loff[i, 0] = (Lam_i_t @ self.A_off[i, 0] @ W0s).tocsr()
            from scipy.linalg import solve_triangular

            for j in range(1, nt):
                sj, Tj = S[j], T[j]
                Mjj = np.zeros((sj.q, sj.q))
                blocks = Tj.T @ self.A_diag[j] @ Tj
                for a in range(sj.k):
                    for b in range(sj.k):
                        idx_a = np.arange(sj.ell) * sj.k + a
                        idx_b = np.arange(sj.ell) * sj.k + b
                        Mjj[idx_a, idx_b] += blocks[:, a, b]
                Mjj[np.diag_indices(sj.q)] += 1.0
                for m in range(j):
                    Ljm = Loff[j, m]
                    Mjj -= _as_dense(Ljm @ Ljm.T)
                Ljj = np.linalg.cholesky(Mjj)
                Ldiag.append(Ljj)
                Lam_j = _block_diag_sparse(np.broadcast_to(Tj, (sj.ell, sj.k, sj.k)).copy())
                for i in range(j + 1, nt):
                    si = S[i]
                    Lam_i_t = _block_diag_sparse(np.broadcast_to(T[i].T, (si.ell, si.k, si.k)).copy())
                    R = _as_dense(Lam_i_t @ self.A_off[i, j] @ Lam_j)
                    for m in range(j):
                        R -= _as_dense(Loff[i, m] @ Loff[j, m].T)
                    Loff[i, j] = solve_triangular(Ljj, R.T, lower=True).T
                AFj = self.A_F[j].reshape(self.p + 1, sj.q)
                R = _as_dense((Lam_j.T @ AFj.T).T)
                for m in range(j):
                    R -= _as_dense(Loff[j, m] @ LF[m].T).T
                LF.append(solve_triangular(Ljj, R.T, lower=True).T)
        self.Loff = Loff
        self.Ldiag = Ldiag
        self.LF = LF
        MFF = self.A_FF.copy()
        for m in range(nt):
            MFF -= LF[m] @ LF[m].T
        if np.any(np.diag(self.A_FF) > CANCELLATION * np.abs(np.diag(MFF))):
            MFF = _schur_exact(self.A_FF, LF)
        self.L_FF = np.linalg.cholesky(MFF)

    # ------------------------------------------------------------------ pieces
    @property
    def pwrss(self) -> float:
        return float(self.L_FF[self.p, self.p] ** 2)

    @property
    def ldL2(self) -> float:
        v = 2.0 * float(np.log(np.diagonal(self.L0, axis1=1, axis2=2)).sum())
        for Ljj in self.Ldiag[1:]:
            v += 2.0 * float(np.log(np.diag(Ljj)).sum())
        return v

    @property
    def RXt(self) -> np.ndarray:
        """R_X' (lower triangular, p x p): R_X'R_X = X'V^{-1}X / sigma^2 in lme4's scaling."""
        return self.L_FF[: self.p, : self.p]

    @property
    def ldRX2(self) -> float:
        return 2.0 * float(np.log(np.diag(self.RXt)).sum())

    def objective(self, reml: bool) -> float:
        """lme4's profiled REML criterion or ML deviance at the current theta."""
        if not self.ok:
            return float("inf")
        # lme4 sums the squared residuals and spherical modes; doing the same keeps our values
        # within rounding of lme4's, so that BOBYQA takes lme4's path to the last digits
        pwrss = self.pwrss_direct()
        if pwrss <= 0.0:
            return float("inf")
        n, p = self.n, self.p
        if reml:
            nmp = n - p
            return self.ldL2 + self.ldRX2 + nmp * (1.0 + LOG_2PI + np.log(pwrss / nmp))
        return self.ldL2 + n * (1.0 + LOG_2PI + np.log(pwrss / n))

    def beta(self) -> np.ndarray:
        return np.linalg.solve(self.RXt.T, self.L_FF[self.p, : self.p])

    def spherical_modes(self) -> list[np.ndarray]:
        """u: solve L_ZZ' u = c_u - L_XZ' beta by block back-substitution."""
        nt = len(self.structures)
        beta = self.beta()
        rhs = [self.LF[j][self.p] - beta @ self.LF[j][: self.p] for j in range(nt)]
        u: list[np.ndarray | None] = [None] * nt
        for j in range(nt - 1, -1, -1):
            r = rhs[j].copy()
            for i in range(j + 1, nt):
                r -= _as_dense(self.Loff[i, j].T @ u[i]).ravel()
            if j == 0:
                s = self.structures[0]
                uj = (self.L0inv.transpose(0, 2, 1) @ r.reshape(s.ell, s.k, 1))[:, :, 0]
                u[j] = uj.ravel()
            else:
                from scipy.linalg import solve_triangular

                u[j] = solve_triangular(self.Ldiag[j], r, lower=True, trans="T")
        return u  # type: ignore[return-value]

    def conditional_modes(self, u: list[np.ndarray]) -> list[np.ndarray]:
        """b_i = Lambda_i u_i, as (ell, k) arrays."""
        out = []
        for s, T, ui in zip(self.structures, self.T, u, strict=True):
            out.append(ui.reshape(s.ell, s.k) @ T.T)
        return out

    def Zb(self, b: list[np.ndarray]) -> np.ndarray:
        v = np.zeros(self.n)
        for s, bi in zip(self.structures, b, strict=True):
            for a in range(s.k):
                v += s.X[:, a] * bi[:, a][s.codes]
        return v

    def pwrss_direct(self) -> float:
        """||y - X beta - Z b||^2 + ||u||^2, summed from the solution as lme4 does."""
        u = self.spherical_modes()
        r = self.y - self.X @ self.beta() - self.Zb(self.conditional_modes(u))
        return float(r @ r + sum(float(ui @ ui) for ui in u))

    def unscaled_vcov(self) -> np.ndarray:
        """(R_X'R_X)^{-1}: vcov(beta) / sigma^2."""
        Rinv = np.linalg.inv(self.RXt)
        return Rinv.T @ Rinv

    def unscaled_condvar(self) -> list[np.ndarray]:
        """Per term, (ell, k, k) diagonal blocks of Lambda (L L')^{-1} Lambda' (lme4's condVar / sigma^2)."""
        S = self.structures
        if len(S) == 1:
            blocks = [self.L0inv.transpose(0, 2, 1) @ self.L0inv]
        else:
            blocks = self._inverse_diag_blocks()
        return [T @ B @ T.T for T, B in zip(self.T, blocks, strict=True)]

    def _inverse_diag_blocks(self) -> list[np.ndarray]:
        """Diagonal blocks of (L L')^{-1} over the random part, from a dense L^{-1} (several terms)."""
        from scipy.linalg import solve_triangular

        S = self.structures
        offs = np.cumsum([0] + [s.q for s in S])
        q = int(offs[-1])
        L = np.zeros((q, q))
        s0 = S[0]
        for lev in range(s0.ell):
            sl = slice(lev * s0.k, (lev + 1) * s0.k)
            L[sl, sl] = self.L0[lev]
        for j in range(1, len(S)):
            L[offs[j]:offs[j + 1], offs[j]:offs[j + 1]] = self.Ldiag[j]
        for (i, j), Lij in self.Loff.items():
            L[offs[i]:offs[i + 1], offs[j]:offs[j + 1]] = _as_dense(Lij)
        Linv = solve_triangular(L, np.eye(q), lower=True)
        out = []
        for j, s in enumerate(S):
            cols = Linv[:, offs[j]:offs[j + 1]].reshape(q, s.ell, s.k)
            out.append(np.einsum("rla,rlb->lab", cols, cols))
        return out


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


def _batched_cholesky(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower Cholesky factors of an (ell, k, k) stack and their inverses; closed form for k <= 2,
    where LAPACK's per-matrix call overhead would dominate."""
    k = M.shape[1]
    if k == 1:
        if not np.all(M > 0):
            raise np.linalg.LinAlgError("not positive definite")
        L = np.sqrt(M)
        return L, 1.0 / L
    if k == 2:
        a, b, c = M[:, 0, 0], M[:, 1, 0], M[:, 1, 1]
        if not np.all(a > 0):
            raise np.linalg.LinAlgError("not positive definite")
        l11 = np.sqrt(a)
        l21 = b / l11
        d = c - l21 * l21
        if not np.all(d > 0):
            raise np.linalg.LinAlgError("not positive definite")
        l22 = np.sqrt(d)
        L = np.zeros_like(M)
        L[:, 0, 0], L[:, 1, 0], L[:, 1, 1] = l11, l21, l22
        Linv = np.zeros_like(M)
        Linv[:, 0, 0], Linv[:, 1, 1] = 1.0 / l11, 1.0 / l22
        Linv[:, 1, 0] = -(l21 * Linv[:, 0, 0]) / l22   # forward substitution order
        return L, Linv
    L = np.linalg.cholesky(M)
    return L, np.linalg.inv(L)


def _as_dense(M) -> np.ndarray:
    if isinstance(M, np.ndarray):
        return M
    if hasattr(M, "toarray"):
        return M.toarray()
    return np.asarray(M)
