"""A model fitted on a dask cluster: pass 1 (levels), pass 2 (the blocks of A, tree-reduced), the fit
on the client from the sums, and a pass for the scaled-residual quantiles when the output shows them.
Small data (ROWS_TO_CLIENT) take the in-memory engine's path after pass 1."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlmcli.design import Design, ModelArguments, ReTerm, check_levels, fixed_effects, fixed_effects_of_sums
from mlmcli.distributed.blocks import (
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
from mlmcli.io.frame import no_data_rows, select_columns
from mlmcli.model import FittedModel
from mlmcli.pipeline import fit_design

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
    on_notes: Callable[[list[str]], None] | None = None,
) -> FittedModel:
    """lmer() on the partitions of `source`, fitted by the pipeline's fit_design; `residuals`: also the
    scaled-residual quantiles; `weights` and `offset`: lmer()'s weights = and offset = columns
    (--weights, --offset); `on_notes` hears the reader's notes on the data (numbers read as text)
    after the first pass, as the in-memory pipeline's on_read sees the frame."""
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
    if scans.n_rows == 0:
        raise _no_rows(source)
    levels = combine(formula, scans, where, source.name)
    if on_notes is not None:
        on_notes(levels.notes)
    spec.kinds = levels.kinds
    layout = client.scatter(Layout(spec, levels), broadcast=True, hash=False)
    if levels.n <= ROWS_TO_CLIENT:
        rows = dask.delayed(partition_design, pure=True)
        parts = run(client, [rows(leaf, layout) for leaf in leaves], "rows", progress("rows"))
        design = _design_from_rows(formula, levels, parts, ModelArguments(weights, offset))
        return fit_design(formula, design, reml=reml, data_name=source.name, ddf=ddf, optimizer=optimizer)
    blocks = dask.delayed(partition_blocks, pure=True)
    sums = tree_sum(
        client, [blocks(leaf, layout) for leaf in leaves], sum_blocks, "cross-products", progress("cross-products")
    )
    design = rowless_design(formula, levels, sums.G, sums.binary, ModelArguments(weights, offset))
    structures = [term_structure(t) for t in design.terms]
    cp = crossproducts(sums, structures)
    p = len(design.xnames)
    remote = ClusterRows(sums.G[: p + 1, : p + 1])
    model = fit_design(
        formula,
        design,
        reml=reml,
        data_name=source.name,
        ddf=ddf,
        optimizer=optimizer,
        crossproducts=cp,
        remote=remote,
        theta0=start_theta(sums, structures),
    )
    if residuals:
        from mlmcli.distributed.residuals import scaled_residual_quantiles

        remote.quantiles[id(model)] = scaled_residual_quantiles(client, leaves, layout, model)
    return model


def _no_rows(source: Source) -> DataError:
    """The in-memory reader's error for a file with a header line only, for all of the data's files."""
    if source.kind == "csv" and len(source.files) == 1:
        return no_data_rows(source.files[0])
    what = f"the {len(source.files)} CSV files" if source.kind == "csv" else "the Parquet data"
    return DataError(f"{what} hold no data rows, only {'header lines' if source.kind == 'csv' else 'column names'}")


def check_formula(
    source: Source, formula_text: str, weights: str | None = None, offset: str | None = None
) -> tuple[Formula, list[str]]:
    """The parsed formula and the columns it reads (with --weights and --offset), or the error that
    stops it before any pass."""
    formula = parse_formula(formula_text)
    refuse_unsupported(formula)
    columns = [c for c in formula.columns() if not (c in R_CONSTANTS and c not in source.columns)]
    if source.kind == "csv":  # the in-memory reader's hint at a header line that is one column
        select_columns(list(source.columns.values()), set(columns), source.files[0], source.sep)
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
    fixed = fixed_effects(np.concatenate([d.X for d in parts]), xnames, n)
    raw = np.concatenate([d.y if d.response is None else d.response for d in parts])
    weights = None if parts[0].weights is None else np.concatenate([d.weights for d in parts])
    return Design(
        y=np.concatenate([d.y for d in parts]),
        X=fixed.X,
        xnames=fixed.xnames,
        terms=terms,
        n_obs=n,
        rows=np.array(levels.digests),
        response=formula.response.label,
        messages=fixed.messages + levels.messages,
        dropped=fixed.dropped,
        levels=dict(levels.factor_levels),
        response_values=raw,
        weights=weights,
        args=args,
    )


def rowless_design(
    formula: Formula,
    levels: Levels,
    G: np.ndarray,
    binary: np.ndarray,
    args: ModelArguments,
    glmm: bool = False,
    messages: list[str] | None = None,
) -> Design:
    """The design without its rows: names, levels and the checks the in-memory design makes (lmer's,
    or with `glmm` glmer's), from [1 X]'[1 X] (`G`) and which of X's columns are 0/1."""
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
    check_levels(terms, n, glmm=glmm)
    p = len(xnames)
    checks = fixed_effects_of_sums(G[: p + 1, : p + 1], binary, n)
    return Design(
        y=np.empty(0),
        X=np.empty((0, p)),
        xnames=xnames,
        terms=terms,
        n_obs=n,
        rows=np.array(levels.digests),
        response=formula.response.label,
        messages=checks + levels.messages + (messages or []),
        levels=dict(levels.factor_levels),
        args=args,
    )
