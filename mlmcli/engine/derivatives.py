"""Exact derivatives in theta of the pieces Satterthwaite's df needs, at the factored theta.

With V = I + Z Lambda Lambda' Z' (sigma^2 factored out) and E_k = d Lambda / d theta_k:

- the penalized RSS, by the envelope theorem: d pwrss / d theta_k = -2 (Z'r)' E_k u, with r the
  residual at the PLS solution;
- R_X'R_X = X'V^{-1}X, so d(R_X'R_X)/d theta_k = -(W'E_k Lambda'W + its transpose) with
  W = Z'V^{-1}X, and V^{-1}X = X - Z Lambda Omega^{-1} Lambda'Z'X comes from the factor's own
  solves with the columns of X as right-hand sides.

Both come from the blocks of A and the factor's solves: no pass over the rows, no new factorization.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlmcli.engine.blocks import bmm

if TYPE_CHECKING:
    from mlmcli.engine.factor import BlockedFactor


def _theta_entries(f: BlockedFactor):
    """(term, row a, column b) of each theta in its template, in theta's order."""
    for j, s in enumerate(f.structures):
        for a, b in zip(s.tri_rows, s.tri_cols, strict=True):
            yield j, int(a), int(b)


def pwrss_gradient(f: BlockedFactor) -> np.ndarray:
    """d pwrss / d theta at the factored theta."""
    cp, p = f.cp, f.p
    u = f.spherical_modes()
    b = [bi[:, :, None] for bi in f.conditional_modes(u)]
    # Z'r = Z'y - Z'X beta - Z'Z b
    beta = f.beta()
    Zr = [ZF[:, :, p] - ZF[:, :, :p] @ beta - ZZb[:, :, 0] for ZF, ZZb in zip(cp.z_xy(), cp.zz_times(b), strict=True)]
    us = [ui.reshape(s.ell, s.k) for s, ui in zip(f.structures, u, strict=True)]
    return np.array([-2.0 * float(Zr[j][:, a] @ us[j][:, bb]) for j, a, bb in _theta_entries(f)])


def unscaled_vcov_gradient(f: BlockedFactor) -> list[np.ndarray]:
    """d (R_X'R_X)^{-1} / d theta_k for every k, at the factored theta."""
    cp, p = f.cp, f.p
    # Omega^{-1} Lambda'Z'X: the spherical modes of each column of X, with beta out of the picture
    U = f.solve_modes(f.LF_rows(slice(0, p)))
    B = [bmm(T, Ui.reshape(s.ell, s.k, p)) for s, T, Ui in zip(f.structures, f.T, U, strict=True)]
    # W = Z'V^{-1}X = Z'X - Z'Z Lambda Omega^{-1} Lambda'Z'X, per term (ell, k, p)
    W = [ZF[:, :, :p] - ZZB for ZF, ZZB in zip(cp.z_xy(), cp.zz_times(B), strict=True)]
    LW = [bmm(T.T, Wj) for T, Wj in zip(f.T, W, strict=True)]  # Lambda'W
    C = f.unscaled_vcov()
    out = []
    for j, a, b in _theta_entries(f):
        G = W[j][:, a, :].T @ LW[j][:, b, :]
        dM = -(G + G.T)
        out.append(-C @ dM @ C)
    return out
