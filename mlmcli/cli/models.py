"""fit, tau, ranef and compare: the model, its Tau matrix, its conditional modes, likelihood-ratio tests."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import typer

from mlmcli.cli.app import (
    HECK,
    SLEEP,
    SLEEP_MODEL,
    CiMethod,
    DataArg,
    DataOptions,
    Ddf,
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
    check_argument_order,
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
    _fit_all,
    _fit_and_warn,
    _fit_on_cluster,
    _note_ignored,
    _strict_exit,
    _user_errors,
    _warn,
)
from mlmcli.errors import MlmError

FIT_EXAMPLES = examples(
    f'mlm fit {HECK} "math ~ ses + (ses|schcode)"',
    f'mlm fit {HECK} "math ~ ses*public + (ses|schcode)" --ml --format json -o fit.json',
    f"mlm fit {SLEEP} {SLEEP_MODEL} --format csv --ci wald -o tidy.csv",
)
TAU_EXAMPLES = examples(
    f'mlm tau {HECK} "math ~ ses + (ses|schcode)"',
    f"mlm tau {SLEEP} {SLEEP_MODEL} --format json",
)
RANEF_EXAMPLES = examples(
    f'mlm ranef {HECK} "math ~ ses + (ses|schcode)" --format csv -o ranef.csv',
    f"mlm ranef {SLEEP} {SLEEP_MODEL} --with-coef --head 5",
)
COMPARE_EXAMPLES = examples(
    f'mlm compare {HECK} "math ~ ses + (ses|schcode)" "math ~ ses*public + (ses|schcode)"',
    f'mlm compare {SLEEP} "Reaction ~ 1 + (1|Subject)" {SLEEP_MODEL} --names null,days --variance-reduction',
)


@app.command(epilog=FIT_EXAMPLES)
@reads_data
def fit(
    data: DataArg,
    formula: FormulaArg,
    ml: MlOpt = False,
    source: DataOptions = DataOptions(),
    optimizer: OptimizerOpt = Optimizer.robust,
    fmt: Annotated[
        str | None, format_option("fit", "text (lme4's summary), table, json, csv (broom.mixed's tidy()).")
    ] = None,
    ddf: Annotated[
        Ddf,
        typer.Option(
            "--ddf", help="Denominator df: Satterthwaite, Kenward-Roger (adjusted SEs; REML fits only), or none."
        ),
    ] = Ddf.satterthwaite,
    correlation: Annotated[
        bool,
        typer.Option(
            "--correlation", help="Show fixed-effect correlations in the table (text and json always have them)."
        ),
    ] = False,
    ci: Annotated[
        CiMethod | None,
        typer.Option(
            "--ci",
            help="Add confidence intervals of the fixed effects (conf_low, conf_high) to json, "
            "table and csv output: wald, profile or boot.",
        ),
    ] = None,
    level: Annotated[float, typer.Option("--level", help="Confidence level of --ci.")] = 0.95,
    nsim: NsimOpt = 1000,
    seed: SeedOpt = None,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    strict: StrictOpt = False,
    verbose: VerboseOpt = False,
    family: FamilyOpt = None,
    link: LinkOpt = None,
    nagq: NagqOpt = 1,
) -> None:
    """Fit a linear mixed model and print lme4's summary (estimates, SEs, Satterthwaite df, p-values);
    with --family, a generalized one as glmer fits it."""
    _family_notes(family, link, nagq, ml)
    from mlmcli.report import fit_report

    inputs, form = _begin(data, output, fmt)
    if family is not None:
        from mlmcli.cli.glmer import fit_glmer

        fit_glmer(
            data,
            formula,
            family,
            link,
            nagq,
            source,
            optimizer.value,
            form,
            output,
            inputs,
            strict,
            ci,
            verbose,
            no_color,
            correlation,
            level,
            nsim,
            seed,
        )
        return
    _check_ddf(ddf.value, ml, source.weights)
    if correlation and form != "table":
        _note_ignored("--correlation", form, "table")
    spec = None
    if ci is not None:
        from mlmcli.stats.confint import Bootstrap, check_level

        check_level(level)
        spec = Bootstrap(nsim=nsim, seed=seed) if ci == CiMethod.boot else None
        if form == "text":
            _note_ignored("--ci", form, "json, table and csv")
        if ci in (CiMethod.profile, CiMethod.boot) and source.engine == "dask":
            # profiles refit with a fixed effect moved into the response, the bootstrap simulates
            # responses: both need the rows
            raise MlmError(f"--ci {ci.value} is not offered with --engine dask; use --ci wald")
    model, _ = _fit(
        data, formula, ml, ddf.value, source=source, optimizer=optimizer.value, verbose=verbose, residuals=True
    )
    with _user_errors(formula):  # the df methods' linear algebra can break down as the fit's can
        report = fit_report(model)
    varpar_ci = None
    if ci is not None and form != "text":
        from mlmcli.stats.confint import add_fixed_effect_intervals

        with _user_errors(formula), _bootstrap_progress(spec):
            all_ci = add_fixed_effect_intervals(report, model, ci.value, level, spec, variance_parameters=form == "csv")
        varpar_ci = all_ci[: len(all_ci) - model.p]
    warnings = report["warnings"] + report.get("lmerTest_messages", [])
    _warn(warnings)
    if spec is not None and form != "text":
        _warn(spec.messages)
        warnings += [m for m in spec.messages if "failed" in m]
    if form in ("json", "table"):  # the ICC and R² appear in json and table output only
        _warn([f"mlm: note: {w}" for w in report.get("effects_warnings", [])])
    _deliver("fit", form, report, output, inputs, no_color, correlation=correlation, varpar_ci=varpar_ci)
    _strict_exit(strict, warnings, model)


@app.command(epilog=TAU_EXAMPLES)
@reads_data
def tau(
    data: DataArg,
    formula: FormulaArg,
    ml: MlOpt = False,
    source: DataOptions = DataOptions(),
    optimizer: OptimizerOpt = Optimizer.robust,
    fmt: Annotated[str | None, format_option("tau", "text (Matrix::bdiag), table, json.")] = None,
    corr: Annotated[bool, typer.Option("--corr", help="Show the correlation matrix alone (table).")] = False,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    strict: StrictOpt = False,
    verbose: VerboseOpt = False,
    family: FamilyOpt = None,
    link: LinkOpt = None,
    nagq: NagqOpt = 1,
) -> None:
    """The Tau matrix: each grouping factor's random-effects covariance, and the residual variance."""
    _family_notes(family, link, nagq, ml)
    from mlmcli.report import tau_report

    inputs, form = _begin(data, output, fmt)
    if corr and form != "table":
        _note_ignored("--corr", form, "table")
    model = _one_model(data, formula, ml, source, optimizer.value, verbose, family, link, nagq)
    report = tau_report(model)
    _deliver("tau", form, report, output, inputs, no_color, corr_only=corr)
    _strict_exit(strict, model.warnings, model)


@app.command(epilog=RANEF_EXAMPLES)
@reads_data
def ranef(
    data: DataArg,
    formula: FormulaArg,
    ml: MlOpt = False,
    source: DataOptions = DataOptions(),
    optimizer: OptimizerOpt = Optimizer.robust,
    fmt: Annotated[str | None, format_option("ranef", "table, csv, json, text.")] = None,
    head: Annotated[
        int | None, typer.Option("--head", min=1, help="Show the first N levels of each factor (table and text).")
    ] = None,
    wide: Annotated[
        bool, typer.Option("--wide", help="One row per level, as ranef(fit)$g prints (table, csv).")
    ] = False,
    with_coef: Annotated[bool, typer.Option("--with-coef", help="Add coef(fit): fixed + random.")] = False,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    strict: StrictOpt = False,
    verbose: VerboseOpt = False,
    family: FamilyOpt = None,
    link: LinkOpt = None,
    nagq: NagqOpt = 1,
) -> None:
    """Conditional modes (Empirical Bayes estimates) of the random effects with conditional SDs."""
    _family_notes(family, link, nagq, ml)
    from mlmcli.report import ranef_report

    inputs, form = _begin(data, output, fmt)
    if head is not None and form not in ("table", "text"):
        _note_ignored("--head", form, "table and text")
    if wide and form not in ("table", "csv"):
        _note_ignored("--wide", form, "table and csv")
    model = _one_model(data, formula, ml, source, optimizer.value, verbose, family, link, nagq)
    report = ranef_report(model, with_coef=with_coef)
    _deliver("ranef", form, report, output, inputs, no_color, head=head, wide=wide, with_coef=with_coef)
    _strict_exit(strict, model.warnings, model)


def _one_model(
    data: str,
    formula: str,
    ml: bool,
    source: DataOptions,
    optimizer: str,
    verbose: bool,
    family: Enum | None,
    link: Enum | None,
    nagq: int,
) -> Any:
    """The command's model: lmer's, or with --family glmer's; its warnings on stderr."""
    if family is None:
        model, _ = _fit_and_warn(data, formula, ml, source=source, optimizer=optimizer, verbose=verbose)
        return model
    from mlmcli.cli.glmer import glmer_fits

    (model,), _ = glmer_fits(data, [formula], family, link, nagq, source, optimizer, verbose)
    _warn(list(dict.fromkeys(model.warnings)))
    return model


@app.command(epilog=COMPARE_EXAMPLES)
@reads_data
def compare(
    data: DataArg,
    formulas: Annotated[
        list[str],
        typer.Argument(help="Two or more model formulas.", metavar="FORMULA...", callback=check_argument_order),
    ],
    ml: MlOpt = False,
    source: DataOptions = DataOptions(),
    optimizer: OptimizerOpt = Optimizer.robust,
    fmt: Annotated[str | None, format_option("compare", "text (lme4's anova), table, json.")] = None,
    names: Annotated[str | None, typer.Option("--names", help="Comma-separated model names.")] = None,
    variance_reduction: Annotated[
        bool, typer.Option("--variance-reduction", help="Proportion of variance reduced at level 1 and 2, and the ICC.")
    ] = False,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    strict: StrictOpt = False,
    verbose: VerboseOpt = False,
    family: FamilyOpt = None,
    link: LinkOpt = None,
    nagq: NagqOpt = 1,
) -> None:
    """Likelihood-ratio tests of nested models (lme4's anova), refitting REML fits by ML."""
    _family_notes(family, link, nagq, ml)
    from mlmcli.report import SCHEMA_VERSION
    from mlmcli.stats.compare import REFIT_MESSAGE, compare_report
    from mlmcli.stats.compare import compare as run_compare
    from mlmcli.stats.compare import variance_reduction as reduction

    if len(formulas) < 2:
        raise MlmError("compare needs at least two formulas")
    labels = [s.strip() for s in names.split(",")] if names else [f"m{i + 1}" for i in range(len(formulas))]
    if len(labels) != len(formulas) or len(set(labels)) != len(labels):
        raise MlmError(f"--names needs {len(formulas)} distinct names, got {names!r}")
    inputs, form = _begin(data, output, fmt)
    if family is not None:
        from mlmcli.cli.glmer import glmer_fits

        if variance_reduction:
            raise MlmError("--variance-reduction is for linear mixed models: a GLMM has no residual variance")
        fits, _ = glmer_fits(data, formulas, family, link, nagq, source, optimizer.value, verbose)
    elif source.engine == "dask":
        fits = _fit_on_cluster(data, formulas, ml, "none", optimizer.value, source, residuals=False)
    else:
        fits, _ = _fit_all(data, formulas, ml, source, optimizer.value, verbose)
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
    _deliver("compare", form, report, output, inputs, no_color)
    _strict_exit(strict, warnings, *fits)
