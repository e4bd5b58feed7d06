"""plot and schema: pictures of a fit, and the JSON contracts of the other commands."""

from __future__ import annotations

import os
from enum import Enum
from typing import Annotated

import typer

from mlmcli.cli.app import (
    HECK,
    SLEEP,
    SLEEP_MODEL,
    DataArg,
    DataOptions,
    FamilyOpt,
    FormulaArg,
    LinkOpt,
    MlOpt,
    NagqOpt,
    Optimizer,
    OptimizerOpt,
    StrictOpt,
    VerboseOpt,
    app,
    choice,
    examples,
    format_option,
    reads_data,
)
from mlmcli.cli.common import (
    _check_outputs,
    _deliver,
    _emit,
    _family_notes,
    _fit_and_warn,
    _memory_only,
    _strict_exit,
    _user_errors,
    _warn,
)
from mlmcli.errors import MlmError
from mlmcli.render.registry import reports_in


class PlotKind(str, Enum):
    ranef = "ranef"
    caterpillar = "caterpillar"
    spaghetti = "spaghetti"
    fitted = "fitted"
    residuals = "residuals"
    profile = "profile"
    coef = "coef"
    effects = "effects"
    check = "check"
    shrinkage = "shrinkage"


class PlotTheme(str, Enum):
    screen = "screen"
    paper = "paper"


EXAMPLES = examples(
    f'mlm plot {HECK} "math ~ ses + (ses|schcode)" --kind caterpillar -o caterpillar.png',
    f"mlm plot {SLEEP} {SLEEP_MODEL} --kind spaghetti --theme paper -o spaghetti.pdf",
    f'mlm plot {SLEEP} {SLEEP_MODEL} --kind fitted --where "Days >= 2" --format json -o fitted.png',
    f'mlm plot {HECK} "math ~ ses * public + (ses|schcode)" --kind coef -o coef.png',
    f'mlm plot {HECK} "math ~ ses * public + (ses|schcode)" --kind effects --terms ses,public -o effects.png',
    f"mlm plot {SLEEP} {SLEEP_MODEL} --kind shrinkage -o shrinkage.png",
    'mlm plot tests/fixtures/glmer/data/Contraception.csv "use ~ age + urban + (urban|district)" --family binomial '
    "--kind fitted -o fitted.png",
)
SCHEMA_EXAMPLES = examples(
    "mlm schema fit",
    "mlm schema plot",
)

# the commands that write JSON, each with its schema in mlmcli/schemas/
_JSON = reports_in("json")

# matplotlib refuses images of 2^16 pixels or more on a side; say so before fitting
MAX_PIXELS = 2**16 - 1


@app.command(epilog=EXAMPLES)
@reads_data
def plot(
    data: DataArg,
    formula: FormulaArg,
    kind: Annotated[PlotKind, typer.Option("--kind", "-k", help="What to draw.")] = PlotKind.ranef,
    output: Annotated[str, typer.Option("--output", "-o", help="Image file: .png, .svg or .pdf.")] = "mlm-plot.png",
    ml: MlOpt = False,
    optimizer: OptimizerOpt = Optimizer.robust,
    source: DataOptions = DataOptions(),
    x: Annotated[
        str | None, typer.Option("--x", help="Term or variable on the x axis (shrinkage: the slope drawn).")
    ] = None,
    y: Annotated[str | None, typer.Option("--y", help="Term on the y axis (ranef plot).")] = None,
    group: Annotated[str | None, typer.Option("--group", help="Grouping factor (default: the first).")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Split fitted lines by a level-2 variable.")] = None,
    dpi: Annotated[int | None, typer.Option("--dpi", min=20, max=1200, help="Default: 100, paper 300.")] = None,
    width: Annotated[float, typer.Option("--width", min=1.0, max=100.0, help="Inches.")] = 8.0,
    height: Annotated[float, typer.Option("--height", min=1.0, max=100.0, help="Inches.")] = 6.0,
    title: Annotated[str | None, typer.Option("--title", help='"" for none.')] = None,
    caption: Annotated[str | None, typer.Option("--caption", help='Footer; "" for none.')] = None,
    xlabel: Annotated[str | None, typer.Option("--xlabel", help='x-axis label of every panel; "" for none.')] = None,
    ylabel: Annotated[str | None, typer.Option("--ylabel", help='y-axis label of every panel; "" for none.')] = None,
    font_size: Annotated[
        float | None,
        typer.Option("--font-size", help="Axis labels in points, other text in proportion (default: by the size)."),
    ] = None,
    theme: Annotated[PlotTheme, typer.Option("--theme", help="screen, or paper (journal).")] = PlotTheme.screen,
    groups: Annotated[int | None, typer.Option("--groups", min=0, help="Groups drawn; 0: all.")] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", min=0, help="spaghetti: draw a random sample with this seed (default: spread evenly)."),
    ] = None,
    terms: Annotated[
        str | None,
        typer.Option("--terms", help="effects: the predictor on the x axis, and a second for lines (ses,public)."),
    ] = None,
    intercept: Annotated[
        bool, typer.Option("--intercept", help="coef: show the intercept (left out by default).")
    ] = False,
    data_out: Annotated[str | None, typer.Option("--data-out", help="Also write the plotted numbers (CSV).")] = None,
    fmt: Annotated[str | None, format_option("plot", "json: print the plotted numbers.")] = None,
    strict: StrictOpt = False,
    verbose: VerboseOpt = False,
    family: FamilyOpt = None,
    link: LinkOpt = None,
    nagq: NagqOpt = 1,
) -> None:
    """Draw a multilevel analyst's pictures (EB intercepts vs slopes, caterpillar, spaghetti, shrinkage...) as PNG."""
    _family_notes(family, link, nagq, ml)
    from mlmcli.render.plots import PlotOptions, check_family_kind, draw, image_format

    # every option is checked before the (possibly long) fit
    _memory_only("plot", source)  # the pictures are drawn from the rows
    if family is not None:
        check_family_kind(kind.value)
    image_format(output)
    shows_intercept = True if intercept else None
    _check_plot_options(
        kind.value, x, y, group, by, groups, seed, xlabel, ylabel, font_size, theme.value, terms, shows_intercept
    )
    focal = _focal_terms(terms) if kind is PlotKind.effects else []
    if focal:
        _check_terms(formula, focal)
    inputs = (data,)
    _check_outputs(inputs, output, data_out)
    if data_out is not None and output != "-" and os.path.realpath(data_out) == os.path.realpath(output):
        raise MlmError(f"--data-out and --output name the same file: {output}")
    px = dpi if dpi is not None else (300 if theme is PlotTheme.paper else 100)
    if max(width, height) * px > MAX_PIXELS:
        raise MlmError(
            f"the image would be {round(width * px)} x {round(height * px)} pixels; "
            f"at most {MAX_PIXELS} on a side: lower --dpi or the size"
        )
    also = [c for c in (x, by) if c]
    if family is not None:
        from mlmcli.cli.glmer import glmer_fits

        (model,), frame = glmer_fits(data, [formula], family, link, nagq, source, optimizer.value, verbose, also)
        _warn(list(dict.fromkeys(model.warnings)))
    else:
        model, frame = _fit_and_warn(data, formula, ml, also, source, optimizer=optimizer.value, verbose=verbose)
    # the rows --where chose were the model's rows: the caption and the json name the expression
    opts = PlotOptions(
        kind=kind.value,
        output=output,
        x=x,
        y=y,
        group=group,
        where=source.where,
        by=by,
        dpi=dpi,
        width=width,
        height=height,
        title=title,
        data_out=data_out,
        theme=theme.value,
        caption=caption,
        groups=groups,
        seed=seed,
        inputs=inputs,
        xlabel=xlabel,
        ylabel=ylabel,
        font_size=font_size,
        terms=terms,
        intercept=shows_intercept,
    )
    if kind is PlotKind.coef:  # the numbers are the statistics layer's, drawn as they are
        from mlmcli.stats.estimates import coef_report

        opts.estimates = coef_report(model, intercept=intercept)
    elif kind is PlotKind.effects:
        from mlmcli.stats.estimates import effects_report

        with _user_errors(formula):
            opts.estimates = effects_report(model, focal or _first_predictor(model))
    elif kind is PlotKind.check:
        from mlmcli.stats.diagnostics import check_report

        opts.estimates = check_report(model)
    elif kind is PlotKind.shrinkage:
        from mlmcli.stats.shrinkage import shrinkage_report

        opts.estimates = shrinkage_report(model, x)
    if kind is PlotKind.profile:  # the profiles are the engine's work, done before drawing
        from mlmcli.stats.confint import profile_curves

        with _user_errors(formula):
            opts.profiles = profile_curves(model)
    plotted = draw(model, frame, opts)
    if fmt is not None:
        _deliver("plot", fmt, plotted, None)
    _strict_exit(strict, model.warnings, model)


def _check_plot_options(kind: str, *values: object) -> None:
    """The options a kind does not use, and a --font-size out of range, refused before the fit."""
    from mlmcli.render.plots import PlotOptions
    from mlmcli.render.plots.options import check_options

    names = ("x", "y", "group", "by", "groups", "seed", "xlabel", "ylabel", "font_size", "theme", "terms", "intercept")
    check_options(PlotOptions(kind=kind, output="", **dict(zip(names, values, strict=True))))


def _focal_terms(terms: str | None) -> list[str]:
    """--terms ses or --terms ses,public: one or two predictors."""
    if terms is None:
        return []
    names = [t.strip() for t in terms.split(",")]
    if not 1 <= len(names) <= 2 or not all(names):
        raise MlmError(f"--terms names one predictor or two joined by a comma (ses,public), got {terms!r}")
    return names


def _check_terms(formula: str, focal: list[str]) -> None:
    """Names --terms does not find in the formula, refused before the fit; a formula that does not
    parse is left to the fit, which says why."""
    from mlmcli.formula import parse_formula
    from mlmcli.stats.estimates import check_terms

    try:
        parsed = parse_formula(formula)
    except MlmError:
        return
    check_terms(parsed, focal)


def _first_predictor(model: object) -> list[str]:
    """Without --terms: the first variable of the fixed part, as ggpredict needs one named."""
    variables = [v.label for t in model.formula.fixed.terms for v in t.vars]  # type: ignore[attr-defined]
    if not variables:
        raise MlmError("--kind effects needs a fixed-effect predictor: the model has only an intercept")
    return variables[:1]


@app.command(epilog=SCHEMA_EXAMPLES)
def schema(
    name: Annotated[
        str,
        typer.Argument(help=f"{', '.join(_JSON[:-1])} or {_JSON[-1]}.", metavar="COMMAND", click_type=choice(_JSON)),
    ],
) -> None:
    """Print the JSON schema that `mlm COMMAND --format json` output follows."""
    from importlib.resources import files

    _emit((files("mlmcli") / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8"), None)
