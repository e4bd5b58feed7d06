"""`mlm fit --family`: glmer's fit through the library's pipeline, rendered as lme4 prints it."""

from __future__ import annotations

from enum import Enum

from mlmcli.cli.app import DataOptions
from mlmcli.cli.common import _deliver, _strict_exit, _user_errors, _warn
from mlmcli.errors import MlmError


def fit_glmer(
    data: str,
    formula: str,
    family: str,
    link: Enum | None,
    nagq: int,
    source: DataOptions,
    optimizer: str,
    kind: str,
    output: str | None,
    inputs: tuple[str, ...],
    strict: bool,
    ci: Enum | None,
) -> None:
    from mlmcli.pipeline import glmer
    from mlmcli.render.registry import formats
    from mlmcli.report import glmer_fit_report

    if kind not in formats("glmer_fit"):
        raise MlmError(f"--format {kind} is not offered with --family yet: use text or json")
    if source.engine == "dask":
        raise MlmError("--engine dask is not offered with --family yet")
    if ci is not None:
        raise MlmError("--ci is not offered with --family yet")
    if nagq < 0:
        raise MlmError(f"--nagq must be 0 or more: {nagq}")
    model, _ = glmer(
        data,
        formula,
        family=family,
        link=None if link is None else link.value,
        nagq=nagq,
        optimizer=optimizer,
        weights=source.weights,
        offset=source.offset,
        sep=source.sep,
        sheet=source.sheet,
        where=source.where,
    )
    with _user_errors(formula):
        report = glmer_fit_report(model)
    warnings = report["warnings"]
    _warn(warnings)
    _deliver("glmer_fit", kind, report, output, inputs)
    _strict_exit(strict, warnings, model)
