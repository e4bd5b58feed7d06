"""The values of a formula's variables, as R's model.frame evaluates them on the data: columns,
arithmetic and comparisons, log(), poly(), scale(), I(), factor(), relevel(), interaction(), offset(),
and the cluster means cwc() and cmean() (R's ave()).  For new data, scale() and poly() take the
training data's parameters, as R's predvars (makepredictcall) do."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlmcli import formula as fm
from mlmcli.design.checks import pivoted_rank
from mlmcli.design.factors import Column, _logical, _numeric_factor, drop_unused, value_labels
from mlmcli.errors import DataError
from mlmcli.formula import (
    COMPARISONS,
    FACTOR_FUNCTIONS,
    GROUP_MEAN_FUNCTIONS,
    R_CONSTANTS,
    Node,
    Var,
    constant_value,
    literal_values,
    match_arguments,
)
from mlmcli.io.frame import Factor, Frame
from mlmcli.rcompat.rsort import format_number


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
    if node.fn == "cbind":
        return np.column_stack([_numeric(a, ctx) for a in args.values()])
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


def _unknown_column(name: str, frame: Frame, where: str = "formula") -> DataError:
    import difflib

    names = list(frame.columns)
    close = [n for n in names if n.lower() == name.lower()]
    close = close or difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        return DataError(f"unknown column '{name}' in {where}; did you mean '{close[0]}'?")
    return DataError(f"unknown column '{name}' in {where}; the columns are: {', '.join(names)}")


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
