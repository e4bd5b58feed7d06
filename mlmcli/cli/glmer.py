"""`mlm fit --family`: glmer's fit through the library's pipeline, rendered as lme4 prints it."""

from __future__ import annotations

import sys
from enum import Enum

from mlmcli.cli.app import DataOptions
from mlmcli.cli.common import _emit, _json, _printable, _strict_exit, _user_errors, _warn
from mlmcli.errors import MlmError

GLMER_FORMATS = ("text", "json")


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
    from mlmcli.render.glmer_text import glmer_summary_output
    from mlmcli.report import glmer_fit_report

    if kind not in GLMER_FORMATS:
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
    if kind == "json":
        _emit(_json(report), output, inputs)
    else:
        printed = glmer_summary_output(_printable(report))
        _emit(printed.out, output, inputs)
        sys.stderr.write(printed.err)
    _strict_exit(strict, warnings, model)
