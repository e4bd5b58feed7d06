"""The `mlm` command line: parse options, call the engine, hand the result to a renderer.

Exit codes: 0 ok, 1 internal error (a bug), 2 bad input or usage, 3 warnings under --strict,
130 interrupted, 143 terminated.
"""

from __future__ import annotations

import os
import sys

# Threaded OpenBLAS is several times slower on the moderate dense blocks of crossed designs (its
# threads contend on a small machine); set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from enum import Enum  # noqa: E402
from typing import Annotated, Any  # noqa: E402

import typer  # noqa: E402

from mlmcli.errors import DataError, FormulaError, MlmError  # noqa: E402

EXIT_OK, EXIT_BUG, EXIT_USAGE, EXIT_STRICT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

HELP = """Multilevel (linear mixed-effects) models with lme4's numbers, from the command line.

Exit status: 0 ok, 1 internal error (a bug), 2 bad input or usage, 3 warnings under --strict,
130 interrupted, 143 terminated."""

app = typer.Typer(
    name="mlm",
    help=HELP,
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # rich help renders [required] and [default: ...] without the stray backslashes that typer's
    # plain mode leaves when rich is installed
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
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


class CiMethod(str, Enum):
    wald = "wald"
    profile = "profile"


class Optimizer(str, Enum):
    robust = "robust"
    lme4 = "lme4"


class SchemaName(str, Enum):
    fit = "fit"
    tau = "tau"
    ranef = "ranef"
    compare = "compare"
    predict = "predict"
    augment = "augment"
    confint = "confint"
    anova = "anova"
    ranova = "ranova"


class RowsFormat(str, Enum):
    csv = "csv"
    json = "json"


class ReForm(str, Enum):
    all = "all"
    none = "none"


DATA_HELP = ("CSV file with a header line (.csv, or compressed .csv.gz/.bz2/.xz), or - for standard input. "
             "Text columns are factors; NA or an empty field is a missing value.")
FORMULA_HELP = ('lme4 model formula in quotes, e.g. "math ~ ses + (ses|schcode)": fixed effects left of the '
                "first (, random terms as (terms | group); see man mlm for the grammar.")
DataArg = Annotated[str, typer.Argument(help=DATA_HELP, metavar="DATA")]
FormulaArg = Annotated[str, typer.Argument(help=FORMULA_HELP, metavar="FORMULA")]
MlOpt = Annotated[bool, typer.Option("--ml", help="Fit by maximum likelihood instead of REML.")]
OutputOpt = Annotated[str | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")]
NoColorOpt = Annotated[bool, typer.Option("--no-color", help="No colour in tables (also: NO_COLOR).")]
StrictOpt = Annotated[bool, typer.Option(
    "--strict", help="Exit with status 3 when the fit warns (singular, not converged, columns or rows "
    "dropped), after writing the output.")]
OptimizerOpt = Annotated[Optimizer, typer.Option(
    "--optimizer", help="robust (default): refine an end point that fails lme4's convergence checks; "
    "lme4: stop where lme4's BOBYQA stops.")]
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
    """Options before any command."""


def _default_format(fmt: Enum | None, output: str | None) -> str:
    """Tables on a terminal, lme4's text otherwise."""
    if fmt is not None:
        return fmt.value
    return "table" if output is None and sys.stdout.isatty() else "text"


# ------------------------------------------------------------ fitting


@contextmanager
def _user_errors(formula: str = "") -> Iterator[None]:
    """Failures a model or formula (not a bug) causes, as one plain line each."""
    import numpy as np

    try:
        yield
    except RecursionError:
        raise FormulaError(f"the formula is nested too deeply or has too many terms to process "
                           f"({len(formula)} characters)") from None
    except (ZeroDivisionError, FloatingPointError, np.linalg.LinAlgError) as e:
        raise DataError(f"the model cannot be fitted: the computation broke down numerically ({e}); "
                        "check for predictors on extreme scales or nearly collinear terms") from None


def _check_finite(model: Any) -> None:
    """Non-finite estimates are no result: lme4 stops with an error where these arise."""
    import numpy as np

    parts = {"fixed effects": model.beta, "standard errors": model.std_errors, "sigma": [model.sigma],
             "criterion": [model.criterion], "theta": model.theta}
    bad = [name for name, v in parts.items() if not np.all(np.isfinite(np.asarray(v, dtype=float)))]
    if bad:
        X = np.asarray(model.design.X, dtype=float)
        big = float(np.max(np.abs(X))) if X.size else 0.0
        hint = f"; the largest predictor value is {big:.3g}: rescale it" if big > 1e8 else ""
        raise DataError(f"the fit gave non-finite results ({', '.join(bad)}){hint}")


def _fit(data: str, formula: str, ml: bool, ddf: str = "Satterthwaite", also: list[str] | None = None,
         sep: str | None = None, optimizer: str = "robust"):
    from mlmcli.design import build_design
    from mlmcli.formula import parse_formula
    from mlmcli.frame import read_csv
    from mlmcli.model import fit_model

    with _user_errors(formula):
        parsed = parse_formula(formula)
        frame = read_csv(data, columns=parsed.columns() + (also or []), sep=sep)  # only these are converted
        design = build_design(frame, parsed)
        model = fit_model(parsed, design, reml=not ml, data_name=frame.name, ddf=ddf, optimizer=optimizer)
    _check_finite(model)
    return model, frame


def _fit_and_warn(data: str, formula: str, ml: bool, also: list[str] | None = None, sep: str | None = None,
                  optimizer: str = "robust"):
    """Fit without Satterthwaite set-up and send lme4's warnings to stderr."""
    model, frame = _fit(data, formula, ml, "none", also, sep, optimizer)
    _warn(list(dict.fromkeys(model.warnings)))
    return model, frame


def _warn(lines: list[str]) -> None:
    for line in lines:
        sys.stderr.write(line + "\n")


def _deliver(kind: str, report: dict, output: str | None, inputs: tuple[str, ...], no_color: bool,
             text: str, table: str, **table_options: Any) -> None:
    """A report as JSON, as R's printed text or as a table; the renderers ("module:function", imported
    only when chosen) see its printable form."""
    if kind == "json":
        _emit(_json(report), output, inputs)
        return
    from importlib import import_module

    module, name = (text if kind == "text" else table).split(":")
    render = getattr(import_module(module), name)
    if kind == "text":
        _emit(render(_printable(report)), output, inputs)
    else:
        _table(lambda c: render(c, _printable(report), **table_options), output, no_color, inputs)


def _strict_exit(strict: bool, warnings: list[str]) -> None:
    """--strict: a CI job fails (exit 3) on a doubtful fit; the output is written first."""
    if strict and warnings:
        raise typer.Exit(EXIT_STRICT)


def _note_ignored(option: str, kind: str, applies_to: str) -> None:
    sys.stderr.write(f"mlm: note: {option} applies to {applies_to} output; ignored with --format {kind}\n")


# ------------------------------------------------------------ output


def _emit(text: str, output: str | None, inputs: tuple[str, ...] = ()) -> None:
    """Write stdout or a whole file (via a temporary file and rename: never half a file)."""
    if output is None or output == "-":
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_stdout()  # the reader (head, less) has seen enough: not a failure
        return
    from mlmcli.outfile import write_output

    write_output(output, text.encode(), inputs)


def _json(obj: dict) -> str:
    import json

    return json.dumps(obj, indent=1, allow_nan=False) + "\n"


def _table(draw: Callable[[Any], None], output: str | None, no_color: bool, inputs: tuple[str, ...]) -> None:
    """Rich tables, rendered whole into a string and then written like any other output.

    Rendering first means a closed pipe (`| head -1`) is handled as for text, and `-o FILE` gets the table.
    """
    import io

    from mlmcli.render.table import make_console

    tty = (output is None or output == "-") and sys.stdout.isatty()
    plain = no_color or bool(os.environ.get("NO_COLOR")) or not tty
    buf = io.StringIO()
    draw(make_console(no_color=plain, width=_table_width(), file=buf, force_terminal=True if tty else None))
    _emit(buf.getvalue(), output, inputs)


# narrower than this, rich would cut numbers short (`-3…`); a wider table wraps in the terminal instead
MIN_TABLE_WIDTH = 60


def _table_width() -> int:
    from shutil import get_terminal_size

    return max(get_terminal_size((80, 24)).columns, MIN_TABLE_WIDTH)


def _printable(report: dict) -> dict:
    """Levels with newlines or tabs escaped as R prints them, for text and table output."""
    from mlmcli.render.escape import escape_strings

    return escape_strings(report)


def _check_outputs(inputs: tuple[str, ...], *outputs: str | None) -> None:
    """Before fitting: an output must not overwrite an input, and its folder must exist."""
    from mlmcli.outfile import check_output

    for out in outputs:
        if out is not None:
            check_output(out, inputs)


# ------------------------------------------------------------ commands


@app.command()
def fit(
    data: DataArg,
    formula: FormulaArg,
    ml: MlOpt = False,
    sep: SepOpt = None,
    optimizer: OptimizerOpt = Optimizer.robust,
    fmt: Annotated[Format | None, typer.Option("--format", "-f", help="text (lme4's summary), table, json.")] = None,
    ddf: Annotated[Ddf, typer.Option("--ddf", help="Denominator df: Satterthwaite, or none.")] = Ddf.satterthwaite,
    correlation: Annotated[bool, typer.Option(
        "--correlation", help="Show fixed-effect correlations in the table (text and json always have them).")
    ] = False,
    ci: Annotated[CiMethod | None, typer.Option(
        "--ci", help="Add confidence intervals of the fixed effects (conf_low, conf_high) to json and "
        "table output: wald or profile.")] = None,
    level: Annotated[float, typer.Option("--level", help="Confidence level of --ci.")] = 0.95,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    strict: StrictOpt = False,
) -> None:
    """Fit a linear mixed model and print lme4's summary (estimates, SEs, Satterthwaite df, p-values)."""
    from mlmcli.report import fit_report

    inputs = (data,)
    _check_outputs(inputs, output)
    kind = _default_format(fmt, output)
    if correlation and kind != "table":
        _note_ignored("--correlation", kind, "table")
    if ci is not None:
        from mlmcli.confint import check_level

        check_level(level)
        if kind == "text":
            _note_ignored("--ci", kind, "json and table")
    model, _ = _fit(data, formula, ml, ddf.value, sep=sep, optimizer=optimizer.value)
    report = fit_report(model)
    if ci is not None and kind != "text":
        from mlmcli.confint import add_fixed_effect_intervals

        with _user_errors(formula):
            add_fixed_effect_intervals(report, model, ci.value, level)
    warnings = report["warnings"] + report.get("lmerTest_messages", [])
    _warn(warnings)
    if kind != "text":  # the ICC and R² appear in json and table output only
        _warn([f"mlm: note: {w}" for w in report.get("effects_warnings", [])])
    if kind == "json":
        _emit(_json(report), output, inputs)
    elif kind == "text":
        from mlmcli.render.text import fit_summary_output

        printed = fit_summary_output(_printable(report))
        _emit(printed.out, output, inputs)
        sys.stderr.write(printed.err)
    else:
        from mlmcli.render.table import print_fit

        _table(lambda c: print_fit(c, _printable(report), correlation=correlation), output, no_color, inputs)
    _strict_exit(strict, warnings)


@app.command()
def tau(
    data: DataArg,
    formula: FormulaArg,
    ml: MlOpt = False,
    sep: SepOpt = None,
    optimizer: OptimizerOpt = Optimizer.robust,
    fmt: Annotated[Format | None, typer.Option("--format", "-f", help="text (Matrix::bdiag), table, json.")] = None,
    corr: Annotated[bool, typer.Option("--corr", help="Show the correlation matrix alone (table).")] = False,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    strict: StrictOpt = False,
) -> None:
    """The Tau matrix: each grouping factor's random-effects covariance, and the residual variance."""
    from mlmcli.report import tau_report

    inputs = (data,)
    _check_outputs(inputs, output)
    kind = _default_format(fmt, output)
    if corr and kind != "table":
        _note_ignored("--corr", kind, "table")
    model, _ = _fit_and_warn(data, formula, ml, sep=sep, optimizer=optimizer.value)
    report = tau_report(model)
    _deliver(kind, report, output, inputs, no_color, "mlmcli.render.text:tau_text", "mlmcli.render.table:print_tau",
             corr_only=corr)
    _strict_exit(strict, model.warnings)


@app.command()
def ranef(
    data: DataArg,
    formula: FormulaArg,
    ml: MlOpt = False,
    sep: SepOpt = None,
    optimizer: OptimizerOpt = Optimizer.robust,
    fmt: Annotated[RanefFormat | None, typer.Option("--format", "-f", help="table, csv, json, text.")] = None,
    head: Annotated[int | None, typer.Option(
        "--head", min=1, help="Show the first N levels of each factor (table and text).")] = None,
    wide: Annotated[bool, typer.Option("--wide", help="One row per level, as ranef(fit)$g prints (table, csv).")
                    ] = False,
    with_coef: Annotated[bool, typer.Option("--with-coef", help="Add coef(fit): fixed + random.")] = False,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    strict: StrictOpt = False,
) -> None:
    """Conditional modes (Empirical Bayes estimates) of the random effects with conditional SDs."""
    from mlmcli.report import ranef_report

    inputs = (data,)
    _check_outputs(inputs, output)
    kind = _default_format(fmt, output)
    if head is not None and kind not in ("table", "text"):
        _note_ignored("--head", kind, "table and text")
    if wide and kind not in ("table", "csv"):
        _note_ignored("--wide", kind, "table and csv")
    model, _ = _fit_and_warn(data, formula, ml, sep=sep, optimizer=optimizer.value)
    report = ranef_report(model, with_coef=with_coef)
    if kind == "json":
        _emit(_json(report), output, inputs)
    elif kind == "csv":
        from mlmcli.render.csvout import ranef_csv

        _emit(ranef_csv(report, wide=wide, with_coef=with_coef), output, inputs)
    elif kind == "text":
        from mlmcli.render.ranef_text import ranef_text

        _emit(ranef_text(_printable(report), head=head), output, inputs)
    else:
        from mlmcli.render.table import print_ranef

        shown = _printable(report)
        _table(lambda c: print_ranef(c, shown, head=head, wide=wide, coef=shown.get("coef") if with_coef else None),
               output, no_color, inputs)
    _strict_exit(strict, model.warnings)


@app.command()
def compare(
    data: DataArg,
    formulas: Annotated[list[str], typer.Argument(help="Two or more model formulas.", metavar="FORMULA...")],
    ml: MlOpt = False,
    sep: SepOpt = None,
    optimizer: OptimizerOpt = Optimizer.robust,
    fmt: Annotated[Format | None, typer.Option("--format", "-f", help="text (lme4's anova), table, json.")] = None,
    names: Annotated[str | None, typer.Option("--names", help="Comma-separated model names.")] = None,
    variance_reduction: Annotated[bool, typer.Option(
        "--variance-reduction", help="Proportion of variance reduced at level 1 and 2, and the ICC.")] = False,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    strict: StrictOpt = False,
) -> None:
    """Likelihood-ratio tests of nested models (lme4's anova), refitting REML fits by ML."""
    from mlmcli.compare import REFIT_MESSAGE, compare_report
    from mlmcli.compare import compare as run_compare
    from mlmcli.compare import variance_reduction as reduction
    from mlmcli.design import build_design
    from mlmcli.formula import parse_formula
    from mlmcli.frame import read_csv
    from mlmcli.model import fit_model
    from mlmcli.report import SCHEMA_VERSION

    if len(formulas) < 2:
        raise MlmError("compare needs at least two formulas")
    labels = [s.strip() for s in names.split(",")] if names else [f"m{i + 1}" for i in range(len(formulas))]
    if len(labels) != len(formulas) or len(set(labels)) != len(labels):
        raise MlmError(f"--names needs {len(formulas)} distinct names, got {names!r}")
    inputs = (data,)
    _check_outputs(inputs, output)
    kind = _default_format(fmt, output)
    with _user_errors(formulas[0]):
        models = [parse_formula(f) for f in formulas]
        frame = read_csv(data, columns=[c for parsed in models for c in parsed.columns()], sep=sep)
    fits = []
    for f, parsed in zip(formulas, models, strict=True):
        with _user_errors(f):
            fits.append(fit_model(parsed, build_design(frame, parsed), reml=not ml, data_name=frame.name,
                                  ddf="none", optimizer=optimizer.value))
        _check_finite(fits[-1])
    warnings = list(dict.fromkeys(w for m in fits for w in m.warnings))
    _warn(warnings)
    with _user_errors():
        cmp = run_compare(fits, labels)
    if cmp.refit_ml:
        _warn([REFIT_MESSAGE])
    report = {"schema_version": SCHEMA_VERSION, **compare_report(cmp)}
    vr = reduction(fits[0], list(zip(labels[1:], fits[1:], strict=True))) if variance_reduction else None
    if vr is not None:
        report["variance_reduction"] = vr
    if kind == "json":
        _emit(_json(report), output, inputs)
    elif kind == "text":
        from mlmcli.render.text import anova_text

        text = anova_text(_printable(report))
        if vr is not None:
            from mlmcli.render.csvout import variance_reduction_text

            text += variance_reduction_text(_printable(vr))
        _emit(text, output, inputs)
    else:
        from mlmcli.render.table import print_compare

        _table(lambda c: print_compare(c, _printable(report), variance_reduction=_printable(vr) if vr else None),
               output, no_color, inputs)
    _strict_exit(strict, warnings)


@app.command()
def predict(
    data: DataArg,
    formula: FormulaArg,
    newdata: Annotated[str | None, typer.Option(
        "--newdata", help="CSV file of new rows to predict (default: the fitted values of DATA's rows).")] = None,
    re_form: Annotated[ReForm, typer.Option(
        "--re-form", help="all: with the random effects (lme4's re.form = NULL); none: fixed part only (NA).")
    ] = ReForm.all,
    allow_new_levels: Annotated[bool, typer.Option(
        "--allow-new-levels", help="Predict unseen (or missing) groups at the population value, not an error.")
    ] = False,
    ml: MlOpt = False,
    fmt: Annotated[RowsFormat, typer.Option("--format", "-f", help="csv or json.")] = RowsFormat.csv,
    output: OutputOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Predictions as lme4's predict(): NEWDATA's columns plus .fitted."""
    from mlmcli.frame import read_csv
    from mlmcli.report import prediction_report

    inputs = (data,) if newdata is None else (data, newdata)
    _check_outputs(inputs, output)
    if newdata is not None and newdata == "-" and data == "-":
        raise MlmError("DATA and --newdata cannot both be standard input")
    model, frame = _fit_and_warn(data, formula, ml)
    with _user_errors(formula):
        new = read_csv(newdata) if newdata is not None else None
        report, columns = prediction_report(model, frame, new, re_form.value, allow_new_levels)
    if fmt == RowsFormat.json:
        _emit(_json(report), output, inputs)
    else:
        from mlmcli.render.rows import rows_csv

        _emit(rows_csv(columns), output, inputs)


class AnovaType(str, Enum):
    one = "1"
    two = "2"
    three = "3"


class AnovaDdf(str, Enum):
    satterthwaite = "Satterthwaite"


LevelOpt = Annotated[float, typer.Option("--level", help="Confidence level, between 0 and 1.")]


@app.command()
def confint(
    data: DataArg,
    formula: FormulaArg,
    method: Annotated[CiMethod, typer.Option("--method", "-m", help="wald (fixed effects) or profile "
                                             "(likelihood profile of every parameter).")] = CiMethod.profile,
    level: LevelOpt = 0.95,
    parm: Annotated[str | None, typer.Option(
        "--parm", help="Comma-separated parameter names (as printed; also theta_ or beta_ for all "
        "variance parameters or all fixed effects).")] = None,
    ml: MlOpt = False,
    fmt: Annotated[Format | None, typer.Option("--format", "-f", help="text (R's confint matrix), table, json.")
                   ] = None,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    strict: StrictOpt = False,
) -> None:
    """Confidence intervals as lme4's confint(): Wald, or likelihood profile (ML deviance)."""
    from mlmcli.confint import check_level, confint_report, select

    check_level(level)
    inputs = (data,)
    _check_outputs(inputs, output)
    kind = _default_format(fmt, output)
    names = [s.strip() for s in parm.split(",") if s.strip()] if parm else None
    model, _ = _fit_and_warn(data, formula, ml)
    select(model, names, method.value)   # a misspelt --parm is an error before any profiling
    if method == CiMethod.profile:
        _warn(["Computing profile confidence intervals ..."])   # lme4's message, before the long part
    with _user_errors(formula):
        report = confint_report(model, method.value, level, names)
    _deliver(kind, report, output, inputs, no_color, "mlmcli.render.inference:confint_text",
             "mlmcli.render.inference:print_confint")
    _strict_exit(strict, model.warnings)


@app.command()
def augment(
    data: DataArg,
    formula: FormulaArg,
    ml: MlOpt = False,
    fmt: Annotated[RowsFormat, typer.Option("--format", "-f", help="csv or json.")] = RowsFormat.csv,
    output: OutputOpt = None,
    strict: StrictOpt = False,
) -> None:
    """The model frame's rows with broom.mixed's augment() columns .fitted, .resid and .fixed."""
    from mlmcli.report import augment_report

    inputs = (data,)
    _check_outputs(inputs, output)
    model, frame = _fit_and_warn(data, formula, ml)
    report, columns = augment_report(model, frame.int_columns)
    if fmt == RowsFormat.json:
        _emit(_json(report), output, inputs)
    else:
        from mlmcli.render.rows import rows_csv

        _emit(rows_csv(columns), output, inputs)


@app.command()
def anova(
    data: DataArg,
    formula: FormulaArg,
    type_: Annotated[AnovaType, typer.Option("--type", "-t", help="Type of sums of squares: 1, 2 or 3.")
                     ] = AnovaType.three,
    ddf: Annotated[AnovaDdf, typer.Option("--ddf", help="Denominator df: Satterthwaite.")
                   ] = AnovaDdf.satterthwaite,
    ml: MlOpt = False,
    fmt: Annotated[Format | None, typer.Option("--format", "-f", help="text (lmerTest's table), table, json.")
                   ] = None,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    strict: StrictOpt = False,
) -> None:
    """F tests of the fixed-effect terms, as lmerTest's anova(fit, type =) with Satterthwaite's df."""
    from mlmcli.anova import anova_report

    inputs = (data,)
    _check_outputs(inputs, output)
    kind = _default_format(fmt, output)
    model, frame = _fit(data, formula, ml, ddf.value)
    with _user_errors(formula):
        report = anova_report(model, frame, int(type_.value))
    warnings = list(dict.fromkeys(model.warnings)) + list(model.satterthwaite().messages)
    _warn(warnings)
    _deliver(kind, report, output, inputs, no_color, "mlmcli.render.inference:anova_text",
             "mlmcli.render.inference:print_anova")
    _strict_exit(strict, warnings)


@app.command()
def ranova(
    data: DataArg,
    formula: FormulaArg,
    ml: MlOpt = False,
    fmt: Annotated[Format | None, typer.Option("--format", "-f", help="text (lmerTest's table), table, json.")
                   ] = None,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    strict: StrictOpt = False,
) -> None:
    """Likelihood-ratio tests of the random-effects terms, as lmerTest's ranova(fit)."""
    from mlmcli.ranova import ranova_report

    inputs = (data,)
    _check_outputs(inputs, output)
    kind = _default_format(fmt, output)
    model, frame = _fit_and_warn(data, formula, ml)
    with _user_errors(formula):
        report = ranova_report(model, frame)
    _deliver(kind, report, output, inputs, no_color, "mlmcli.render.inference:ranova_text",
             "mlmcli.render.inference:print_ranova")
    _strict_exit(strict, model.warnings)


class PlotKind(str, Enum):
    ranef = "ranef"
    caterpillar = "caterpillar"
    spaghetti = "spaghetti"
    fitted = "fitted"
    residuals = "residuals"
    profile = "profile"


class PlotFormat(str, Enum):
    json = "json"


class PlotTheme(str, Enum):
    screen = "screen"
    paper = "paper"


# matplotlib refuses images of 2^16 pixels or more on a side; say so before fitting
MAX_PIXELS = 2**16 - 1


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
    dpi: Annotated[int | None, typer.Option("--dpi", min=20, max=1200, help="Default: 100, paper 300.")] = None,
    width: Annotated[float, typer.Option("--width", min=1.0, max=100.0, help="Inches.")] = 8.0,
    height: Annotated[float, typer.Option("--height", min=1.0, max=100.0, help="Inches.")] = 6.0,
    title: Annotated[str | None, typer.Option("--title", help='"" for none.')] = None,
    caption: Annotated[str | None, typer.Option("--caption", help='Footer; "" for none.')] = None,
    theme: Annotated[PlotTheme, typer.Option("--theme", help="screen, or paper (journal).")] = PlotTheme.screen,
    groups: Annotated[int | None, typer.Option("--groups", min=0, help="Groups drawn; 0: all.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Seed of the spaghetti sample (default 1).")] = None,
    data_out: Annotated[str | None, typer.Option("--data-out", help="Also write the plotted numbers (CSV).")] = None,
    fmt: Annotated[PlotFormat | None, typer.Option("--format", "-f", help="json: print the plotted numbers.")
                   ] = None,
    strict: StrictOpt = False,
) -> None:
    """Draw a multilevel analyst's pictures (EB intercepts vs slopes, caterpillar, spaghetti...) as PNG."""
    from mlmcli.render.plots import PlotOptions, draw, image_format

    # every option is checked before the (possibly long) fit
    image_format(output)
    inputs = (data,)
    _check_outputs(inputs, output, data_out)
    if data_out is not None and output != "-" and os.path.realpath(data_out) == os.path.realpath(output):
        raise MlmError(f"--data-out and --output name the same file: {output}")
    px = dpi if dpi is not None else (300 if theme is PlotTheme.paper else 100)
    if max(width, height) * px > MAX_PIXELS:
        raise MlmError(f"the image would be {round(width * px)} x {round(height * px)} pixels; "
                       f"at most {MAX_PIXELS} on a side: lower --dpi or the size")
    if where is not None:
        from mlmcli.where import parse_where

        with _user_errors(where):
            parse_where(where)
    model, frame = _fit_and_warn(data, formula, ml, [c for c in (x, by) if c] + _where_columns(where), sep)
    opts = PlotOptions(kind=kind.value, output=output, x=x, y=y, group=group, where=where, by=by, dpi=dpi,
                       width=width, height=height, title=title, data_out=data_out, theme=theme.value,
                       caption=caption, groups=groups, seed=seed, inputs=inputs)
    if kind is PlotKind.profile:   # the profiles are the engine's work, done before drawing
        from mlmcli.confint import profile_curves

        with _user_errors(formula):
            opts.profiles = profile_curves(model)
    plotted = draw(model, frame, opts)
    if fmt is not None:
        _emit(_json(plotted), None)
    _strict_exit(strict, model.warnings)


@app.command()
def schema(
    name: Annotated[SchemaName, typer.Argument(
        help="fit, tau, ranef, compare, predict, augment, confint, anova or ranova.", metavar="COMMAND")],
) -> None:
    """Print the JSON schema that `mlm COMMAND --format json` output follows."""
    from importlib.resources import files

    _emit((files("mlmcli") / "schemas" / f"{name.value}.schema.json").read_text(encoding="utf-8"), None)


# ------------------------------------------------------------ entry point


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


def _command():
    """The click command, with the arguments' help restored.

    click 8.5 gave every Parameter a `help` attribute which typer 0.19's TyperArgument overwrites
    with None, so DATA and FORMULA lost their help text; put it back from the declarations.
    """
    from typer.main import get_command
    from typer.utils import get_params_from_function

    command = get_command(app)
    subcommands = getattr(command, "commands", {})
    for info in app.registered_commands:
        name = info.name or info.callback.__name__.replace("_", "-")
        sub = subcommands.get(name)
        if sub is None:
            continue
        declared = get_params_from_function(info.callback)
        for param in sub.params:
            meta = declared.get(param.name or "")
            if meta is not None and getattr(param, "help", None) is None:
                param.help = getattr(meta.default, "help", None)
    return command


def _quiet_stdout() -> None:
    """After a broken pipe, send what is left to /dev/null so that exiting does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _os_error_message(e: OSError) -> str:
    import errno

    what = e.filename if e.filename is not None else "standard output"
    if e.errno == errno.ENOSPC:
        return f"cannot write {what}: no space left on device"
    return f"{what}: {e.strerror or e}"


def main(argv: list[str] | None = None) -> None:
    """Entry point: exit status 0, 1 (a bug), 2 (bad input or usage), 3 (--strict warnings), 130 (interrupted),
    143 (terminated).

    `argv` (default: sys.argv[1:]) lets tests run the command in process.
    """
    import warnings

    from mlmcli.interrupt import EXIT_TERMINATED, raise_keyboard_interrupt, terminated

    # numpy's overflow and invalid-value notes are not for users: results are checked instead
    warnings.simplefilter("ignore", RuntimeWarning)
    raise_keyboard_interrupt()
    exc = _click_exceptions()
    code = EXIT_OK
    try:
        result = _command().main(args=argv, prog_name="mlm", standalone_mode=False)
        code = result if isinstance(result, int) else EXIT_OK
    except MlmError as e:
        sys.stderr.write(f"mlm: error: {e}\n")
        code = EXIT_USAGE
    except exc.NoArgsIsHelpError as e:
        sys.stdout.write(e.ctx.get_help() + "\n")
    except exc.UsageError as e:
        sys.stderr.write(f"mlm: error: {e.format_message()}\n")
        code = EXIT_USAGE
    except exc.ClickException as e:
        sys.stderr.write(f"mlm: error: {e.format_message()}\n")
        code = e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = EXIT_INTERRUPTED
    except typer.Exit as e:
        code = e.exit_code
    except BrokenPipeError:
        # the reader (head, less) has seen enough: not a failure
        _quiet_stdout()
    except OSError as e:
        sys.stderr.write(f"mlm: error: {_os_error_message(e)}\n")
        code = EXIT_USAGE
    except RecursionError:
        sys.stderr.write("mlm: error: the input is nested too deeply to process\n")
        code = EXIT_USAGE
    except MemoryError:
        sys.stderr.write("mlm: error: not enough memory for this model or picture\n")
        code = EXIT_USAGE
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if os.environ.get("MLM_TRACEBACK"):
            import traceback

            traceback.print_exc()
        from mlmcli import __version__

        sys.stderr.write(f"mlm: internal error: {type(e).__name__}: {e} (a bug in mlm {__version__}: please "
                         "report it with the command and data that caused it; MLM_TRACEBACK=1 shows the "
                         "traceback)\n")
        code = EXIT_BUG
    if code == EXIT_INTERRUPTED and terminated():   # click reports SIGTERM's unwinding as 130 too
        code = EXIT_TERMINATED
    if code == EXIT_INTERRUPTED:
        sys.stderr.write("mlm: interrupted\n")
    elif code == EXIT_TERMINATED:
        sys.stderr.write("mlm: terminated\n")
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    except OSError as e:
        sys.stderr.write(f"mlm: error: {_os_error_message(e)}\n")
        code = code or EXIT_USAGE
    sys.exit(code)
