"""The model matrices lmer builds from a formula and a data frame.

Follows lme4's lFormula: the model frame holds every variable of the formula,
evaluated on the whole data and then restricted to complete rows (na.omit, unused
factor levels dropped); each random term gets its grouping factor and its model
matrix (mkReTrms, terms reordered by number of levels); the fixed-effects matrix is
R's model.matrix with treatment contrasts, and columns that make it rank deficient
are dropped as chkRank.drop.cols does. lme4's input checks raise DataError with
lme4's wording.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlmcli import formula as fm
from mlmcli.errors import DataError
from mlmcli.formula import (
    COMPARISONS,
    FACTOR_FUNCTIONS,
    Formula,
    ModelSpec,
    Node,
    Var,
    constant_value,
    match_arguments,
)
from mlmcli.frame import Factor, Frame
from mlmcli.rsort import format_number

Column = np.ndarray | Factor


@dataclass
class ReTerm:
    group: str  # lme4's name of the grouping factor: "schcode", "b:a"
    levels: list[str]  # levels of the grouping factor, in lme4's order
    codes: np.ndarray  # (n,) level index of each observation
    X: np.ndarray  # (n, k) the term's model matrix
    cnames: list[str]  # its column names, e.g. ["(Intercept)", "ses"]
    label: str = ""  # lme4's name of the term: "1 + ses | schcode"


@dataclass
class Design:
    y: np.ndarray
    X: np.ndarray
    xnames: list[str]
    terms: list[ReTerm]
    n_obs: int
    rows: np.ndarray  # indices into the CSV rows of the observations used
    response: str
    messages: list[str] = field(default_factory=list)  # lme4's messages and warnings
    dropped: list[str] = field(default_factory=list)  # fixed-effect columns dropped for rank deficiency


# ------------------------------------------------------------ variables


def evaluate(var: Var, frame: Frame) -> Column:
    """The values of one formula variable on the whole data (as R's model.frame does)."""
    assert var.expr is not None
    with np.errstate(all="ignore"):
        return _evaluate(var.expr, frame, var.label)


def _evaluate(node: Node, frame: Frame, label: str) -> Column:
    if isinstance(node, fm.Sym):
        return _column(node.name, frame)
    if isinstance(node, fm.Paren):
        return _evaluate(node.inner, frame, label)
    if isinstance(node, fm.Binary) and node.op in COMPARISONS:
        return _logical(_numeric(node, frame, label))
    if isinstance(node, fm.Call) and node.fn in FACTOR_FUNCTIONS:
        arg = match_arguments(node)["x"]
        inner = _evaluate(arg, frame, label)
        if isinstance(inner, Factor):
            return _drop_unused(Factor(inner.codes, inner.levels))
        if inner.ndim != 1:
            raise DataError(f"{node.fn}() of a matrix cannot be used: {label}")
        integer = isinstance(arg, fm.Sym) and arg.name in frame.int_columns
        return _numeric_factor(inner, integer)
    if isinstance(node, fm.Call) and node.fn == "I" and _is_comparison(node.args[0]):
        return _evaluate(node.args[0], frame, label)  # I(x > 0) is logical: a TRUE column
    if isinstance(node, fm.Call) and node.fn == "poly":
        args = match_arguments(node)
        degree = constant_value(args["degree"]) if "degree" in args else 1.0
        raw = constant_value(args["raw"]) if "raw" in args else False
        return _poly(_numeric(args["x"], frame, label), degree, raw)
    return _numeric(node, frame, label)


def _is_comparison(node: Node) -> bool:
    while isinstance(node, fm.Paren):
        node = node.inner
    return isinstance(node, fm.Binary) and node.op in COMPARISONS


def _logical(x: np.ndarray) -> Factor:
    """A comparison's result: R's logical vector (NA where either side is NA)."""
    codes = np.where(np.isnan(x), -1, x).astype(np.int64)
    return Factor(codes, ["FALSE", "TRUE"], logical=True)


def _poly(x: np.ndarray, degree: float | bool | None, raw: float | bool | None) -> np.ndarray:
    """R's poly(x, degree, raw): orthonormal polynomials of x (or its powers when raw)."""
    if np.isnan(x).any():
        raise DataError("missing values are not allowed in 'poly'")
    if isinstance(degree, bool) or degree is None or degree < 1 or degree != int(degree):
        raise DataError("'degree' of poly() must be a whole number of at least 1")
    k = int(degree)
    if raw:
        return np.column_stack([x**j for j in range(1, k + 1)])
    if k >= len(np.unique(x)):
        raise DataError("'degree' must be less than number of unique points")
    # the part of each power of the centred x orthogonal to the lower powers, scaled to length one:
    # Q_j R_jj of the QR decomposition, whatever the signs a QR routine picks
    X = (x - x.mean())[:, None] ** np.arange(k + 1)
    if len(pivoted_rank(X)) < k:  # R's check on qr(X)$rank: high powers of few distinct values
        raise DataError("'degree' must be less than number of unique points")
    Q, R = np.linalg.qr(X)
    Z = Q * np.diag(R)
    Z /= np.sqrt(np.sum(Z * Z, axis=0))
    return Z[:, 1:]


def _column(name: str, frame: Frame) -> Column:
    try:
        return frame.columns[name]
    except KeyError:
        raise _unknown_column(name, frame) from None


def _numeric(node: Node, frame: Frame, label: str) -> np.ndarray:
    n = frame.n_rows
    if isinstance(node, fm.Sym):
        col = _column(node.name, frame)
        if isinstance(col, Factor):
            if col.logical:  # R computes with TRUE/FALSE as 1/0
                return np.where(col.codes < 0, np.nan, col.codes.astype(float))
            raise DataError(f"column '{node.name}' holds text, so {label} cannot be computed")
        return col
    if isinstance(node, fm.Num):
        return np.full(n, node.value)
    if isinstance(node, fm.Bool):
        return np.full(n, float(node.value))
    if isinstance(node, fm.Paren):
        return _numeric(node.inner, frame, label)
    if isinstance(node, fm.Unary):
        x = _numeric(node.arg, frame, label)
        return -x if node.op == "-" else x
    if isinstance(node, fm.Binary):
        a = _numeric(node.left, frame, label)
        b = _numeric(node.right, frame, label)
        if node.op in COMPARISONS:  # TRUE/FALSE, computed with as 1/0
            return np.where(np.isnan(a) | np.isnan(b), np.nan, _COMPARE[node.op](a, b))
        ops = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power,
               "%%": np.mod, "%/%": np.floor_divide}  # R's %% and %/% round towards -Inf as numpy's
        return ops[node.op](a, b)
    assert isinstance(node, fm.Call)
    if node.fn in FACTOR_FUNCTIONS or node.fn == "poly":
        raise DataError(f"{node.fn}() cannot be used inside an expression: {label}")
    args = match_arguments(node)
    x = _numeric(args["x"], frame, label)
    if node.fn == "I":
        return x
    if node.fn == "scale":
        center = constant_value(args["center"]) if "center" in args else True
        scale = constant_value(args["scale"]) if "scale" in args else True
        return _scale(x, center, scale)
    if node.fn == "log" and "base" in args:
        return np.log(x) / np.log(_numeric(args["base"], frame, label))
    funcs = {"log": np.log, "log10": np.log10, "log2": np.log2, "log1p": np.log1p, "exp": np.exp,
             "sqrt": np.sqrt, "abs": np.abs}
    return funcs[node.fn](x)


_COMPARE = {"==": np.equal, "!=": np.not_equal, "<": np.less, ">": np.greater, "<=": np.less_equal,
            ">=": np.greater_equal}


def _scale(x: np.ndarray, center: float | bool | None = True,
           scale: float | bool | None = True) -> np.ndarray:
    """R's scale(x, center, scale): subtract the mean (or the given centre), then divide by the
    root mean square with n - 1 (the SD when centred) or the given scale; NAs ignored."""
    ok = ~np.isnan(x)
    m = int(ok.sum())
    if m == 0:
        return x.copy()
    out = x.copy()
    if center is True:
        out = out - x[ok].mean()
    elif not isinstance(center, bool) and center is not None:
        out = out - center
    if scale is True:
        out = out / np.sqrt(np.sum(out[ok] ** 2) / max(1, m - 1))
    elif not isinstance(scale, bool) and scale is not None:
        out = out / scale
    return out


def _numeric_factor(x: np.ndarray, integer: bool) -> Factor:
    """factor() of numbers: levels sorted numerically, labelled as R's as.character()."""
    ok = ~np.isnan(x)
    codes = np.full(len(x), -1, dtype=np.int64)
    values, codes[ok] = _sorted_codes(x[ok])
    if integer:
        levels = [str(int(v)) for v in values]
    else:
        levels = [format_number(float(v)) for v in values]
    return Factor(codes, levels)


def _sorted_codes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct values of x and each element's index among them.  Whole numbers in a
    range not much wider than the data (ids) go through a lookup table instead of a sort."""
    if x.size:
        lo, hi = float(x.min()), float(x.max())
        if hi - lo <= 4 * x.size + 1000 and np.array_equal(x, np.floor(x)):
            offset = (x - lo).astype(np.int64)
            present = np.zeros(int(hi - lo) + 1, dtype=bool)
            present[offset] = True
            rank = np.cumsum(present) - 1
            return np.flatnonzero(present) + lo, rank[offset]
    values, codes = np.unique(x, return_inverse=True)
    return values, codes.ravel()


def _drop_unused(f: Factor) -> Factor:
    """Drop levels no row uses (R's drop.unused.levels); R's logicals keep FALSE and TRUE."""
    if f.logical:
        return f
    used = np.zeros(len(f.levels), dtype=bool)
    used[f.codes[f.codes >= 0]] = True
    if used.all():
        return f
    new_index = np.cumsum(used) - 1
    codes = np.where(f.codes >= 0, new_index[np.maximum(f.codes, 0)], -1)
    return Factor(codes, [lev for lev, u in zip(f.levels, used, strict=True) if u])


def _unknown_column(name: str, frame: Frame) -> DataError:
    import difflib

    names = list(frame.columns)
    close = [n for n in names if n.lower() == name.lower()]
    close = close or difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        return DataError(f"unknown column '{name}' in formula; did you mean '{close[0]}'?")
    return DataError(f"unknown column '{name}' in formula; the columns are: {', '.join(names)}")


# ------------------------------------------------------------ model matrices


def _n_levels(col: Column) -> int:
    return len(col.levels) if isinstance(col, Factor) else 0


def _contrast_codes(spec: ModelSpec, values: dict[str, Column]) -> list[list[int]]:
    """R's factor coding per variable of each term: 1 = contrasts, 2 = indicators.

    A factor gets contrasts in a term when the term without it is empty or is part
    of an earlier term; without an intercept the first factor of the model gets
    indicators for all its levels (R's TermCode and model.matrix).
    """
    codes: list[list[int]] = []
    earlier: list[set[str]] = []
    for term in spec.terms:
        labels = {v.label for v in term.vars}
        row = []
        for v in term.vars:
            rest = labels - {v.label}
            row.append(1 if not rest or any(rest <= e for e in earlier) else 2)
        codes.append(row)
        earlier.append(labels)
    if not spec.intercept:
        for j, term in enumerate(spec.terms):
            hit = [i for i, v in enumerate(term.vars) if _n_levels(values[v.label]) > 1]
            if hit:
                codes[j][hit[0]] = 2
                break
    return codes


def model_matrix(spec: ModelSpec, values: dict[str, Column], n: int) -> tuple[np.ndarray, list[str]]:
    """R's model.matrix with treatment contrasts: columns and their names, in R's order."""
    columns: list[np.ndarray] = []
    names: list[str] = []
    if spec.intercept:
        columns.append(np.ones(n))
        names.append("(Intercept)")
    for term, coding in zip(spec.terms, _contrast_codes(spec, values), strict=True):
        block: list[np.ndarray] = [np.ones(n)]
        block_names = [""]
        for var, code in zip(term.vars, coding, strict=True):
            col = values[var.label]
            if isinstance(col, Factor):
                if len(col.levels) < 2:
                    raise DataError(
                        f"contrasts can be applied only to factors with 2 or more levels: '{var.label}' "
                        f"has {len(col.levels)} level after removing rows with missing values"
                    )
                first = 0 if code == 2 else 1
                pieces = [(col.codes == k).astype(float) for k in range(first, len(col.levels))]
                piece_names = [var.label + lev for lev in col.levels[first:]]
            elif col.ndim == 2 and col.shape[1] > 1:  # poly(): one column per degree, "poly(x, 2)1", ...
                pieces = [col[:, j] for j in range(col.shape[1])]
                piece_names = [f"{var.label}{j + 1}" for j in range(col.shape[1])]
            else:
                pieces = [np.asarray(col, dtype=float).reshape(-1)]
                piece_names = [var.label]
            # earlier variables vary fastest, as in R
            block = [b * p for p in pieces for b in block]
            block_names = [f"{b}:{p}" if b else p for p in piece_names for b in block_names]
        columns.extend(block)
        names.extend(block_names)
    X = np.column_stack(columns) if columns else np.empty((n, 0))
    return X, names


def pivoted_rank(X: np.ndarray, tol: float = 1e-7) -> list[int]:
    """Columns kept by R's qr(X, tol, LAPACK = FALSE) (LINPACK dqrdc2, limited pivoting).

    A column whose remaining norm falls below tol times its original norm is moved
    to the end; the first `rank` pivots are the columns lme4 keeps, in their order.
    """
    n, p = X.shape
    if _clearly_full_rank(X):
        return list(range(p))
    x = np.array(X, dtype=float, copy=True)
    pivot = list(range(p))
    qraux = np.sqrt(np.sum(x * x, axis=0))
    original = np.where(qraux == 0, 1.0, qraux)
    k = p + 1  # 1-based, as in dqrdc2
    for col in range(min(n, p)):
        while col + 1 < k and qraux[col] < original[col] * tol:
            order = list(range(col + 1, p)) + [col]
            x[:, col:] = x[:, order]
            qraux[col:] = qraux[order]
            original[col:] = original[order]
            pivot[col:] = [pivot[i] for i in order]
            k -= 1
        if col == n - 1:
            break
        v = x[col:, col]
        norm = float(np.sqrt(v @ v))
        if norm == 0.0:
            continue
        if v[0] != 0.0:
            norm = abs(norm) if v[0] > 0 else -abs(norm)
        v /= norm
        v[0] += 1.0
        if col + 1 < p:
            rest = x[col:, col + 1 :]
            t = -(v @ rest) / v[0]
            rest += np.outer(v, t)
            for j in range(col + 1, p):
                if qraux[j] == 0.0:
                    continue
                tt = max(0.0, 1.0 - (abs(x[col, j]) / qraux[j]) ** 2)
                if abs(tt) < 1e-6:
                    qraux[j] = float(np.sqrt(x[col + 1 :, j] @ x[col + 1 :, j]))
                else:
                    qraux[j] *= np.sqrt(tt)
        qraux[col] = v[0]
        x[col, col] = -norm
    rank = min(k - 1, n)
    return pivot[:rank]


def _clearly_full_rank(X: np.ndarray) -> bool:
    """True when no column comes near dqrdc2's dropping threshold: each column keeps over 1e-3 of
    its norm after projecting out the ones before it (the Cholesky factor of X'X, accurate far
    beyond that margin).  Saves the column-by-column Householder pass on tall data."""
    n, p = X.shape
    if p == 0 or n < p or n < 1000:
        return False
    with np.errstate(all="ignore"):
        G = X.T @ X
        norms = np.sqrt(np.diag(G))
        if not np.all(np.isfinite(G)) or np.any(norms == 0):
            return False
        try:
            R = np.linalg.cholesky(G / np.outer(norms, norms))
        except np.linalg.LinAlgError:
            return False
    return bool(np.all(np.abs(np.diag(R)) > 1e-3))


def _scale_warning(X: np.ndarray) -> str | None:
    """lme4's checkScaleX: predictors whose standard deviations differ by more than 1000-fold."""
    if X.shape[0] < 2:
        return None
    continuous = [j for j in range(X.shape[1]) if not np.all((X[:, j] == 0) | (X[:, j] == 1))]
    if not continuous:
        return None
    with np.errstate(all="ignore"):
        sd = X[:, continuous].std(axis=0, ddof=1)
        ratios = np.abs(np.log(sd[:, None] / sd[None, :]))[np.tril_indices(len(sd), -1)]
        spread = np.concatenate([ratios, np.abs(np.log(sd))])
    if np.any(spread[~np.isnan(spread)] > np.log(1000)):
        return "Some predictor variables are on very different scales: consider rescaling"
    return None


# ------------------------------------------------------------ grouping factors


def _as_factor(col: Column, integer: bool) -> Factor:
    """lme4's makeFac: a factor stays, anything else becomes factor(x)."""
    if isinstance(col, Factor):
        return _drop_unused(Factor(col.codes, col.levels)) if col.logical else col
    return _numeric_factor(col, integer)


def _interaction(factors: list[Factor]) -> Factor:
    """lme4's %i%: observed combinations, ordered by the first factor, then the next."""
    if len(factors) == 1:
        return factors[0]
    key = np.zeros(len(factors[0].codes), dtype=np.int64)
    for f in factors:
        key = key * len(f.levels) + f.codes
    keys, codes = np.unique(key, return_inverse=True)
    labels = []
    for k in keys.tolist():
        parts = []
        for f in reversed(factors):
            k, c = divmod(k, len(f.levels))
            parts.append(f.levels[c])
        labels.append(":".join(reversed(parts)))
    return Factor(codes.astype(np.int64).reshape(-1), labels)


# ------------------------------------------------------------ the design


def build_design(frame: Frame, formula: Formula) -> Design:
    """Response, fixed-effects matrix and random-effects terms as lmer builds them."""
    for name in formula.columns():
        if name not in frame.columns:
            raise _unknown_column(name, frame)
    full = {v.label: evaluate(v, frame) for v in formula.variables}
    response = formula.response.label
    y_full = full[response]
    if isinstance(y_full, Factor):
        kind = "TRUE/FALSE values" if y_full.logical else "text"
        raise DataError(f"the response '{response}' is not numeric: its column holds {kind}")
    if y_full.ndim != 1:
        raise DataError(f"the response '{response}' must be one column")

    # na.omit over every variable of the model frame
    complete = np.ones(frame.n_rows, dtype=bool)
    for col in full.values():
        if isinstance(col, Factor):
            complete &= col.codes >= 0
        else:
            complete &= ~np.isnan(col).reshape(len(col), -1).any(axis=1)
    rows = np.flatnonzero(complete)
    n = len(rows)
    if n == 0:
        raise DataError("no rows left after removing rows with missing values in the model's columns")
    nan_message = _nan_rows_message(frame, formula, full, complete)
    values: dict[str, Column] = {}
    for label, col in full.items():
        if isinstance(col, Factor):
            values[label] = _drop_unused(Factor(col.codes[rows], col.levels, col.logical))
        else:
            values[label] = col[rows]

    terms = _random_terms(formula, frame, values, n)
    _check_levels(terms, n)

    X, xnames = model_matrix(formula.fixed, values, n)
    _check_finite(values[response], X, xnames, terms, response)
    messages: list[str] = []
    dropped: list[str] = []
    keep = pivoted_rank(X)
    if len(keep) < X.shape[1]:
        m = X.shape[1] - len(keep)
        messages.append(
            f"fixed-effect model matrix is rank deficient so dropping {m} "
            + ("column / coefficient" if m == 1 else "columns / coefficients")
        )
        dropped = [xnames[j] for j in range(X.shape[1]) if j not in keep]
        X = X[:, keep]
        xnames = [xnames[j] for j in keep]
    if X.shape[1] >= n:
        raise DataError(
            f"{X.shape[1]} fixed-effect coefficients for {n} observations: no residual degrees of freedom are "
            "left; remove fixed-effect terms (a factor with one row per level cannot be a fixed effect)"
        )
    warning = _scale_warning(X)
    if warning:
        messages.append(warning)
    if nan_message:
        messages.append(nan_message)
    y = np.asarray(values[response], dtype=float)
    return Design(y=y, X=X, xnames=xnames, terms=terms, n_obs=n, rows=rows, response=response,
                  messages=messages, dropped=dropped)


def _missing(col: Column) -> np.ndarray:
    if isinstance(col, Factor):
        return col.codes < 0
    return np.isnan(col).reshape(len(col), -1).any(axis=1)


def _nan_rows_message(frame: Frame, formula: Formula, full: dict[str, Column], complete: np.ndarray) -> str | None:
    """R warns "NaNs produced" where log(), sqrt() ... of a value outside their domain drop rows; say how
    many rows went that way, beyond those with missing data."""
    missing_in_data = np.zeros(frame.n_rows, dtype=bool)
    for name in formula.columns():
        missing_in_data |= _missing(frame.columns[name])
    produced = ~complete & ~missing_in_data
    count = int(produced.sum())
    if count == 0:
        return None
    labels = [label for label, col in full.items() if _missing(col)[produced].any()]
    rows = "row" if count == 1 else "rows"
    return f"NaNs produced by {', '.join(labels)}: {count} {rows} dropped"


def _check_finite(y: Column, X: np.ndarray, xnames: list[str], terms: list[ReTerm], response: str) -> None:
    """lmer stops at infinite values (log(0), 1/0): NaN rows were dropped as missing, Inf rows were not."""
    def bad(M: np.ndarray, names: list[str]) -> str | None:
        cols = np.flatnonzero(~np.all(np.isfinite(M), axis=0))
        return names[cols[0]] if cols.size else None

    if not np.all(np.isfinite(np.asarray(y, dtype=float))):
        raise DataError(f"NA/NaN/Inf in 'y': the response '{response}' has infinite values")
    col = bad(X, xnames)
    if col is not None:
        # R's own words first, as lFormula stops in qr()
        raise DataError(f"NA/NaN/Inf in foreign function call (arg 1): the fixed-effects column '{col}' "
                        "has infinite values")
    for t in terms:
        col = bad(t.X, t.cnames)
        if col is not None:
            raise DataError(f"NA/NaN/Inf in the random-effects term ({t.label}): '{col}' has infinite values")


def _random_terms(formula: Formula, frame: Frame, values: dict[str, Column], n: int) -> list[ReTerm]:
    """lme4's mkReTrms: one term per bar, sorted by decreasing number of levels."""
    terms: list[ReTerm] = []
    for rt in formula.random:
        factors = [_as_factor(values[g], g in frame.int_columns) for g in rt.group_vars]
        group = _interaction(factors)
        X, cnames = model_matrix(rt.lhs, values, n)
        terms.append(ReTerm(rt.group, group.levels, group.codes, X, cnames, rt.label))
    n_levels = np.array([len(t.levels) for t in terms])
    if np.any(np.diff(n_levels) > 0):
        order = np.argsort(n_levels, kind="stable")[::-1]  # rev(order(nl)), as lme4
        terms = [terms[i] for i in order]
    return terms


def _check_levels(terms: list[ReTerm], n: int) -> None:
    """lme4's checkNlevels and checkZdims, with lme4's wording."""
    groups: dict[str, int] = {}
    for t in terms:
        groups.setdefault(t.group, len(t.levels))
    if any(k < 2 for k in groups.values()):
        raise DataError("grouping factors must have > 1 sampled level")
    bad = [g for g, k in groups.items() if k >= n]
    if bad:
        raise DataError(
            "number of levels of each grouping factor must be < number of observations "
            f"(problems: {', '.join(bad)})"
        )
    for t in terms:
        q = len(t.levels) * t.X.shape[1]
        if n <= q:
            raise DataError(
                f"number of observations (={n}) <= number of random effects (={q}) for term ({t.label}); "
                "the random-effects parameters and the residual variance (or scale parameter) "
                "are probably unidentifiable"
            )
