"""A = [Z_1 ... Z_k X y]'[Z_1 ... Z_k X y] in blocks, formed in one vectorized pass over the rows.

Every evaluation of the criterion works on these blocks alone (sizes O(levels)); the rows are
read again only to sum the penalized residual exactly on small data (see response.py).

Row weights w scale every row of [Z X y] by sqrt(w_i) before anything is formed, so that A, the
factor and the penalized RSS are the weighted ones and the rest of the engine is unchanged; fitted
values are unscaled again (`unweighted`).  For a linear mixed model they are lme4's prior weights
(`weights =`: residual variance sigma^2 / w_i); a GLM's PIRLS re-forms the blocks with its working
weights and response at every iteration (`reweighted`), the structure kept.

The terms come in lme4's order (decreasing number of levels).  A leading run of terms that each
nest in all later terms of the run is *block diagonal* (no fill-in); from the first term that is
crossed with an earlier one on, the remaining terms form one dense *tail* (crossed fill-in).
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from mlmcli.engine.blocks import Nested, bmm, csr_with_values, segment_sum
from mlmcli.engine.terms import TermStructure, nesting_parent, term_structure
from mlmcli.errors import FitError

if TYPE_CHECKING:
    from mlmcli.design import ReTerm


# rows per piece of a pass over the rows in pieces: the products of two columns are formed a piece
# at a time, in buffers that malloc hands out again, never as arrays as long as the data
PIECE = 1 << 16


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two columns are the same memory (a term's columns that are views of X's)."""
    if a is b:
        return True
    ia, ib = a.__array_interface__, b.__array_interface__
    return ia["data"][0] == ib["data"][0] and a.strides == b.strides and a.shape == b.shape


def _level_sums(codes: np.ndarray, ell: int, pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """Per level of `codes`, the sum of a * b over its rows for each pair of columns (a, b): one pass
    over the rows in pieces.  np.add.at adds in the order of the rows as np.bincount does, so the
    sums are bincount's to the last bit; a pair repeated (the same memory either way round, as the
    intercept of X and of a term sharing X's columns) is summed once."""
    keys: list[int] = []
    distinct: list[tuple[np.ndarray, np.ndarray]] = []
    for a, b in pairs:
        for i, (c, d) in enumerate(distinct):
            if (_same(a, c) and _same(b, d)) or (_same(a, d) and _same(b, c)):
                keys.append(i)
                break
        else:
            keys.append(len(distinct))
            distinct.append((a, b))
    sums = [np.zeros(ell) for _ in distinct]
    for s in range(0, len(codes), PIECE):
        at = codes[s : s + PIECE]
        for out, (a, b) in zip(sums, distinct, strict=True):
            np.add.at(out, at, a[s : s + PIECE] * b[s : s + PIECE])
    return [sums[k] for k in keys]


def _level_crossprod(codes: np.ndarray, ell: int, Xa: np.ndarray | list[np.ndarray], Xb: np.ndarray) -> np.ndarray:
    """(ell, ka, kb): per level of `codes`, Xa' Xb over its rows (Xa may be a list of columns)."""
    cols = Xa if isinstance(Xa, list) else [Xa[:, a] for a in range(Xa.shape[1])]
    symmetric = Xa is Xb  # Z_j' Z_j: each product below the diagonal once, mirrored
    at = [(a, b) for a in range(len(cols)) for b in range(a + 1 if symmetric else Xb.shape[1])]
    sums = _level_sums(codes, ell, [(cols[a], Xb[:, b]) for a, b in at])
    out = np.empty((ell, len(cols), Xb.shape[1]))
    for (a, b), v in zip(at, sums, strict=True):
        out[:, a, b] = v
        if symmetric:
            out[:, b, a] = v
    return out


def _term_crossprods(s: TermStructure, XY: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Z_j'Z_j per level (ell, k, k) and [X y]'Z_j per level (ell, p+1, k) in one pass over the rows:
    a product both need (Z_j's intercept and X's, a slope that is a column of X) is summed once."""
    Z = [s.X[:, a] for a in range(s.k)]
    diag = [(a, b) for a in range(s.k) for b in range(a + 1)]
    cross = [(a, b) for a in range(len(XY)) for b in range(s.k)]
    sums = _level_sums(s.codes, s.ell, [(Z[a], Z[b]) for a, b in diag] + [(XY[a], Z[b]) for a, b in cross])
    A_diag = np.empty((s.ell, s.k, s.k))
    for (a, b), v in zip(diag, sums, strict=False):
        A_diag[:, a, b] = A_diag[:, b, a] = v
    A_F = np.empty((s.ell, len(XY), s.k))
    for (a, b), v in zip(cross, sums[len(diag) :], strict=True):
        A_F[:, a, b] = v
    return A_diag, A_F


def _column_keys(columns: list[np.ndarray]) -> list[int]:
    """A number per column, the same for columns with the same values (an intercept in X and in
    each term, a predictor in X and in a random slope)."""
    keys: list[int] = []
    distinct: list[np.ndarray] = []
    for c in columns:
        for i, d in enumerate(distinct):
            if d is c or (d.shape == c.shape and np.array_equal(d, c)):
                keys.append(i)
                break
        else:
            keys.append(len(distinct))
            distinct.append(c)
    return keys


class LevelSums:
    """The leading terms' per-level sums of products of two weighted columns, each summed over the
    rows once however many blocks hold it (a term's own block and its rows of [X y] share the
    intercept's), and a term's sums taken from a term nested in it where that one has them
    already: per level of the finer term, then per level of the coarser, without a pass over the
    rows.  The sums may round differently from one bincount per block in the last bits."""

    Y = -1  # the (working) response's key

    def __init__(self, S: list[TermStructure], parents: dict[tuple[int, int], np.ndarray]) -> None:
        self.S, self.parents = S, parents
        self.sums: dict[tuple[int, int, int], np.ndarray] = {}

    def block(
        self, t: int, cols_a: list[np.ndarray], keys_a: list[int], cols_b: list[np.ndarray], keys_b: list[int]
    ) -> np.ndarray:
        """(ell, ka, kb): per level of term t, cols_a' cols_b over its rows."""
        out = np.empty((self.S[t].ell, len(cols_a), len(cols_b)))
        for a, (ca, ka) in enumerate(zip(cols_a, keys_a, strict=True)):
            for b, (cb, kb) in enumerate(zip(cols_b, keys_b, strict=True)):
                out[:, a, b] = self._sum(t, min(ka, kb), max(ka, kb), ca, cb)
        return out

    def _sum(self, t: int, k1: int, k2: int, ca: np.ndarray, cb: np.ndarray) -> np.ndarray:
        got = self.sums.get((t, k1, k2))
        if got is not None:
            return got
        s = self.S[t]
        for m in range(t):
            finer = self.sums.get((m, k1, k2))
            if finer is not None and (m, t) in self.parents:
                got = np.bincount(self.parents[m, t], weights=finer, minlength=s.ell)
                break
        else:
            got = np.bincount(s.codes, weights=ca * cb, minlength=s.ell)
        self.sums[t, k1, k2] = got
        return got


def _z_crossprod(si: TermStructure, sj: TermStructure, row_offset: int, nrows: int):
    """Z_i' Z_j as a scipy COO matrix placed at row_offset in a matrix of nrows rows."""
    import scipy.sparse as sp

    rows, cols, vals = [], [], []
    for a in range(si.k):
        for b in range(sj.k):
            rows.append(row_offset + si.codes * si.k + a)
            cols.append(sj.codes * sj.k + b)
            vals.append(si.X[:, a] * sj.X[:, b])
    return sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(nrows, sj.q))


class TailLayout:
    """Where each row's products land in the tail's blocks, found once from a first forming: then
    a re-forming with other row weights (a GLM's PIRLS iteration) sums them with one bincount per
    block instead of building sparse matrices anew.  The sums may round differently from the first
    forming's in the last bits."""

    def __init__(self, cp: CrossProducts) -> None:
        S, nbd, offs, q = cp.structures, cp.nbd, cp.tail_offsets, cp.q_tail
        tail = S[nbd:]
        self.leading: list[tuple[np.ndarray, Any]] = []  # per leading term: data positions, CSR
        for j in range(nbd):
            M: Any = cp.A_tail[j]
            M.sort_indices()
            counts = np.diff(M.indptr)
            keys = np.repeat(np.arange(M.shape[0]), counts) * M.shape[1] + M.indices
            rows, cols = self._coordinates(tail, offs, S[j])
            self.leading.append((np.asarray(np.searchsorted(keys, rows * M.shape[1] + cols)), M))
        # Z_t' Z_t: the blocks on and below the diagonal of blocks, as positions in q x q
        self.within: list[tuple[int, int, np.ndarray]] = []
        for i, si in enumerate(tail):
            for j, sj in enumerate(tail[: i + 1]):
                r = [int(offs[i]) + si.codes * si.k + a for a in range(si.k) for _ in range(sj.k)]
                c = [int(offs[j]) + sj.codes * sj.k + b for _ in range(si.k) for b in range(sj.k)]
                self.within.append((i, j, np.concatenate(r) * q + np.concatenate(c)))
        self.q = q
        self.offsets = [int(o) for o in offs]

    @staticmethod
    def _coordinates(tail: list[TermStructure], offs: np.ndarray, sj: TermStructure) -> tuple[np.ndarray, np.ndarray]:
        rows, cols = [], []
        for i, si in enumerate(tail):
            for a in range(si.k):
                for b in range(sj.k):
                    rows.append(int(offs[i]) + si.codes * si.k + a)
                    cols.append(sj.codes * sj.k + b)
        return np.concatenate(rows), np.concatenate(cols)

    def form(self, S: list[TermStructure], nbd: int) -> tuple[list[Any], np.ndarray]:
        """A_tail and A_tt of the weighted rows S."""
        tail = S[nbd:]
        A_tail = []
        for j, (pos, M) in enumerate(self.leading):
            vals = np.concatenate(
                [si.X[:, a] * S[j].X[:, b] for si in tail for a in range(si.k) for b in range(S[j].k)]
            )
            data = np.bincount(pos, weights=vals, minlength=M.nnz)
            A_tail.append(csr_with_values(M, data))
        # the blocks on the diagonal of blocks (both triangles) summed into A_tt directly, those
        # below it apart and mirrored: every entry comes from one block, so no sum is reordered,
        # and a tail of scalar terms alone allocates one q x q array, not five
        A_tt = np.zeros((self.q, self.q))
        lower = None
        for i, j, lin in self.within:
            si, sj = tail[i], tail[j]
            vals = np.concatenate([si.X[:, a] * sj.X[:, b] for a in range(si.k) for b in range(sj.k)])
            if i == j and si.k == 1:  # a scalar term's own block is diagonal: the same sums, per level
                o = self.offsets[i]
                sums = np.bincount(si.codes, weights=vals, minlength=si.ell)
                A_tt[o : o + si.ell, o : o + si.ell][np.diag_indices(si.ell)] += sums
                continue
            block = np.bincount(lin, weights=vals, minlength=self.q * self.q).reshape(self.q, self.q)
            if i == j:
                A_tt += block
            else:
                lower = block if lower is None else lower + block
        if lower is not None:
            A_tt += lower
            A_tt += lower.T
        return A_tail, A_tt


class CrossProducts:
    """The blocks of A for given terms, X and y; immutable once built."""

    def __init__(self, terms: list[ReTerm], X: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> None:
        S = [term_structure(t) for t in terms]
        # parents[m][i]: the level of term i that holds each level of term m (m < i, both leading)
        self.parents: dict[tuple[int, int], np.ndarray] = {}
        self.nbd = self._block_diagonal_run(S)
        # the rows as the data hold them, for re-forming with other row weights (reweighted)
        self._data_rows: tuple[list[TermStructure], np.ndarray] | None = (S, np.asarray(X, dtype=float))
        self._form(*self._data_rows, y, weights)

    def _form(
        self,
        S: list[TermStructure],
        X: np.ndarray,
        y: np.ndarray,
        weights: np.ndarray | None,
        layout: TailLayout | None = None,
        keys: tuple[list[int], list[list[int]]] | None = None,
    ) -> None:
        """The blocks of A from the rows S (the terms) and X, weighted by `weights`, and response
        `y`; the structure (nesting, nbd) is set already, and with `layout` the tail's too; with
        `keys` (the columns' of X and of each term, _column_keys) the leading terms' blocks from
        LevelSums."""
        self.X = X
        self.y = np.asarray(y, dtype=float)
        # row weights: the rows below are sqrt(w) times the data's; log_weights is sum(log w),
        # which the Gaussian criterion subtracts (lme4's ldW: w are its prior weights)
        self.weights = None if weights is None else np.asarray(weights, dtype=float)
        self.log_weights = 0.0
        if self.weights is not None:
            sw = np.sqrt(self.weights)
            self.X = self.X * sw[:, None]
            self.y = self.y * sw
            S = [replace(s, X=s.X * sw[:, None]) for s in S]
            self.log_weights = float(np.log(self.weights).sum())
        self.structures = S
        self.n, self.p = self.X.shape
        # the columns of [X y] as views: no n x (p+1) copy
        XY = [self.X[:, c] for c in range(self.p)] + [self.y]
        with np.errstate(over="ignore", invalid="ignore"):
            Xy = self.X.T @ self.y
            # [X y]'[X y] assembled in place (np.block's checks cost more than the products here)
            p = self.p
            A_FF = np.empty((p + 1, p + 1))
            A_FF[:p, :p] = self.X.T @ self.X
            A_FF[:p, p] = Xy
            A_FF[p, :p] = Xy
            A_FF[p, p] = self.y @ self.y
            self.A_FF = A_FF
        if not np.all(np.isfinite(self.A_FF)):
            raise FitError(
                "the model cannot be fitted: the cross-products of the model matrix are non-finite "
                "(values too large to square); rescale the response or predictors"
            )
        self.theta_sizes = [s.ntheta for s in S]
        self.ntheta = sum(self.theta_sizes)
        nbd = self.nbd
        self.A_nested: dict[tuple[int, int], Nested] = {}
        if keys is not None:  # a re-forming: each distinct product summed once (LevelSums)
            sums = LevelSums(S, self.parents)
            kx, kt = keys
            cols = [[s.X[:, a] for a in range(s.k)] for s in S[:nbd]]
            self.A_diag = [sums.block(t, cols[t], kt[t], cols[t], kt[t]) for t in range(nbd)]
            kxy = kx[: self.p] + [LevelSums.Y]
            self.A_F = [sums.block(t, XY, kxy, cols[t], kt[t]) for t in range(nbd)]
            for i in range(nbd):
                for j in range(i):
                    vals = sums.block(j, cols[i], kt[i], cols[j], kt[j])
                    self.A_nested[i, j] = Nested(self.parents[j, i], vals, S[i].ell)
        else:
            # Z_j'Z_j and [X y]'Z_j per level: (ell, k, k) and (ell, p+1, k)
            pairs = [_term_crossprods(s, XY) for s in S[:nbd]]
            self.A_diag = [d for d, _ in pairs]
            self.A_F = [f for _, f in pairs]
            for i in range(nbd):
                for j in range(i):
                    par = self.parents[j, i]
                    vals = _level_crossprod(S[j].codes, S[j].ell, S[i].X, S[j].X)
                    self.A_nested[i, j] = Nested(par, vals, S[i].ell)
        tail = S[nbd:]
        self.tail_sizes = [s.q for s in tail]
        self.q_tail = sum(self.tail_sizes)
        if tail:
            offs = np.cumsum([0] + self.tail_sizes)
            self.tail_offsets = offs
            self.A_Ft = np.hstack(
                [_level_crossprod(s.codes, s.ell, XY, s.X).transpose(1, 0, 2).reshape(self.p + 1, s.q) for s in tail]
            )
            if layout is not None:
                self.A_tail, self.A_tt = layout.form(S, nbd)
                return
            # Z_t' Z_j for every leading term j (sparse) and Z_t' Z_t (dense, it fills in anyway)
            self.A_tail = []
            for j in range(nbd):
                parts = [_z_crossprod(s, S[j], int(offs[i]), self.q_tail) for i, s in enumerate(tail)]
                M = parts[0].tocsr()
                for part in parts[1:]:
                    M = M + part.tocsr()
                self.A_tail.append(M)
            Att = np.zeros((self.q_tail, self.q_tail))
            for i, si in enumerate(tail):
                for j, sj in enumerate(tail[: i + 1]):
                    B = _z_crossprod(si, sj, 0, si.q).toarray()
                    Att[offs[i] : offs[i + 1], offs[j] : offs[j + 1]] = B
                    Att[offs[j] : offs[j + 1], offs[i] : offs[i + 1]] = B.T
            self.A_tt = Att

    def reweighted(self, weights: np.ndarray, y: np.ndarray) -> CrossProducts:
        """The blocks re-formed for new row weights and a new (working) response, both on the data's
        scale: one pass over the rows, everything structural kept (terms, levels, the nesting of the
        leading run, the tail's layout), so that a factor keeps its block types
        (BlockedFactor.reweight).  MixedModels.jl's reweight!: a GLM's PIRLS step (response.py)."""
        if self._data_rows is None:
            raise FitError("the cross-products were summed elsewhere: re-forming them needs the rows")
        if self.q_tail and getattr(self, "_layout", None) is None:
            self._layout = TailLayout(self)
        if getattr(self, "_keys", None) is None:
            S, X = self._data_rows
            flat = _column_keys([X[:, c] for c in range(X.shape[1])] + [s.X[:, a] for s in S for a in range(s.k)])
            at = np.cumsum([X.shape[1]] + [s.k for s in S])
            self._keys = (flat[: X.shape[1]], [flat[at[i] : at[i + 1]] for i in range(len(S))])
        new = copy.copy(self)
        new._form(*self._data_rows, y, weights, getattr(self, "_layout", None), self._keys)
        return new

    def with_response(self, y: np.ndarray) -> CrossProducts:
        """The same blocks for another response: only the rows and columns of A that involve y are
        recomputed (one pass over the rows per random-effects column), the rest is shared.  y is on
        the scale of these rows (times sqrt(w) where rows carry prior weights), as the bootstrap
        simulates it from them."""
        new = copy.copy(self)
        new.y = y = np.asarray(y, dtype=float)
        p = self.p
        Xy = self.X.T @ y
        A_FF = self.A_FF.copy()
        A_FF[p, :p] = A_FF[:p, p] = Xy
        A_FF[p, p] = y @ y
        if not np.all(np.isfinite(A_FF)):
            raise FitError("the cross-products of the response are non-finite")
        new.A_FF = A_FF
        S = self.structures
        new.A_F = []
        for s, F in zip(S[: self.nbd], self.A_F, strict=True):
            F = F.copy()
            F[:, p, :] = _level_crossprod(s.codes, s.ell, [y], s.X)[:, 0, :]
            new.A_F.append(F)
        if self.q_tail:
            new.A_Ft = self.A_Ft.copy()
            new.A_Ft[p] = np.concatenate(
                [_level_crossprod(s.codes, s.ell, [y], s.X)[:, 0, :].reshape(-1) for s in S[self.nbd :]]
            )
        return new

    # the rows X, y and each term's codes and columns are kept: the criterion sums the penalized
    # residual from them on small data, and the fitted values come from them
    rows_available = True

    @classmethod
    def from_blocks(
        cls,
        structures: list[TermStructure],
        n: int,
        A_FF: np.ndarray,
        A_diag: list[np.ndarray],
        A_F: list[np.ndarray],
        parents: dict[tuple[int, int], np.ndarray],
        nested: dict[tuple[int, int], np.ndarray],
        nbd: int,
        A_tail: list[object],
        A_tt: np.ndarray | None,
        A_Ft: np.ndarray | None,
        log_weights: float = 0.0,
    ) -> CrossProducts:
        """The blocks of A summed elsewhere (over partitions of the rows): no rows are kept.  `nested`
        holds the values of A_nested[i, j] per level of j, `parents` the nesting of the leading run."""
        self = cls.__new__(cls)
        self.rows_available = False
        self._data_rows = None
        self.structures = structures
        self.X = self.y = None
        self.weights, self.log_weights = None, log_weights  # blocks of weighted rows: sum(log w)
        self.n, self.p = n, A_FF.shape[0] - 1
        self.A_FF = A_FF
        if not np.all(np.isfinite(self.A_FF)):
            raise FitError(
                "the model cannot be fitted: the cross-products of the model matrix are non-finite "
                "(values too large to square); rescale the response or predictors"
            )
        self.theta_sizes = [s.ntheta for s in structures]
        self.ntheta = sum(self.theta_sizes)
        self.parents = parents
        self.nbd = nbd
        self.A_diag, self.A_F = A_diag, A_F
        self.A_nested = {(i, j): Nested(parents[j, i], vals, structures[i].ell) for (i, j), vals in nested.items()}
        tail = structures[nbd:]
        self.tail_sizes = [s.q for s in tail]
        self.q_tail = sum(self.tail_sizes)
        if tail:
            self.tail_offsets = np.cumsum([0] + self.tail_sizes)
            self.A_tail, self.A_tt, self.A_Ft = A_tail, A_tt, A_Ft
        return self

    def _block_diagonal_run(self, S: list[TermStructure]) -> int:
        """Length of the leading run of terms each nested in every later term of the run."""
        nbd = 1
        while nbd < len(S):
            found = {}
            for m in range(nbd):
                par = nesting_parent(S[m], S[nbd])
                if par is None:
                    return nbd
                found[m, nbd] = par
            self.parents.update(found)
            nbd += 1
        return nbd

    # ------------------------------------------------------------------ theta
    def split_theta(self, theta: np.ndarray) -> list[np.ndarray]:
        out, pos = [], 0
        for size in self.theta_sizes:
            out.append(np.asarray(theta[pos : pos + size], dtype=float))
            pos += size
        return out

    def lower_bounds(self) -> np.ndarray:
        return np.concatenate([s.lower_bounds() for s in self.structures])

    def templates(self, theta: np.ndarray) -> list[np.ndarray]:
        return [s.template(t) for s, t in zip(self.structures, self.split_theta(theta), strict=True)]

    # ------------------------------------------------------------------ products from A
    def z_xy(self) -> list[np.ndarray]:
        """Z_j'[X y] per term as (ell, k, p+1)."""
        out = [F.transpose(0, 2, 1) for F in self.A_F]
        if self.q_tail:
            for i, s in enumerate(self.structures[self.nbd :]):
                o = self.tail_offsets
                out.append(self.A_Ft[:, o[i] : o[i + 1]].T.reshape(s.ell, s.k, -1))
        return out

    def zz_times(self, B: list[np.ndarray]) -> list[np.ndarray]:
        """Z_j' sum_i Z_i B_i per term, for B_i given as (ell_i, k_i, m): from the blocks of A alone,
        no pass over the rows."""
        nbd, S = self.nbd, self.structures
        m = B[0].shape[-1]
        Bt = np.concatenate([b.reshape(s.q, m) for b, s in zip(B[nbd:], S[nbd:], strict=True)]) if self.q_tail else None
        out = []
        for j in range(nbd):
            acc = bmm(self.A_diag[j], B[j])
            for i in range(nbd):
                if i > j:  # blocks of Z_i'Z_j at (parent, l): transposed, gathered
                    acc = acc + self.A_nested[i, j].t_times(B[i])
                elif i < j:  # blocks of Z_j'Z_i at (parent, l): summed into the parent
                    V = self.A_nested[j, i]
                    acc = acc + segment_sum(bmm(V.values, B[i]), V.parent, S[j].ell)
            if Bt is not None:
                acc = acc + np.asarray(self.A_tail[j].T @ Bt).reshape(acc.shape)
            out.append(acc)
        if Bt is not None:
            diag = self.tail_diagonal()
            Rt = self.A_tt @ Bt if diag is None else diag[:, None] * Bt
            for j in range(nbd):
                Rt = Rt + np.asarray(self.A_tail[j] @ B[j].reshape(S[j].q, m))
            o = self.tail_offsets
            out.extend(Rt[o[i] : o[i + 1]].reshape(s.ell, s.k, m) for i, s in enumerate(S[nbd:]))
        return out

    def tail_diagonal(self) -> np.ndarray | None:
        """A_tt's diagonal where A_tt is diagonal (one scalar crossed term: each row meets one of its
        levels), else None: its products are then the diagonal's, the same numbers for less work."""
        if not hasattr(self, "_tail_diagonal"):
            d = np.diagonal(self.A_tt)
            self._tail_diagonal = d.copy() if np.count_nonzero(self.A_tt) == np.count_nonzero(d) else None
        return self._tail_diagonal

    # ------------------------------------------------------------------ rows
    def unweighted(self, v: np.ndarray) -> np.ndarray:
        """Rows of the weighted system back on the data's scale (v / sqrt(w))."""
        return v if self.weights is None else v / np.sqrt(self.weights)

    def residuals(self, beta: np.ndarray, b: list[np.ndarray]) -> np.ndarray:
        """y - X beta - Z b on the system's rows (weighted rows with weights), in pieces of rows: one
        array as long as the data."""
        r = np.empty(self.n)
        for start in range(0, self.n, PIECE):
            rows = slice(start, start + PIECE)
            piece = r[rows]
            np.subtract(self.y[rows], self.X[rows] @ beta, out=piece)
            for s, bi in zip(self.structures, b, strict=True):
                codes = s.codes[rows]
                for a in range(s.k):
                    piece -= s.X[rows, a] * bi[:, a][codes]
        return r

    def Zb(self, b: list[np.ndarray]) -> np.ndarray:
        """Z b for b as (ell, k) arrays per term: one pass over the rows (weighted rows with weights)."""
        v = np.zeros(self.n)
        # in pieces of rows, each row's terms added in the same order: no temporaries as long as
        # the data
        for start in range(0, self.n, PIECE):
            piece = v[start : start + PIECE]
            for s, bi in zip(self.structures, b, strict=True):
                codes = s.codes[start : start + PIECE]
                for a in range(s.k):
                    piece += s.X[start : start + PIECE, a] * bi[:, a][codes]
        return v
