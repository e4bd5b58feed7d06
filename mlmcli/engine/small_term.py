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

Two block types (blocks.py's protocol): `SmallTermDiagonal`, L's diagonal blocks as vectors
(l00, l10, l11), and `SmallTermRows`, L_F by columns.  Both lay their blocks of A out once, as
contiguous vectors over levels, and form the (ell, k, k) stacks of the general factor only when
something after the fit asks for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlmcli.engine.blocks import stack_times

if TYPE_CHECKING:
    from mlmcli.engine.blocks import Block
    from mlmcli.engine.crossprod import CrossProducts
    from mlmcli.engine.factor import BlockedFactor


def closed_form(f: BlockedFactor) -> bool:
    """Whether the factor is this module's: one small term on large data (factor.layout)."""
    return len(f.diagonal) == 1 and isinstance(f.diagonal[0], SmallTermDiagonal)


class SmallTermDiagonal:
    """L's diagonal blocks of the one term as vectors over levels: k = 1: [l00]; k = 2: [l00, l10, l11]."""

    j = 0

    def bind(self, cp: CrossProducts) -> None:
        A = cp.A_diag[0]
        self.k = A.shape[1]
        # k = 1: [a00]; k = 2: [a00, a10, a11], each (ell,)
        self.a = [A[:, 0, 0].copy()] if self.k == 1 else [A[:, i, j].copy() for i, j in ((0, 0), (1, 0), (1, 1))]

    def start(self, f: BlockedFactor) -> None:
        self.T = f.T[0]

    def downdate(self, left: Block, right: Block) -> None:
        raise TypeError("the closed-form kernel is for a model's only term: nothing precedes it")

    def factor(self) -> None:
        """Raises LinAlgError where a block is not positive definite."""
        T = self.T
        self._stacks: tuple[np.ndarray, np.ndarray] | None = None
        if self.k == 1:
            t = float(T[0, 0])
            d = (t * t) * self.a[0] + 1.0
            if not np.all(d > 0):
                raise np.linalg.LinAlgError("not positive definite")
            self.diag = [np.sqrt(d)]
            return
        t00, t10, t11 = float(T[0, 0]), float(T[1, 0]), float(T[1, 1])
        a00, a10, a11 = self.a
        d00 = (t00 * t00) * a00 + (2.0 * t00 * t10) * a10 + (t10 * t10) * a11 + 1.0
        if not np.all(d00 > 0):
            raise np.linalg.LinAlgError("not positive definite")
        l00 = np.sqrt(d00)
        l10 = (t11 * t00) * a10 + (t11 * t10) * a11
        l10 /= l00
        d11 = (t11 * t11) * a11 + 1.0 - l10 * l10
        if not np.all(d11 > 0):
            raise np.linalg.LinAlgError("not positive definite")
        self.diag = [l00, l10, np.sqrt(d11)]

    def ldL2(self) -> float:
        logs = np.log(self.diag[0]).sum()
        if self.k == 2:
            logs += np.log(self.diag[2]).sum()
        return 2.0 * float(logs)

    def _stacked(self) -> tuple[np.ndarray, np.ndarray]:
        """L and L^{-1} as (ell, k, k) stacks: the layout of the general factor."""
        if self._stacks is None:
            ell, k = len(self.diag[0]), self.k
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
            self._stacks = (L, Linv)
        return self._stacks

    @property
    def L(self) -> np.ndarray:
        return self._stacked()[0]

    @property
    def Linv(self) -> np.ndarray:
        return self._stacked()[1]

    def gather(self, rhs: list[np.ndarray]) -> np.ndarray:
        return rhs[0]

    def scatter(self, u: np.ndarray) -> list[np.ndarray]:
        return [u]

    def solve(self, r: np.ndarray) -> np.ndarray:
        return stack_times(self.Linv, r)

    def solve_t(self, r: np.ndarray) -> np.ndarray:
        return stack_times(self.Linv, r, transpose=True)


class SmallTermRows:
    """L_F of the one term by columns: k arrays (p+1, ell)."""

    def bind(self, cp: CrossProducts) -> None:
        A_F = cp.A_F[0]
        # per column c of the term: (p+1, ell), [X y]'Z_c per level
        self.F = [np.ascontiguousarray(A_F[:, :, c].T) for c in range(A_F.shape[2])]

    def start(self, f: BlockedFactor) -> None:
        self.T = f.T[0]

    def downdate(self, left: Block, right: Block) -> None:
        raise TypeError("the closed-form kernel is for a model's only term: nothing precedes it")

    def rdiv(self, diag: SmallTermDiagonal) -> None:
        T = self.T
        self._stack: np.ndarray | None = None
        if len(self.F) == 1:
            self.LF = [(float(T[0, 0]) * self.F[0]) / diag.diag[0]]
            return
        t00, t10, t11 = float(T[0, 0]), float(T[1, 0]), float(T[1, 1])
        l00, l10, l11 = diag.diag
        F0, F1 = self.F
        LF0 = t00 * F0 + t10 * F1
        LF0 /= l00
        LF1 = t11 * F1 - LF0 * l10
        LF1 /= l11
        self.LF = [LF0, LF1]

    def gram(self) -> np.ndarray:
        out = self.LF[0] @ self.LF[0].T
        if len(self.LF) == 2:
            out += self.LF[1] @ self.LF[1].T
        return out

    def columns(self) -> np.ndarray:
        return np.hstack(self.LF)

    @property
    def stack(self) -> np.ndarray:
        """(ell, p+1, k): the layout of the general factor's TermRows."""
        if self._stack is None:
            self._stack = np.stack([F.T for F in self.LF], axis=2)
        return self._stack

    def rows(self, sel: slice) -> list[np.ndarray]:
        return [self.stack[:, sel, :].transpose(0, 2, 1)]
