"""Exact derivatives in theta of the pieces Satterthwaite's df needs, at the factored theta.

With V = I + Z Lambda Lambda' Z' (sigma^2 factored out) and E_k = d Lambda / d theta_k:

- the penalized RSS, by the envelope theorem: d pwrss / d theta_k = -2 (Z'r)' E_k u, with r the
  residual at the PLS solution;
- R_X'R_X = X'V^{-1}X, so d(R_X'R_X)/d theta_k = -(W'E_k Lambda'W + its transpose) with
  W = Z'V^{-1}X, and V^{-1}X = X - Z Lambda Omega^{-1} Lambda'Z'X comes from the factor's own
  solves with the columns of X as right-hand sides.

Each costs one pass over the rows at the optimum, never a new factorization.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mlmcli.engine.factor import BlockedFactor


def _z_transpose(f: BlockedFactor, R: np.ndarray) -> list[np.ndarray]:
    """Z_j' R per term as (ell, k, m) for R of shape (n, m)."""
    out = []
    for s in f.structures:
        W = np.empty((s.ell, s.k, R.shape[1]))
        for a in range(s.k):
            for c in range(R.shape[1]):
                W[:, a, c] = np.bincount(s.codes, weights=s.X[:, a] * R[:, c], minlength=s.ell)
        out.append(W)
    return out


def _theta_entries(f: BlockedFactor):
    """(term, row a, column b) of each theta in its template, in theta's order."""
    for j, s in enumerate(f.structures):
        for a, b in zip(s.tri_rows, s.tri_cols, strict=True):
            yield j, int(a), int(b)


def pwrss_gradient(f: BlockedFactor) -> np.ndarray:
    """d pwrss / d theta at the factored theta."""
    u = f.spherical_modes()
    b = f.conditional_modes(u)
    r = f.cp.y - f.cp.X @ f.beta() - f.cp.Zb(b)
    Zr = _z_transpose(f, r[:, None])
    us = [ui.reshape(s.ell, s.k) for s, ui in zip(f.structures, u, strict=True)]
    return np.array([-2.0 * float(Zr[j][:, a, 0] @ us[j][:, bb]) for j, a, bb in _theta_entries(f)])


def unscaled_vcov_gradient(f: BlockedFactor) -> list[np.ndarray]:
    """d (R_X'R_X)^{-1} / d theta_k for every k, at the factored theta."""
    p = f.p
    # Omega^{-1} Lambda'Z'X: the spherical modes of each column of X, with beta out of the picture
    U = f.solve_modes(f.LF_rows(slice(0, p)))
    B = [np.stack([Ui[:, c].reshape(s.ell, s.k) @ T.T for c in range(p)], axis=-1)   # Lambda Omega^{-1} ...
         for s, T, Ui in zip(f.structures, f.T, U, strict=True)]
    VX = f.cp.X.copy()
    for s, Bi in zip(f.structures, B, strict=True):
        for a in range(s.k):
            VX -= s.X[:, a][:, None] * Bi[:, a, :][s.codes]
    W = _z_transpose(f, VX)                               # Z'V^{-1}X per term: (ell, k, p)
    LW = [np.einsum("ba,lbc->lac", T, Wj) for T, Wj in zip(f.T, W, strict=True)]   # Lambda'W
    C = f.unscaled_vcov()
    out = []
    for j, a, b in _theta_entries(f):
        G = W[j][:, a, :].T @ LW[j][:, b, :]
        dM = -(G + G.T)
        out.append(-C @ dM @ C)
    return out
