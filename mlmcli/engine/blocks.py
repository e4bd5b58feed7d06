"""Block types of the blocked Cholesky factor and the small kernels they dispatch.

- a *uniform block-diagonal* block is an (ell, k, k) array: one k x k block per level;
- a *nested* block couples two terms where every level of the column term lies in exactly one
  level of the row term: an (ell_col, k_row, k_col) array of values plus the row level of each
  column level (`parent`); products of nested blocks stay nested, so nesting creates no fill-in;
- everything that crossed factors fill in is a plain dense array (one LAPACK call) or, between a
  dense row term and a block-diagonal column term, a scipy CSR matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def batched_cholesky(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
        Linv[:, 1, 0] = -(l21 * Linv[:, 0, 0]) / l22  # forward substitution order
        return L, Linv
    L = np.linalg.cholesky(M)
    return L, np.linalg.inv(L)


def segment_sum(values: np.ndarray, index: np.ndarray, size: int) -> np.ndarray:
    """out[g] = sum of values[r] over r with index[r] == g (values: (N, ...) -> (size, ...))."""
    flat = values.reshape(values.shape[0], -1)
    out = np.empty((size, flat.shape[1]))
    for c in range(flat.shape[1]):
        out[:, c] = np.bincount(index, weights=flat[:, c], minlength=size)
    return out.reshape((size,) + values.shape[1:])


def bmm(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A @ B over stacks of small blocks (either may be one 2-d block).  numpy's stacked matmul
    loops matrix by matrix; these forms keep the work in whole-array operations: a broadcast
    product for k = 1, one gemm against a single block, and for two stacks a sum over the inner
    index on arrays laid out level-last (contiguous)."""
    k = A.shape[-1]
    if k == 1:
        return A * B.reshape(B.shape[:-2] + (1, B.shape[-1]))
    if B.ndim == 2:
        return (A.reshape(-1, k) @ B).reshape(A.shape[:-1] + (B.shape[1],))
    if A.ndim == 2:
        return t(bmm(t(B), A.T))
    if k > 4 or A.ndim != 3 or B.ndim != 3:
        return A @ B
    At, Bt = A.transpose(1, 2, 0).copy(), B.transpose(1, 2, 0).copy()
    m, n = At.shape[0], Bt.shape[1]
    out = np.empty((m, n, At.shape[2]))
    for a in range(m):
        for c in range(n):
            acc = At[a, 0] * Bt[0, c]
            for b in range(1, k):
                acc += At[a, b] * Bt[b, c]
            out[a, c] = acc
    return out.transpose(2, 0, 1)


def congruence(T_row: np.ndarray, V: np.ndarray, T_col: np.ndarray) -> np.ndarray:
    """T_row' V_l T_col for every block of a stack, as one gemm against kron(T_row, T_col)."""
    ell, kr, kc = V.shape
    K = np.einsum("ba,cd->bcad", T_row, T_col).reshape(kr * kc, kr * kc)
    return (V.reshape(ell, kr * kc) @ K).reshape(ell, kr, kc)


def t(M: np.ndarray) -> np.ndarray:
    """Transpose of every block of a stack."""
    return np.swapaxes(M, -1, -2)


def block_diag_csr(blocks: np.ndarray):
    """A block-diagonal scipy CSR matrix from an (ell, k, k) array."""
    import scipy.sparse as sp

    ell, k, _ = blocks.shape
    return sp.bsr_matrix((blocks, np.arange(ell), np.arange(ell + 1)), shape=(ell * k, ell * k)).tocsr()


@dataclass
class Nested:
    """A block whose column levels each meet one row level: values[l] sits at (parent[l], l)."""

    parent: np.ndarray  # (ell_col,) row level of each column level
    values: np.ndarray  # (ell_col, k_row, k_col)
    ell_row: int

    def scaled(self, T_row: np.ndarray, T_col: np.ndarray) -> Nested:
        """Lambda_row' B Lambda_col."""
        return Nested(self.parent, congruence(T_row, self.values, T_col), self.ell_row)

    def gram(self) -> np.ndarray:
        """B B' as the uniform block-diagonal (ell_row, k_row, k_row) it is."""
        return segment_sum(bmm(self.values, t(self.values)), self.parent, self.ell_row)

    def times_t(self, other: Nested, parent_to: np.ndarray, ell_to: int) -> np.ndarray:
        """B C' for two nested blocks with the same column term, as the values of a nested block
        whose column term is C's row term (`parent_to` maps our columns to C's rows)."""
        return segment_sum(bmm(self.values, t(other.values)), parent_to, ell_to)

    def t_times(self, u_row: np.ndarray) -> np.ndarray:
        """B' U for U as (ell_row, k_row, m): an (ell_col, k_col, m) array."""
        return np.einsum("lab,lam->lbm", self.values, u_row[self.parent])

    def to_csr(self):
        import scipy.sparse as sp

        ell, kr, kc = self.values.shape
        rows, _ = np.broadcast_arrays(self.parent[:, None, None] * kr + np.arange(kr)[None, :, None], self.values)
        cols, _ = np.broadcast_arrays(np.arange(ell)[:, None, None] * kc + np.arange(kc)[None, None, :], self.values)
        return sp.csr_matrix((self.values.ravel(), (rows.ravel(), cols.ravel())), shape=(self.ell_row * kr, ell * kc))


def csr_block_dots(D: np.ndarray, S, k_d: int, k_s: int, ell: int, d_parent: np.ndarray | None = None) -> np.ndarray:
    """For a dense D (r, ell_d * k_d) and a sparse S (r, ell * k_s) with the same rows: the
    (ell, k_d, k_s) blocks sum_r D[r, block of l]' S[r, block of l], where D's column block of
    level l is d_parent[l] (default l).  The block diagonal of D'S without forming it."""
    coo = S.tocoo()
    lev, b = np.divmod(coo.col, k_s)
    dl = lev if d_parent is None else d_parent[lev]
    out = np.empty((ell, k_d, k_s))
    for a in range(k_d):
        w = D[coo.row, dl * k_d + a] * coo.data
        for bb in range(k_s):
            sel = b == bb
            out[:, a, bb] = np.bincount(lev[sel], weights=w[sel], minlength=ell)
    return out
