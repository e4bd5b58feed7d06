"""fit, tau, ranef and compare: the model, its Tau matrix, its conditional modes, likelihood-ratio tests."""

from __future__ import annotations

import sys
from typing import Annotated

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
    FitFormat,
    Format,
    FormulaArg,
    LinkOpt,
    MlOpt,
    NagqOpt,
    NoColorOpt,
    NsimOpt,
    Optimizer,
    OptimizerOpt,
    OutputOpt,
    RanefFormat,
    SeedOpt,
    StrictOpt,
    VerboseOpt,
    app,
    check_argument_order,
    examples,
    reads_data,
)
from mlmcli.cli.common import (
    _begin,
    _bootstrap_progress,
    _check_ddf,
    _deliver,
    _emit,
    _fit,
    _fit_all,
    _fit_and_warn,
    _fit_on_cluster,
    _json,
    _note_ignored,
    _printable,
    _strict_exit,
    _table,
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
        FitFormat | None,
        typer.Option("--format", "-f", help="text (lme4's summary), table, json, csv (broom.mixed's tidy())."),
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
    from mlmcli.report import fit_report

    inputs, kind = _begin(data, output, fmt)
    if family is not None:
        from mlmcli.cli.glmer import fit_glmer

        fit_glmer(data, formula, family.value, link, nagq, source, optimizer.value, kind, output, inputs, strict, ci)
        return
    _check_ddf(ddf.value, ml, source.weights)
    if correlation and kind != "table":
        _note_ignored("--correlation", kind, "table")
    spec = None
    if ci is not None:
        from mlmcli.stats.confint import Bootstrap, check_level

        check_level(level)
        spec = Bootstrap(nsim=nsim, seed=seed) if ci == CiMethod.boot else None
        if kind == "text":
            _note_ignored("--ci", kind, "json, table and csv")
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
    if ci is not None and kind != "text":
        from mlmcli.stats.confint import add_fixed_effect_intervals

        with _user_errors(formula), _bootstrap_progress(spec):
            all_ci = add_fixed_effect_intervals(report, model, ci.value, level, spec, variance_parameters=kind == "csv")
        varpar_ci = all_ci[: len(all_ci) - model.p]
    warnings = report["warnings"] + report.get("lmerTest_messages", [])
    _warn(warnings)
    if spec is not None and kind != "text":
        _warn(spec.messages)
        warnings += [m for m in spec.messages if "failed" in m]
    if kind in ("json", "table"):  # the ICC and R² appear in json and table output only
        _warn([f"mlm: note: {w}" for w in report.get("effects_warnings", [])])
    if kind == "csv":
        from mlmcli.render.tidy import tidy_csv

        _emit(tidy_csv(_printable(report), varpar_ci), output, inputs)
    elif kind == "json":
        _emit(_json(report), output, inputs)
    elif kind == "text":
        from mlmcli.render.text import fit_summary_output

        printed = fit_summary_output(_printable(report))
        _emit(printed.out, output, inputs)
        sys.stderr.write(printed.err)
    else:
        from mlmcli.render.table import print_fit
        from mlmcli.render.text import fit_summary_output

        _table(
            lambda c: print_fit(c, _printable(report), correlation=correlation),
            output,
            no_color,
            inputs,
            lambda: fit_summary_output(_printable(report)).out,
        )
    _strict_exit(strict, warnings, model)


@app.command(epilog=TAU_EXAMPLES)
@reads_data
def tau(
    data: DataArg,
    formula: FormulaArg,
    ml: MlOpt = False,
    source: DataOptions = DataOptions(),
    optimizer: OptimizerOpt = Optimizer.robust,
    fmt: Annotated[Format | None, typer.Option("--format", "-f", help="text (Matrix::bdiag), table, json.")] = None,
    corr: Annotated[bool, typer.Option("--corr", help="Show the correlation matrix alone (table).")] = False,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    strict: StrictOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """The Tau matrix: each grouping factor's random-effects covariance, and the residual variance."""
    from mlmcli.report import tau_report

    inputs, kind = _begin(data, output, fmt)
    if corr and kind != "table":
        _note_ignored("--corr", kind, "table")
    model, _ = _fit_and_warn(data, formula, ml, source=source, optimizer=optimizer.value, verbose=verbose)
    report = tau_report(model)
    _deliver(
        kind,
        report,
        output,
        inputs,
        no_color,
        "mlmcli.render.text:tau_text",
        "mlmcli.render.table:print_tau",
        corr_only=corr,
    )
    _strict_exit(strict, model.warnings, model)


@app.command(epilog=RANEF_EXAMPLES)
@reads_data
def ranef(
    data: DataArg,
    formula: FormulaArg,
    ml: MlOpt = False,
    source: DataOptions = DataOptions(),
    optimizer: OptimizerOpt = Optimizer.robust,
    fmt: Annotated[RanefFormat | None, typer.Option("--format", "-f", help="table, csv, json, text.")] = None,
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
) -> None:
    """Conditional modes (Empirical Bayes estimates) of the random effects with conditional SDs."""
    from mlmcli.report import ranef_report

    inputs, kind = _begin(data, output, fmt)
    if head is not None and kind not in ("table", "text"):
        _note_ignored("--head", kind, "table and text")
    if wide and kind not in ("table", "csv"):
        _note_ignored("--wide", kind, "table and csv")
    model, _ = _fit_and_warn(data, formula, ml, source=source, optimizer=optimizer.value, verbose=verbose)
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
        from mlmcli.render.ranef_text import ranef_text

        _table(
            lambda c: print_ranef(c, shown, head=head, wide=wide, coef=shown.get("coef") if with_coef else None),
            output,
            no_color,
            inputs,
            lambda: ranef_text(shown, head=head),
        )
    _strict_exit(strict, model.warnings, model)


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
    fmt: Annotated[Format | None, typer.Option("--format", "-f", help="text (lme4's anova), table, json.")] = None,
    names: Annotated[str | None, typer.Option("--names", help="Comma-separated model names.")] = None,
    variance_reduction: Annotated[
        bool, typer.Option("--variance-reduction", help="Proportion of variance reduced at level 1 and 2, and the ICC.")
    ] = False,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    strict: StrictOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Likelihood-ratio tests of nested models (lme4's anova), refitting REML fits by ML."""
    from mlmcli.report import SCHEMA_VERSION
    from mlmcli.stats.compare import REFIT_MESSAGE, compare_report
    from mlmcli.stats.compare import compare as run_compare
    from mlmcli.stats.compare import variance_reduction as reduction

    if len(formulas) < 2:
        raise MlmError("compare needs at least two formulas")
    labels = [s.strip() for s in names.split(",")] if names else [f"m{i + 1}" for i in range(len(formulas))]
    if len(labels) != len(formulas) or len(set(labels)) != len(labels):
        raise MlmError(f"--names needs {len(formulas)} distinct names, got {names!r}")
    inputs, kind = _begin(data, output, fmt)
    if source.engine == "dask":
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
    if kind == "json":
        _emit(_json(report), output, inputs)
    elif kind == "text":
        _emit(_compare_text(report, vr), output, inputs)
    else:
        from mlmcli.render.table import print_compare

        _table(
            lambda c: print_compare(c, _printable(report), variance_reduction=_printable(vr) if vr else None),
            output,
            no_color,
            inputs,
            lambda: _compare_text(report, vr),
        )
    _strict_exit(strict, warnings, *fits)


def _compare_text(report: dict, vr: dict | None) -> str:
    from mlmcli.render.text import anova_text

    text = anova_text(_printable(report))
    if vr is not None:
        from mlmcli.render.csvout import variance_reduction_text

        text += variance_reduction_text(_printable(vr))
    return text
