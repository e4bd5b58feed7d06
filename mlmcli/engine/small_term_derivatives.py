"""derivatives.py's exact derivatives in theta for the closed-form factor of one small term
(small_term.py): one grouping term of one or two columns, no other term.

These are the models fitted to the largest data (a random slope on 100k groups), where lmerTest's
Hessian costs 2 gradients per theta.  The general kernels work on (ell, k, k) and (ell, k, p)
stacks, which for k <= 2 numpy copies and transposes at every product; here every per-level
quantity is a vector over the levels (or a (p+1, ell) array for the columns of [X y]), as the
factor itself holds them, and the solves the three derivatives share are done once:

    U = L^{-T} [L_F rows of X, r_u]           (r_u = c_u - L_XZ' beta: its last column gives u)
    B = T U,   Z'Z B = A B                     (the conditional modes of each column and of b)
    W = Z'X - A B[X],   Z'r = Z'y - Z'X beta - A b

The formulas and their order of operations are derivatives.py's, written element by element.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlmcli.engine.small_term import SmallTermDiagonal, SmallTermRows

if TYPE_CHECKING:
    from mlmcli.engine.factor import BlockedFactor


class SmallTermGradient:
    """The shared solves of one small term's derivatives at the factored theta."""

    def __init__(self, f: BlockedFactor, entries: list[tuple[int, int, int]]) -> None:
        D, R = f.diagonal[0], f.rows[0]
        assert isinstance(D, SmallTermDiagonal) and isinstance(R, SmallTermRows)
        k, p = D.k, f.p
        self.k, self.p, self.entries = k, p, entries
        Tm = f.T[0]
        self.T = [[float(Tm[i, j]) for j in range(k)] for i in range(k)]
        av = D.a
        self.A = [[av[0]]] if k == 1 else [[av[0], av[1]], [av[1], av[2]]]
        # L^{-1} as small_term's stacks hold it (lower triangular: nothing above the diagonal)
        if k == 1:
            self.Linv: list[list[np.ndarray]] = [[1.0 / D.diag[0]]]
        else:
            l00, l10, l11 = D.diag
            self.Linv = [[1.0 / l00, np.empty(0)], [-l10 / (l00 * l11), 1.0 / l11]]
        self.F = R.F  # per column c of the term: Z_c'[X y], (p+1, ell)
        beta = f.beta()
        self.beta = beta
        # right-hand sides per column a of the term: L_F's rows of X, then c_u - L_XZ' beta
        rhs = []
        for LFa in R.LF:
            r = np.empty_like(LFa)
            r[:p] = LFa[:p]
            r[p] = LFa[p] - _combine(LFa, beta)
            rhs.append(r)
        # U = L^{-T} rhs: U_b = sum_{a >= b} Linv[a][b] rhs_a
        U = []
        for b in range(k):
            acc = self.Linv[b][b] * rhs[b]
            for a in range(b + 1, k):
                acc += self.Linv[a][b] * rhs[a]
            U.append(acc)
        self.U = U
        B = [_lower_times(self.T, U, i) for i in range(k)]  # B_i = sum_{j <= i} T[i][j] U_j
        # A B per column of the term, all p+1 columns
        self.AB = [sum_products([self.A[a][c] for c in range(k)], B) for a in range(k)]

    def pwrss(self) -> np.ndarray:
        """d pwrss / d theta = -2 (Z'r)' E_k u."""
        p, beta = self.p, self.beta
        Zr = [(Fa[p] - _combine(Fa, beta)) - ABa[p] for Fa, ABa in zip(self.F, self.AB, strict=True)]
        return np.array([-2.0 * float(Zr[a] @ self.U[b][p]) for _, a, b in self.entries])

    def rx(self) -> list[np.ndarray]:
        """d (R_X'R_X) / d theta_k = -(W'E_k Lambda'W + its transpose)."""
        p, k = self.p, self.k
        W = [Fa[:p] - ABa[:p] for Fa, ABa in zip(self.F, self.AB, strict=True)]
        # Lambda'W: LW_b = sum_{i >= b} T[i][b] W_i
        LW = [sum_products([self.T[i][b] for i in range(b, k)], W[b:]) for b in range(k)]
        out = []
        for _, a, b in self.entries:
            G = W[a] @ LW[b].T
            out.append(-(G + G.T))
        return out

    def ldL2(self) -> np.ndarray:
        """d log det(Omega) / d theta_k = 2 sum_l (Omega_l^{-1} T'A_l)[b, a]."""
        k, T, A, Li = self.k, self.T, self.A, self.Linv
        # Omega^{-1} = L^{-T} L^{-1}: S[b][c] = sum_{a >= max(b, c)} Linv[a][b] Linv[a][c], symmetric
        S: list[list[np.ndarray]] = [[np.empty(0)] * k for _ in range(k)]
        for b in range(k):
            for c in range(b, k):
                S[b][c] = S[c][b] = sum_products([Li[a][b] for a in range(c, k)], [Li[a][c] for a in range(c, k)])
        # S T': ST[b][d] = sum_{c <= d} S[b][c] T[d][c] (T lower triangular)
        ST = [[sum_products([T[d][c] for c in range(d + 1)], S[b][: d + 1]) for d in range(k)] for b in range(k)]
        # (S T' A)[b][a] = sum_d ST[b][d] A[d][a], summed over the levels
        D = {(a, b): float(sum_products(ST[b], [A[d][a] for d in range(k)]).sum()) for _, a, b in self.entries}
        return np.array([2.0 * D[a, b] for _, a, b in self.entries])


def sum_products(coefs: list, arrays: list) -> np.ndarray:
    """sum_i coefs[i] * arrays[i], in order (either may be the vectors)."""
    acc = coefs[0] * arrays[0]
    for c, x in zip(coefs[1:], arrays[1:], strict=True):
        acc = acc + c * x
    return acc


def _lower_times(T: list[list[float]], U: list[np.ndarray], i: int) -> np.ndarray:
    return sum_products([T[i][j] for j in range(i + 1)], U[: i + 1])


def _combine(F: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """sum_m F[m] beta[m] over X's rows of a (p+1, ell) array, in order: no BLAS kernel's own
    summation order."""
    acc = F[0] * beta[0]
    for m in range(1, len(beta)):
        acc = acc + F[m] * beta[m]
    return acc
