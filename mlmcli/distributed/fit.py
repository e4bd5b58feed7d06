"""A model fitted on a dask cluster: pass 1 (levels), pass 2 (the blocks of A, tree-reduced), the fit
on the client from the sums, and a pass for the scaled-residual quantiles when the output shows them.
Small data (ROWS_TO_CLIENT) take the in-memory engine's path after pass 1."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlmcli.design import (
    SCALE_WARNING,
    Design,
    ModelArguments,
    ReTerm,
    check_levels,
    gram_clearly_full_rank,
    pivoted_rank,
    scale_warning,
    scales_differ,
)
from mlmcli.distributed.blocks import (
    BlockSums,
    Layout,
    PartDesign,
    crossproducts,
    names_of,
    partition_blocks,
    partition_design,
    start_theta,
    sum_blocks,
)
from mlmcli.distributed.cluster import run, tree_sum
from mlmcli.distributed.levels import Levels, PartSpec, combine, merge_scans, refuse_unsupported, scan_partition
from mlmcli.distributed.source import Source, read_partitions
from mlmcli.engine.response import DIRECT_PWRSS_ROWS
from mlmcli.engine.terms import term_structure
from mlmcli.errors import DataError
from mlmcli.formula import R_CONSTANTS, Formula, parse_formula
from mlmcli.model import FittedModel, fit_crossproducts, fit_model

# Up to this many rows the design's rows come to the client (a few MB) and the fit is the in-memory
# engine's, which sums the penalized residual from them as lme4 does (engine/response.py): the same
# numbers to the last digit.  Above it everything is computed from the sums.
ROWS_TO_CLIENT = DIRECT_PWRSS_ROWS


@dataclass
class ClusterRows:
    """The rows of a model fitted on the cluster, as the output needs them (model.RemoteRows)."""

    moments: np.ndarray  # [1 X]'[1 X]
    quantiles: dict[int, list[float]] = field(default_factory=dict)  # by id of the model

    def scaled_residual_quantiles(self, model: FittedModel) -> list[float]:
        if id(model) not in self.quantiles:
            raise DataError("the scaled residuals of this model were not computed on the cluster")
        return self.quantiles[id(model)]

    def fixed_moments(self) -> np.ndarray:
        return self.moments


def fit_on_cluster(
    client: Any,
    source: Source,
    formula_text: str,
    reml: bool = True,
    ddf: str = "Satterthwaite",
    optimizer: str = "robust",
    residuals: bool = True,
    on_done: Callable[[str, int], None] | None = None,
    weights: str | None = None,
    offset: str | None = None,
) -> FittedModel:
    """fit_model on the partitions of `source`; `residuals`: also the scaled-residual quantiles;
    `weights` and `offset`: lmer()'s weights = and offset = columns (--weights, --offset)."""
    import dask

    formula, columns = check_formula(source, formula_text, weights, offset)
    leaves = read_partitions(source, columns)
    where = source.files if source.kind == "csv" else [f"partition {i + 1}" for i in range(len(leaves))]

    def progress(label: str) -> Callable[[int], None] | None:
        return None if on_done is None else (lambda k: on_done(label, k))

    spec = PartSpec(
        formula_text,
        {c: source.columns[c] for c in columns},
        source.name,
        source.kind == "csv",
        weights=weights,
        offset=offset,
    )
    scan = dask.delayed(scan_partition, pure=True)
    scans = tree_sum(client, [scan(leaf, spec) for leaf in leaves], merge_scans, "levels", progress("levels"))
    levels = combine(formula, scans, where, source.name)
    spec.kinds = levels.kinds
    layout = client.scatter(Layout(spec, levels), broadcast=True, hash=False)
    if levels.n <= ROWS_TO_CLIENT:
        rows = dask.delayed(partition_design, pure=True)
        parts = run(client, [rows(leaf, layout) for leaf in leaves], "rows", progress("rows"))
        design = _design_from_rows(formula, levels, parts, ModelArguments(weights, offset))
        return fit_model(formula, design, reml, source.name, ddf, optimizer)
    blocks = dask.delayed(partition_blocks, pure=True)
    sums = tree_sum(
        client, [blocks(leaf, layout) for leaf in leaves], sum_blocks, "cross-products", progress("cross-products")
    )
    design = _design(formula, levels, sums, ModelArguments(weights, offset))
    structures = [term_structure(t) for t in design.terms]
    cp = crossproducts(sums, structures)
    p = len(design.xnames)
    remote = ClusterRows(sums.G[: p + 1, : p + 1])
    scale = SCALE_WARNING if SCALE_WARNING in design.messages else None
    model = fit_crossproducts(
        formula, design, cp, scale, reml, source.name, ddf, optimizer, remote, start_theta(sums, structures)
    )
    if residuals:
        from mlmcli.distributed.residuals import scaled_residual_quantiles

        remote.quantiles[id(model)] = scaled_residual_quantiles(client, leaves, layout, model)
    return model


def check_formula(
    source: Source, formula_text: str, weights: str | None = None, offset: str | None = None
) -> tuple[Formula, list[str]]:
    """The parsed formula and the columns it reads (with --weights and --offset), or the error that
    stops it before any pass."""
    formula = parse_formula(formula_text)
    refuse_unsupported(formula)
    columns = [c for c in formula.columns() if not (c in R_CONSTANTS and c not in source.columns)]
    for c in columns:
        if c not in source.columns:
            raise DataError(f"unknown column '{c}' in formula; the columns are: {', '.join(source.columns)}")
    for option, c in (("--weights", weights), ("--offset", offset)):
        if c is not None and c not in source.columns:
            raise DataError(f"unknown column '{c}' for {option}; the columns are: {', '.join(source.columns)}")
        if c is not None and c not in columns:
            columns.append(c)
    return formula, columns


def _design_from_rows(formula: Formula, levels: Levels, parts: list[PartDesign], args: ModelArguments) -> Design:
    """The whole design on the client, as the in-memory engine builds it (small data)."""
    n = levels.n
    xnames, cnames = names_of(formula, levels)
    X = np.concatenate([d.X for d in parts])
    y = np.concatenate([d.y for d in parts])
    terms = [
        ReTerm(
            formula.random[i].group,
            levels.term_levels[i],
            np.concatenate([d.codes[j] for d in parts]),
            np.concatenate([d.Z[j] for d in parts]),
            cn,
            formula.random[i].label,
        )
        for j, (i, cn) in enumerate(zip(levels.order, cnames, strict=True))
    ]
    check_levels(terms, n)
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
    _check_residual_df(X.shape[1], n)
    if scale_warning(X):
        messages.append(SCALE_WARNING)
    messages.extend(levels.messages)
    raw = np.concatenate([d.y if d.response is None else d.response for d in parts])
    weights = None if parts[0].weights is None else np.concatenate([d.weights for d in parts])
    return Design(
        y=y,
        X=X,
        xnames=xnames,
        terms=terms,
        n_obs=n,
        rows=np.array(levels.digests),
        response=formula.response.label,
        messages=messages,
        dropped=dropped,
        levels=dict(levels.factor_levels),
        response_values=raw,
        weights=weights,
        args=args,
    )


def _check_residual_df(p: int, n: int) -> None:
    if p >= n:
        raise DataError(
            f"{p} fixed-effect coefficients for {n} observations: no residual degrees of freedom are "
            "left; remove fixed-effect terms (a factor with one row per level cannot be a fixed effect)"
        )


def _design(formula: Formula, levels: Levels, sums: BlockSums, args: ModelArguments) -> Design:
    """The design without its rows: names, levels and the checks the in-memory design makes."""
    n = levels.n
    xnames, cnames = names_of(formula, levels)
    terms = [
        ReTerm(
            formula.random[i].group,
            levels.term_levels[i],
            np.empty(0, dtype=np.int64),
            np.empty((0, len(cn))),
            cn,
            formula.random[i].label,
        )
        for i, cn in zip(levels.order, cnames, strict=True)
    ]
    check_levels(terms, n)
    p = len(xnames)
    XtX = sums.G[1 : p + 1, 1 : p + 1]
    if p and not gram_clearly_full_rank(XtX):
        raise DataError(
            "the fixed-effect model matrix is rank deficient (or nearly so); --engine dask needs "
            "full rank: remove the redundant fixed-effect terms"
        )
    _check_residual_df(p, n)
    messages = []
    if _scale_warning(sums, p):
        messages.append(SCALE_WARNING)
    messages.extend(levels.messages)
    return Design(
        y=np.empty(0),
        X=np.empty((0, p)),
        xnames=xnames,
        terms=terms,
        n_obs=n,
        rows=np.array(levels.digests),
        response=formula.response.label,
        messages=messages,
        levels=dict(levels.factor_levels),
        args=args,
    )


def _scale_warning(sums, p: int) -> bool:
    """lme4's checkScaleX from the sums: the continuous columns' SDs, checked as the in-memory design checks X."""
    n = sums.n
    cont = [j for j in range(p) if not sums.binary[j]]
    if n < 2 or not cont:
        return False
    s = sums.G[0, 1 : p + 1][cont]
    ss = np.diag(sums.G)[1 : p + 1][cont]
    with np.errstate(all="ignore"):
        sd = np.sqrt(np.maximum(ss - s * s / n, 0.0) / (n - 1))
    return scales_differ(sd)
