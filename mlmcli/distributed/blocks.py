"""Pass 2: each partition's design with the global levels, and its share of the blocks of A.

Every block is a sum over rows, so the partitions' blocks add up to the whole data's; the client
turns the sums into the engine's CrossProducts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlmcli.design import check_finite, model_frame, model_matrix, total_offset
from mlmcli.distributed.levels import Levels, PartSpec, frame_of, with_arguments
from mlmcli.engine.crossprod import CrossProducts
from mlmcli.engine.terms import TermStructure
from mlmcli.errors import DataError
from mlmcli.formula import Formula
from mlmcli.io.frame import Factor


@dataclass
class Layout:
    """What a worker needs to build a partition's design exactly as the whole data's."""

    spec: PartSpec
    levels: Levels


@dataclass
class PartDesign:
    X: np.ndarray  # all columns of the fixed-effects model matrix
    y: np.ndarray  # the response minus any offset
    codes: list[np.ndarray]  # per term, in lme4's order
    Z: list[np.ndarray]  # per term, its model matrix
    xnames: list[str]
    cnames: list[list[str]]
    response: np.ndarray | None = None  # the response as the data hold it (y is less any offset)
    weights: np.ndarray | None = None  # --weights


@dataclass
class PartRows:
    """A partition's model frame on its complete rows, coded with the whole data's levels: what the
    LMM's and the GLMM's designs share."""

    values: dict[str, np.ndarray | Factor]  # every formula variable on the rows used
    n: int
    X: np.ndarray
    codes: list[np.ndarray]  # per term, in lme4's order
    Z: list[np.ndarray]
    xnames: list[str]
    cnames: list[list[str]]
    offset: np.ndarray | None  # offset() terms plus --offset
    weights: np.ndarray | None  # --weights


def partition_rows(pdf, layout: Layout) -> PartRows:
    """A partition's rows of the model matrices, coded with the whole data's levels."""
    from mlmcli.formula import parse_formula

    formula = parse_formula(layout.spec.formula)
    lv = layout.levels
    spec = layout.spec
    frame, _ = frame_of(pdf, spec)
    xnames, cnames = names_of(formula, lv)
    if frame.n_rows == 0:
        return PartRows(
            {},
            0,
            np.empty((0, len(xnames))),
            [np.empty(0, dtype=np.int64) for _ in lv.order],
            [np.empty((0, len(c))) for c in cnames],
            xnames,
            cnames,
            None,
            None,
        )
    full, complete = model_frame(frame, formula, lv.scales, spec.family)
    complete = with_arguments(frame, spec, complete)
    rows = np.flatnonzero(complete)
    n = len(rows)
    values: dict[str, np.ndarray | Factor] = {}
    for label, col in full.items():
        if isinstance(col, Factor):
            values[label] = _global_factor(col, rows, lv.factor_levels[label], label)
        else:
            values[label] = col[rows]
    X, _ = model_matrix(formula.fixed, values, n)
    offset = total_offset(formula, values, n)
    if spec.offset is not None:
        offset = (0.0 if offset is None else offset) + np.asarray(frame.columns[spec.offset])[rows]
    if offset is not None and not np.all(np.isfinite(offset)):
        labels = [v.label for v in formula.offsets] + ([spec.offset] if spec.offset else [])
        raise DataError("NA/NaN/Inf in the offset: " + ", ".join(labels))
    weights = None if spec.weights is None else np.asarray(frame.columns[spec.weights])[rows]
    codes, Z = [], []
    for i in lv.order:
        codes.append(_term_codes(formula.random[i].group_vars, values, lv, i))
        Z.append(model_matrix(formula.random[i].lhs, values, n)[0])
    return PartRows(values, n, X, codes, Z, xnames, cnames, offset, weights)


def check_random_finite(d: PartRows, labels: list[str]) -> None:
    """lmer's stop at an infinite value in a random-effects term's columns (NaN rows were dropped)."""
    for Z, names, label in zip(d.Z, d.cnames, labels, strict=True):
        bad = np.flatnonzero(~np.all(np.isfinite(Z), axis=0))
        if bad.size:
            raise DataError(f"NA/NaN/Inf in the random-effects term ({label}): '{names[bad[0]]}' has infinite values")


def partition_design(pdf, layout: Layout) -> PartDesign:
    """A partition's rows of the model matrices, coded with the whole data's levels."""
    from mlmcli.formula import parse_formula

    d = partition_rows(pdf, layout)
    if d.n == 0:
        return PartDesign(d.X, np.empty(0), d.codes, d.Z, d.xnames, d.cnames)
    formula = parse_formula(layout.spec.formula)
    response = formula.response.label
    y = raw = np.asarray(d.values[response], dtype=float)
    if d.offset is not None:
        y = y - d.offset
    check_finite(y, d.X, d.xnames, [], response)
    check_random_finite(d, [formula.random[i].label for i in layout.levels.order])
    return PartDesign(d.X, y, d.codes, d.Z, d.xnames, d.cnames, raw, d.weights)


def names_of(formula: Formula, lv: Levels) -> tuple[list[str], list[list[str]]]:
    """The fixed-effects column names and each term's (lme4's order), from the levels alone."""
    values: dict[str, np.ndarray | Factor] = {}
    for v in formula.variables:
        if v.label in lv.factor_levels:
            values[v.label] = Factor(np.zeros(1, dtype=np.int64), lv.factor_levels[v.label])
        else:
            w = lv.widths.get(v.label, 1)
            values[v.label] = np.zeros(1) if w == 1 else np.zeros((1, w))
    _, xnames = model_matrix(formula.fixed, values, 1)
    cnames = [model_matrix(formula.random[i].lhs, values, 1)[1] for i in lv.order]
    return xnames, cnames


def _global_factor(col: Factor, rows: np.ndarray, levels: list[str], label: str) -> Factor:
    """A partition's factor recoded with the whole data's levels."""
    index = {lev: i for i, lev in enumerate(levels)}
    to = np.array([index.get(lev, -1) for lev in col.levels] + [-1], dtype=np.int64)
    codes = to[col.codes[rows]]  # code -1 (missing) picks the appended -1
    if np.any(codes < 0):
        raise DataError(f"a level of {label} differs between the passes over the data")
    return Factor(codes, levels, col.logical)


def _term_codes(group_vars: tuple[str, ...], values: dict, lv: Levels, i: int) -> np.ndarray:
    """The rows' levels of term i's grouping factor (an interaction's through its keys)."""
    from mlmcli.distributed.levels import group_levels

    key = np.zeros(len(next(iter(values.values()))), dtype=np.int64)
    for g in group_vars:
        col = values[g]
        if isinstance(col, Factor):
            levs = group_levels(g, lv.factor_levels, lv.group_values, lv.int_columns)
            if col.logical:
                pos = {lev: j for j, lev in enumerate(levs)}
                to = np.array([pos.get(lev, -1) for lev in col.levels], dtype=np.int64)
                c = to[col.codes]
            else:
                c = col.codes
            key = key * len(levs) + c
        else:
            vals = lv.group_values[g]
            key = key * len(vals) + np.searchsorted(vals, col)
    if lv.term_keys[i] is None:
        return key
    return np.searchsorted(lv.term_keys[i], key)


# ------------------------------------------------------------------ the sums


@dataclass
class BlockSums:
    """A partition's (or several partitions') share of the blocks of A."""

    n: int
    G: np.ndarray  # [1 X y]'[1 X y] of the data's rows (moments, scales)
    A_FF: np.ndarray  # [X y]'[X y] of the weighted rows (the engine's)
    log_w: float  # sum(log w) of the prior weights
    binary: np.ndarray  # per column of X: only 0s and 1s so far
    D: list[np.ndarray]  # per term: Z_i'Z_i per level (ell, k, k), weighted rows
    F: list[np.ndarray]  # per term: [X y]'Z_i per level (ell, p+1, k), weighted rows
    C: dict[tuple[int, int], object]  # i > j: Z_i'Z_j (CSR), weighted rows
    N: dict[tuple[int, int], object]  # i > j: rows per pair of levels (CSR), for the nesting
    level_n: list[np.ndarray]  # per term: rows per level
    level_y: list[np.ndarray]  # per term: the response (as the data hold it) summed per level
    y_sums: np.ndarray  # that response's sum and sum of squares

    def __add__(self, other: BlockSums) -> BlockSums:
        return BlockSums(
            self.n + other.n,
            self.G + other.G,
            self.A_FF + other.A_FF,
            self.log_w + other.log_w,
            self.binary & other.binary,
            [a + b for a, b in zip(self.D, other.D, strict=True)],
            [a + b for a, b in zip(self.F, other.F, strict=True)],
            {key: (self.C[key] + other.C[key]).tocsr() for key in self.C},
            {key: (self.N[key] + other.N[key]).tocsr() for key in self.N},
            [a + b for a, b in zip(self.level_n, other.level_n, strict=True)],
            [a + b for a, b in zip(self.level_y, other.level_y, strict=True)],
            self.y_sums + other.y_sums,
        )


@dataclass
class WeightedProducts:
    """The blocks of A of rows weighted by a GLM's working weights, with its working response (one
    PIRLS iteration's products), and the sums the criterion needs at the linear predictor they
    were formed at: the deviance residuals' and family$aic's."""

    n: int
    A_FF: np.ndarray
    D: list[np.ndarray]
    F: list[np.ndarray]
    C: dict[tuple[int, int], object]
    dev: float
    aic: float
    log_w: float = 0.0

    def __add__(self, other: WeightedProducts) -> WeightedProducts:
        return WeightedProducts(
            self.n + other.n,
            self.A_FF + other.A_FF,
            [a + b for a, b in zip(self.D, other.D, strict=True)],
            [a + b for a, b in zip(self.F, other.F, strict=True)],
            {key: (self.C[key] + other.C[key]).tocsr() for key in self.C},
            self.dev + other.dev,
            self.aic + other.aic,
        )


def sum_products(*parts: WeightedProducts) -> WeightedProducts:
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def sum_blocks(*parts: BlockSums) -> BlockSums:
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _level_crossprod(codes: np.ndarray, ell: int, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """(ell, ka, kb): per level, A'B over its rows."""
    out = np.empty((ell, A.shape[1], B.shape[1]))
    for a in range(A.shape[1]):
        for b in range(B.shape[1]):
            out[:, a, b] = np.bincount(codes, weights=A[:, a] * B[:, b], minlength=ell)
    return out


def level_products(
    XY: np.ndarray, Z: list[np.ndarray], codes: list[np.ndarray], ells: list[int]
) -> tuple[list[np.ndarray], list[np.ndarray], dict[tuple[int, int], object]]:
    """The blocks of A that involve Z from rows already weighted: per term Z_i'Z_i and [X y]'Z_i per
    level, and Z_i'Z_j (CSR) for every pair of terms i > j."""
    import scipy.sparse as sp

    D = [_level_crossprod(c, ell, Zt, Zt) for c, ell, Zt in zip(codes, ells, Z, strict=True)]
    F = [_level_crossprod(c, ell, XY, Zt) for c, ell, Zt in zip(codes, ells, Z, strict=True)]
    C = {}
    for i in range(len(ells)):
        ki = Z[i].shape[1]
        for j in range(i):
            kj = Z[j].shape[1]
            rows = np.concatenate([codes[i] * ki + a for a in range(ki) for _ in range(kj)])
            cols = np.concatenate([codes[j] * kj + b for _ in range(ki) for b in range(kj)])
            vals = np.concatenate([Z[i][:, a] * Z[j][:, b] for a in range(ki) for b in range(kj)])
            C[i, j] = sp.coo_matrix((vals, (rows, cols)), shape=(ells[i] * ki, ells[j] * kj)).tocsr()
    return D, F, C


def level_pairs(codes: list[np.ndarray], ells: list[int]) -> dict[tuple[int, int], object]:
    """Rows per pair of levels of terms i > j (CSR): where the terms nest."""
    import scipy.sparse as sp

    n = len(codes[0]) if codes else 0
    return {
        (i, j): sp.coo_matrix((np.ones(n), (codes[i], codes[j])), shape=(ells[i], ells[j])).tocsr()
        for i in range(len(ells))
        for j in range(i)
    }


def partition_blocks(pdf, layout: Layout) -> BlockSums:
    """Pass 2 on one partition (runs on a worker)."""
    d = partition_design(pdf, layout)
    lv = layout.levels
    ells = [len(lv.term_levels[i]) for i in lv.order]
    n = len(d.y)
    W = np.column_stack([np.ones(n), d.X, d.y])
    with np.errstate(over="ignore", invalid="ignore"):
        G = W.T @ W
    XY, Z, log_w = W[:, 1:], d.Z, 0.0
    if d.weights is not None:  # prior weights scale every row of [Z X y] by sqrt(w) (crossprod.py)
        sw = np.sqrt(d.weights)
        XY, Z, log_w = XY * sw[:, None], [Zt * sw[:, None] for Zt in Z], float(np.log(d.weights).sum())
    with np.errstate(over="ignore", invalid="ignore"):
        A_FF = XY.T @ XY
    binary = np.all((d.X == 0) | (d.X == 1), axis=0)
    D, F, C = level_products(XY, Z, d.codes, ells)
    N = level_pairs(d.codes, ells)
    raw = d.y if d.response is None else d.response
    level_n = [np.bincount(c, minlength=ell).astype(float) for c, ell in zip(d.codes, ells, strict=True)]
    level_y = [np.bincount(c, weights=raw, minlength=ell) for c, ell in zip(d.codes, ells, strict=True)]
    return BlockSums(n, G, A_FF, log_w, binary, D, F, C, N, level_n, level_y, np.array([raw.sum(), raw @ raw]))


Nesting = tuple[dict[tuple[int, int], np.ndarray], int]


def nesting(N: dict[tuple[int, int], object], structures: list[TermStructure]) -> Nesting:
    """The leading run of terms each nested in every later term of the run, as CrossProducts finds it
    from the rows: the parents of each pair and the run's length, from the rows per pair of levels."""
    parents: dict[tuple[int, int], np.ndarray] = {}
    nbd = 1
    while nbd < len(structures):
        found = {}
        for m in range(nbd):
            par = _parent(N[nbd, m])
            if par is None:
                break
            found[m, nbd] = par
        else:
            parents.update(found)
            nbd += 1
            continue
        break
    return parents, nbd


def crossproducts(
    s: BlockSums | WeightedProducts, structures: list[TermStructure], nest: Nesting | None = None
) -> CrossProducts:
    """The engine's blocks of A from the sums: the leading run of nested terms block diagonal,
    the rest one dense tail, as CrossProducts decides from the rows (`nest`: found already)."""
    if nest is None:
        assert isinstance(s, BlockSums)
        nest = nesting(s.N, structures)
    parents, nbd = nest
    nested = {}
    for i in range(nbd):
        for j in range(i):
            par = parents[j, i]
            ki, kj = structures[i].k, structures[j].k
            ell_j = structures[j].ell
            r = par[:, None, None] * ki + np.arange(ki)[None, :, None] + np.zeros((1, 1, kj), dtype=np.int64)
            c = (
                np.arange(ell_j)[:, None, None] * kj
                + np.arange(kj)[None, None, :]
                + np.zeros((1, ki, 1), dtype=np.int64)
            )
            nested[i, j] = np.asarray(s.C[i, j][r.ravel(), c.ravel()]).reshape(ell_j, ki, kj)
    A_tail: list[object] = []
    A_tt = A_Ft = None
    tail = list(range(nbd, len(structures)))
    if tail:
        import scipy.sparse as sp

        A_tail = [sp.vstack([s.C[t, j] for t in tail]).tocsr() for j in range(nbd)]
        sizes = [structures[t].q for t in tail]
        offs = np.cumsum([0] + sizes)
        A_tt = np.zeros((offs[-1], offs[-1]))
        for a, t in enumerate(tail):
            st = structures[t]
            for lev in range(st.ell):
                o = offs[a] + lev * st.k
                A_tt[o : o + st.k, o : o + st.k] = s.D[t][lev]
            for b, u in enumerate(tail[:a]):
                B = s.C[t, u].toarray()
                A_tt[offs[a] : offs[a + 1], offs[b] : offs[b + 1]] = B
                A_tt[offs[b] : offs[b + 1], offs[a] : offs[a + 1]] = B.T
        p1 = s.F[0].shape[1]
        A_Ft = np.hstack([s.F[t].transpose(1, 0, 2).reshape(p1, structures[t].q) for t in tail])
    return CrossProducts.from_blocks(
        structures, s.n, s.A_FF, s.D[:nbd], s.F[:nbd], parents, nested, nbd, A_tail, A_tt, A_Ft, s.log_w
    )


def start_theta(s: BlockSums, structures: list[TermStructure]) -> np.ndarray:
    """engine.fit.start_theta's moment guess for scalar terms on distinct factors, from the sums:
    var(ave(y, g)) is (sum_l n_l m_l^2 - n mean^2) / (n - 1), on the response as the data hold it."""
    theta = np.ones(len(structures))
    n = s.n
    total, sumsq = float(s.y_sums[0]), float(s.y_sums[1])
    v = []
    for counts, sums in zip(s.level_n, s.level_y, strict=True):
        with np.errstate(invalid="ignore", divide="ignore"):
            ss = float(np.sum(np.where(counts > 0, sums * sums / counts, 0.0)))
        v.append((ss - total * total / n) / (n - 1) if n > 1 else 0.0)
    v_e = (sumsq - total * total / n) / (n - 1) - sum(v)
    if np.isfinite(v_e) and v_e > 0:
        theta = np.sqrt(np.array(v) / v_e)
    return theta


def _parent(N) -> np.ndarray | None:
    """For each level of the column term, the one level of the row term its rows share."""
    csc = N.tocsc()
    csc.eliminate_zeros()
    if np.any(np.diff(csc.indptr) != 1):
        return None
    return csc.indices.astype(np.int64)
