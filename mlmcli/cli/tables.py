"""table: several models side by side, as a table for a paper (Markdown, LaTeX, HTML, CSV)."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from mlmcli.cli.app import (
    HECK,
    SLEEP,
    SLEEP_MODEL,
    DataArg,
    DataOptions,
    MlOpt,
    NoColorOpt,
    Optimizer,
    OptimizerOpt,
    OutputOpt,
    StrictOpt,
    VerboseOpt,
    app,
    check_argument_order,
    examples,
    format_option,
    reads_data,
)
from mlmcli.cli.common import (
    _check_outputs,
    _deliver,
    _fit_all,
    _fit_on_cluster,
    _strict_exit,
    _user_errors,
    _warn,
)
from mlmcli.errors import MlmError

EXAMPLES = examples(
    f'mlm table {HECK} "math ~ ses + (1|schcode)" "math ~ ses*public + (ses|schcode)" -o table.tex',
    f"mlm table {SLEEP} {SLEEP_MODEL} --ci --format markdown",
)

# -o FILE with one of these suffixes picks the format when --format is not given
_BY_SUFFIX = {".md": "markdown", ".tex": "latex", ".html": "html", ".htm": "html", ".csv": "csv", ".json": "json"}


def table_format(fmt: str | None, output: str | None) -> str:
    """--format, else the output file's suffix, else a terminal table on a terminal and Markdown otherwise."""
    if fmt is not None:
        return fmt
    if output is not None and output != "-":
        suffix = os.path.splitext(output)[1].lower()
        if suffix in _BY_SUFFIX:
            return _BY_SUFFIX[suffix]
        return "markdown"
    return "table" if sys.stdout.isatty() else "markdown"


def model_names(names: str | None, n: int) -> list[str]:
    labels = [s.strip() for s in names.split(",")] if names else [f"Model {i + 1}" for i in range(n)]
    if len(labels) != n or len(set(labels)) != n or not all(labels):
        raise MlmError(f"--names needs {n} distinct names, got {names!r}")
    return labels


@app.command(epilog=EXAMPLES)
@reads_data
def table(
    data: DataArg,
    formulas: Annotated[
        list[str],
        typer.Argument(
            help="One or more model formulas, one column each.", metavar="FORMULA...", callback=check_argument_order
        ),
    ],
    names: Annotated[
        str | None, typer.Option("--names", help="Comma-separated column names (default: Model 1, Model 2, ...).")
    ] = None,
    ci: Annotated[
        bool,
        typer.Option("--ci", help="Wald confidence intervals in brackets instead of standard errors in parentheses."),
    ] = False,
    level: Annotated[float, typer.Option("--level", help="Confidence level of --ci.")] = 0.95,
    digits: Annotated[
        int,
        typer.Option(
            "--digits", min=0, max=10, help="Decimals of estimates, SEs, SDs, ICC and R² (AIC, BIC, logLik: 1)."
        ),
    ] = 3,
    fmt: Annotated[
        str | None,
        format_option(
            "table",
            "markdown (default when piped), latex (booktabs), html, csv, json, or table "
            "(default on a terminal); -o FILE.tex/.html/.md/.csv/.json chooses by suffix.",
        ),
    ] = None,
    ml: MlOpt = False,
    source: DataOptions = DataOptions(),
    optimizer: OptimizerOpt = Optimizer.robust,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    strict: StrictOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Models side by side for a paper: estimates with SEs and stars, variance components, N, AIC, BIC, ICC, R²."""
    from mlmcli.stats.modeltable import table_report

    labels = model_names(names, len(formulas))
    if ci:
        from mlmcli.stats.confint import check_level

        check_level(level)
    inputs = (data,)
    _check_outputs(inputs, output)
    form = table_format(fmt, output)
    if source.engine == "dask":
        fits = _fit_on_cluster(data, formulas, ml, "Satterthwaite", optimizer.value, source, residuals=False)
    else:
        fits, _ = _fit_all(data, formulas, ml, source, optimizer.value, verbose, ddf="Satterthwaite")
    with _user_errors():
        report = table_report(fits, labels, level if ci else None)
    warnings = [f"{m['name']}: {w}" for m in report["models"] for w in m["warnings"]]
    _warn(warnings)
    if form != "json":
        _warn([f"mlm: note: {m['name']}: {w}" for m in report["models"] for w in m["effects_warnings"]])
    _deliver("table", form, report, output, inputs, no_color, digits=digits)
    _strict_exit(strict, warnings, *fits)
