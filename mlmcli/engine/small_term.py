"""The factor of a model with one random-effects term of one or two columns, in closed form.

Random intercepts `(1|g)` and one slope `(x|g)` are the most common models, and the ones fitted to
the largest data. With a single term there is no off-diagonal random-effects block, and each
level's block of L is a 1 x 1 or 2 x 2 Cholesky factor: written out element by element over all
levels at once (arrays of length ell), one evaluation is a few dozen passes over short vectors,
where the stacked-block kernels (blocks.py) would copy and transpose (ell, k, k) stacks.

With T = [[t00, 0], [t10, t11]] and a level's A_ZZ = [[a00, a10], [a10, a11]]:

    D   = T'A_ZZ T + I,                  L L' = D
    R   = A_FZ T                         (the [X y] rows against the level's two columns)
    L_F = R L^{-T}
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SmallTermBlocks:
    """A_ZZ and A_FZ of the one term as contiguous vectors over levels (laid out once)."""

    a: list[np.ndarray]  # k = 1: [a00]; k = 2: [a00, a10, a11], each (ell,)
    F: list[np.ndarray]  # per column c of the term: (p+1, ell), [X y]'Z_c per level

    @classmethod
    def of(cls, A_diag: np.ndarray, A_F: np.ndarray) -> SmallTermBlocks:
        k = A_diag.shape[1]
        a = [A_diag[:, 0, 0].copy()] if k == 1 else [A_diag[:, i, j].copy() for i, j in ((0, 0), (1, 0), (1, 1))]
        return cls(a, [np.ascontiguousarray(A_F[:, :, c].T) for c in range(k)])


@dataclass
class SmallTermFactor:
    """L's diagonal blocks as vectors (l00, l10, l11) and L_F by columns, (p+1, ell) each."""

    diag: list[np.ndarray]  # k = 1: [l00]; k = 2: [l00, l10, l11]
    LF: list[np.ndarray]

    @property
    def k(self) -> int:
        return len(self.LF)

    def ldL2(self) -> float:
        """log det(L L') over the random effects."""
        logs = np.log(self.diag[0]).sum()
        if self.k == 2:
            logs += np.log(self.diag[2]).sum()
        return 2.0 * float(logs)

    def gram_F(self) -> np.ndarray:
        """L_F L_F': what the random effects take from [X y]'[X y]."""
        out = self.LF[0] @ self.LF[0].T
        if self.k == 2:
            out += self.LF[1] @ self.LF[1].T
        return out

    def stacks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """L, L^{-1} as (ell, k, k) and L_F as (ell, p+1, k): the layout of the general factor."""
        ell = len(self.diag[0])
        k = self.k
        L = np.zeros((ell, k, k))
        Linv = np.zeros((ell, k, k))
        if k == 1:
            L[:, 0, 0] = self.diag[0]
            Linv[:, 0, 0] = 1.0 / self.diag[0]
        else:
            l00, l10, l11 = self.diag
            L[:, 0, 0], L[:, 1, 0], L[:, 1, 1] = l00, l10, l11
            Linv[:, 0, 0], Linv[:, 1, 1] = 1.0 / l00, 1.0 / l11
            Linv[:, 1, 0] = -l10 / (l00 * l11)
        LF = np.stack([F.T for F in self.LF], axis=2)
        return L, Linv, LF


def factor_small_term(blocks: SmallTermBlocks, T: np.ndarray) -> SmallTermFactor:
    """L's blocks for the template T; raises LinAlgError where a block is not positive definite."""
    if len(blocks.a) == 1:
        t = float(T[0, 0])
        d = (t * t) * blocks.a[0] + 1.0
        if not np.all(d > 0):
            raise np.linalg.LinAlgError("not positive definite")
        l00 = np.sqrt(d)
        return SmallTermFactor([l00], [(t * blocks.F[0]) / l00])
    t00, t10, t11 = float(T[0, 0]), float(T[1, 0]), float(T[1, 1])
    a00, a10, a11 = blocks.a
    d00 = (t00 * t00) * a00 + (2.0 * t00 * t10) * a10 + (t10 * t10) * a11 + 1.0
    if not np.all(d00 > 0):
        raise np.linalg.LinAlgError("not positive definite")
    l00 = np.sqrt(d00)
    l10 = (t11 * t00) * a10 + (t11 * t10) * a11
    l10 /= l00
    d11 = (t11 * t11) * a11 + 1.0 - l10 * l10
    if not np.all(d11 > 0):
        raise np.linalg.LinAlgError("not positive definite")
    l11 = np.sqrt(d11)
    F0, F1 = blocks.F
    LF0 = t00 * F0 + t10 * F1
    LF0 /= l00
    LF1 = t11 * F1 - LF0 * l10
    LF1 /= l11
    return SmallTermFactor([l00, l10, l11], [LF0, LF1])
