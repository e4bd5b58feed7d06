"""The dense tail of crossed terms: its block types and Lambda over it, applied without forming it.

From the first term crossed with an earlier one on, the remaining terms fill in: their diagonal
block is one dense matrix (`DenseTail`, one LAPACK factorization), their rows against each leading
term a sparse CSR matrix (`TailTermBlock`), and the rows of [X y] against them a dense array
(`TailRows`).  `GramTail` is the dense tail for big data, where the product of the tail's rows
against the first term, Lt_0 Lt_0', is one laid-out sparse matrix-vector product (`TailGram`).
The protocol they implement is blocks.py's.

When every tail term is scalar (k = 1), Lambda_t is a diagonal: scaling by a vector replaces the
sparse products that a general block-diagonal Lambda_t needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlmcli.engine.blocks import NestedBlock, UniformDiagonal, block_diag_csr, bmm, csr_with_values, t
from mlmcli.engine.threads import for_factorization

if TYPE_CHECKING:
    from mlmcli.engine.blocks import RowsBlock
    from mlmcli.engine.crossprod import CrossProducts
    from mlmcli.engine.factor import BlockedFactor


def scale_csr(S, left: np.ndarray | None = None, right: np.ndarray | None = None):
    """diag(left) S diag(right) for a CSR matrix S, by scaling its stored values."""
    data = S.data
    if left is not None:
        data = data * np.repeat(left, np.diff(S.indptr))
    if right is not None:
        data = data * right[S.indices]
    return csr_with_values(S, data)


def block_diag_or_vector(T: np.ndarray, ell: int):
    """I_ell (x) T: a vector for scalar T, else a sparse block-diagonal matrix."""
    if T.shape == (1, 1):
        return np.full(ell, T[0, 0])
    return block_diag_csr(np.broadcast_to(T, (ell,) + T.shape).copy())


def block_diag_or_vector_stack(blocks: np.ndarray):
    """The block-diagonal matrix of an (ell, k, k) stack: a vector when k = 1."""
    if blocks.shape[1:] == (1, 1):
        return blocks[:, 0, 0].copy()
    return block_diag_csr(blocks)


def scale_right(S, D):
    """S D for D a vector (diagonal) or a sparse matrix."""
    return scale_csr(S, right=D) if isinstance(D, np.ndarray) else (S @ D).tocsr()


class TailLambda:
    """Lambda_t = block-diag(I_ell (x) T_i) over the tail terms."""

    def __init__(self, T_tail: list[np.ndarray], ells: list[int]) -> None:
        if all(T.shape == (1, 1) for T in T_tail):
            self.vec: np.ndarray | None = np.concatenate(
                [np.full(ell, T[0, 0]) for T, ell in zip(T_tail, ells, strict=True)]
            )
            self.M = None
            # one scalar term: Lambda_t is a multiple of the identity
            self.scalar: float | None = float(T_tail[0][0, 0]) if len(T_tail) == 1 else None
        else:
            self.scalar = None
            import scipy.sparse as sp

            self.vec = None
            self.M = sp.block_diag(
                [
                    block_diag_csr(np.broadcast_to(T, (ell,) + T.shape).copy())
                    for T, ell in zip(T_tail, ells, strict=True)
                ],
                format="csr",
            )

    def sandwich(self, A: np.ndarray, scratch: bool = False) -> np.ndarray:
        """Lambda_t' A Lambda_t for a dense symmetric A; `scratch`: A is a temporary that may be
        overwritten (one q_tail x q_tail array fewer)."""
        if self.scalar is not None:
            return np.multiply(A, self.scalar * self.scalar, out=A if scratch else None)
        if self.vec is not None:
            return np.multiply(A, np.outer(self.vec, self.vec), out=A if scratch else None)
        assert self.M is not None  # neither a scalar nor a diagonal: a matrix
        return np.asarray(self.M.T @ (self.M.T @ A).T)

    def right(self, F: np.ndarray) -> np.ndarray:
        """F Lambda_t for a dense F."""
        if self.scalar is not None:
            return F * self.scalar
        if self.vec is not None:
            return F * self.vec
        assert self.M is not None
        return np.asarray((self.M.T @ F.T).T)

    def left_t(self, S):
        """Lambda_t' S for a sparse S."""
        if self.vec is not None:
            return scale_csr(S, left=self.vec)
        return (self.M.T @ S).tocsr()


class TailGram:
    """G = A_t0 blockdiag(W_1 .. W_ell) A_t0' for the tail rows A_t0 (q_tail x ell*k) against the
    first leading term and symmetric W_l, as one sparse matrix-vector product for G's lower
    triangle: vec(G_low) = P vec(W).

    P is laid out once from A_t0's pattern: each level's block column contributes the products of
    its entries pairwise. Every evaluation then costs one pass over those products, where forming
    Lt Lt' as a sparse-sparse product builds and sums a sparse matrix as large as G itself.  For a
    scalar term (k = 1) P is column-major: the pairs in the order they are made, level by level,
    so nothing is sorted, and the product adds each entry of G in level order as the row-major
    layout does.
    """

    def __init__(self, P, q_tail: int, pattern: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
        self.P = P
        self.q_tail = q_tail
        # A_t0's pattern (indptr, indices) and, for each value of P in its order, the positions in
        # A_t0's values of the two entries it multiplies: a re-weighted A_t0 of the same pattern
        # (a GLM's PIRLS iteration) re-forms P by two gathers and a product (`reweighted`)
        self.pattern = pattern

    @staticmethod
    def pairs(A, k: int) -> int:
        """How many products P holds for A_t0 (to decide whether laying it out pays)."""
        counts = np.diff(A.tocsc().indptr[::k])
        return int(np.sum(counts.astype(np.int64) ** 2))

    @classmethod
    def of(cls, A, k: int, chunk: int = 1 << 21) -> TailGram:
        import scipy.sparse as sp

        C = A.tocsc()
        C.sort_indices()
        # where each of C's entries sits in A's values
        where = sp.csr_matrix((np.arange(A.nnz, dtype=float), A.indices, A.indptr), shape=A.shape).tocsc()
        where.sort_indices()
        source = where.data.astype(np.int64)
        if k == 1:
            return cls._of_scalar(A, C, source, chunk)
        q_tail, ncols = C.shape
        ell = ncols // k
        start = C.indptr[::k].astype(np.int64)  # each level's entries are contiguous
        m = np.diff(start)
        sizes = m * m
        col = np.repeat(np.arange(ncols), np.diff(C.indptr)) % k  # column within its level's block
        rows = C.indices.astype(np.int64)
        ends = np.cumsum(sizes)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        lo = 0
        while lo < ell:  # levels in groups of about `chunk` products: the index arrays stay small
            hi = max(lo + 1, int(np.searchsorted(ends, (ends[lo - 1] if lo else 0) + chunk, side="right")))
            sz = sizes[lo:hi]
            level = np.repeat(np.arange(lo, hi), sz)
            t = np.arange(int(sz.sum()), dtype=np.int64) - np.repeat(np.cumsum(sz) - sz, sz)
            mm = m[level]
            e1 = start[level] + t // mm
            e2 = start[level] + t % mm
            # G is symmetric: its lower triangle (diagonal included) is all P has to give
            lower = rows[e1] >= rows[e2]
            e1, e2, level = e1[lower], e2[lower], level[lower]
            parts.append(
                (source[e1], source[e2], rows[e1] * q_tail + rows[e2], level * (k * k) + col[e1] * k + col[e2])
            )
            lo = hi
        empty = np.zeros(0, dtype=np.int64)
        src1, src2, flat, wcol = (np.concatenate(x) for x in zip(*parts, strict=True)) if parts else (empty,) * 4
        # P's layout with its entries numbered, then their values in that order (no entry repeats,
        # so nothing is summed: the same P as built from the values directly)
        order = sp.csr_matrix((np.arange(len(flat), dtype=float), (flat, wcol)), shape=(q_tail * q_tail, ell * k * k))
        perm = order.data.astype(np.int64)
        src1, src2 = src1[perm], src2[perm]
        P = sp.csr_matrix((A.data[src1] * A.data[src2], order.indices, order.indptr), shape=order.shape)
        return cls(P, q_tail, (A.indptr, A.indices, src1, src2))

    @classmethod
    def _of_scalar(cls, A, C, source: np.ndarray, chunk: int) -> TailGram:
        """`of` for a scalar term: a level's entries are one column of C with its rows ascending, so
        the pairs in G's lower triangle are those (i, j), i >= j, of the entries' positions, listed
        row by row as np.tril_indices lists them; t -> (i, j) is the same table for every level.
        The index arrays are 32-bit where they fit and made in place: on InstEval they are most of
        the fit's fresh memory, and every page of it is a fault of the kernel's."""
        import scipy.sparse as sp

        q_tail, ell = C.shape
        idx = np.int32 if max(q_tail * q_tail, A.nnz) < 2**31 else np.int64
        start = C.indptr.astype(idx)
        m = np.diff(start)
        tri = m.astype(np.int64) * (m + 1) // 2
        ends = np.cumsum(tri)
        ii, jj = (x.astype(idx) for x in np.tril_indices(int(m.max()) if ell else 0))
        rows, source = C.indices.astype(idx), source.astype(idx)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        lo = 0
        while lo < ell:  # levels in groups of about `chunk` pairs: the index arrays stay small
            hi = max(lo + 1, int(np.searchsorted(ends, (ends[lo - 1] if lo else 0) + chunk, side="right")))
            sz = tri[lo:hi]
            t = np.arange(int(sz.sum()), dtype=idx)
            np.subtract(t, np.repeat((np.cumsum(sz) - sz).astype(idx), sz), out=t)
            e1 = np.repeat(start[lo:hi], sz)  # each pair's level's first entry
            e2 = e1 + jj[t]
            e1 += ii[t]
            del t
            flat = rows[e1]
            flat *= q_tail
            flat += rows[e2]
            parts.append((source[e1], source[e2], flat))
            lo = hi
        empty = np.zeros(0, dtype=idx)
        src1, src2, flat = (np.concatenate(x) for x in zip(*parts, strict=True)) if parts else (empty,) * 3
        values = A.data[src1]
        values *= A.data[src2]
        total = int(ends[-1]) if ell else 0
        indptr = np.concatenate([[0], ends]).astype(np.int32 if idx is np.int32 and total < 2**31 else np.int64)
        P = sp.csc_matrix((values, flat, indptr), shape=(q_tail * q_tail, ell))
        return cls(P, q_tail, (A.indptr, A.indices, src1, src2))

    def reweighted(self, A) -> TailGram | None:
        """The same product for A_t0 with new values on the same pattern; None for another pattern."""
        indptr, indices, src1, src2 = self.pattern
        same = (A.indptr is indptr and A.indices is indices) or (
            np.array_equal(A.indptr, indptr) and np.array_equal(A.indices, indices)
        )
        if not same:
            return None
        values = A.data[src1]
        values *= A.data[src2]
        P = csr_with_values(self.P, values)
        return TailGram(P, self.q_tail, self.pattern)

    def lower(self, W: np.ndarray) -> np.ndarray:
        """G's lower triangle and diagonal (zeros above) for the (ell, k, k) stack of symmetric W:
        all that a Cholesky factorization reads."""
        return (self.P @ W.reshape(-1)).reshape(self.q_tail, self.q_tail)

    def __call__(self, W: np.ndarray) -> np.ndarray:
        """G for the (ell, k, k) stack of symmetric W."""
        low = self.lower(W)
        G = low + low.T
        G[np.diag_indices_from(G)] = np.diagonal(low)
        return G


# ----------------------------------------------------------------------------------- block types
class TailTermBlock:
    """L_tj, the tail's rows against leading term j: a sparse CSR matrix (q_tail x q_j)."""

    def __init__(self, j: int) -> None:
        self.j = j

    def bind(self, cp: CrossProducts) -> None:
        self.A = cp.A_tail[self.j]
        s = cp.structures[self.j]
        self.ell, self.k = s.ell, s.k

    def start(self, f: BlockedFactor) -> None:
        self.M = f.tail_lambda.left_t(self.A)  # Lambda_t' A_tj; Lambda_j waits (see rdiv)
        self.T = f.T[self.j]
        self.scaled = False
        self.right: np.ndarray | None = None

    def downdate(self, left: TailTermBlock, right: NestedBlock) -> None:
        if not self.scaled:
            self.M = scale_right(self.M, block_diag_or_vector(self.T, self.ell))
            self.scaled = True
        self.M = self.M - left.csr @ right.value.to_csr().T

    def rdiv(self, diag: UniformDiagonal) -> None:
        if self.scaled:
            self.csr = scale_right(self.M.tocsr(), block_diag_or_vector_stack(diag.LinvT))
        else:  # nothing subtracted (the first term): one product, Lambda_j L_jj^{-T}
            self.right = bmm(self.T, diag.LinvT)
            self.csr = scale_right(self.M, block_diag_or_vector_stack(self.right))
        del self.M

    def times(self, u: np.ndarray) -> np.ndarray:
        return np.asarray(self.csr @ u.reshape(self.ell * self.k, u.shape[-1]))

    def t_times(self, u: np.ndarray) -> np.ndarray:
        return np.asarray(self.csr.T @ u).reshape(self.ell, self.k, u.shape[-1])


class DenseTail:
    """L_tt, the crossed terms' diagonal block: dense, (q_tail, q_tail); right-hand sides in its
    layout are (q_tail, m), the tail terms' one after another."""

    def bind(self, cp: CrossProducts) -> None:
        self.A = cp.A_tt
        self.first = cp.nbd
        self.shapes = [(s.ell, s.k) for s in cp.structures[cp.nbd :]]
        self.offsets = cp.tail_offsets

    def start(self, f: BlockedFactor) -> None:
        self.lam = f.tail_lambda
        D = self.lam.sandwich(self.A)
        D[np.diag_indices_from(D)] += 1.0
        self.D = D

    def downdate(self, left: TailTermBlock, right: TailTermBlock) -> None:
        M = left.csr
        if 2 * M.nnz >= M.shape[0] * M.shape[1]:
            # mostly filled (every level of a small crossed term against every level of the
            # leading one): a dense product, not a sparse one that fills in anyway
            Md = M.toarray()
            self.D -= Md @ Md.T
        else:
            self.D -= (M @ M.T).toarray()

    def factor(self) -> None:
        from scipy.linalg import lapack

        # LAPACK's potrf in D's own memory: D is symmetric, so its transpose is the same matrix in
        # Fortran order, whose upper factor is D's lower one (numpy's cholesky copies D in and the
        # factor out, a third of the time on InstEval's 1128 x 1128 tail).  Only the lower
        # triangle is read (solve_triangular, the diagonal); above it potrf leaves D's values.
        with for_factorization(self.D.shape[0]):
            c, info = lapack.dpotrf(self.D.T, lower=0, clean=0, overwrite_a=1)
        del self.D
        if info != 0:
            raise np.linalg.LinAlgError("the crossed terms' block is not positive definite")
        self.L = c.T

    def ldL2(self) -> float:
        return 2.0 * float(np.log(np.diag(self.L)).sum())

    def gather(self, rhs: list[np.ndarray]) -> np.ndarray:
        m = rhs[0].shape[-1]
        return np.concatenate([c.reshape(c.shape[0] * c.shape[1], m) for c in rhs[self.first :]])

    def scatter(self, u: np.ndarray) -> list[np.ndarray]:
        o, m = self.offsets, u.shape[-1]
        return [u[o[i] : o[i + 1]].reshape(ell, k, m) for i, (ell, k) in enumerate(self.shapes)]

    def solve(self, r: np.ndarray) -> np.ndarray:
        from scipy.linalg import solve_triangular

        # (no check for non-finite values: L is a factor potrf made, the right-hand sides come from
        # the checked data, and the check costs a pass over L per solve)
        return solve_triangular(self.L, r, lower=True, check_finite=False)

    def solve_t(self, r: np.ndarray) -> np.ndarray:
        from scipy.linalg import solve_triangular

        return solve_triangular(self.L, r, lower=True, trans="T", check_finite=False)


class GramTail(DenseTail):
    """The dense tail on big data: the first term's share, Lt_0 Lt_0' = Lambda_t' A_t0 R0 R0' A_t0'
    Lambda_t with R0 = Lambda_0 L_00^{-T}, comes from the laid-out product (`TailGram`) before the
    scaling by Lambda_t, not from a sparse-sparse product."""

    def bind(self, cp: CrossProducts) -> None:
        super().bind(cp)
        previous: TailGram | None = getattr(self, "gram", None)
        gram = previous.reweighted(cp.A_tail[0]) if previous is not None else None
        self.gram = gram if gram is not None else TailGram.of(cp.A_tail[0], cp.structures[0].k)

    def start(self, f: BlockedFactor) -> None:
        self.lam = f.tail_lambda
        self.first_share = True  # D is formed with the first term's share (downdate)

    def downdate(self, left: TailTermBlock, right: TailTermBlock) -> None:
        if not self.first_share:
            super().downdate(left, right)
            return
        self.first_share = False
        R0 = left.right
        assert R0 is not None  # the first term's block: nothing subtracted, one product (rdiv)
        W0 = bmm(R0, t(R0))
        # a diagonal Lambda_t keeps triangles apart, so G's lower triangle serves: LAPACK's
        # Cholesky (lower) reads nothing above the diagonal
        G = self.gram.lower(W0) if self.lam.M is None else self.gram(W0)
        D = self.lam.sandwich(np.subtract(self.A, G, out=G), scratch=True)  # A - G, in G's memory
        D[np.diag_indices_from(D)] += 1.0
        self.D = D


class TailRows:
    """L_Ft, the rows of [X y] against the tail: dense, (p+1, q_tail)."""

    def bind(self, cp: CrossProducts) -> None:
        self.A = cp.A_Ft
        self.shapes = [(s.ell, s.k) for s in cp.structures[cp.nbd :]]
        self.offsets = cp.tail_offsets

    def start(self, f: BlockedFactor) -> None:
        self.RF = f.tail_lambda.right(self.A)

    def downdate(self, left: RowsBlock, right: TailTermBlock) -> None:
        self.RF -= np.asarray((right.csr @ left.columns().T).T)

    def rdiv(self, diag: DenseTail) -> None:
        from scipy.linalg import solve_triangular

        self.value = solve_triangular(diag.L, self.RF.T, lower=True, check_finite=False).T
        del self.RF

    def gram(self) -> np.ndarray:
        return self.value @ self.value.T

    def columns(self) -> np.ndarray:
        return self.value

    def rows(self, sel: slice) -> list[np.ndarray]:
        Ft = self.value[sel].T  # (q_tail, m)
        o = self.offsets
        return [Ft[o[i] : o[i + 1]].reshape(ell, k, -1) for i, (ell, k) in enumerate(self.shapes)]
