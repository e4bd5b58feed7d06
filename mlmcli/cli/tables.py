"""table: several models side by side, as a table for a paper (Markdown, LaTeX, HTML, CSV)."""

from __future__ import annotations

import os
import re
import sys
from enum import Enum
from typing import Annotated, Any

import typer

from mlmcli.cli.app import (
    HECK,
    SLEEP,
    SLEEP_MODEL,
    DataArg,
    DataOptions,
    LinkOpt,
    MlOpt,
    NagqOpt,
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
    'mlm table tests/fixtures/glmer/data/cbpp.csv "cbind(incidence, size - incidence) ~ 1 + (1|herd)" '
    '"cbind(incidence, size - incidence) ~ factor(period) + (1|herd)" --family binomial',
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


_CAPTIONED = ("latex", "html", "markdown")
_LABEL = re.compile(r"[A-Za-z0-9:._/-]+")  # a label LaTeX takes as it is


def check_caption(form: str, caption: str | None, label: str | None) -> None:
    """--caption for the formats that have one, --label for LaTeX's, naming that caption."""
    if caption is not None and form not in _CAPTIONED:
        raise MlmError(f"--caption is for --format latex, html or markdown, not {form}")
    if label is None:
        return
    if form != "latex":
        raise MlmError(f"--label is for --format latex, not {form}")
    if caption is None:
        raise MlmError("--label needs --caption: a LaTeX label refers to the caption's table number")
    if not _LABEL.fullmatch(label):
        raise MlmError(f"--label {label!r}: use letters, digits and : . _ / - (such as tab:models)")


FAMILIES = ("gaussian", "binomial", "poisson")


def column_families(family: str | None, n: int) -> list[str]:
    """--family: none (every column lmer's), one family for every formula, or one per formula."""
    if family is None:
        return ["gaussian"] * n
    given = [f.strip() for f in family.split(",")]
    bad = [f for f in given if f not in FAMILIES]
    if bad:
        raise MlmError(f"--family {bad[0]!r}: use {', '.join(FAMILIES)} (comma-separated, one per formula)")
    if len(given) == 1:
        return given * n
    if len(given) != n:
        raise MlmError(f"--family needs one family or {n} (one per formula), got {len(given)}")
    return given


def _fit_columns(
    data: str,
    formulas: list[str],
    families: list[str],
    ml: bool,
    source: DataOptions,
    optimizer: str,
    verbose: bool,
    link: Enum | None,
    nagq: int,
) -> list[Any]:
    """Each formula's fit, in the formulas' order: lmer's for gaussian, glmer's for the others
    (--link and --nagq apply to every glmer column)."""
    from mlmcli.cli.app import Family
    from mlmcli.cli.glmer import glmer_fits

    fits: list[Any] = [None] * len(formulas)
    for fam in dict.fromkeys(families):
        where = [i for i, f in enumerate(families) if f == fam]
        chosen = [formulas[i] for i in where]
        if fam == "gaussian":
            models, _ = _fit_all(data, chosen, ml, source, optimizer, verbose, ddf="Satterthwaite")
        else:
            models, _ = glmer_fits(data, chosen, Family(fam), link, nagq, source, optimizer, verbose)
        for i, m in zip(where, models, strict=True):
            fits[i] = m
    return fits


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
    family: Annotated[
        str | None,
        typer.Option(
            "--family",
            metavar="FAMILY[,FAMILY...]",
            help="Fit glmer models: binomial or poisson for every formula, or one family per formula "
            "(gaussian: lmer) to put linear and generalized models side by side.",
        ),
    ] = None,
    link: LinkOpt = None,
    nagq: NagqOpt = 1,
    caption: Annotated[
        str | None, typer.Option("--caption", help="Caption above the table (latex, html; markdown: pandoc's Table:).")
    ] = None,
    label: Annotated[
        str | None,
        typer.Option("--label", help=r"LaTeX \label of the caption, e.g. tab:models (latex, with --caption)."),
    ] = None,
    rename: Annotated[
        list[str] | None,
        typer.Option(
            "--rename",
            metavar="OLD=NEW",
            help="Rename a term (or grouping factor) in every row that names it; repeat the option for "
            "more (one pair each: terms may hold commas). Two models' terms renamed alike share a row.",
        ),
    ] = None,
    gof: Annotated[
        str | None,
        typer.Option(
            "--gof",
            metavar="KEY[,KEY...]",
            help="The goodness-of-fit rows and their order: n_obs, groups, aic, bic, loglik, icc, "
            "r2_marginal, r2_conditional, rmse (and lr_chisq, lr_df, lr_p with --lr); none for none.",
        ),
    ] = None,
    variance: Annotated[
        bool,
        typer.Option("--variance", help="Random effects as variances and covariances instead of SDs and correlations."),
    ] = False,
    lr: Annotated[
        bool,
        typer.Option(
            "--lr",
            help="Likelihood-ratio test of each model against the one before it (mlm compare's chi-square, "
            "df and p; REML fits refitted by ML, as anova() does).",
        ),
    ] = False,
) -> None:
    """Models side by side for a paper: estimates with SEs and stars, variance components, N, AIC, BIC, ICC, R²."""
    from mlmcli.stats.modeltable import gof_keys, table_report

    labels = model_names(names, len(formulas))
    gof_keys(gof, lr)  # a mistake in --gof before any fitting
    if lr and len(formulas) < 2:
        raise MlmError("--lr needs two models or more: each is tested against the one before it")
    if ci:
        from mlmcli.stats.confint import check_level

        check_level(level)
    inputs = (data,)
    _check_outputs(inputs, output)
    form = table_format(fmt, output)
    check_caption(form, caption, label)
    families = column_families(family, len(formulas))
    if source.engine == "dask" and set(families) != {"gaussian"}:
        # modelsummary's glmer rows include the RMSE of the response residuals, one per row
        raise MlmError(
            "mlm table with --family and --engine dask is not offered (the RMSE needs the rows): fit in memory"
        )
    if source.engine == "dask":
        fits = _fit_on_cluster(data, formulas, ml, "Satterthwaite", optimizer.value, source, residuals=False)
    else:
        fits = _fit_columns(data, formulas, families, ml, source, optimizer.value, verbose, link, nagq)
    with _user_errors():
        report = table_report(fits, labels, level if ci else None, rename=rename, gof=gof, variance=variance, lr=lr)
    warnings = [f"{m['name']}: {w}" for m in report["models"] for w in m["warnings"]]
    _warn(warnings)
    if form != "json":
        _warn([f"mlm: note: {m['name']}: {w}" for m in report["models"] for w in m["effects_warnings"]])
    _deliver("table", form, report, output, inputs, no_color, digits=digits, caption=caption, label=label)
    _strict_exit(strict, warnings, *fits)
