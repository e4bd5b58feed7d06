"""The blocks of the blocked Cholesky factor: their common protocol, the block types of the leading
(nested) terms and of the [X y] row, and the small kernels they use.

L is laid out in block columns: one per leading term (terms nested in each other, crossprod.py),
then the dense tail of crossed terms, then [X y]; the block rows are the same.  Which class holds
each block is decided once per model (factor.layout); factor.py then loops over the blocks and
calls only the protocol below (the Protocol classes after this docstring), so a new block type is
one new class with these methods, placed by factor.layout:

every block
    bind(cp)               read its blocks of A (at construction, and again when the products are
                           re-formed with new row weights: BlockedFactor.reweight)
    start(f)               its block of A scaled by Lambda for f's theta (f.T, f.tail_lambda):
                           Lambda_i' A_ij Lambda_j, plus I on the diagonal
    downdate(left, right)  subtract left right', for the blocks L_im and L_jm of an earlier column m
                           (left is right on the diagonal); called for m = 0, 1, ... in turn
diagonal blocks of Z (one per block column)
    factor()               L_jj L_jj' = the downdated block (LinAlgError where not positive definite)
    ldL2()                 log det(L_jj L_jj')
    gather(rhs), scatter(u)  per-term (ell, k, m) right-hand sides to the column's layout and back
    solve(r), solve_t(r)   L_jj^{-1} r and L_jj^{-T} r in that layout
blocks below the diagonal in Z's rows
    rdiv(diag)             B L_jj^{-T} (diag: the column's factored diagonal block): L_ij
    times(u), t_times(u)   L_ij u_j (forward substitution) and L_ij' u_i (back-substitution)
blocks in the row of [X y]
    rdiv(diag)             as above: L_Fj
    gram()                 L_Fj L_Fj', what the random effects take from [X y]'[X y]
    columns()              L_Fj as a (p+1) x q_j array (for the exactly rounded Schur complement)
    rows(sel)              rows `sel` of L_Fj as right-hand sides per term, (ell, k, m) arrays
against a leading term, also (for the selected inverse and Kenward-Roger's sums)
    L, Linv                the diagonal block and its inverse as (ell, k, k) stacks
    stack                  the [X y] row's block as an (ell, p+1, k) stack

The block types here: `UniformDiagonal` (a leading term's diagonal block, one k x k block per
level), `NestedBlock` (two leading terms, each column level in one row level: no fill-in),
`TermRows` ([X y] against a leading term) and `FixedDiagonal` (L_FF, [X y]'s own block, whose last
diagonal element is sqrt(penalized RSS)).  tail.py holds the crossed terms' (`DenseTail`,
`GramTail`, `TailTermBlock`, `TailRows`), small_term.py the closed-form kernel's
(`SmallTermDiagonal`, `SmallTermRows`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from mlmcli.engine.crossprod import CrossProducts
    from mlmcli.engine.factor import BlockedFactor

# When a diagonal element of [X y]'[X y] exceeds its Schur complement by this factor, half the
# digits are gone in the subtraction: recompute it with exact sums.
CANCELLATION = 1e6


class Block(Protocol):
    """What the factorization asks of every block (see the module docstring).  The operands of
    `downdate` and the diagonal block of `rdiv` are of the types left of and above the block in
    the layout: each class names them."""

    def bind(self, cp: CrossProducts) -> None: ...

    def start(self, f: BlockedFactor) -> None: ...

    def downdate(self, left: Any, right: Any) -> None: ...


class FactoredBlock(Block, Protocol):
    """A diagonal block: of the random effects, or of [X y] (`FixedDiagonal`)."""

    def factor(self) -> None: ...


class DiagonalBlock(FactoredBlock, Protocol):
    """A diagonal block of L_ZZ: one block column of the random effects."""

    def ldL2(self) -> float: ...

    def gather(self, rhs: list[np.ndarray]) -> np.ndarray: ...

    def scatter(self, u: np.ndarray) -> list[np.ndarray]: ...

    def solve(self, r: np.ndarray) -> np.ndarray: ...

    def solve_t(self, r: np.ndarray) -> np.ndarray: ...


class TermDiagonal(DiagonalBlock, Protocol):
    """A leading term's diagonal block, which also offers L_jj and its inverse as (ell, k, k)
    stacks: the selected inverse (selinv.py) and Kenward-Roger's sums read them."""

    @property
    def L(self) -> np.ndarray: ...

    @property
    def Linv(self) -> np.ndarray: ...


class DividedBlock(Block, Protocol):
    """A block below the diagonal: divided by its column's factored diagonal block."""

    def rdiv(self, diag: Any) -> None: ...


class OffDiagonalBlock(DividedBlock, Protocol):
    """A block of L_ZZ below the diagonal."""

    def times(self, u: np.ndarray) -> np.ndarray: ...

    def t_times(self, u: np.ndarray) -> np.ndarray: ...


class RowsBlock(DividedBlock, Protocol):
    """A block of the [X y] row, L_Fj."""

    def gram(self) -> np.ndarray: ...

    def columns(self) -> np.ndarray: ...

    def rows(self, sel: slice) -> list[np.ndarray]: ...


class TermRowsBlock(RowsBlock, Protocol):
    """[X y]'s rows against a leading term, which also offer them as an (ell, p+1, k) stack."""

    @property
    def stack(self) -> np.ndarray: ...


# ---------------------------------------------------------------------------------------- kernels
def batched_cholesky(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower Cholesky factors of an (ell, k, k) stack and their inverses; closed form for k <= 2,
    where LAPACK's per-matrix call overhead would dominate."""
    k = M.shape[1]
    if k == 1:
        if not np.all(M > 0):
            raise np.linalg.LinAlgError("not positive definite")
        L = np.sqrt(M)
        return L, 1.0 / L
    if k == 2:
        a, b, c = M[:, 0, 0], M[:, 1, 0], M[:, 1, 1]
        if not np.all(a > 0):
            raise np.linalg.LinAlgError("not positive definite")
        l11 = np.sqrt(a)
        l21 = b / l11
        d = c - l21 * l21
        if not np.all(d > 0):
            raise np.linalg.LinAlgError("not positive definite")
        l22 = np.sqrt(d)
        L = np.zeros_like(M)
        L[:, 0, 0], L[:, 1, 0], L[:, 1, 1] = l11, l21, l22
        Linv = np.zeros_like(M)
        Linv[:, 0, 0], Linv[:, 1, 1] = 1.0 / l11, 1.0 / l22
        Linv[:, 1, 0] = -(l21 * Linv[:, 0, 0]) / l22  # forward substitution order
        return L, Linv
    L = np.linalg.cholesky(M)
    return L, np.linalg.inv(L)


def segment_sum(values: np.ndarray, index: np.ndarray, size: int) -> np.ndarray:
    """out[g] = sum of values[r] over r with index[r] == g (values: (N, ...) -> (size, ...))."""
    flat = values.reshape(values.shape[0], -1)
    out = np.empty((size, flat.shape[1]))
    for c in range(flat.shape[1]):
        out[:, c] = np.bincount(index, weights=flat[:, c], minlength=size)
    return out.reshape((size,) + values.shape[1:])


def bmm(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A @ B over stacks of small blocks (either may be one 2-d block).  numpy's stacked matmul
    loops matrix by matrix; these forms keep the work in whole-array operations: a broadcast
    product for k = 1, one gemm against a single block, and for two stacks a sum over the inner
    index on arrays laid out level-last (contiguous)."""
    k = A.shape[-1]
    if k == 1:
        return A * B.reshape(B.shape[:-2] + (1, B.shape[-1]))
    if B.ndim == 2:
        return (A.reshape(-1, k) @ B).reshape(A.shape[:-1] + (B.shape[1],))
    if A.ndim == 2:
        return t(bmm(t(B), A.T))
    if k > 4 or A.ndim != 3 or B.ndim != 3:
        return A @ B
    At, Bt = A.transpose(1, 2, 0).copy(), B.transpose(1, 2, 0).copy()
    m, n = At.shape[0], Bt.shape[1]
    out = np.empty((m, n, At.shape[2]))
    for a in range(m):
        for c in range(n):
            acc = At[a, 0] * Bt[0, c]
            for b in range(1, k):
                acc += At[a, b] * Bt[b, c]
            out[a, c] = acc
    return out.transpose(2, 0, 1)


def stack_times(A: np.ndarray, B: np.ndarray, transpose: bool = False) -> np.ndarray:
    """A_l B_l (A_l' B_l with `transpose`) for every block of two (ell, ., .) stacks: bmm's
    whole-array loops where the inner dimension is at most 4 (numpy's einsum loops block by block:
    6 to 11 times slower on 100,000 2 x 2 blocks with 3 right-hand columns, the same numbers), einsum
    above it (no BLAS kernel rounds it, as a stacked matmul's might)."""
    At = t(A) if transpose else A
    if At.shape[-1] <= 4:
        return bmm(At, B)
    return np.einsum("lab,lam->lbm" if transpose else "lab,lbm->lam", A, B)


def congruence(T_row: np.ndarray, V: np.ndarray, T_col: np.ndarray) -> np.ndarray:
    """T_row' V_l T_col for every block of a stack, as one gemm against kron(T_row, T_col)."""
    ell, kr, kc = V.shape
    K = np.einsum("ba,cd->bcad", T_row, T_col).reshape(kr * kc, kr * kc)
    return (V.reshape(ell, kr * kc) @ K).reshape(ell, kr, kc)


def t(M: np.ndarray) -> np.ndarray:
    """Transpose of every block of a stack."""
    return np.swapaxes(M, -1, -2)


def csr_with_values(S, data: np.ndarray):
    """A CSR matrix with S's pattern (shared, not copied) and the values `data` in S's order: S's
    arrays and flags taken as they are, without the constructor's checks of a pattern already
    checked (a PIRLS iteration re-forms several small ones, and the checks cost more than the
    products)."""
    out = copy.copy(S)
    out.data = data
    return out


def block_diag_csr(blocks: np.ndarray):
    """A block-diagonal scipy CSR matrix from an (ell, k, k) array."""
    import scipy.sparse as sp

    ell, k, _ = blocks.shape
    return sp.bsr_matrix((blocks, np.arange(ell), np.arange(ell + 1)), shape=(ell * k, ell * k)).tocsr()


@dataclass
class Nested:
    """A block whose column levels each meet one row level: values[l] sits at (parent[l], l)."""

    parent: np.ndarray  # (ell_col,) row level of each column level
    values: np.ndarray  # (ell_col, k_row, k_col)
    ell_row: int

    def scaled(self, T_row: np.ndarray, T_col: np.ndarray) -> Nested:
        """Lambda_row' B Lambda_col."""
        return Nested(self.parent, congruence(T_row, self.values, T_col), self.ell_row)

    def gram(self) -> np.ndarray:
        """B B' as the uniform block-diagonal (ell_row, k_row, k_row) it is."""
        return segment_sum(bmm(self.values, t(self.values)), self.parent, self.ell_row)

    def times_t(self, other: Nested, parent_to: np.ndarray, ell_to: int) -> np.ndarray:
        """B C' for two nested blocks with the same column term, as the values of a nested block
        whose column term is C's row term (`parent_to` maps our columns to C's rows)."""
        return segment_sum(bmm(self.values, t(other.values)), parent_to, ell_to)

    def t_times(self, u_row: np.ndarray) -> np.ndarray:
        """B' U for U as (ell_row, k_row, m): an (ell_col, k_col, m) array."""
        return stack_times(self.values, u_row[self.parent], transpose=True)

    def to_csr(self):
        import scipy.sparse as sp

        ell, kr, kc = self.values.shape
        rows, _ = np.broadcast_arrays(self.parent[:, None, None] * kr + np.arange(kr)[None, :, None], self.values)
        cols, _ = np.broadcast_arrays(np.arange(ell)[:, None, None] * kc + np.arange(kc)[None, None, :], self.values)
        return sp.csr_matrix((self.values.ravel(), (rows.ravel(), cols.ravel())), shape=(self.ell_row * kr, ell * kc))


def csr_block_dots(D: np.ndarray, S, k_d: int, k_s: int, ell: int, d_parent: np.ndarray | None = None) -> np.ndarray:
    """For a dense D (r, ell_d * k_d) and a sparse S (r, ell * k_s) with the same rows: the
    (ell, k_d, k_s) blocks sum_r D[r, block of l]' S[r, block of l], where D's column block of
    level l is d_parent[l] (default l).  The block diagonal of D'S without forming it."""
    coo = S.tocoo()
    lev, b = np.divmod(coo.col, k_s)
    dl = lev if d_parent is None else d_parent[lev]
    out = np.empty((ell, k_d, k_s))
    for a in range(k_d):
        w = D[coo.row, dl * k_d + a] * coo.data
        for bb in range(k_s):
            sel = b == bb
            out[:, a, bb] = np.bincount(lev[sel], weights=w[sel], minlength=ell)
    return out


# ------------------------------------------------------------------------------ the leading terms
class UniformDiagonal:
    """L_jj of leading term j: one k x k lower-triangular block per level, (ell, k, k), and its
    inverses (closed form for k <= 2, batched_cholesky)."""

    def __init__(self, j: int) -> None:
        self.j = j

    def bind(self, cp: CrossProducts) -> None:
        self.A = cp.A_diag[self.j]
        s = cp.structures[self.j]
        self.ell, self.k = s.ell, s.k

    def start(self, f: BlockedFactor) -> None:
        T = f.T[self.j]
        D = congruence(T, self.A, T)
        self.D = D + np.eye(T.shape[0])

    def downdate(self, left: NestedBlock, right: NestedBlock) -> None:
        self.D -= left.value.gram()

    def factor(self) -> None:
        self.L, self.Linv = batched_cholesky(self.D)
        self.LinvT = t(self.Linv)
        del self.D

    def ldL2(self) -> float:
        return 2.0 * float(np.log(np.diagonal(self.L, axis1=1, axis2=2)).sum())

    def gather(self, rhs: list[np.ndarray]) -> np.ndarray:
        return rhs[self.j]

    def scatter(self, u: np.ndarray) -> list[np.ndarray]:
        return [u]

    def solve(self, r: np.ndarray) -> np.ndarray:
        return stack_times(self.Linv, r)

    def solve_t(self, r: np.ndarray) -> np.ndarray:
        return stack_times(self.Linv, r, transpose=True)


class NestedBlock:
    """L_ij of two leading terms i > j: a nested block (`Nested`), the levels of j in those of i."""

    def __init__(self, i: int, j: int) -> None:
        self.i, self.j = i, j

    def bind(self, cp: CrossProducts) -> None:
        self.A = cp.A_nested[self.i, self.j]
        self.parent, self.ell_row = cp.parents[self.j, self.i], cp.structures[self.i].ell

    def start(self, f: BlockedFactor) -> None:
        self.V = self.A.scaled(f.T[self.i], f.T[self.j]).values

    def downdate(self, left: NestedBlock, right: NestedBlock) -> None:
        self.V = self.V - left.value.times_t(right.value, right.value.parent, right.value.ell_row)

    def rdiv(self, diag: UniformDiagonal) -> None:
        self.value = Nested(self.parent, bmm(self.V, diag.LinvT), self.ell_row)
        del self.V

    def times(self, u: np.ndarray) -> np.ndarray:
        v = self.value
        return segment_sum(bmm(v.values, u), v.parent, self.ell_row)

    def t_times(self, u: np.ndarray) -> np.ndarray:
        return self.value.t_times(u)


class TermRows:
    """L_Fj, [X y] against leading term j: (ell, p+1, k)."""

    def __init__(self, j: int) -> None:
        self.j = j

    def bind(self, cp: CrossProducts) -> None:
        self.A = cp.A_F[self.j]

    def start(self, f: BlockedFactor) -> None:
        self.R = bmm(self.A, f.T[self.j])

    def downdate(self, left: TermRows, right: NestedBlock) -> None:
        v = right.value
        self.R = self.R - segment_sum(bmm(left.stack, t(v.values)), v.parent, v.ell_row)

    def rdiv(self, diag: UniformDiagonal) -> None:
        self.stack = bmm(self.R, diag.LinvT)
        del self.R
        self._flat: np.ndarray | None = None

    def flat(self) -> np.ndarray:
        """(ell, p+1, k) -> (p+1, ell*k), formed once per factorization."""
        if self._flat is None:
            F = self.stack
            self._flat = F.transpose(1, 0, 2).reshape(F.shape[1], -1)
        return self._flat

    def gram(self) -> np.ndarray:
        F = self.flat()
        return F @ F.T

    def columns(self) -> np.ndarray:
        return self.flat()

    def rows(self, sel: slice) -> list[np.ndarray]:
        return [self.stack[:, sel, :].transpose(0, 2, 1)]


class FixedDiagonal:
    """L_FF: the Cholesky factor of the Schur complement of [X y]'[X y]; its leading p x p block is
    R_X', its last diagonal element sqrt(penalized RSS)."""

    def bind(self, cp: CrossProducts) -> None:
        self.A = cp.A_FF

    def start(self, f: BlockedFactor) -> None:
        self.M = self.A.copy()
        self.parts: list[RowsBlock] = []

    def downdate(self, left: RowsBlock, right: RowsBlock) -> None:
        self.M -= left.gram()
        self.parts.append(left)

    def factor(self) -> None:
        M = self.M
        if np.any(np.diag(self.A) > CANCELLATION * np.abs(np.diag(M))):
            M = schur_exact(self.A, [b.columns() for b in self.parts])
        self.L = np.linalg.cholesky(M)
        del self.M


def schur_exact(A: np.ndarray, LF: list[np.ndarray]) -> np.ndarray:
    """A - sum LF LF' with exactly rounded sums, for when the subtraction cancels most digits
    (predictors on a large scale whose variation the random effects absorb)."""
    import math

    F = np.hstack(LF)
    m = A.shape[0]
    out = np.empty((m, m))
    for i in range(m):
        for j in range(i + 1):
            out[i, j] = out[j, i] = math.fsum(np.concatenate(([A[i, j]], -(F[i] * F[j]))).tolist())
    return out
