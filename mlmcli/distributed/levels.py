"""Pass 1 over the partitions: the kinds of the columns, the rows the model uses, and the levels of
every factor and grouping factor over the whole data, ordered as the in-memory design orders them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from mlmcli import formula as fm
from mlmcli.design import evaluate, model_frame, scale_calls, uses_group_means
from mlmcli.errors import DataError
from mlmcli.formula import Formula, match_arguments
from mlmcli.io.frame import Factor, Frame, text_note
from mlmcli.io.frame import not_numbers as text_values
from mlmcli.rcompat.rsort import format_number

Value = str | float


@dataclass
class PartSpec:
    """What a worker needs to read one partition as a Frame and evaluate the formula on it."""

    formula: str
    columns: dict[str, str]  # make.names name -> name in the files
    name: str
    csv: bool
    kinds: dict[str, str] | None = None
    weights: str | None = None  # --weights and --offset: columns that join the model frame
    offset: str | None = None
    family: str | None = None  # glmer's: a binomial response may be a factor or cbind(...)


def with_arguments(frame: Frame, spec: PartSpec, complete: np.ndarray) -> np.ndarray:
    """The complete rows once --weights and --offset join the model frame (a missing value drops
    the row, as na.omit does); their columns must be numbers and the weights positive."""
    for option, name in (("weights", spec.weights), ("offset", spec.offset)):
        if name is None:
            continue
        col = frame.columns[name]
        if isinstance(col, Factor):
            raise DataError(f"--{option} {name}: the column must be numeric")
        complete = complete & ~np.isnan(col)
        if option == "weights":
            w = col[complete]
            for bad, what in ((~np.isfinite(w), "is infinite"), (w < 0, "is negative"), (w == 0, "is zero")):
                if bad.any():
                    raise DataError(f"--weights {name}: a weight {what}; weights must be positive")
    return complete


@dataclass
class Scan:
    """Pass 1 on one partition, or on several merged (merge_scans): sets and sums of the partitions'."""

    kinds: list[dict[str, str]]  # per partition, in order
    n_rows: int
    n_complete: int
    produced: int  # rows a transformation's NaN dropped
    produced_labels: list[str]
    column_values: dict[str, object]  # column -> its distinct values on the rows used
    logical_used: dict[str, set[str]]  # logical variable -> the labels used
    group_values: dict[str, np.ndarray]  # numeric grouping variable -> distinct values
    widths: dict[str, int]  # numeric variable -> its number of columns
    combos: dict[int, set[tuple[Value, ...]]]  # interaction term -> its observed combinations
    digests: list[str]  # per partition: of the rows used
    factor_vars: set[str] = field(default_factory=set)  # variables that are (non-logical) factors
    # per scale() call: its arguments, and the count, mean and sum of squared deviations of its values
    scale_specs: dict[str, tuple] = field(default_factory=dict)
    moments: dict[str, tuple[int, float, float]] = field(default_factory=dict)
    # per partition: column -> the values that are not numbers where read.csv made numbers text
    not_numbers: list[dict[str, str]] = field(default_factory=list)


def refuse_unsupported(formula: Formula) -> None:
    """Transformations whose values depend on the whole data's rows at once are not offered."""
    for v in formula.variables:
        bad = _data_dependent(v.expr)
        if bad:
            raise DataError(
                f"{bad}() is not supported with --engine dask (it needs every row at once): "
                f"{v.label}; compute it in the data instead"
            )


def _data_dependent(node: fm.Node | None) -> str | None:
    if node is None:
        return None
    if uses_group_means(node):
        return "cwc/cmean"
    if isinstance(node, fm.Call):
        if node.fn == "scale" and any(_has_scale(a) for a in node.args):
            return "scale of scale"  # one centre and scale per call, computed before the calls inside it
        if node.fn == "poly":
            args = match_arguments(node)
            if not ("raw" in args and fm.constant_value(args["raw"])):
                return "poly"
        for a in node.args:
            found = _data_dependent(a)
            if found:
                return found
    for attr in ("inner", "arg", "left", "right"):
        child = getattr(node, attr, None)
        if isinstance(child, fm.Node):
            found = _data_dependent(child)
            if found:
                return found
    return None


def _has_scale(node: fm.Node) -> bool:
    if isinstance(node, fm.Call) and node.fn == "scale":
        return True
    children = list(node.args) if isinstance(node, fm.Call) else []
    children += [
        c for c in (getattr(node, a, None) for a in ("inner", "arg", "left", "right")) if isinstance(c, fm.Node)
    ]
    return any(_has_scale(c) for c in children)


def frame_of(pdf, spec: PartSpec) -> tuple[Frame, dict[str, str]]:
    from mlmcli.distributed.source import partition_frame

    frame, kinds, _ = partition_frame(pdf, spec.columns, spec.name, spec.csv, spec.kinds)
    return frame, kinds


def scan_partition(pdf, spec: PartSpec) -> Scan:
    """Pass 1 on one partition (runs on a worker)."""
    from mlmcli.formula import parse_formula

    formula = parse_formula(spec.formula)
    frame, kinds = frame_of(pdf, spec)
    not_numbers = {}
    if spec.csv:  # what the in-memory reader notes of a column of numbers read as text
        not_numbers = {c: found for c in frame.columns if (found := text_values(frame.columns[c]))}
    if frame.n_rows == 0:
        return Scan([kinds], 0, 0, 0, [], {}, {}, {}, {}, {}, [""], set(), not_numbers=[not_numbers])
    specs, moments = {}, {}
    for v in formula.variables:
        for key, x, center, scale in scale_calls(v, frame):
            specs[key] = (center, scale)
            moments[key] = _moments(x)
    # scale()'s values are not known yet, but whether they are missing is
    full, complete = model_frame(frame, formula, dict.fromkeys(specs, (False, False)), spec.family)
    extra = [c for c in (spec.weights, spec.offset) if c is not None]
    produced, produced_labels = _produced(frame, formula, full, complete, extra)
    complete = with_arguments(frame, spec, complete)
    column_values: dict[str, object] = {}
    logical_used: dict[str, set[str]] = {}
    widths: dict[str, int] = {}
    group_values: dict[str, np.ndarray] = {}
    factor_vars: set[str] = set()
    groups = {g for rt in formula.random for g in rt.group_vars}
    for v in formula.variables:
        col = full[v.label]
        if isinstance(col, Factor):
            used = col.codes[complete]
            if col.logical:
                logical_used[v.label] = {col.levels[c] for c in np.unique(used)}
            else:
                factor_vars.add(v.label)
                for c in v.columns():
                    column_values[c] = _distinct(frame.columns[c], complete)
        else:
            widths[v.label] = 1 if col.ndim == 1 else col.shape[1]
            if v.label in groups and not np.isnan(col).all():
                group_values[v.label] = np.unique(col[complete])
    combos: dict[int, set[tuple[Value, ...]]] = {}
    for i, rt in enumerate(formula.random):
        if len(rt.group_vars) > 1:
            parts = [_values(full[g], complete) for g in rt.group_vars]
            combos[i] = set(zip(*parts, strict=True))
    digest = hashlib.sha1(np.packbits(complete).tobytes()).hexdigest()
    return Scan(
        [kinds],
        frame.n_rows,
        int(complete.sum()),
        produced,
        produced_labels,
        column_values,
        logical_used,
        group_values,
        widths,
        combos,
        [digest],
        factor_vars,
        specs,
        moments,
        [not_numbers],
    )


def _moments(x: np.ndarray) -> tuple[int, float, float]:
    ok = x[~np.isnan(x)]
    if not ok.size:
        return 0, 0.0, 0.0
    mean = float(ok.mean())
    return int(ok.size), mean, float(np.sum((ok - mean) ** 2))


def _merge_moments(a: tuple[int, float, float], b: tuple[int, float, float]) -> tuple[int, float, float]:
    """Two samples' count, mean and sum of squared deviations as one (Chan, Golub and LeVeque)."""
    (na, ma, sa), (nb, mb, sb) = a, b
    if not na or not nb:
        return a if na else b
    n = na + nb
    delta = mb - ma
    return n, ma + delta * nb / n, sa + sb + delta * delta * na * nb / n


def scale_parameters(specs: dict[str, tuple], moments: dict[str, tuple[int, float, float]]) -> dict[str, tuple]:
    """scale()'s centre and scale per call from the moments of its argument over the whole data, as
    R's scale(x, center, scale) takes them (the root mean square about the centre, n - 1)."""
    out = {}
    for key, (center, scale) in specs.items():
        m, mean, ss = moments[key]
        c = center
        if center is True:
            c = mean if m else 0.0
        s = scale
        if scale is True:
            shift = c if isinstance(c, float) else 0.0
            s = float(np.sqrt((ss + m * (mean - shift) ** 2) / max(1, m - 1)))
            if not s > 0:
                raise DataError(f"{key} divides by a standard deviation of 0: the values do not vary")
        out[key] = (c, s)
    return out


def merge_scans(*scans: Scan) -> Scan:
    """Several partitions' scans as one (a step of the tree reduction): what the client receives grows
    with the number of levels, not of partitions."""
    out = scans[0]
    for s in scans[1:]:
        columns = dict(out.column_values)
        for c, vals in s.column_values.items():
            have = columns.get(c)
            if have is None:
                columns[c] = vals
            elif isinstance(vals, set) or isinstance(have, set):
                columns[c] = (vals if isinstance(vals, set) else set()) | (have if isinstance(have, set) else set())
            else:
                columns[c] = np.union1d(np.asarray(have), np.asarray(vals))
        logical = {
            v: out.logical_used.get(v, set()) | s.logical_used.get(v, set())
            for v in out.logical_used.keys() | s.logical_used.keys()
        }
        groups = dict(out.group_values)
        for g, vals in s.group_values.items():
            groups[g] = vals if g not in groups else np.union1d(groups[g], vals)
        combos = {i: out.combos.get(i, set()) | s.combos.get(i, set()) for i in out.combos.keys() | s.combos.keys()}
        out = Scan(
            out.kinds + s.kinds,
            out.n_rows + s.n_rows,
            out.n_complete + s.n_complete,
            out.produced + s.produced,
            out.produced_labels + [x for x in s.produced_labels if x not in out.produced_labels],
            columns,
            logical,
            groups,
            {**out.widths, **s.widths},
            combos,
            out.digests + s.digests,
            out.factor_vars | s.factor_vars,
            {**out.scale_specs, **s.scale_specs},
            {
                k: _merge_moments(out.moments.get(k, (0, 0.0, 0.0)), s.moments.get(k, (0, 0.0, 0.0)))
                for k in out.moments.keys() | s.moments.keys()
            },
            out.not_numbers + s.not_numbers,
        )
    return out


def _distinct(col: np.ndarray | Factor, rows: np.ndarray) -> object:
    if isinstance(col, Factor):
        return {col.levels[c] for c in np.unique(col.codes[rows]) if c >= 0}
    x = col[rows]
    return np.unique(x[~np.isnan(x)])


def _values(col: np.ndarray | Factor, rows: np.ndarray) -> list[Value]:
    if isinstance(col, Factor):
        return [col.levels[c] for c in col.codes[rows].tolist()]
    return col[rows].tolist()


def _produced(
    frame: Frame, formula: Formula, full: dict, complete: np.ndarray, extra: list[str]
) -> tuple[int, list[str]]:
    """Rows dropped because a transformation gave NaN (not because the data had NA), and by which."""

    def missing(col) -> np.ndarray:
        if isinstance(col, Factor):
            return col.codes < 0
        return np.isnan(col).reshape(len(col), -1).any(axis=1)

    in_data = np.zeros(frame.n_rows, dtype=bool)
    for name in formula.columns() + extra:
        in_data |= missing(frame.columns[name])
    produced = ~complete & ~in_data
    labels = [label for label, col in full.items() if missing(col)[produced].any()] if produced.any() else []
    return int(produced.sum()), labels


@dataclass
class Levels:
    """Pass 1 over all partitions: what every partition's design must agree on."""

    kinds: dict[str, str]
    int_columns: set[str]
    n: int
    messages: list[str]
    factor_levels: dict[str, list[str]]  # Factor-valued variable -> its levels in the model frame
    group_values: dict[str, np.ndarray]  # numeric grouping variable -> sorted distinct values
    term_levels: list[list[str]]  # per random term (formula order): its grouping factor's levels
    term_keys: list[np.ndarray | None]  # per interaction term: sorted mixed-radix keys of its levels
    order: list[int]  # the terms in lme4's order (most levels first)
    widths: dict[str, int]
    digests: list[str] = field(default_factory=list)
    scales: dict[str, tuple] = field(default_factory=dict)  # scale() calls' centre and scale
    # the reader's notes on columns of numbers read as text (the first partition's words), as the
    # in-memory reader gives them
    notes: list[str] = field(default_factory=list)


def combine(formula: Formula, scan: Scan, where: list[str], name: str) -> Levels:
    """The global levels from all partitions' (merged) scan."""
    from mlmcli.distributed.source import agree

    kinds = agree(scan.kinds, where, scan.not_numbers)
    ints = {c for c, k in kinds.items() if k == "integer"}
    n = scan.n_complete
    if n == 0:
        raise DataError("no rows left after removing rows with missing values in the model's columns")
    messages = []
    if scan.produced:
        labels = [v.label for v in formula.variables if v.label in scan.produced_labels]
        messages.append(
            f"NaNs produced by {', '.join(labels)}: {scan.produced} {'row' if scan.produced == 1 else 'rows'} dropped"
        )
    widths = scan.widths
    columns = scan.column_values
    factor_levels: dict[str, list[str]] = {}
    for v in formula.variables:
        if v.label in scan.logical_used:
            used = scan.logical_used[v.label]
            factor_levels[v.label] = (
                ["FALSE", "TRUE"]
                if v.label not in _groups(formula)
                else [lev for lev in ("FALSE", "TRUE") if lev in used]
            )
        elif v.label in scan.factor_vars:
            factor_levels[v.label] = _levels_of(v, columns, kinds, ints, name)
    group_values = scan.group_values
    term_levels: list[list[str]] = []
    term_keys: list[np.ndarray | None] = []
    for i, rt in enumerate(formula.random):
        per_var = [group_levels(g, factor_levels, group_values, ints) for g in rt.group_vars]
        if len(rt.group_vars) == 1:
            term_levels.append(per_var[0])
            term_keys.append(None)
            continue
        combos = scan.combos.get(i, set())
        index = [_value_index(g, per_var[m], group_values) for m, g in enumerate(rt.group_vars)]
        keys = []
        for combo in combos:
            key = 0
            for m, value in enumerate(combo):
                key = key * len(per_var[m]) + index[m](value)
            keys.append(key)
        keys_arr = np.unique(np.array(keys, dtype=np.int64))
        labels = []
        for k in keys_arr.tolist():
            parts = []
            for levs in reversed(per_var):
                k, c = divmod(k, len(levs))
                parts.append(levs[c])
            labels.append(":".join(reversed(parts)))
        term_levels.append(labels)
        term_keys.append(keys_arr)
    n_levels = np.array([len(t) for t in term_levels])
    order = list(range(len(term_levels)))
    if np.any(np.diff(n_levels) > 0):
        order = [int(i) for i in np.argsort(n_levels, kind="stable")[::-1]]  # rev(order(nl)), as lme4
    return Levels(
        kinds,
        ints,
        n,
        messages,
        factor_levels,
        group_values,
        term_levels,
        term_keys,
        order,
        widths,
        scan.digests,
        scale_parameters(scan.scale_specs, scan.moments),
        reader_notes(scan.not_numbers),
    )


def reader_notes(not_numbers: list[dict[str, str]]) -> list[str]:
    """One note per column of numbers read as text, with the values of the first partition that has
    any (the partitions agree that the column is text, or agree() has stopped)."""
    first: dict[str, str] = {}
    for part in not_numbers:
        for c, found in part.items():
            first.setdefault(c, found)
    return [text_note(c, found) for c, found in first.items()]


def _groups(formula: Formula) -> set[str]:
    return {g for rt in formula.random for g in rt.group_vars}


def _levels_of(v: fm.Var, columns: dict[str, object], kinds: dict[str, str], ints: set[str], name: str) -> list[str]:
    """A factor variable's levels: the variable evaluated on the distinct values of its column."""
    if len(v.columns()) != 1:
        raise DataError(f"a factor computed from several columns is not supported with --engine dask: {v.label}")
    c = v.columns()[0]
    vals = columns[c]
    if isinstance(vals, set):
        if kinds.get(c) == "logical":
            codes = np.array(sorted({"FALSE": 0, "TRUE": 1}[x] for x in vals), dtype=np.int64)
            col: np.ndarray | Factor = Factor(codes, ["FALSE", "TRUE"], logical=True)
        else:
            from mlmcli.rcompat.rsort import collation_key

            levels = sorted(vals, key=collation_key)
            col = Factor(np.arange(len(levels), dtype=np.int64), levels)
        m = len(vals)
    else:
        col = np.asarray(vals, dtype=float)
        m = len(col)
    frame = Frame(name, {c: col}, m, {c} & ints)
    f = evaluate(v, frame)
    assert isinstance(f, Factor)
    used = np.zeros(len(f.levels), dtype=bool)
    used[f.codes[f.codes >= 0]] = True
    return [lev for lev, u in zip(f.levels, used, strict=True) if u]


def group_levels(
    g: str, factor_levels: dict[str, list[str]], group_values: dict[str, np.ndarray], ints: set[str]
) -> list[str]:
    """A grouping variable's levels (lme4's makeFac: a factor stays, numbers become factor(x))."""
    if g in factor_levels:
        return factor_levels[g]
    vals = group_values[g]
    if g in ints:
        return [str(int(v)) for v in vals]
    return [format_number(float(v)) for v in vals]


def _value_index(g: str, levels: list[str], group_values: dict[str, np.ndarray]):
    if g in group_values:
        vals = group_values[g]
        return lambda x: int(np.searchsorted(vals, x))
    index = {lev: i for i, lev in enumerate(levels)}
    return lambda x: index[x]
