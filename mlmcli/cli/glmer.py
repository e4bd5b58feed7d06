"""`--family` on fit, ranef and compare: glmer's fits through the library's pipeline, rendered as
lme4 prints them."""

from __future__ import annotations

from enum import Enum
from typing import Any

from mlmcli.cli.app import DataOptions
from mlmcli.cli.common import (
    _deliver,
    _note_missing_rows,
    _on_cluster,
    _reader_notes,
    _strict_exit,
    _user_errors,
    _warn,
)
from mlmcli.errors import MlmError


def glmer_fits(
    data: str,
    formulas: list[str],
    family: Enum,
    link: Enum | None,
    nagq: int,
    source: DataOptions,
    optimizer: str,
    verbose: bool = False,
) -> tuple[list[Any], Any]:
    """The glmer fits of `formulas` on DATA, read once, and the frame they were built from."""
    from mlmcli.pipeline import glmer_models

    if nagq < 0:
        raise MlmError(f"--nagq must be 0 or more: {nagq}")
    if source.engine == "dask":
        return _glmer_on_cluster(data, formulas, family, link, nagq, source, optimizer), None
    models, frame = glmer_models(
        data,
        formulas,
        family=family.value,
        link=None if link is None else link.value,
        nagq=nagq,
        optimizer=optimizer,
        weights=source.weights,
        offset=source.offset,
        sep=source.sep,
        sheet=source.sheet,
        where=source.where,
        on_read=_reader_notes(verbose),
    )
    _note_missing_rows(models, frame.n_rows)
    return models, frame


def _glmer_on_cluster(
    data: str, formulas: list[str], family: Enum, link: Enum | None, nagq: int, source: DataOptions, optimizer: str
) -> list[Any]:
    """--engine dask: glmer's fits with PIRLS's sums from DATA's partitions on one cluster."""
    from mlmcli.distributed.glmm_fit import check_family, check_nagq_terms
    from mlmcli.formula import parse_formula

    fam, lnk = family.value, None if link is None else link.value
    check_family(fam, lnk, nagq)  # before a cluster is started, as is the number of terms for nAGQ > 1
    for formula in formulas:
        with _user_errors(formula):
            check_nagq_terms(parse_formula(formula), nagq)

    def fit(client: Any, data_source: Any, formula: str, note: Any) -> Any:
        from mlmcli.distributed.glmm_fit import glmer_on_cluster

        return glmer_on_cluster(
            client,
            data_source,
            formula,
            fam,
            link=lnk,
            nagq=nagq,
            optimizer=optimizer,
            weights=source.weights,
            offset=source.offset,
            on_notes=note,
        )

    return _on_cluster(data, formulas, source, fit)


def fit_glmer(
    data: str,
    formula: str,
    family: Enum,
    link: Enum | None,
    nagq: int,
    source: DataOptions,
    optimizer: str,
    form: str,
    output: str | None,
    inputs: tuple[str, ...],
    strict: bool,
    ci: Enum | None,
    verbose: bool = False,
) -> None:
    """`mlm fit --family`: lme4's summary of the glmer fit, or its JSON."""
    from mlmcli.render.registry import formats
    from mlmcli.report import glmer_fit_report

    if form not in formats("glmer_fit"):
        raise MlmError(f"--format {form} is not offered with --family yet: use text or json")
    if ci is not None:
        raise MlmError("--ci is not offered with --family yet")
    (model,), _ = glmer_fits(data, [formula], family, link, nagq, source, optimizer, verbose)
    with _user_errors(formula):
        report = glmer_fit_report(model)
    warnings = report["warnings"]
    _warn(warnings)
    _deliver("glmer_fit", form, report, output, inputs)
    _strict_exit(strict, warnings, model)
