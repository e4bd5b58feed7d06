"""`--family` on fit, ranef and compare: glmer's fits through the library's pipeline, rendered as
lme4 prints them."""

from __future__ import annotations

from enum import Enum
from typing import Any

from mlmcli.cli.app import DataOptions
from mlmcli.cli.common import (
    _bootstrap_progress,
    _deliver,
    _keep_freed_memory,
    _note_ignored,
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
    also: list[str] | None = None,
) -> tuple[list[Any], Any]:
    """The glmer fits of `formulas` on DATA, read once, and the frame they were built from (with the
    columns `also` names)."""
    from mlmcli.pipeline import glmer_models

    if nagq < 0:
        raise MlmError(f"--nagq must be 0 or more: {nagq}")
    if source.engine == "dask":
        return _glmer_on_cluster(data, formulas, family, link, nagq, source, optimizer), None
    _keep_freed_memory(data)
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
    no_color: bool = False,
    correlation: bool = False,
    level: float = 0.95,
    nsim: int = 1000,
    seed: int | None = None,
) -> None:
    """`mlm fit --family`: lme4's summary of the glmer fit, a terminal table, its JSON, or
    broom.mixed's tidy() as CSV; with --ci, lme4's confint() of the fixed effects beside them (and
    in the CSV the variance parameters' too, where the method gives them)."""
    from mlmcli.render.registry import renderer
    from mlmcli.report import glmer_fit_report

    renderer("glmer_fit", form)  # an unknown format fails before the fit
    method = None if ci is None else str(ci.value)
    spec = _check_ci(method, level, nsim, seed, nagq, form, source)
    if correlation and form != "table":
        _note_ignored("--correlation", form, "table")
    (model,), _ = glmer_fits(data, [formula], family, link, nagq, source, optimizer, verbose)
    shows_effects = form in ("json", "table")  # the ICC and R² appear in json and table output only
    with _user_errors(formula):
        report = glmer_fit_report(model, effects=shows_effects)
    varpar_ci = None
    if method is not None and form != "text":
        from mlmcli.stats.confint import add_fixed_effect_intervals

        with _user_errors(formula), _bootstrap_progress(spec):
            all_ci = add_fixed_effect_intervals(report, model, method, level, spec, variance_parameters=form == "csv")
        varpar_ci = all_ci[: len(all_ci) - model.p]
    warnings = report["warnings"]
    _warn(warnings)
    if spec is not None and form != "text":
        _warn(spec.messages)
        warnings = warnings + [m for m in spec.messages if "failed" in m]
    if shows_effects:
        _warn([f"mlm: note: {w}" for w in report["effects_warnings"]])
    _deliver("glmer_fit", form, report, output, inputs, no_color, correlation=correlation, varpar_ci=varpar_ci)
    _strict_exit(strict, warnings, model)


def _check_ci(
    method: str | None, level: float, nsim: int, seed: int | None, nagq: int, form: str, source: DataOptions
) -> Any:
    """--ci's input, refused before the fit as the lmer fit refuses it; the bootstrap's spec (a
    confint.Bootstrap) for --ci boot, else None."""
    if method is None:
        return None
    from mlmcli.stats.confint import Bootstrap, check_level, check_profile_nagq

    check_level(level)
    spec = Bootstrap(nsim=nsim, seed=seed) if method == "boot" else None
    if form == "text":
        _note_ignored("--ci", form, "json, table and csv")
    if method in ("profile", "boot") and source.engine == "dask":
        # profiles refit with a parameter held, the bootstrap simulates responses: both need the rows
        raise MlmError(f"--ci {method} is not offered with --engine dask; use --ci wald")
    if form != "text":
        check_profile_nagq(method, nagq, "--ci")  # before the fit
    return spec
