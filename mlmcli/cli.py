"""The `mlm` command line: parse options, call the engine, hand the result to a renderer."""

from __future__ import annotations

import os
import sys

# Threaded OpenBLAS is several times slower on the moderate dense blocks of crossed designs (its
# threads contend on a small machine); set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from enum import Enum  # noqa: E402
from typing import Annotated  # noqa: E402

import typer  # noqa: E402

from mlmcli.errors import MlmError

app = typer.Typer(
    name="mlm",
    help="Multilevel (linear mixed-effects) models with lme4's numbers, from the command line.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class Format(str, Enum):
    text = "text"
    table = "table"
    json = "json"


class RanefFormat(str, Enum):
    text = "text"
    table = "table"
    json = "json"
    csv = "csv"


class Ddf(str, Enum):
    satterthwaite = "Satterthwaite"
    none = "none"


DataArg = Annotated[str, typer.Argument(help="CSV file with a header line, or - for standard input.")]
FormulaArg = Annotated[str, typer.Argument(help='lme4 model formula, e.g. "math ~ ses + (ses|schcode)".')]
MlOpt = Annotated[bool, typer.Option("--ml", help="Fit by maximum likelihood instead of REML.")]
OutputOpt = Annotated[str | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")]
NoColorOpt = Annotated[bool, typer.Option("--no-color", help="No colour in tables (also: NO_COLOR).")]
SepOpt = Annotated[str | None, typer.Option("--sep", help="Field separator: , ; | or tab (default: tab for .tsv).")]


def _show_version(value: bool) -> None:
    if value:
        from mlmcli import __version__

        sys.stdout.write(f"mlm {__version__}\n")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_show_version,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Multilevel (linear mixed-effects) models with lme4's numbers, from the command line."""


def _default_format(fmt: Enum | None, output: str | None) -> str:
    """Tables on a terminal, lme4's text otherwise."""
    if fmt is not None:
        return fmt.value
    return "table" if output is None and sys.stdout.isatty() else "text"


def _fit(data: str, formula: str, ml: bool, ddf: str = "Satterthwaite", also: list[str] | None = None,
         sep: str | None = None):
    from mlmcli.design import build_design
    from mlmcli.formula import parse_formula
    from mlmcli.frame import read_csv
    from mlmcli.model import fit_model

    parsed = parse_formula(formula)
    frame = read_csv(data, columns=parsed.columns() + (also or []), sep=sep)  # only these columns are converted
    design = build_design(frame, parsed)
    return fit_model(parsed, design, reml=not ml, data_name=frame.name, ddf=ddf), frame


def _fit_and_warn(data: str, formula: str, ml: bool, also: list[str] | None = None, sep: str | None = None):
    """Fit without Satterthwaite set-up and send lme4's warnings to stderr."""
    model, frame = _fit(data, formula, ml, "none", also, sep)
    _warn(list(dict.fromkeys(model.warnings)))
    return model, frame


def _warn(lines: list[str]) -> None:
    for line in lines:
        sys.stderr.write(line + "\n")


def _emit(text: str, output: str | None) -> None:
    """Write stdout or a whole file (via a temporary file and rename: never half a file)."""
    if output is None or output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from mlmcli.outfile import write_atomic

    write_atomic(output, text.encode())


def _json(obj: dict) -> str:
    import json

    return json.dumps(obj, indent=1, allow_nan=False) + "\n"


def _console(no_color: bool, output: str | None):
    from mlmcli.render.table import make_console

    return make_console(no_color=no_color or bool(os.environ.get("NO_COLOR")))


@app.command()
def fit(
    data: DataArg,
    formula: FormulaArg,
    ml: MlOpt = False,
    sep: SepOpt = None,
    fmt: Annotated[Format | None, typer.Option("--format", "-f", help="text (lme4's summary), table, json.")] = None,
    ddf: Annotated[Ddf, typer.Option("--ddf", help="Denominator df: Satterthwaite, or none.")] = Ddf.satterthwaite,
    correlation: Annotated[bool, typer.Option("--correlation", help="Show fixed-effect correlations.")] = False,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
) -> None:
    """Fit a linear mixed model and print lme4's summary (estimates, SEs, Satterthwaite df, p-values)."""
    from mlmcli.report import fit_report

    model, _ = _fit(data, formula, ml, ddf.value, sep=sep)
    report = fit_report(model)
    _warn(report["warnings"] + report.get("lmerTest_messages", []))
    kind = _default_format(fmt, output)
    if kind == "json":
        _emit(_json(report), output)
    elif kind == "text":
        from mlmcli.render.text import fit_summary_output

        printed = fit_summary_output(report)
        _emit(printed.out, output)
        sys.stderr.write(printed.err)
    else:
        from mlmcli.render.table import print_fit

        print_fit(_console(no_color, output), report, correlation=correlation)


@app.command()
def tau(
    data: DataArg,
    formula: FormulaArg,
    ml: MlOpt = False,
    sep: SepOpt = None,
    fmt: Annotated[Format | None, typer.Option("--format", "-f", help="text (Matrix::bdiag), table, json.")] = None,
    corr: Annotated[bool, typer.Option("--corr", help="Show the correlation matrix alone.")] = False,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
) -> None:
    """The Tau matrix: each grouping factor's random-effects covariance, and the residual variance."""
    from mlmcli.report import tau_report

    model, _ = _fit_and_warn(data, formula, ml, sep=sep)
    report = tau_report(model)
    kind = _default_format(fmt, output)
    if kind == "json":
        _emit(_json(report), output)
    elif kind == "text":
        from mlmcli.render.text import tau_text

        _emit(tau_text(report), output)
    else:
        from mlmcli.render.table import print_tau

        print_tau(_console(no_color, output), report, corr_only=corr)


@app.command()
def ranef(
    data: DataArg,
    formula: FormulaArg,
    ml: MlOpt = False,
    sep: SepOpt = None,
    fmt: Annotated[RanefFormat | None, typer.Option("--format", "-f", help="table, csv, json, text.")] = None,
    head: Annotated[int | None, typer.Option("--head", help="Show the first N levels of each factor.")] = None,
    wide: Annotated[bool, typer.Option("--wide", help="One row per level (as ranef(fit)$g prints).")] = False,
    with_coef: Annotated[bool, typer.Option("--with-coef", help="Add coef(fit): fixed + random.")] = False,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
) -> None:
    """Conditional modes (Empirical Bayes estimates) of the random effects with conditional SDs."""
    from mlmcli.report import ranef_report

    model, _ = _fit_and_warn(data, formula, ml, sep=sep)
    report = ranef_report(model, with_coef=with_coef)
    kind = _default_format(fmt, output)
    if kind == "json":
        _emit(_json(report), output)
    elif kind == "csv":
        from mlmcli.render.csvout import ranef_csv

        _emit(ranef_csv(report, wide=wide, with_coef=with_coef), output)
    elif kind == "text":
        from mlmcli.render.csvout import ranef_text

        _emit(ranef_text(report, head=head, with_coef=with_coef), output)
    else:
        from mlmcli.render.table import print_ranef

        print_ranef(_console(no_color, output), report, head=head, wide=wide,
                    coef=report.get("coef") if with_coef else None)


@app.command()
def compare(
    data: DataArg,
    formulas: Annotated[list[str], typer.Argument(help="Two or more model formulas.")],
    ml: MlOpt = False,
    sep: SepOpt = None,
    fmt: Annotated[Format | None, typer.Option("--format", "-f", help="text (lme4's anova), table, json.")] = None,
    names: Annotated[str | None, typer.Option("--names", help="Comma-separated model names.")] = None,
    variance_reduction: Annotated[bool, typer.Option(
        "--variance-reduction", help="Proportion of variance reduced at level 1 and 2, and the ICC.")] = False,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
) -> None:
    """Likelihood-ratio tests of nested models (lme4's anova), refitting REML fits by ML."""
    from mlmcli.compare import REFIT_MESSAGE, compare_report
    from mlmcli.compare import compare as run_compare
    from mlmcli.compare import variance_reduction as reduction
    from mlmcli.design import build_design
    from mlmcli.formula import parse_formula
    from mlmcli.frame import read_csv
    from mlmcli.model import fit_model

    if len(formulas) < 2:
        raise MlmError("compare needs at least two formulas")
    labels = [s.strip() for s in names.split(",")] if names else [f"m{i + 1}" for i in range(len(formulas))]
    if len(labels) != len(formulas) or len(set(labels)) != len(labels):
        raise MlmError(f"--names needs {len(formulas)} distinct names, got {names!r}")
    models = [parse_formula(f) for f in formulas]
    frame = read_csv(data, columns=[c for parsed in models for c in parsed.columns()], sep=sep)
    fits = []
    for parsed in models:
        fits.append(fit_model(parsed, build_design(frame, parsed), reml=not ml, data_name=frame.name,
                              ddf="none"))
    cmp = run_compare(fits, labels)
    if cmp.refit_ml:
        _warn([REFIT_MESSAGE])
    report = compare_report(cmp)
    vr = reduction(fits[0], list(zip(labels[1:], fits[1:], strict=True))) if variance_reduction else None
    if vr is not None:
        report["variance_reduction"] = vr
    kind = _default_format(fmt, output)
    if kind == "json":
        _emit(_json(report), output)
    elif kind == "text":
        from mlmcli.render.text import anova_text

        text = anova_text(report)
        if vr is not None:
            from mlmcli.render.csvout import variance_reduction_text

            text += variance_reduction_text(vr)
        _emit(text, output)
    else:
        from mlmcli.render.table import print_compare

        print_compare(_console(no_color, output), report, variance_reduction=vr)


class PlotKind(str, Enum):
    ranef = "ranef"
    caterpillar = "caterpillar"
    spaghetti = "spaghetti"
    fitted = "fitted"
    residuals = "residuals"


@app.command()
def plot(
    data: DataArg,
    formula: FormulaArg,
    kind: Annotated[PlotKind, typer.Option("--kind", "-k", help="What to draw.")] = PlotKind.ranef,
    output: Annotated[str, typer.Option("--output", "-o", help="Image file: .png, .svg or .pdf.")] = "mlm-plot.png",
    ml: MlOpt = False,
    sep: SepOpt = None,
    x: Annotated[str | None, typer.Option("--x", help="Term or variable on the x axis.")] = None,
    y: Annotated[str | None, typer.Option("--y", help="Term on the y axis (ranef plot).")] = None,
    group: Annotated[str | None, typer.Option("--group", help="Grouping factor (default: the first).")] = None,
    where: Annotated[str | None, typer.Option("--where", help='Keep rows, e.g. "schcode <= 10".')] = None,
    by: Annotated[str | None, typer.Option("--by", help="Split fitted lines by a level-2 variable.")] = None,
    dpi: Annotated[int, typer.Option("--dpi", min=20, max=1200)] = 100,
    width: Annotated[float, typer.Option("--width", min=1.0, max=100.0, help="Inches.")] = 8.0,
    height: Annotated[float, typer.Option("--height", min=1.0, max=100.0, help="Inches.")] = 6.0,
    title: Annotated[str | None, typer.Option("--title")] = None,
    data_out: Annotated[str | None, typer.Option("--data-out", help="Also write the plotted numbers (CSV).")] = None,
    fmt: Annotated[str | None, typer.Option("--format", "-f", help="json: print the plotted numbers.")] = None,
) -> None:
    """Draw a multilevel analyst's pictures (EB intercepts vs slopes, caterpillar, spaghetti...) as PNG."""
    from mlmcli.render.plots import PlotOptions, draw, image_format

    image_format(output)  # refuse an unknown extension before fitting
    model, frame = _fit_and_warn(data, formula, ml, [c for c in (x, by) if c] + _where_columns(where), sep)
    opts = PlotOptions(kind=kind.value, output=output, x=x, y=y, group=group, where=where, by=by, dpi=dpi,
                       width=width, height=height, title=title, data_out=data_out)
    plotted = draw(model, frame, opts)
    if fmt == "json":
        _emit(_json(plotted), None)
    elif fmt is not None:
        raise MlmError(f"--format for plot must be json, got {fmt!r}")


def _where_columns(where: str | None) -> list[str]:
    """The columns a --where expression names (none if it does not parse: that error comes later)."""
    from mlmcli.where import columns_used, parse_where

    try:
        return columns_used(parse_where(where)) if where else []
    except MlmError:
        return []


def _click_exceptions():
    """typer vendors click from 0.2x on; earlier releases use the click package."""
    try:
        from typer._click import exceptions
    except ImportError:  # pragma: no cover - older typer
        from click import exceptions
    return exceptions


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    exc = _click_exceptions()
    try:
        app(standalone_mode=False)
    except MlmError as e:
        sys.stderr.write(f"mlm: error: {e}\n")
        sys.exit(2)
    except exc.NoArgsIsHelpError as e:
        sys.stdout.write(e.ctx.get_help() + "\n")
        sys.exit(0)
    except exc.UsageError as e:
        sys.stderr.write(f"mlm: error: {e.format_message()}\n")
        sys.exit(2)
    except exc.ClickException as e:
        sys.stderr.write(f"mlm: error: {e.format_message()}\n")
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.stderr.write("mlm: aborted\n")
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        sys.stderr.write(f"mlm: internal error: {type(e).__name__}: {e}\n")
        sys.exit(1)
