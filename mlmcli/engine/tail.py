"""Lambda over the dense tail of crossed terms, applied without forming it.

When every tail term is scalar (k = 1), Lambda_t is a diagonal: scaling by a vector replaces the
sparse products that a general block-diagonal Lambda_t needs.
"""

from __future__ import annotations

import numpy as np

from mlmcli.engine.blocks import block_diag_csr


def scale_csr(S, left: np.ndarray | None = None, right: np.ndarray | None = None):
    """diag(left) S diag(right) for a CSR matrix S, by scaling its stored values."""
    import scipy.sparse as sp

    data = S.data
    if left is not None:
        data = data * np.repeat(left, np.diff(S.indptr))
    if right is not None:
        data = data * right[S.indices]
    return sp.csr_matrix((data, S.indices, S.indptr), shape=S.shape)


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

    def sandwich(self, A: np.ndarray) -> np.ndarray:
        """Lambda_t' A Lambda_t for a dense symmetric A."""
        if self.scalar is not None:
            return A * (self.scalar * self.scalar)
        if self.vec is not None:
            return A * np.outer(self.vec, self.vec)
        return np.asarray(self.M.T @ (self.M.T @ A).T)

    def right(self, F: np.ndarray) -> np.ndarray:
        """F Lambda_t for a dense F."""
        if self.scalar is not None:
            return F * self.scalar
        if self.vec is not None:
            return F * self.vec
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
    Lt Lt' as a sparse-sparse product builds and sums a sparse matrix as large as G itself.
    """

    def __init__(self, P, q_tail: int) -> None:
        self.P = P
        self.q_tail = q_tail

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
                (C.data[e1] * C.data[e2], rows[e1] * q_tail + rows[e2], level * (k * k) + col[e1] * k + col[e2])
            )
            lo = hi
        values, flat, wcol = (np.concatenate(x) for x in zip(*parts, strict=True)) if parts else ([], [], [])
        P = sp.csr_matrix((values, (flat, wcol)), shape=(q_tail * q_tail, ell * k * k))
        return cls(P, q_tail)

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
