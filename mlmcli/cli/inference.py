"""confint, anova and ranova: lme4's confint(), lmerTest's anova() and ranova()."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from mlmcli.cli.app import (
    HECK,
    SLEEP,
    SLEEP_MODEL,
    CiMethod,
    DataArg,
    DataOptions,
    FamilyOpt,
    FormulaArg,
    LinkOpt,
    MlOpt,
    NagqOpt,
    NoColorOpt,
    NsimOpt,
    Optimizer,
    OptimizerOpt,
    OutputOpt,
    SeedOpt,
    StrictOpt,
    VerboseOpt,
    app,
    examples,
    format_option,
    reads_data,
)
from mlmcli.cli.common import (
    _begin,
    _bootstrap_progress,
    _check_ddf,
    _deliver,
    _family_notes,
    _fit,
    _fit_and_warn,
    _memory_only,
    _strict_exit,
    _user_errors,
    _warn,
)
from mlmcli.errors import MlmError


class AnovaType(str, Enum):
    one = "1"
    two = "2"
    three = "3"


class AnovaDdf(str, Enum):
    satterthwaite = "Satterthwaite"
    kenward_roger = "Kenward-Roger"


CONFINT_EXAMPLES = examples(
    f"mlm confint {SLEEP} {SLEEP_MODEL}",
    f"mlm confint {SLEEP} {SLEEP_MODEL} --method boot --nsim 200 --seed 1",
    f'mlm confint {HECK} "math ~ ses + (1|schcode)" --method wald --format json',
    'mlm confint tests/fixtures/glmer/data/cbpp.csv "cbind(incidence, size - incidence) ~ factor(period) + (1|herd)" '
    "--family binomial --method wald",
)
ANOVA_EXAMPLES = examples(
    f'mlm anova {HECK} "math ~ ses*public + (ses|schcode)"',
    f'mlm anova {HECK} "math ~ ses*public + (1|schcode)" --type 1 --ddf Kenward-Roger',
)
RANOVA_EXAMPLES = examples(
    f"mlm ranova {SLEEP} {SLEEP_MODEL}",
    f'mlm ranova {HECK} "math ~ ses + (1|schcode)" --format json',
)

LevelOpt = Annotated[float, typer.Option("--level", help="Confidence level, between 0 and 1.")]


@app.command(epilog=CONFINT_EXAMPLES)
@reads_data
def confint(
    data: DataArg,
    formula: FormulaArg,
    method: Annotated[
        CiMethod,
        typer.Option(
            "--method",
            "-m",
            help="wald (fixed effects), profile "
            "(likelihood profile of every parameter) or boot (parametric "
            "bootstrap, percentile intervals).",
        ),
    ] = CiMethod.profile,
    level: LevelOpt = 0.95,
    nsim: NsimOpt = 1000,
    seed: SeedOpt = None,
    parm: Annotated[
        str | None,
        typer.Option(
            "--parm",
            help="Comma-separated parameter names (as printed; also theta_ or beta_ for all "
            "variance parameters or all fixed effects).",
        ),
    ] = None,
    ml: MlOpt = False,
    optimizer: OptimizerOpt = Optimizer.robust,
    source: DataOptions = DataOptions(),
    fmt: Annotated[str | None, format_option("confint", "text (R's confint matrix), table, json.")] = None,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    strict: StrictOpt = False,
    verbose: VerboseOpt = False,
    family: FamilyOpt = None,
    link: LinkOpt = None,
    nagq: NagqOpt = 1,
) -> None:
    """Confidence intervals as lme4's confint(): Wald, likelihood profile (ML deviance) or parametric
    bootstrap; with --family, of a generalized linear mixed model as glmer fits it."""
    _family_notes(family, link, nagq, ml)
    from mlmcli.stats.confint import Bootstrap, check_level, check_method, confint_report, select

    check_level(level)
    spec = Bootstrap(nsim=nsim, seed=seed) if method == CiMethod.boot else None  # bad --nsim, --seed: now
    inputs, form = _begin(data, output, fmt)
    names = [s.strip() for s in parm.split(",") if s.strip()] if parm else None
    if source.engine == "dask" and method != CiMethod.wald:
        # profiles refit with a parameter held fixed, the bootstrap simulates responses: both need the rows
        raise MlmError(f"--method {method.value} is not offered with --engine dask; use --method wald")
    if family is None:
        model, _ = _fit_and_warn(data, formula, ml, source=source, optimizer=optimizer.value, verbose=verbose)
    else:
        from mlmcli.cli.glmer import glmer_fits

        (model,), _ = glmer_fits(data, [formula], family, link, nagq, source, optimizer.value, verbose)
        _warn(list(dict.fromkeys(model.warnings)))
    select(model, names, method.value)  # a misspelt --parm is an error before any profiling
    check_method(model, method.value)
    if method != CiMethod.wald:  # lme4's message, before the long part
        _warn([f"Computing {'bootstrap' if spec else 'profile'} confidence intervals ..."])
    with _user_errors(formula), _bootstrap_progress(spec):
        report = confint_report(model, method.value, level, names, spec)
    warnings = list(model.warnings)
    if spec is not None:
        _warn(spec.messages)
        warnings += [m for m in spec.messages if "failed" in m]
    _deliver("confint", form, report, output, inputs, no_color)
    _strict_exit(strict, warnings, model)


@app.command(epilog=ANOVA_EXAMPLES)
@reads_data
def anova(
    data: DataArg,
    formula: FormulaArg,
    type_: Annotated[
        AnovaType, typer.Option("--type", "-t", help="Type of sums of squares: 1, 2 or 3.")
    ] = AnovaType.three,
    ddf: Annotated[
        AnovaDdf, typer.Option("--ddf", help="Denominator df: Satterthwaite or Kenward-Roger (REML fits only).")
    ] = AnovaDdf.satterthwaite,
    ml: MlOpt = False,
    optimizer: OptimizerOpt = Optimizer.robust,
    source: DataOptions = DataOptions(),
    fmt: Annotated[str | None, format_option("anova", "text (lmerTest's table), table, json.")] = None,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    strict: StrictOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """F tests of the fixed-effect terms, as lmerTest's anova(fit, type =, ddf =)."""
    from mlmcli.stats.anova import anova_report

    _memory_only("anova", source)  # the terms' contrasts come from the data's rows
    inputs, form = _begin(data, output, fmt)
    _check_ddf(ddf.value, ml, source.weights)
    model, frame = _fit(data, formula, ml, ddf.value, source=source, optimizer=optimizer.value, verbose=verbose)
    with _user_errors(formula):
        report = anova_report(model, frame, int(type_.value))
    warnings = list(dict.fromkeys(model.warnings))
    if ddf == AnovaDdf.satterthwaite:
        warnings += list(model.satterthwaite().messages)
    _warn(warnings)
    _deliver("anova", form, report, output, inputs, no_color)
    _strict_exit(strict, warnings, model)


@app.command(epilog=RANOVA_EXAMPLES)
@reads_data
def ranova(
    data: DataArg,
    formula: FormulaArg,
    ml: MlOpt = False,
    optimizer: OptimizerOpt = Optimizer.robust,
    source: DataOptions = DataOptions(),
    fmt: Annotated[str | None, format_option("ranova", "text (lmerTest's table), table, json.")] = None,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    strict: StrictOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Likelihood-ratio tests of the random-effects terms, as lmerTest's ranova(fit)."""
    from mlmcli.stats.ranova import ranova_report

    _memory_only("ranova", source)  # the reduced models are refitted to the rows
    inputs, form = _begin(data, output, fmt)
    model, frame = _fit_and_warn(data, formula, ml, source=source, optimizer=optimizer.value, verbose=verbose)
    with _user_errors(formula):
        report = ranova_report(model, frame)
    _deliver("ranova", form, report, output, inputs, no_color)
    _strict_exit(strict, model.warnings, model)
