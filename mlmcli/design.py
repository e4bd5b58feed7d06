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
    GROUP_MEAN_FUNCTIONS,
    R_CONSTANTS,
    Formula,
    ModelSpec,
    Node,
    Var,
    constant_value,
    literal_values,
    match_arguments,
)
from mlmcli.io.frame import Factor, Frame
from mlmcli.rcompat.rsort import format_number

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
    # offset() terms summed over the rows used (None without any): y above is the response minus it,
    # as lme4 fits; fitted values and predictions add it back
    offset: np.ndarray | None = None
    # the model frame: every formula variable on the rows used, and the factors' levels (R's xlevels)
    values: dict[str, Column] = field(default_factory=dict)
    levels: dict[str, list[str]] = field(default_factory=dict)
    response_values: np.ndarray | None = None  # the response itself, before the offset is taken off
    # prior weights on the rows used (None without --weights), and the columns lmer's arguments named
    weights: np.ndarray | None = None
    args: ModelArguments = field(default_factory=lambda: ModelArguments())
    # the model frame's "(weights)" and "(offset)" columns (lmer's arguments) on the rows used
    arg_values: dict[str, np.ndarray] = field(default_factory=dict)
    # rows na.omit left out for a missing value in the data (lme4 says nothing of them; mlm notes them)
    missing_rows: int = 0


@dataclass(frozen=True)
class ModelArguments:
    """lmer()'s arguments besides the formula that name columns of the data: `weights =` (prior
    weights, residual variance sigma^2 / w) and `offset =` (added to the formula's offset() terms).
    Their columns join the model frame: a missing value drops the row, as na.omit does."""

    weights: str | None = None
    offset: str | None = None

    def columns(self) -> list[str]:
        return [c for c in (self.weights, self.offset) if c is not None]


# ------------------------------------------------------------ variables


@dataclass
class _Context:
    """Where a formula variable is evaluated.

    used: the rows of the model frame (after NA removal), over which cwc() and cmean() average;
    None before they are known (every row with the values present). reference: the training data
    when evaluating new data for predictions, whose scale() centre and poly() basis apply (R's
    predvars). scales: each scale() call's centre and scale (by its deparsed text) when they were
    computed elsewhere (over data partitioned across machines)."""

    frame: Frame
    label: str
    used: np.ndarray | None = None
    reference: Frame | None = None
    scales: dict[str, tuple] | None = None


ScaleParameters = dict[str, tuple]


def evaluate(
    var: Var,
    frame: Frame,
    used: np.ndarray | None = None,
    reference: Frame | None = None,
    scales: ScaleParameters | None = None,
) -> Column:
    """The values of one formula variable on the whole data (as R's model.frame does)."""
    assert var.expr is not None
    with np.errstate(all="ignore"):
        return _evaluate(var.expr, _Context(frame, var.label, used, reference, scales))


def scale_calls(var: Var, frame: Frame) -> list[tuple[str, np.ndarray, float | bool | None, float | bool | None]]:
    """Each scale() call of a variable: its deparsed text, the values of its argument on the whole data,
    and its center and scale arguments."""
    out = []
    stack: list[Node] = [var.expr] if var.expr is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, fm.Call):
            if node.fn == "scale":
                args = match_arguments(node)
                center = constant_value(args["center"]) if "center" in args else True
                scale = constant_value(args["scale"]) if "scale" in args else True
                with np.errstate(all="ignore"):
                    x = _numeric(args["x"], _Context(frame, var.label))
                out.append((scale_key(node), x, center, scale))
            stack.extend(node.args)
        for attr in ("inner", "arg", "left", "right"):
            child = getattr(node, attr, None)
            if isinstance(child, fm.Node):
                stack.append(child)
    return out


def scale_key(node: Node) -> str:
    return " ".join(fm.deparse_node(node, 500))


def _evaluate(node: Node, ctx: _Context) -> Column:
    if isinstance(node, fm.Sym):
        return _column(node.name, ctx.frame)
    if isinstance(node, fm.Paren):
        return _evaluate(node.inner, ctx)
    if isinstance(node, fm.Binary) and node.op in COMPARISONS:
        return _logical(_numeric(node, ctx))
    if isinstance(node, fm.Call) and node.fn in FACTOR_FUNCTIONS:
        return _factor_call(node, ctx)
    if isinstance(node, fm.Call) and node.fn == "I" and _is_comparison(node.args[0]):
        return _evaluate(node.args[0], ctx)  # I(x > 0) is logical: a TRUE column
    if isinstance(node, fm.Call) and node.fn == "poly":
        args = match_arguments(node)
        degree = constant_value(args["degree"]) if "degree" in args else 1.0
        raw = constant_value(args["raw"]) if "raw" in args else False
        x = _numeric(args["x"], ctx)
        if ctx.reference is not None and not raw:
            return _poly_predict(_numeric(args["x"], _Context(ctx.reference, ctx.label)), x, degree)
        return _poly(x, degree, raw)
    return _numeric(node, ctx)


def _factor_call(node: fm.Call, ctx: _Context) -> Factor:
    """factor(x), factor(x, levels = c(...)), as.factor(x), relevel(f, ref = ...) and interaction(a, b, ...)."""
    args = match_arguments(node)
    if node.fn == "interaction":
        return _interaction_call(args, ctx)
    arg = args["x"]
    inner = _evaluate(arg, ctx)
    if node.fn == "relevel":
        if not isinstance(inner, Factor) or inner.logical:
            raise DataError(f"'relevel' only for (unordered) factors: {ctx.label}")
        return _relevel(inner, literal_values(args["ref"])[0], ctx.label)  # type: ignore[index]
    if not isinstance(inner, Factor) and inner.ndim != 1:
        raise DataError(f"{node.fn}() of a matrix cannot be used: {ctx.label}")
    if "levels" in args:
        return _factor_with_levels(inner, literal_values(args["levels"]) or [], arg, ctx)
    if isinstance(inner, Factor):
        return drop_unused(Factor(inner.codes, inner.levels))
    integer = isinstance(arg, fm.Sym) and arg.name in ctx.frame.int_columns
    return _numeric_factor(inner, integer)


def _interaction_call(args: dict[str, Node], ctx: _Context) -> Factor:
    """R's interaction(): each argument made a factor as as.factor() makes it (drop = TRUE dropping
    its unused levels, which changes nothing here: only combinations in use are levels)."""
    from mlmcli.interaction import interaction

    factors = []
    for name, arg in args.items():
        if not name.startswith(".."):
            continue
        col = _evaluate(arg, ctx)
        if isinstance(col, Factor):
            # as.factor() of TRUE/FALSE has the values present as levels
            factors.append(drop_unused(Factor(col.codes, col.levels)) if col.logical else col)
        elif col.ndim != 1:
            raise DataError(f"interaction() of a matrix cannot be used: {ctx.label}")
        else:
            factors.append(_numeric_factor(col, isinstance(arg, fm.Sym) and arg.name in ctx.frame.int_columns))
    sep = literal_values(args["sep"])[0] if "sep" in args else "."  # type: ignore[index]
    lex_order = bool(constant_value(args["lex.order"])) if "lex.order" in args else False
    return interaction(factors, str(sep), lex_order)


def value_labels(col: Column, integer: bool) -> list[str | None]:
    """Each value as R's as.character() writes it (None for NA)."""
    if isinstance(col, Factor):
        return [col.levels[c] if c >= 0 else None for c in col.codes.tolist()]
    out: list[str | None] = []
    for v in col.tolist():
        if v != v:
            out.append(None)
        else:
            out.append(str(int(v)) if integer and v == int(v) else format_number(float(v)))
    return out


def _factor_with_levels(inner: Column, levels: list[str | float], arg: Node, ctx: _Context) -> Factor:
    """R's factor(x, levels = ...): values outside the levels become NA."""
    integer = isinstance(arg, fm.Sym) and arg.name in ctx.frame.int_columns
    names = [v if isinstance(v, str) else format_number(v) for v in levels]
    if len(set(names)) != len(names):
        raise DataError(f"factor level is duplicated in {ctx.label}")
    index = {name: i for i, name in enumerate(names)}
    codes = np.array([-1 if v is None else index.get(v, -1) for v in value_labels(inner, integer)], dtype=np.int64)
    return Factor(codes, names)


def _relevel(f: Factor, ref: str | float, label: str) -> Factor:
    """R's relevel(): `ref` (a level, or a level's number) becomes the first level."""
    if isinstance(ref, str):
        if ref not in f.levels:
            raise DataError(f"'ref' must be an existing level: '{ref}' is not a level in {label}")
        k = f.levels.index(ref)
    else:
        if ref != int(ref) or not 1 <= ref <= len(f.levels):
            raise DataError(f"ref = {format_number(ref)} must be an existing level in {label}")
        k = int(ref) - 1
    order = [k] + [i for i in range(len(f.levels)) if i != k]
    new_code = np.empty(len(f.levels), dtype=np.int64)
    new_code[order] = np.arange(len(order))
    codes = np.where(f.codes >= 0, new_code[np.maximum(f.codes, 0)], -1)
    return Factor(codes, [f.levels[i] for i in order])


def _is_comparison(node: Node) -> bool:
    while isinstance(node, fm.Paren):
        node = node.inner
    return isinstance(node, fm.Binary) and node.op in COMPARISONS


def _logical(x: np.ndarray) -> Factor:
    """A comparison's result: R's logical vector (NA where either side is NA)."""
    codes = np.where(np.isnan(x), -1, x).astype(np.int64)
    return Factor(codes, ["FALSE", "TRUE"], logical=True)


def _poly_basis(x: np.ndarray, degree: float | bool | None) -> tuple[np.ndarray, int]:
    """The unnormalised orthogonal polynomials of x (R's Z before scaling) and the degree."""
    if np.isnan(x).any():
        raise DataError("missing values are not allowed in 'poly'")
    if isinstance(degree, bool) or degree is None or degree < 1 or degree != int(degree):
        raise DataError("'degree' of poly() must be a whole number of at least 1")
    k = int(degree)
    if k >= len(np.unique(x)):
        raise DataError("'degree' must be less than number of unique points")
    # the part of each power of the centred x orthogonal to the lower powers: Q_j R_jj of the QR
    # decomposition, whatever the signs a QR routine picks
    X = (x - x.mean())[:, None] ** np.arange(k + 1)
    if len(pivoted_rank(X)) < k:  # R's check on qr(X)$rank: high powers of few distinct values
        raise DataError("'degree' must be less than number of unique points")
    Q, R = np.linalg.qr(X)
    return Q * np.diag(R), k


def _poly(x: np.ndarray, degree: float | bool | None, raw: float | bool | None) -> np.ndarray:
    """R's poly(x, degree, raw): orthonormal polynomials of x (or its powers when raw)."""
    if raw:
        if np.isnan(x).any():
            raise DataError("missing values are not allowed in 'poly'")
        if isinstance(degree, bool) or degree is None or degree < 1 or degree != int(degree):
            raise DataError("'degree' of poly() must be a whole number of at least 1")
        return np.column_stack([x**j for j in range(1, int(degree) + 1)])
    Z, _ = _poly_basis(x, degree)
    Z = Z / np.sqrt(np.sum(Z * Z, axis=0))
    return Z[:, 1:]


def _poly_predict(train: np.ndarray, x: np.ndarray, degree: float | bool | None) -> np.ndarray:
    """poly() of new values with the training basis: R's predict.poly three-term recurrence."""
    Z, k = _poly_basis(train, degree)
    norm2 = np.sum(Z * Z, axis=0)
    xc = train - train.mean()
    alpha = (np.sum(xc[:, None] * Z * Z, axis=0) / norm2 + train.mean())[:k]
    norm2 = np.concatenate([[1.0], norm2])
    out = np.ones((len(x), k + 1))
    out[:, 1] = x - alpha[0]
    for i in range(1, k):
        out[:, i + 1] = (x - alpha[i]) * out[:, i] - (norm2[i + 1] / norm2[i]) * out[:, i - 1]
    out = out / np.sqrt(norm2[1:])
    return out[:, 1:]


def _column(name: str, frame: Frame) -> Column:
    try:
        return frame.columns[name]
    except KeyError:
        if name in R_CONSTANTS:
            return np.full(frame.n_rows, R_CONSTANTS[name])
        raise _unknown_column(name, frame) from None


def _numeric(node: Node, ctx: _Context) -> np.ndarray:
    frame, label = ctx.frame, ctx.label
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
        return _numeric(node.inner, ctx)
    if isinstance(node, fm.Unary):
        x = _numeric(node.arg, ctx)
        return -x if node.op == "-" else x
    if isinstance(node, fm.Binary):
        a = _numeric(node.left, ctx)
        b = _numeric(node.right, ctx)
        if node.op in COMPARISONS:  # TRUE/FALSE, computed with as 1/0
            return np.where(np.isnan(a) | np.isnan(b), np.nan, _COMPARE[node.op](a, b))
        ops = {
            "+": np.add,
            "-": np.subtract,
            "*": np.multiply,
            "/": np.divide,
            "^": np.power,
            "%%": np.mod,
            "%/%": np.floor_divide,
        }  # R's %% and %/% round towards -Inf as numpy's
        return ops[node.op](a, b)
    assert isinstance(node, fm.Call)
    if node.fn in FACTOR_FUNCTIONS or node.fn == "poly":
        raise DataError(f"{node.fn}() cannot be used inside an expression: {label}")
    args = match_arguments(node)
    x = _numeric(args["x"], ctx)
    if node.fn in ("I", "offset"):
        return x
    if node.fn in GROUP_MEAN_FUNCTIONS:
        assert isinstance(args["g"], fm.Sym)
        means = _cluster_means(x, _column(args["g"].name, frame), ctx.used)
        return x - means if node.fn == "cwc" else means
    if node.fn == "scale":
        center = constant_value(args["center"]) if "center" in args else True
        scale = constant_value(args["scale"]) if "scale" in args else True
        if ctx.scales is not None:
            center, scale = ctx.scales[scale_key(node)]
        elif ctx.reference is not None:  # the training data's centre and scale (R's makepredictcall)
            center, scale = _scale_parameters(_numeric(args["x"], _Context(ctx.reference, label)), center, scale)
        return _scale(x, center, scale)
    if node.fn == "log" and "base" in args:
        return np.log(x) / np.log(_numeric(args["base"], ctx))
    if node.fn == "round":
        digits = constant_value(args["digits"]) if "digits" in args else 0.0
        return np.round(x, int(digits))  # type: ignore[arg-type]
    if node.fn in ("pmin", "pmax"):
        if "y" not in args:
            raise DataError(f"{node.fn}() needs two arguments, as {node.fn}(x, 3): {label}")
        y = _numeric(args["y"], ctx)
        return np.minimum(x, y) if node.fn == "pmin" else np.maximum(x, y)  # NA stays NA, as in R
    funcs = {
        "log": np.log,
        "log10": np.log10,
        "log2": np.log2,
        "log1p": np.log1p,
        "exp": np.exp,
        "sqrt": np.sqrt,
        "abs": np.abs,
        "sin": np.sin,
        "cos": np.cos,
        "tan": np.tan,
        "floor": np.floor,
        "ceiling": np.ceil,
    }
    return funcs[node.fn](x)


def _cluster_means(x: np.ndarray, g: Column, used: np.ndarray | None) -> np.ndarray:
    """Each row's mean of x within its level of g (R's ave(x, g)), over the rows used.

    Rows whose x or g is missing get NA; rows outside `used` get their cluster's mean over the used
    rows (NA if the cluster has none) and are dropped anyway."""
    if isinstance(g, Factor):
        codes = g.codes.copy()
    else:
        codes = np.full(len(g), -1, dtype=np.int64)
        ok = ~np.isnan(g)
        codes[ok] = np.unique(g[ok], return_inverse=True)[1].ravel()
    present = (codes >= 0) & ~np.isnan(x)
    counted = present if used is None else present & used
    k = int(codes.max()) + 1 if codes.size and codes.max() >= 0 else 0
    sums = np.bincount(codes[counted], weights=x[counted], minlength=k)
    counts = np.bincount(codes[counted], minlength=k)
    with np.errstate(all="ignore"):
        means = sums / counts
    out = np.full(len(x), np.nan)
    out[present] = means[codes[present]]
    return out


def _scale_parameters(
    x: np.ndarray, center: float | bool | None, scale: float | bool | None
) -> tuple[float | bool | None, float | bool | None]:
    """The numbers scale(x, center, scale) used on the training values (attributes scaled:center ...)."""
    ok = ~np.isnan(x)
    m = int(ok.sum())
    c = center
    if center is True:
        c = float(x[ok].mean()) if m else 0.0
    s = scale
    if scale is True:
        centred = x[ok] - (c if isinstance(c, float) else 0.0)
        s = float(np.sqrt(np.sum(centred**2) / max(1, m - 1)))
    return c, s


_COMPARE = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    ">": np.greater,
    "<=": np.less_equal,
    ">=": np.greater_equal,
}


def _scale(x: np.ndarray, center: float | bool | None = True, scale: float | bool | None = True) -> np.ndarray:
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
    if ok.all():
        values, codes = _sorted_codes(x)
    else:
        codes = np.full(len(x), -1, dtype=np.int64)
        values, codes[ok] = _sorted_codes(x[ok])
    if integer:
        levels = values.astype(np.int64).astype(str).tolist()
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


def drop_unused(f: Factor) -> Factor:
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


def _unknown_column(name: str, frame: Frame, where: str = "formula") -> DataError:
    import difflib

    names = list(frame.columns)
    close = [n for n in names if n.lower() == name.lower()]
    close = close or difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        return DataError(f"unknown column '{name}' in {where}; did you mean '{close[0]}'?")
    return DataError(f"unknown column '{name}' in {where}; the columns are: {', '.join(names)}")


# ------------------------------------------------------------ model matrices


def _n_levels(col: Column) -> int:
    return len(col.levels) if isinstance(col, Factor) else 0


def contrast_codes(spec: ModelSpec, values: dict[str, Column]) -> list[list[int]]:
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
    for term, coding in zip(spec.terms, contrast_codes(spec, values), strict=True):
        block: list[np.ndarray | None] = [None]  # None: the column of ones, never formed
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
            block = [p if b is None else b * p for p in pieces for b in block]
            block_names = [f"{b}:{p}" if b else p for p in piece_names for b in block_names]
        columns.extend(np.ones(n) if b is None else b for b in block)
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
        return gram_clearly_full_rank(X.T @ X)


def gram_clearly_full_rank(G: np.ndarray) -> bool:
    """The same test on X'X: each column keeps over 1e-3 of its norm after the ones before it."""
    with np.errstate(all="ignore"):
        norms = np.sqrt(np.diag(G))
        if not np.all(np.isfinite(G)) or np.any(norms == 0):
            return False
        try:
            R = np.linalg.cholesky(G / np.outer(norms, norms))
        except np.linalg.LinAlgError:
            return False
    return bool(np.all(np.abs(np.diag(R)) > 1e-3))


def scale_warning(X: np.ndarray) -> str | None:
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
        return drop_unused(Factor(col.codes, col.levels)) if col.logical else col
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


def build_design(frame: Frame, formula: Formula, args: ModelArguments | None = None) -> Design:
    """Response, fixed-effects matrix and random-effects terms as lmer builds them."""
    args = args or ModelArguments()
    for name in formula.columns():
        if name not in frame.columns:
            raise _unknown_column(name, frame)
    extra = _argument_columns(frame, args)
    full = {v.label: evaluate(v, frame) for v in formula.variables}
    response = formula.response.label
    y_full = full[response]
    _check_not_empty(formula.response, y_full, frame, response=True)
    if isinstance(y_full, Factor):
        kind = (
            "TRUE/FALSE values"
            if y_full.logical
            else "value labels, so it is a factor as haven::as_factor makes it"
            if y_full.labelled
            else "text"
        )
        raise DataError(f"the response '{response}' is not numeric: its column holds {kind}")
    if y_full.ndim != 1:
        raise DataError(f"the response '{response}' must be one column")

    # na.omit over every variable of the model frame
    complete = np.ones(frame.n_rows, dtype=bool)
    for col in list(full.values()) + list(extra.values()):
        if isinstance(col, Factor):
            complete &= col.codes >= 0
        else:
            complete &= ~np.isnan(col).reshape(len(col), -1).any(axis=1)
    rows = np.flatnonzero(complete)
    n = len(rows)
    if n == 0:
        for v in formula.variables:
            _check_not_empty(v, full[v.label], frame)
        for option, name in (("--weights", args.weights), ("--offset", args.offset)):
            if name is not None and _missing(extra[name]).all():
                raise DataError(f"{option} {name}: the column is missing in every row; no rows are left")
        raise DataError("no rows left after removing rows with missing values in the model's columns")
    for v in formula.variables:
        if _uses_group_means(v.expr):
            # cluster means over the model frame's rows, now that they are known
            full[v.label] = evaluate(v, frame, used=complete)
    nan_message = _nan_rows_message(frame, formula, full, complete, args)
    missing_rows = int((~complete & _missing_in_data(frame, formula, args)).sum())
    values: dict[str, Column] = {}
    every_row = n == frame.n_rows  # no copies of whole columns when no row is dropped
    for label, col in full.items():
        if isinstance(col, Factor):
            values[label] = drop_unused(col if every_row else Factor(col.codes[rows], col.levels, col.logical))
        else:
            values[label] = col if every_row else col[rows]

    terms = _random_terms(formula, frame, values, n)
    check_levels(terms, n)

    X, xnames = model_matrix(formula.fixed, values, n)
    check_finite(values[response], X, xnames, terms, response)
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
    warning = scale_warning(X)
    if warning:
        messages.append(warning)
    if nan_message:
        messages.append(nan_message)
    y = np.asarray(values[response], dtype=float)
    offset = total_offset(formula, values, n)
    if args.offset is not None:
        offset = (0.0 if offset is None else offset) + extra[args.offset][rows]
    if offset is not None:
        if not np.all(np.isfinite(offset)):
            labels = [v.label for v in formula.offsets] + ([args.offset] if args.offset else [])
            raise DataError("NA/NaN/Inf in the offset: " + ", ".join(labels))
    weights = None if args.weights is None else _check_weights(extra[args.weights][rows], args.weights, rows)
    levels = {label: list(col.levels) for label, col in values.items() if isinstance(col, Factor)}
    arg_values = {
        f"({key})": extra[name][rows]
        for key, name in (("weights", args.weights), ("offset", args.offset))
        if name is not None
    }
    return Design(
        y=y if offset is None else y - offset,
        X=X,
        xnames=xnames,
        terms=terms,
        n_obs=n,
        rows=rows,
        response=response,
        messages=messages,
        dropped=dropped,
        offset=offset,
        values=values,
        levels=levels,
        response_values=y,
        weights=weights,
        args=args,
        arg_values=arg_values,
        missing_rows=missing_rows,
    )


def model_frame(
    frame: Frame, formula: Formula, scales: ScaleParameters | None = None
) -> tuple[dict[str, Column], np.ndarray]:
    """Every formula variable evaluated on the whole data, and the complete rows (na.omit), as
    build_design starts (without --weights and --offset columns): for data read in partitions."""
    for name in formula.columns():
        if name not in frame.columns:
            raise _unknown_column(name, frame)
    full = {v.label: evaluate(v, frame, scales=scales) for v in formula.variables}
    response = formula.response.label
    y_full = full[response]
    if isinstance(y_full, Factor) and y_full.logical:
        # a column of NA alone reads as logical: say so rather than call it TRUE/FALSE values
        _check_not_empty(formula.response, y_full, frame, response=True)
    if isinstance(y_full, Factor):
        kind = "TRUE/FALSE values" if y_full.logical else "text"
        raise DataError(f"the response '{response}' is not numeric: its column holds {kind}")
    if y_full.ndim != 1:
        raise DataError(f"the response '{response}' must be one column")
    complete = np.ones(frame.n_rows, dtype=bool)
    for col in full.values():
        if isinstance(col, Factor):
            complete &= col.codes >= 0
        else:
            complete &= ~np.isnan(col).reshape(len(col), -1).any(axis=1)
    return full, complete


def _argument_columns(frame: Frame, args: ModelArguments) -> dict[str, np.ndarray]:
    """The numeric columns --weights and --offset name, on every row of the data."""
    out = {}
    for option, name in (("--weights", args.weights), ("--offset", args.offset)):
        if name is None:
            continue
        if name not in frame.columns:
            raise _unknown_column(name, frame, option)
        col = frame.columns[name]
        if isinstance(col, Factor) and frame.n_rows and _missing(col).all():
            raise DataError(f"{option} {name}: the column is missing in every row")
        if isinstance(col, Factor):
            raise DataError(f"{option} {name}: the column must be numeric")
        out[name] = np.asarray(col, dtype=float)
    return out


def _check_weights(w: np.ndarray, name: str, rows: np.ndarray) -> np.ndarray:
    """lme4 stops at negative weights (mkRespMod: all(weights >= 0)); a zero weight makes its
    criterion infinite (log 0 in the weights' determinant), so it is refused too."""
    for bad, what in ((~np.isfinite(w), "is infinite"), (w < 0, "is negative"), (w == 0, "is zero")):
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            extra = (
                ""
                if what != "is zero"
                else (" (lme4's criterion is infinite with a zero weight; leave such rows out of the data)")
            )
            raise DataError(
                f"--weights {name}: the weight of data row {int(rows[i]) + 1} {what}; weights must be positive{extra}"
            )
    return w


def total_offset(formula: Formula, values: dict[str, Column], n: int) -> np.ndarray | None:
    """The sum of the formula's offset() variables (R adds several), None when there are none."""
    if not formula.offsets:
        return None
    total = np.zeros(n)
    for v in formula.offsets:
        col = values[v.label]
        if isinstance(col, Factor):
            raise DataError(f"{v.label}: an offset must be numeric")
        total = total + np.asarray(col, dtype=float).reshape(n)
    return total


def uses_group_means(node: Node | None) -> bool:
    """Whether an expression holds cwc() or cmean() (they average over the model frame's rows)."""
    return _uses_group_means(node)


def _uses_group_means(node: Node | None) -> bool:
    if isinstance(node, fm.Call):
        return node.fn in GROUP_MEAN_FUNCTIONS or any(_uses_group_means(a) for a in node.args)
    if isinstance(node, fm.Paren):
        return _uses_group_means(node.inner)
    if isinstance(node, fm.Unary):
        return _uses_group_means(node.arg)
    if isinstance(node, fm.Binary):
        return _uses_group_means(node.left) or _uses_group_means(node.right)
    return False


def _check_not_empty(var: Var, col: Column, frame: Frame, response: bool = False) -> None:
    """A variable missing in every row is named, and so is the column that makes it so."""
    if frame.n_rows == 0 or not _missing(col).all():
        return
    empty = [c for c in var.columns() if c in frame.columns and _missing(frame.columns[c]).all()]
    what = "the response " if response else ""
    then = "" if response else "; no rows are left"
    if empty == [var.label]:
        raise DataError(f"{what}column '{var.label}' is missing in every row{then}")
    if empty:
        raise DataError(f"{what}'{var.label}' is missing in every row, as its column '{empty[0]}' is{then}")
    raise DataError(f"{what}'{var.label}' is missing (NA or NaN) in every row{then}")


def _missing(col: Column) -> np.ndarray:
    if isinstance(col, Factor):
        return col.codes < 0
    return np.isnan(col).reshape(len(col), -1).any(axis=1)


def _nan_rows_message(
    frame: Frame, formula: Formula, full: dict[str, Column], complete: np.ndarray, args: ModelArguments
) -> str | None:
    """R warns "NaNs produced" where log(), sqrt() ... of a value outside their domain drop rows; say how
    many rows went that way, beyond those with missing data."""
    produced = ~complete & ~_missing_in_data(frame, formula, args)
    count = int(produced.sum())
    if count == 0:
        return None
    labels = [label for label, col in full.items() if _missing(col)[produced].any()]
    rows = "row" if count == 1 else "rows"
    return f"NaNs produced by {', '.join(labels)}: {count} {rows} dropped"


def _missing_in_data(frame: Frame, formula: Formula, args: ModelArguments) -> np.ndarray:
    """Rows with a missing value in a column the model uses."""
    missing = np.zeros(frame.n_rows, dtype=bool)
    for name in formula.columns() + args.columns():
        missing |= _missing(frame.columns[name])
    return missing


def check_finite(y: Column, X: np.ndarray, xnames: list[str], terms: list[ReTerm], response: str) -> None:
    """lmer stops at infinite values (log(0), 1/0): NaN rows were dropped as missing, Inf rows were not."""

    def bad(M: np.ndarray, names: list[str]) -> str | None:
        with np.errstate(all="ignore"):
            if np.all(np.isfinite(M.sum(axis=0))):  # a sum is finite only when every term is
                return None
        cols = np.flatnonzero(~np.all(np.isfinite(M), axis=0))
        return names[cols[0]] if cols.size else None

    if not np.all(np.isfinite(np.asarray(y, dtype=float))):
        raise DataError(f"NA/NaN/Inf in 'y': the response '{response}' has infinite values")
    col = bad(X, xnames)
    if col is not None:
        # R's own words first, as lFormula stops in qr()
        raise DataError(
            f"NA/NaN/Inf in foreign function call (arg 1): the fixed-effects column '{col}' has infinite values"
        )
    for t in terms:
        col = bad(t.X, t.cnames)
        if col is not None:
            raise DataError(f"NA/NaN/Inf in the random-effects term ({t.label}): '{col}' has infinite values")


def _random_terms(formula: Formula, frame: Frame, values: dict[str, Column], n: int) -> list[ReTerm]:
    """lme4's mkReTrms: one term per bar, sorted by decreasing number of levels."""
    terms: list[ReTerm] = []
    for rt in formula.random:
        for g in rt.group_vars:
            if not isinstance(values[g], Factor) and values[g].ndim != 1:
                raise DataError(f"the grouping factor {g} has several columns; it must be one")
        factors = [_as_factor(values[g], g in frame.int_columns) for g in rt.group_vars]
        group = _interaction(factors)
        X, cnames = model_matrix(rt.lhs, values, n)
        terms.append(ReTerm(rt.group, group.levels, group.codes, X, cnames, rt.label))
    n_levels = np.array([len(t.levels) for t in terms])
    if np.any(np.diff(n_levels) > 0):
        order = np.argsort(n_levels, kind="stable")[::-1]  # rev(order(nl)), as lme4
        terms = [terms[i] for i in order]
    return terms


def check_levels(terms: list[ReTerm], n: int) -> None:
    """lme4's checkNlevels and checkZdims, with lme4's wording."""
    groups: dict[str, int] = {}
    for t in terms:
        groups.setdefault(t.group, len(t.levels))
    if any(k < 2 for k in groups.values()):
        raise DataError("grouping factors must have > 1 sampled level")
    bad = [g for g, k in groups.items() if k >= n]
    if bad:
        raise DataError(
            f"number of levels of each grouping factor must be < number of observations (problems: {', '.join(bad)})"
        )
    for t in terms:
        q = len(t.levels) * t.X.shape[1]
        if n <= q:
            raise DataError(
                f"number of observations (={n}) <= number of random effects (={q}) for term ({t.label}); "
                "the random-effects parameters and the residual variance (or scale parameter) "
                "are probably unidentifiable"
            )
