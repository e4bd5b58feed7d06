"""Penalized least squares on a blocked Cholesky factor.

The formulation is that of Bates, Maechler, Bolker & Walker (2015), JSS 67(1), with the blocked
factor of MixedModels.jl.  For a given theta each term's blocks of A (crossprod.py) are scaled by
its relative covariance factor Lambda_i, the identity is added to the diagonal blocks, and the
whole is factored block by block:

    L_ii L_ii' = Lambda_i' A_ii Lambda_i + I - sum_{m<i} L_im L_im'
    L_ij       = (Lambda_i' A_ij Lambda_j - sum_{m<j} L_im L_jm') L_jj^{-T}

The block columns are the leading terms (nested in each other), the dense tail of crossed terms,
and [X y] last, so that the last diagonal element of L_FF is sqrt(penalized RSS) and the rest of
it is R_X'.  Which class holds each block is decided once per model (`layout`); the factorization
and the solves loop over the blocks and call only their protocol (blocks.py).  What the factor is
for, the criterion, is the response's (response.py): the factor only offers its pieces (ldL2,
ldRX2, pwrss, beta, the modes) and its solves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np

from mlmcli.engine.blocks import FixedDiagonal, Nested, NestedBlock, TermRows, UniformDiagonal
from mlmcli.engine.crossprod import CrossProducts
from mlmcli.engine.small_term import SmallTermDiagonal, SmallTermRows
from mlmcli.engine.tail import DenseTail, GramTail, TailGram, TailLambda, TailRows, TailTermBlock

if TYPE_CHECKING:
    from mlmcli.engine.blocks import (
        Block,
        DiagonalBlock,
        DividedBlock,
        FactoredBlock,
        OffDiagonalBlock,
        RowsBlock,
        TermDiagonal,
        TermRowsBlock,
    )

# Up to this many rows the general block types are used: their rounding is the one lme4's path was
# matched against (the response also sums the penalized RSS from the rows up to this size,
# response.py).  Above it the kernels for big data: the closed form for one small term, and the
# laid-out product for a crossed tail's rows against the first term.
SMALL_DATA_ROWS = 50_000


@dataclass
class Layout:
    """The block types of L: block columns of the random effects (the leading terms, then the tail
    if any), and [X y] last."""

    diagonal: list[DiagonalBlock]  # the diagonal block of each block column of Z
    below: dict[tuple[int, int], OffDiagonalBlock]  # Z's blocks below the diagonal, by (row, column)
    rows: list[RowsBlock]  # [X y]'s rows against each block column of Z
    fixed: FixedDiagonal  # [X y]'s own block, L_FF


def layout(cp: CrossProducts, small_term: bool | None = None, tail_gram: bool | None = None) -> Layout:
    """The block types of L for these products, decided once per model.  `small_term` and
    `tail_gram` choose the big-data kernels (None: by the number of rows)."""
    big = cp.n > SMALL_DATA_ROWS
    S, nbd = cp.structures, cp.nbd
    if small_term is None:
        # one term of one or two columns on big data: its sums round differently in the last bits,
        # and on small data BOBYQA should follow lme4's path as closely as the per-row RSS lets it
        small_term = big and len(S) == 1 and cp.q_tail == 0 and S[0].k <= 2
    diagonal: list[DiagonalBlock]
    rows: list[RowsBlock]
    below: dict[tuple[int, int], OffDiagonalBlock] = {}
    if small_term:
        diagonal, rows = [SmallTermDiagonal()], [SmallTermRows()]
    else:
        diagonal, rows = [UniformDiagonal(j) for j in range(nbd)], [TermRows(j) for j in range(nbd)]
        for j in range(nbd):
            for i in range(j + 1, nbd):
                below[i, j] = NestedBlock(i, j)
    if cp.q_tail:
        if tail_gram is None:  # where it pays: its products number at most a few times the dense block
            tail_gram = big and TailGram.pairs(cp.A_tail[0], S[0].k) <= 3 * cp.q_tail**2
        diagonal.append(GramTail() if tail_gram else DenseTail())
        for j in range(nbd):
            below[nbd, j] = TailTermBlock(j)
        rows.append(TailRows())
    return Layout(diagonal, below, rows, FixedDiagonal())


class BlockedFactor:
    """L(theta) over the blocks of A; `update` refactors."""

    def __init__(
        self,
        cp: CrossProducts,
        *,
        small_term: bool | None = None,
        tail_gram: bool | None = None,
        like: BlockedFactor | None = None,
    ) -> None:
        """`like`: a factor of the same terms whose laid-out kernels (the crossed tail's product
        layout) serve this one too, with or without X's columns and whatever the row weights."""
        self.cp = cp
        self.n, self.p = cp.n, cp.p
        self.structures = cp.structures
        self.ok = False
        lay = layout(cp, small_term, tail_gram)
        self.diagonal, self.below, self.rows, self.fixed = lay.diagonal, lay.below, lay.rows, lay.fixed
        if like is not None:
            for new, old in zip(self.diagonal, like.diagonal, strict=False):
                if isinstance(new, GramTail) and isinstance(old, GramTail):
                    new.gram = old.gram  # re-valued on its layout when bound (TailGram.reweighted)
        self.nz = len(self.diagonal)  # block columns of the random effects
        # the factorization's sweep, column by column: the diagonal block with the blocks left of it
        # in its row, then each block below it with the pairs (L_im, L_jm) it is downdated by
        L, R = self.below, self.rows
        self._sweep: list[tuple[FactoredBlock, list[Block], list[tuple[DividedBlock, list[tuple[Block, Block]]]]]] = []
        for j, D in enumerate(self.diagonal):
            under: list[tuple[DividedBlock, list[tuple[Block, Block]]]] = [
                (L[i, j], [(L[i, m], L[j, m]) for m in range(j)]) for i in range(j + 1, self.nz)
            ]
            under.append((R[j], [(R[m], L[j, m]) for m in range(j)]))
            self._sweep.append((D, [L[j, m] for m in range(j)], under))
        self._sweep.append((self.fixed, list(R), []))
        self._bind()

    def _bind(self) -> None:
        blocks: list[Block] = [*self.diagonal, *self.below.values(), *self.rows, self.fixed]
        for block in blocks:
            block.bind(self.cp)

    def reweight(self, cp: CrossProducts) -> None:
        """Take products re-formed with new row weights and response (CrossProducts.reweighted,
        MixedModels.jl's reweight!): the same block types read their new blocks of A.  `update`
        then refactors (a GLM's PIRLS iteration, at the same theta)."""
        if (cp.n, cp.p, cp.nbd, cp.q_tail) != (self.n, self.p, self.cp.nbd, self.cp.q_tail):
            raise ValueError("re-formed products must keep the terms and their layout")
        self.cp = cp
        self.structures = cp.structures
        self.ok = False
        self._bind()

    # ------------------------------------------------------------------ factor
    def update(self, theta: np.ndarray) -> bool:
        """Factor L(theta).  False when a block is not positive definite."""
        self.theta = np.array(theta, dtype=float)
        self.T = self.cp.templates(self.theta)
        self._tail_lambda: TailLambda | None = None
        try:
            self._factor()
        except np.linalg.LinAlgError:
            self.ok = False
            return False
        self.ok = bool(np.isfinite(self.L_FF).all())
        return self.ok

    def snapshot(self) -> tuple[dict, list[tuple[object, dict]]]:
        """The factored state as it is, to `restore` without factoring again: an update replaces
        the blocks' arrays by new ones (it writes into none that an earlier update made), so their
        attributes as they are now keep this state."""
        blocks = [*self.diagonal, *self.below.values(), *self.rows, self.fixed]
        return dict(self.__dict__), [(b, dict(b.__dict__)) for b in blocks]

    def restore(self, state: tuple[dict, list[tuple[object, dict]]]) -> None:
        """Back to a `snapshot`'s factored state."""
        own, blocks = state
        self.__dict__.clear()
        self.__dict__.update(own)
        for block, attributes in blocks:
            block.__dict__.clear()
            block.__dict__.update(attributes)

    @property
    def tail_lambda(self) -> TailLambda:
        """Lambda over the tail's terms at the current theta (formed on first use)."""
        if self._tail_lambda is None:
            nbd = self.cp.nbd
            self._tail_lambda = TailLambda(self.T[nbd:], [s.ell for s in self.structures[nbd:]])
        return self._tail_lambda

    def _factor(self) -> None:
        """Column by column: the diagonal block, downdated by the earlier columns' blocks in its
        row and factored; then each block below it, downdated and divided by it."""
        for D, left, under in self._sweep:
            D.start(self)
            for Ljm in left:
                D.downdate(Ljm, Ljm)
            D.factor()
            for B, pairs in under:
                B.start(self)
                for Lim, Ljm in pairs:
                    B.downdate(Lim, Ljm)
                B.rdiv(D)
        self.L_FF = self.fixed.L

    # ------------------------------------------------------------------ pieces

    @property
    def pwrss(self) -> float:
        """The penalized RSS as the factor holds it: L_FF's last diagonal element, squared."""
        return float(self.L_FF[self.p, self.p] ** 2)

    @property
    def ldL2(self) -> float:
        """log det(L_ZZ L_ZZ')."""
        v = 0.0
        for D in self.diagonal:
            v += D.ldL2()
        return v

    @property
    def RXt(self) -> np.ndarray:
        """R_X' (lower triangular, p x p): R_X'R_X = X'V^{-1}X / sigma^2 in lme4's scaling."""
        return self.L_FF[: self.p, : self.p]

    @property
    def ldRX2(self) -> float:
        return 2.0 * float(np.log(np.diag(self.RXt)).sum())

    def beta(self) -> np.ndarray:
        return np.linalg.solve(self.RXt.T, self.L_FF[self.p, : self.p])

    # the blocks by kind, for the selected inverse (selinv.py), the Kenward-Roger sums and tests:
    # the leading terms' diagonal blocks, their inverses, L_FZ stacks and nested blocks, the tail's
    # rows against each leading term, its diagonal block and [X y]'s rows against it
    @property
    def Ldiag(self) -> list[np.ndarray]:
        return [cast("TermDiagonal", D).L for D in self.diagonal[: self.cp.nbd]]

    @property
    def Linv(self) -> list[np.ndarray]:
        return [cast("TermDiagonal", D).Linv for D in self.diagonal[: self.cp.nbd]]

    @property
    def LF(self) -> list[np.ndarray]:
        return [cast("TermRowsBlock", R).stack for R in self.rows[: self.cp.nbd]]

    @property
    def Lnest(self) -> dict[tuple[int, int], Nested]:
        return {ij: B.value for ij, B in self.below.items() if isinstance(B, NestedBlock)}

    @property
    def Lt(self) -> list[object]:
        nbd = self.cp.nbd
        return [cast(TailTermBlock, self.below[nbd, j]).csr for j in range(nbd)] if self.cp.q_tail else []

    @property
    def Ltt(self) -> np.ndarray:
        return np.tril(cast(DenseTail, self.diagonal[self.cp.nbd]).L)  # (the factor keeps one triangle)

    @property
    def LFt(self) -> np.ndarray:
        return cast(TailRows, self.rows[self.cp.nbd]).value

    # ------------------------------------------------------------------ solves
    def LF_rows(self, rows: slice | int) -> list[np.ndarray]:
        """Rows of the [X y] block of L as right-hand sides per term: (ell, k, m) arrays."""
        sel = slice(rows, rows + 1) if isinstance(rows, int) else rows
        out: list[np.ndarray] = []
        for R in self.rows:
            out.extend(R.rows(sel))
        return out

    def solve_lower(self, rhs: list[np.ndarray]) -> list[np.ndarray]:
        """Solve L_ZZ U = C by block forward substitution (leading terms first, the tail last); C and
        U per term as (ell, k, m) arrays."""
        U: list[np.ndarray] = []
        for j, D in enumerate(self.diagonal):
            r = D.gather(rhs)
            for m in range(j):
                r = r - self.below[j, m].times(U[m])
            U.append(D.solve(r))
        return self._per_term(U)

    def solve_modes(self, rhs: list[np.ndarray]) -> list[np.ndarray]:
        """Solve L_ZZ' U = C by block back-substitution (tail first); C and U per term as
        (ell, k, m) arrays, U returned flattened to (q, m)."""
        m = rhs[0].shape[-1]
        U: list[np.ndarray] = [np.empty(0)] * self.nz
        for j in range(self.nz - 1, -1, -1):
            D = self.diagonal[j]
            r = D.gather(rhs)
            for i in range(j + 1, self.nz):
                r = r - self.below[i, j].t_times(U[i])
            U[j] = D.solve_t(r)
        return [u.reshape(s.q, m) for u, s in zip(self._per_term(U), self.structures, strict=True)]

    def _per_term(self, U: list[np.ndarray]) -> list[np.ndarray]:
        """Solutions by block column -> per term, (ell, k, m) arrays."""
        return [u for D, Uj in zip(self.diagonal, U, strict=True) for u in D.scatter(Uj)]

    def spherical_modes(self) -> list[np.ndarray]:
        """u: solve L_ZZ' u = c_u - L_XZ' beta."""
        p = self.p
        beta = self.beta()
        rhs = [c[:, :, p:] - c[:, :, :p] @ beta[:, None] for c in self.LF_rows(slice(0, p + 1))]
        return [ui[:, 0] for ui in self.solve_modes(rhs)]

    def conditional_modes(self, u: list[np.ndarray]) -> list[np.ndarray]:
        """b_i = Lambda_i u_i, as (ell, k) arrays."""
        return [ui.reshape(s.ell, s.k) @ T.T for s, T, ui in zip(self.structures, self.T, u, strict=True)]

    def Zb(self, b: list[np.ndarray]) -> np.ndarray:
        return self.cp.Zb(b)

    def unscaled_vcov(self) -> np.ndarray:
        """(R_X'R_X)^{-1}: vcov(beta) / sigma^2."""
        Rinv = np.linalg.inv(self.RXt)
        return Rinv.T @ Rinv

    def unscaled_condvar(self) -> list[np.ndarray]:
        """Per term, (ell, k, k) diagonal blocks of Lambda (L L')^{-1} Lambda' (lme4's condVar / sigma^2)."""
        from mlmcli.engine.selinv import inverse_diagonal_blocks

        blocks = inverse_diagonal_blocks(self)
        return [T @ B @ T.T for T, B in zip(self.T, blocks, strict=True)]
