"""`--family` on fit, ranef and compare: glmer's fits through the library's pipeline, rendered as
lme4 prints them."""

from __future__ import annotations

from enum import Enum
from typing import Any

from mlmcli.cli.app import DataOptions
from mlmcli.cli.common import (
    _deliver,
    _note_ignored,
    _note_missing_rows,
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
    also: list[str] | None = None,
) -> tuple[list[Any], Any]:
    """The glmer fits of `formulas` on DATA, read once, and the frame they were built from (with the
    columns `also` names)."""
    from mlmcli.pipeline import glmer_models

    if source.engine == "dask":
        raise MlmError("--engine dask is not offered with --family yet")
    if nagq < 0:
        raise MlmError(f"--nagq must be 0 or more: {nagq}")
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
        also=also or (),
    )
    _note_missing_rows(models, frame.n_rows)
    return models, frame


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
    no_color: bool = False,
    correlation: bool = False,
) -> None:
    """`mlm fit --family`: lme4's summary of the glmer fit, a terminal table, its JSON, or
    broom.mixed's tidy() as CSV."""
    from mlmcli.render.registry import renderer
    from mlmcli.report import glmer_fit_report

    renderer("glmer_fit", form)  # an unknown format fails before the fit
    if ci is not None:
        raise MlmError("--ci is not offered with --family yet")
    if correlation and form != "table":
        _note_ignored("--correlation", form, "table")
    (model,), _ = glmer_fits(data, [formula], family, link, nagq, source, optimizer, verbose)
    shows_effects = form in ("json", "table")  # the ICC and R² appear in json and table output only
    with _user_errors(formula):
        report = glmer_fit_report(model, effects=shows_effects)
    warnings = report["warnings"]
    _warn(warnings)
    if shows_effects:
        _warn([f"mlm: note: {w}" for w in report["effects_warnings"]])
    _deliver("glmer_fit", form, report, output, inputs, no_color, correlation=correlation)
    _strict_exit(strict, warnings, model)
