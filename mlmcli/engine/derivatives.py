"""Exact derivatives in theta of the pieces Satterthwaite's df needs, at the factored theta.

With V = I + Z Lambda Lambda' Z' (sigma^2 factored out) and E_k = d Lambda / d theta_k:

- the penalized RSS, by the envelope theorem: d pwrss / d theta_k = -2 (Z'r)' E_k u, with r the
  residual at the PLS solution;
- R_X'R_X = X'V^{-1}X, so d(R_X'R_X)/d theta_k = -(W'E_k Lambda'W + its transpose) with
  W = Z'V^{-1}X, and V^{-1}X = X - Z Lambda Omega^{-1} Lambda'Z'X comes from the factor's own
  solves with the columns of X as right-hand sides; d log det(R_X'R_X) is its trace against
  (R_X'R_X)^{-1};
- log det(Omega), Omega = Lambda'A Lambda + I: tr(Omega^{-1} d Omega), which needs Omega^{-1} only
  where A is non-zero, the selected inverse (selinv.py).

All come from the blocks of A, the factor's solves and its selected inverse: no pass over the
rows, no new factorization.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlmcli.engine.blocks import bmm, csr_block_dots, segment_sum, t

if TYPE_CHECKING:
    from mlmcli.engine.factor import BlockedFactor
    from mlmcli.engine.tail import TailLambda


def _theta_entries(f: BlockedFactor):
    """(term, row a, column b) of each theta in its template, in theta's order."""
    for j, s in enumerate(f.structures):
        for a, b in zip(s.tri_rows, s.tri_cols, strict=True):
            yield j, int(a), int(b)


class GradientPieces:
    """The derivatives at the factored theta, each formed on first use (R_X'R_X's serves ldRX2's
    gradient and vcov(beta)'s both).  One small term (the closed-form factor) takes its own
    kernels, which share their solves (small_term_derivatives.py).  The general kernels keep one
    solve and one product with Z'Z per derivative: joined over X's columns and the residual's, the
    diagonal and nested blocks' einsums slow with the columns' number more than the join saves
    (nested1m: 10.2 ms a gradient against 9.4)."""

    def __init__(self, f: BlockedFactor) -> None:
        from mlmcli.engine.small_term import closed_form

        self.f = f
        self.entries = list(_theta_entries(f))
        self._small = None
        if closed_form(f):
            from mlmcli.engine.small_term_derivatives import SmallTermGradient

            self._small = SmallTermGradient(f, self.entries)
        self._rx: list[np.ndarray] | None = None
        self._C: np.ndarray | None = None

    def ldL2(self) -> np.ndarray:
        """d log det(Omega) / d theta."""
        return self._small.ldL2() if self._small is not None else _ldL2_gradient(self.f)

    def pwrss(self) -> np.ndarray:
        """d pwrss / d theta = -2 (Z'r)' E_k u, by the envelope theorem."""
        if self._small is not None:
            return self._small.pwrss()
        f, cp, p = self.f, self.f.cp, self.f.p
        u = f.spherical_modes()
        b = [bi[:, :, None] for bi in f.conditional_modes(u)]
        # Z'r = Z'y - Z'X beta - Z'Z b
        beta = f.beta()
        Zr = [F[:, :, p] - F[:, :, :p] @ beta - ZZb[:, :, 0] for F, ZZb in zip(cp.z_xy(), cp.zz_times(b), strict=True)]
        us = [ui.reshape(s.ell, s.k) for s, ui in zip(f.structures, u, strict=True)]
        return np.array([-2.0 * float(Zr[j][:, a] @ us[j][:, bb]) for j, a, bb in self.entries])

    def rx(self) -> list[np.ndarray]:
        """d (R_X'R_X) / d theta_k for every k."""
        if self._rx is None:
            if self._small is not None:
                self._rx = self._small.rx()
            else:
                f, cp, p = self.f, self.f.cp, self.f.p
                # Omega^{-1} Lambda'Z'X: the spherical modes of each column of X, beta out of the picture
                U = f.solve_modes(f.LF_rows(slice(0, p)))
                B = [bmm(T, Ui.reshape(s.ell, s.k, p)) for s, T, Ui in zip(f.structures, f.T, U, strict=True)]
                # W = Z'V^{-1}X = Z'X - Z'Z Lambda Omega^{-1} Lambda'Z'X, per term (ell, k, p)
                W = [F[:, :, :p] - ZZB for F, ZZB in zip(cp.z_xy(), cp.zz_times(B), strict=True)]
                LW = [bmm(T.T, Wj) for T, Wj in zip(f.T, W, strict=True)]  # Lambda'W
                self._rx = []
                for j, a, b in self.entries:
                    G = W[j][:, a, :].T @ LW[j][:, b, :]
                    self._rx.append(-(G + G.T))
        return self._rx

    def unscaled_vcov(self) -> np.ndarray:
        if self._C is None:
            self._C = self.f.unscaled_vcov()
        return self._C

    def ldRX2(self) -> np.ndarray:
        """d log det(R_X'R_X) / d theta_k = tr((R_X'R_X)^{-1} d(R_X'R_X)/d theta_k)."""
        C = self.unscaled_vcov()
        return np.array([float(np.sum(C * dM)) for dM in self.rx()])

    def unscaled_vcov_gradient(self) -> list[np.ndarray]:
        """d (R_X'R_X)^{-1} / d theta_k for every k."""
        C = self.unscaled_vcov()
        return [-C @ dM @ C for dM in self.rx()]


def _ldL2_gradient(f: BlockedFactor) -> np.ndarray:
    """d log det(Omega) / d theta_k = tr(Omega^{-1} (E_k'A Lambda + Lambda'A E_k))
    = 2 <Lambda Omega^{-1}, A E_k>, a sum over A's pattern only, where the selected inverse
    (selinv.py) holds Omega^{-1}.  E_k = I (x) e_a e_b' moves A's column (l, a) of the term to
    (l, b), so the sum is, over the term's levels, entry (b, a) of the k x k blocks

        D_l = sum_r (Lambda Omega^{-1})[r, block l]' A[r, block l]."""
    fast = _scalar_ldL2_gradient(f)
    if fast is not None:
        return fast
    from mlmcli.engine.selinv import selected_inverse

    inv = selected_inverse(f)
    cp, S, T, nbd = f.cp, f.structures, f.T, f.cp.nbd
    D = [np.zeros((s.ell, s.k, s.k)) for s in S]
    for j in range(nbd):
        D[j] += bmm(bmm(inv.diagonal[j], T[j].T), cp.A_diag[j])
        for i in range(j + 1, nbd):  # i coarser: one block at (parent(l), l) per level l of j
            Sn, An = inv.nested[i, j], cp.A_nested[i, j].values
            D[j] += bmm(t(Sn), bmm(T[i].T, An))
            D[i] += segment_sum(bmm(bmm(Sn, T[j].T), t(An)), cp.parents[j, i], S[i].ell)
    if cp.q_tail:
        assert inv.tail_tail is not None
        lam = f.tail_lambda
        tail = list(enumerate(S[nbd:], start=nbd))
        offsets = cp.tail_offsets
        for j in range(nbd):
            Stj = inv.tail[j].reshape(cp.q_tail, S[j].q)  # Omega^{-1}'s tail rows against term j
            if lam.vec is not None and S[j].k == 1:
                # scalar terms only: both sums below from one pass over A_tj's entries, where two
                # would read Omega^{-1} at the same scattered places
                coo = cp.A_tail[j].tocoo()
                w = Stj[coo.row, coo.col] * coo.data
                D[j][:, 0, 0] += np.bincount(coo.col, weights=w * lam.vec[coo.row], minlength=S[j].ell)
                Dt = np.bincount(coo.row, weights=w, minlength=cp.q_tail) * T[j][0, 0]
                for i, _ in tail:
                    D[i][:, 0, 0] += Dt[int(offsets[i - nbd]) : int(offsets[i - nbd + 1])]
                continue
            D[j] += csr_block_dots(_tail_lambda_times(lam, Stj), cp.A_tail[j], S[j].k, S[j].k, S[j].ell)
            Yj = bmm(T[j], Stj.T.reshape(S[j].ell, S[j].k, cp.q_tail)).reshape(S[j].q, cp.q_tail)
            Aj = cp.A_tail[j].T.tocsr()
            for i, s in tail:
                o0, o1 = int(offsets[i - nbd]), int(offsets[i - nbd + 1])
                D[i] += csr_block_dots(Yj[:, o0:o1], Aj[:, o0:o1], s.k, s.k, s.ell)
        Ytt = _tail_lambda_times(lam, inv.tail_tail)
        for i, s in tail:
            o0, o1 = int(offsets[i - nbd]), int(offsets[i - nbd + 1])
            Y = Ytt[:, o0:o1].reshape(cp.q_tail, s.ell, s.k)
            A = cp.A_tt[:, o0:o1].reshape(cp.q_tail, s.ell, s.k)
            D[i] += np.einsum("rla,rlb->lab", Y, A)
    return np.array([2.0 * float(D[j][:, b, a].sum()) for j, a, b in _theta_entries(f)])


def _scalar_ldL2_gradient(f: BlockedFactor) -> np.ndarray | None:
    """_ldL2_gradient where every term is scalar and non-zero, one leading term and the tail on big
    data (GramTail): with Lambda = sum_j theta_j P_j, d Omega / d theta_j = (P_j (Omega - I) +
    (Omega - I) P_j) / theta_j, so the derivative is 2 (q_j - tr(P_j Omega^{-1})) / theta_j, and
    only the traces of Omega^{-1}'s diagonal blocks are needed:

        tail terms: the diagonal of S_tt = (L_tt L_tt')^{-1} over their rows;
        the leading term: sum_l L_00,l^{-2} + <S_tt, W W'>,  W = L_t0 L_00^{-1},

    and W W' = Lambda_t A_t0 diag(theta_0^2 L_00^{-4}) A_t0' Lambda_t is the tail's laid-out product
    (TailGram) with other weights: no selected inverse of the tail's rows against the leading
    term (a dense q_tail x q_0 product).  None where these conditions do not hold."""
    from mlmcli.engine.selinv import tail_inverse_lower
    from mlmcli.engine.tail import GramTail

    cp, S = f.cp, f.structures
    if cp.nbd != 1 or not cp.q_tail or any(s.k != 1 for s in S):
        return None
    tail = f.diagonal[1]
    lam = f.tail_lambda
    theta0 = float(f.T[0][0, 0])
    if not isinstance(tail, GramTail) or lam.vec is None or theta0 == 0 or np.any(lam.vec == 0):
        return None
    # S_tt's lower triangle only: every sum below is over G's lower triangle (zero above it)
    S_tt = tail_inverse_lower(tail.L)
    linv2 = f.Linv[0][:, 0, 0] ** 2
    low = tail.gram.lower((theta0**2 * linv2**2)[:, None, None])  # G's lower triangle, zeros above
    # <S_tt, Lambda_t G Lambda_t> from the lower triangles: twice theirs, less the diagonal's once
    d_low = np.diagonal(S_tt) * np.diagonal(low)
    if lam.scalar is not None:  # one tail term: Lambda_t a multiple of I, one pass over S_tt
        inner = lam.scalar**2 * (2.0 * float(np.vdot(S_tt, low)) - float(d_low.sum()))
    else:
        v = lam.vec
        inner = 2.0 * float(v @ ((S_tt * low) @ v)) - float(d_low @ (v * v))
    traces = [float(linv2.sum()) + inner]
    diag = np.diagonal(S_tt)
    o = cp.tail_offsets
    traces += [float(diag[o[i] : o[i + 1]].sum()) for i in range(len(S) - 1)]
    thetas = [theta0] + [float(T[0, 0]) for T in f.T[1:]]
    return np.array([2.0 * (s.q - tr) / th for s, tr, th in zip(S, traces, thetas, strict=True)])


def _tail_lambda_times(lam: TailLambda, F: np.ndarray) -> np.ndarray:
    """Lambda_t F for a dense F with the tail's rows."""
    if lam.vec is not None:
        return lam.vec[:, None] * F
    assert lam.M is not None
    return np.asarray(lam.M @ F)
