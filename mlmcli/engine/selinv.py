"""Blocks of (L L')^{-1} over the random effects on L's pattern, by the blocked selected inversion of
Takahashi, Fagan & Chen (1973): from the last block back to the first,

    S_ij = -(sum_{m>j} S_im L_mj) L_jj^{-1}            (i > j)
    S_jj = (L_jj^{-T} - sum_{m>j} S_jm L_mj) L_jj^{-1}

computed only where L is non-zero: the nested blocks of the leading terms keep their pattern,
the dense tail is inverted whole, and no q x q inverse is ever formed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np

from mlmcli.engine.blocks import csr_block_dots, t

if TYPE_CHECKING:
    from mlmcli.engine.factor import BlockedFactor
    from mlmcli.engine.tail import DenseTail


@dataclass
class SelectedInverse:
    """Omega^{-1} = (L_ZZ L_ZZ')^{-1} where L is non-zero (hence wherever A = Z'Z is)."""

    diagonal: list[np.ndarray]  # per term, its (ell, k, k) diagonal blocks
    nested: dict[tuple[int, int], np.ndarray]  # leading i > j: block at (parent_i(l), l), (ell_j, k_i, k_j)
    tail: dict[int, np.ndarray]  # leading j: the tail's rows against it, (q_tail, ell_j, k_j)
    tail_tail: np.ndarray | None  # the tail's own block, dense (q_tail, q_tail)


def inverse_diagonal_blocks(f: BlockedFactor) -> list[np.ndarray]:
    """(ell, k, k) diagonal blocks of (L_ZZ L_ZZ')^{-1}, per term."""
    return selected_inverse(f).diagonal


def selected_inverse(f: BlockedFactor) -> SelectedInverse:
    """The blocks of (L_ZZ L_ZZ')^{-1} on L's pattern, at the factored theta."""
    cp = f.cp
    S, nbd = cp.structures, cp.nbd
    out: list[np.ndarray] = [np.empty(0)] * len(S)
    S_t = None
    if cp.q_tail:
        S_t = _tail_inverse(cast("DenseTail", f.diagonal[nbd]).L)
        for i, s in enumerate(S[nbd:]):
            o = int(cp.tail_offsets[i])
            block = S_t[o : o + s.q, o : o + s.q].reshape(s.ell, s.k, s.ell, s.k)
            lev = np.arange(s.ell)
            out[nbd + i] = block[lev, :, lev, :]
    S_tail: dict[int, np.ndarray] = {}  # S_tj as (q_tail, ell_j, k_j)
    S_diag: dict[int, np.ndarray] = {}
    S_nest: dict[tuple[int, int], np.ndarray] = {}  # S_ij at (parent_i(l), l): (ell_j, k_i, k_j)
    for j in range(nbd - 1, -1, -1):
        sj, Linv = S[j], f.Linv[j]
        later = range(j + 1, nbd)
        if S_t is not None:
            # S_t Lt_j as (Lt_j' S_t)' (S_t is symmetric), with Lt_j' in rows: scipy's product of a
            # CSR matrix and a dense one runs at twice the speed of the CSC one
            X = np.asarray(f.Lt[j].T.tocsr() @ S_t).T.reshape(cp.q_tail, sj.ell, sj.k)
            for m in later:
                X = X + np.einsum("tlm,lmj->tlj", S_tail[m][:, cp.parents[j, m], :], f.Lnest[m, j].values)
            S_tail[j] = -np.einsum("tla,lab->tlb", X, Linv)
        for i in later:
            si, pi = S[i], cp.parents[j, i]
            W = np.zeros((sj.ell, si.k, sj.k))
            if S_t is not None:
                W += csr_block_dots(S_tail[i].reshape(cp.q_tail, -1), f.Lt[j], si.k, sj.k, sj.ell, d_parent=pi)
            for m in later:
                pm = cp.parents[j, m]
                if m == i:
                    Sim = S_diag[i][pi]
                elif m < i:
                    Sim = S_nest[i, m][pm]
                else:
                    Sim = t(S_nest[m, i][pi])
                W += Sim @ f.Lnest[m, j].values
            S_nest[i, j] = -W @ Linv
        C = t(Linv).copy()
        if S_t is not None:
            C -= csr_block_dots(S_tail[j].reshape(cp.q_tail, -1), f.Lt[j], sj.k, sj.k, sj.ell)
        for m in later:
            C -= t(S_nest[m, j]) @ f.Lnest[m, j].values
        S_diag[j] = C @ Linv
        out[j] = S_diag[j]
    return SelectedInverse(out, S_nest, S_tail, S_t)


def _tail_inverse(L: np.ndarray) -> np.ndarray:
    """(L L')^{-1}, dense, from the tail's factor as DenseTail keeps it: the lower triangle
    (tail_inverse_lower), mirrored (what lies above it is not the inverse's)."""
    c = tail_inverse_lower(L)
    S = np.tril(c)
    S += np.tril(c, -1).T
    return S


def tail_inverse_lower(L: np.ndarray) -> np.ndarray:
    """(L L')^{-1}'s lower triangle and diagonal for a dense lower factor L (C order), by LAPACK's
    potri (2n^3/3 flops, where inverting L by a triangular solve and multiplying take 3n^3).  Only
    L's lower triangle is read; whatever L holds above it is left there in the result (a factor
    kept as DenseTail keeps it holds its factored matrix's finite values there), so a caller reads
    the lower triangle or multiplies by a matrix that is zero above it."""
    from scipy.linalg import lapack

    from mlmcli.engine.threads import for_factorization

    with for_factorization(L.shape[0]):  # on the threads the factorization of L had
        # L' in Fortran order is the upper factor potri wants, in a copy it may overwrite
        c, info = lapack.dpotri(L.copy().T, lower=0, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError("the crossed terms' block is singular")
    return c.T
