"""The pieces of Kenward and Roger's adjustment, through the blocked factor (no n x n matrix).

pbkrtest writes the marginal covariance as Sigma = sum_r gamma_r G_r over the variance-covariance
parameters gamma: the entries of each term's Tau (lower triangle, column by column) and sigma^2 last,
with G_r = Z_j (I (x) E_r) Z_j' (E_r the symmetric unit matrix of the entry) and G = I for sigma^2.
It needs, with X the fixed-effects matrix,

    P_r  = -X' Sigma^-1 G_r Sigma^-1 X
    Q_rs =  X' Sigma^-1 G_r Sigma^-1 G_s Sigma^-1 X
    K_rs =  tr(Sigma^-1 G_r Sigma^-1 G_s).

With Sigma = sigma^2 V, V = I + Z Lambda Lambda' Z' and Woodbury's V^-1 = I - Z S Z' where
S = Lambda Omega^-1 Lambda' and Omega = L L' the factor's random-effects block, every piece is a
product of A = Z'Z's blocks, Lambda and solves with L:

    W = Z'V^-1 X = Z'X - A S Z'X,   M = Z'V^-1 Z = A - A S A,   Z'V^-2 X = W - M S Z'X,
    X'V^-2 X = R_X'R_X - W' S Z'X,  X'V^-3 X = X'V^-2 X - W' S W.

The traces between two Tau entries are weighted sums of squares of M's blocks; the trace with
sigma^2 needs the diagonal blocks of Z'V^-2 Z = M (I - S A); tr(V^-2) follows from
V^-1 = V^-2 + V^-2 Z Lambda Lambda' Z'.  Only M's sums are kept, never M:

- one term: M is block diagonal, its blocks come level by level;
- nested terms: M is block diagonal by the outermost term's levels; a probe column holds a unit
  vector in every such group at once, so M's columns come a group's width at a time;
- crossed terms: M is dense; its columns come a chunk at a time (memory O(q x chunk)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mlmcli.engine.blocks import block_diag_csr, bmm

if TYPE_CHECKING:
    from mlmcli.engine.factor import BlockedFactor

CHUNK_ENTRIES = 1_000_000  # entries of each q x m column block of M


@dataclass
class VcInformation:
    """P, Q and K over gamma = (Tau entries..., sigma^2), in pbkrtest's order and scale."""

    P: list[np.ndarray]  # (p, p) each
    Q: list[list[np.ndarray]]  # Q[r][s], (p, p)
    K: np.ndarray  # (m, m)


def _entries(f: BlockedFactor) -> list[tuple[int, np.ndarray]]:
    """(term, E_r) for every Tau entry, in theta's order (lme4's and pbkrtest's)."""
    out = []
    for j, s in enumerate(f.structures):
        for a, b in zip(s.tri_rows, s.tri_cols, strict=True):
            E = np.zeros((s.k, s.k))
            E[a, b] = E[b, a] = 1.0
            out.append((j, E))
    return out


class _Operators:
    """Products with A, S and M on per-term stacks (ell, k, m) of q x m matrices."""

    def __init__(self, f: BlockedFactor) -> None:
        self.f = f
        self._A_csc = None

    def A_columns(self, i: int, l0: int, l1: int) -> list[np.ndarray]:
        """A's columns of levels l0..l1-1 of term i, sliced from A assembled sparse (once): a
        product with unit vectors would pass over all of A's crossed blocks for each column."""
        import scipy.sparse as sp

        f = self.f
        cp, S = f.cp, f.structures
        if self._A_csc is None:
            nbd, nt = cp.nbd, len(S)
            blocks = [[None] * nt for _ in range(nt)]
            for a in range(nbd):
                blocks[a][a] = block_diag_csr(cp.A_diag[a])
                for b in range(a):
                    blocks[a][b] = cp.A_nested[a, b].to_csr()
                    blocks[b][a] = blocks[a][b].T
            if cp.q_tail:
                tail = [sp.csr_matrix(cp.A_tail[b]) for b in range(nbd)]
                rows = np.concatenate([[0], np.cumsum([s.q for s in S[nbd:]])])
                for t in range(nbd, nt):
                    r0, r1 = rows[t - nbd], rows[t - nbd + 1]
                    for b in range(nbd):
                        blocks[t][b] = tail[b][r0:r1]
                        blocks[b][t] = blocks[t][b].T
                    # the crossed terms' own block is dense already: sliced from A_tt below
                    blocks[t][t] = sp.csr_matrix((S[t].q, S[t].q))
            self._A_csc = sp.bmat(blocks, format="csc")
            self._offsets = np.concatenate([[0], np.cumsum([s.q for s in S])])
        o, k = int(self._offsets[i]), S[i].k
        cols = self._A_csc[:, o + l0 * k : o + l1 * k].toarray()
        if i >= cp.nbd:
            t0 = int(self._offsets[cp.nbd])
            cols[t0:] += cp.A_tt[:, o - t0 + l0 * k : o - t0 + l1 * k]
        return [
            cols[int(self._offsets[j]) : int(self._offsets[j + 1])].reshape(s.ell, s.k, -1) for j, s in enumerate(S)
        ]

    def A(self, V: list[np.ndarray]) -> list[np.ndarray]:
        return self.f.cp.zz_times(V)

    def S(self, V: list[np.ndarray]) -> list[np.ndarray]:
        """Lambda Omega^-1 Lambda' V."""
        f = self.f
        m = V[0].shape[-1]
        x = f.solve_lower([bmm(T.T, v) for T, v in zip(f.T, V, strict=True)])
        u = f.solve_modes(x)
        return [bmm(T, ui.reshape(s.ell, s.k, m)) for T, ui, s in zip(f.T, u, f.structures, strict=True)]

    def SA(self, V: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(A V, S A V)."""
        AV = self.A(V)
        return AV, self.S(AV)

    def M(self, V: list[np.ndarray]) -> list[np.ndarray]:
        AV, SAV = self.SA(V)
        return [a - b for a, b in zip(AV, self.A(SAV), strict=True)]


def inner(U: list[np.ndarray], V: list[np.ndarray]) -> np.ndarray:
    """U'V for two q x m stacks."""
    return sum(np.einsum("lkp,lkq->pq", u, v) for u, v in zip(U, V, strict=True))


def _times_entry(f: BlockedFactor, j: int, E: np.ndarray, V: list[np.ndarray]) -> list[np.ndarray]:
    """(I (x) E) on term j's block of V, zero elsewhere."""
    return [bmm(E, v) if i == j else np.zeros_like(v) for i, v in enumerate(V)]


def vc_information(f: BlockedFactor, sigma: float) -> VcInformation:
    """P, Q and K at the factored theta (f must be factored at the fit's theta)."""
    ops = _Operators(f)
    p = f.p
    entries = _entries(f)
    ZX = [z[:, :, :p] for z in f.cp.z_xy()]
    B = ops.S(ZX)  # S Z'X
    W = [zx - ab for zx, ab in zip(ZX, ops.A(B), strict=True)]  # Z'V^-1 X
    XV2X = f.RXt @ f.RXt.T - inner(W, B)
    XV3X = XV2X - inner(W, ops.S(W))
    ZV2X = [w - mb for w, mb in zip(W, ops.M(B), strict=True)]
    DW = [_times_entry(f, j, E, W) for j, E in entries]
    MDW = [ops.M(d) for d in DW]
    s2 = sigma**2
    nr = len(entries)
    P = [-inner(W, d) / s2**2 for d in DW] + [-XV2X / s2**2]
    Q = [[np.empty((p, p))] * (nr + 1) for _ in range(nr + 1)]
    for r in range(nr):
        for s in range(nr):
            Q[r][s] = inner(DW[r], MDW[s]) / s2**3
        Q[r][nr] = inner(DW[r], ZV2X) / s2**3
        Q[nr][r] = Q[r][nr].T
    Q[nr][nr] = XV3X / s2**3
    K = _traces(f, ops, entries) / s2**2
    return VcInformation(P=P, Q=Q, K=K)


def _traces(f: BlockedFactor, ops: _Operators, entries: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """tr(V^-1 G_r V^-1 G_s) for all pairs."""
    if f.cp.q_tail:
        G4, N, tr_SA = _chunked_sums(f, ops)
    elif len(f.structures) == 1:
        G4, N, tr_SA = _single_term_sums(f)
    else:
        G4, N, tr_SA = _probed_sums(f, ops)
    m = len(entries) + 1
    K = np.empty((m, m))
    for r, (j, Er) in enumerate(entries):
        for s, (i, Es) in enumerate(entries):
            K[r, s] = float(np.einsum("ab,cd,abcd->", Er, Es, G4[j][i]))
        K[r, -1] = K[-1, r] = float(np.einsum("ab,lba->", Er, N[j]))
    # tr(V^-2) = tr(V^-1) - tr(Lambda Lambda' Z'V^-2 Z), tr(V^-1) = n - tr(S A)
    lam = sum(float(np.einsum("ab,lba->", T @ T.T, Nj)) for T, Nj in zip(f.T, N, strict=True))
    K[-1, -1] = f.n - tr_SA - lam
    return K


def _single_term_sums(f: BlockedFactor):
    """One term: M, S and A are block diagonal, so every sum is over the levels' k x k blocks."""
    A = f.cp.A_diag[0]
    T, Linv = f.T[0], f.Linv[0]
    S = bmm(bmm(T, np.swapaxes(Linv, 1, 2)), bmm(Linv, T.T))  # T Omega_l^-1 T'
    SA = bmm(S, A)
    M = A - bmm(A, SA)
    G4 = [[np.einsum("lbc,lad->abcd", M, M)]]
    N = [M - bmm(M, SA)]
    return G4, N, float(np.trace(SA, axis1=1, axis2=2).sum())


def _chunked_sums(f: BlockedFactor, ops: _Operators):
    """From M's columns a chunk at a time: G4[j][i][a, b, c, d], the sum over level pairs of
    M_jl,im[b, c] M_jl,im[a, d]; the diagonal blocks of Z'V^-2 Z = M (I - S A); tr(S A)."""
    S = f.structures
    q = sum(s.q for s in S)
    nt = len(S)
    G4 = [[np.zeros((S[j].k, S[j].k, S[i].k, S[i].k)) for i in range(nt)] for j in range(nt)]
    N = [np.empty((s.ell, s.k, s.k)) for s in S]
    tr_SA = 0.0
    for i, si in enumerate(S):
        per = max(1, CHUNK_ENTRIES // (q * si.k))
        for l0 in range(0, si.ell, per):
            nl = min(si.ell, l0 + per) - l0
            idx = np.arange(nl)
            AE = ops.A_columns(i, l0, l0 + nl)
            SAE = ops.S(AE)
            ME = [ae - x for ae, x in zip(AE, ops.A(SAE), strict=True)]
            cross = np.zeros((nl, si.k, si.k))
            for j, sj in enumerate(S):
                X = ME[j].reshape(sj.ell, sj.k, nl, si.k)
                G4[j][i] += np.einsum("lbmc,lamd->abcd", X, X)
                cross += np.einsum("lkta,lktb->tab", X, SAE[j].reshape(sj.ell, sj.k, nl, si.k))
            Mdiag = ME[i][l0 + idx].reshape(nl, si.k, nl, si.k)[idx, :, idx, :]
            N[i][l0 : l0 + nl] = Mdiag - cross
            d = SAE[i][l0 + idx].reshape(nl, si.k, nl, si.k)[idx, :, idx, :]
            tr_SA += float(np.trace(d, axis1=1, axis2=2).sum())
    return G4, N, tr_SA


def _groups(f: BlockedFactor) -> list[np.ndarray]:
    """For nested terms only: the level of the outermost term that holds each level of each term."""
    top = len(f.structures) - 1
    return [f.cp.parents[j, top] if j < top else np.arange(f.structures[top].ell) for j in range(top + 1)]


def _ranks(group: np.ndarray) -> np.ndarray:
    """Each level's position among the levels of its group."""
    order = np.argsort(group, kind="stable")
    sorted_g = group[order]
    starts = np.searchsorted(sorted_g, sorted_g, side="left")
    rank = np.empty_like(group)
    rank[order] = np.arange(len(group)) - starts
    return rank


def _probed_sums(f: BlockedFactor, ops: _Operators):
    """Nested terms without crossed ones: M is block diagonal by the outermost term's levels, so one
    probe column can carry a unit vector in every group at once (the r-th level of a term in each
    group) and M's columns come a group-width at a time: O(levels x width), not O(levels^2)."""
    from mlmcli.engine.blocks import segment_sum

    S = f.structures
    nt = len(S)
    q = sum(s.q for s in S)
    groups = _groups(f)
    ngroups = S[-1].ell
    G4 = [[np.zeros((S[j].k, S[j].k, S[i].k, S[i].k)) for i in range(nt)] for j in range(nt)]
    N = [np.empty((s.ell, s.k, s.k)) for s in S]
    tr_SA = 0.0
    for i, si in enumerate(S):
        k = si.k
        rank = _ranks(groups[i])
        width = int(rank.max()) + 1
        per = max(1, CHUNK_ENTRIES // (q * k))
        for r0 in range(0, width, per):
            nr = min(width, r0 + per) - r0
            lev = np.flatnonzero((rank >= r0) & (rank < r0 + nr))
            loc = rank[lev] - r0
            E = [np.zeros((s.ell, s.k, nr * k)) for s in S]
            for a in range(k):
                E[i][lev, a, loc * k + a] = 1.0
            AE = ops.A(E)
            SAE = ops.S(AE)
            ME = [ae - x for ae, x in zip(AE, ops.A(SAE), strict=True)]
            cross = np.zeros((ngroups, nr, k, k))
            for j, sj in enumerate(S):
                X = ME[j].reshape(sj.ell, sj.k, nr, k)
                G4[j][i] += np.einsum("lbmc,lamd->abcd", X, X)
                Y = SAE[j].reshape(sj.ell, sj.k, nr, k)
                cross += segment_sum(np.einsum("lkta,lktb->ltab", X, Y), groups[j], ngroups)
            own = ME[i].reshape(si.ell, k, nr, k)[lev, :, loc, :]
            N[i][lev] = own - cross[groups[i][lev], loc]
            d = SAE[i].reshape(si.ell, k, nr, k)[lev, :, loc, :]
            tr_SA += float(np.trace(d, axis1=1, axis2=2).sum())
    return G4, N, tr_SA
