"""predict and augment: lme4's predict() and broom.mixed's augment()."""

from __future__ import annotations

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
    OutputOpt,
    PredictType,
    ReForm,
    StrictOpt,
    VerboseOpt,
    app,
    examples,
    format_option,
    reads_data,
)
from mlmcli.cli.common import (
    _check_outputs,
    _deliver,
    _family_notes,
    _fit_and_warn,
    _memory_only,
    _read,
    _strict_exit,
    _user_errors,
    _warn,
)
from mlmcli.errors import MlmError

PREDICT_EXAMPLES = examples(
    f"mlm predict {SLEEP} {SLEEP_MODEL} --newdata {SLEEP} --re-form none",
    f'mlm predict {HECK} "math ~ ses + (1|schcode)" --where "schcode <= 10" -o predicted.csv',
)
AUGMENT_EXAMPLES = examples(
    f"mlm augment {SLEEP} {SLEEP_MODEL} -o augmented.csv",
    f'mlm augment {HECK} "math ~ ses + (1|schcode)" --format json -o augmented.json',
    'mlm augment tests/fixtures/glmer/data/cbpp.csv "cbind(incidence, size - incidence) ~ factor(period) + (1|herd)" '
    "--family binomial",
)


@app.command(epilog=PREDICT_EXAMPLES)
@reads_data
def predict(
    data: DataArg,
    formula: FormulaArg,
    newdata: Annotated[
        str | None,
        typer.Option(
            "--newdata",
            help="File of new rows to predict, in any format DATA can have (default: the fitted values "
            "of DATA's rows).",
        ),
    ] = None,
    newdata_sheet: Annotated[
        str | None,
        typer.Option(
            "--newdata-sheet", help="Excel sheet of --newdata: its name or 1-based position (default: the first)."
        ),
    ] = None,
    re_form: Annotated[
        ReForm,
        typer.Option(
            "--re-form", help="all: with the random effects (lme4's re.form = NULL); none: fixed part only (NA)."
        ),
    ] = ReForm.all,
    allow_new_levels: Annotated[
        bool,
        typer.Option(
            "--allow-new-levels", help="Predict unseen (or missing) groups at the population value, not an error."
        ),
    ] = False,
    ml: MlOpt = False,
    optimizer: OptimizerOpt = Optimizer.robust,
    source: DataOptions = DataOptions(),
    fmt: Annotated[str, format_option("predict", "csv or json.")] = "csv",
    output: OutputOpt = None,
    strict: StrictOpt = False,
    verbose: VerboseOpt = False,
    family: FamilyOpt = None,
    link: LinkOpt = None,
    nagq: NagqOpt = 1,
    type_: Annotated[
        PredictType,
        typer.Option("--type", help="With --family: link (lme4's default) or response (the mean, e.g. a probability)."),
    ] = PredictType.link,
) -> None:
    """Predictions as lme4's predict(): NEWDATA's columns plus .fitted."""
    _family_notes(family, link, nagq, ml)
    from mlmcli.stats.predict import prediction_report

    _memory_only("predict", source)  # the fitted values and the levels come from DATA's rows
    inputs = (data,) if newdata is None else (data, newdata)
    _check_outputs(inputs, output)
    if newdata is not None and newdata == "-" and data == "-":
        raise MlmError("DATA and --newdata cannot both be standard input")
    if family is not None:
        from mlmcli.cli.glmer import glmer_fits

        (model,), frame = glmer_fits(data, [formula], family, link, nagq, source, optimizer.value, verbose)
        _warn(list(dict.fromkeys(model.warnings)))
    else:
        model, frame = _fit_and_warn(data, formula, ml, source=source, optimizer=optimizer.value, verbose=verbose)
    if source.offset is not None and newdata is not None:
        _warn(
            [
                "mlm: note: as lme4's predict(), predictions for --newdata leave out --offset; write "
                f"offset({source.offset}) in the formula to include it"
            ]
        )
    with _user_errors(formula):
        new = _read(newdata, None, source.sep, newdata_sheet, verbose) if newdata is not None else None
        report, columns = prediction_report(model, frame, new, re_form.value, allow_new_levels, type_.value)
    _deliver("predict", fmt, report, output, inputs, columns=columns)
    _strict_exit(strict, model.warnings, model)


@app.command(epilog=AUGMENT_EXAMPLES)
@reads_data
def augment(
    data: DataArg,
    formula: FormulaArg,
    ml: MlOpt = False,
    optimizer: OptimizerOpt = Optimizer.robust,
    source: DataOptions = DataOptions(),
    fmt: Annotated[str, format_option("augment", "csv or json.")] = "csv",
    output: OutputOpt = None,
    strict: StrictOpt = False,
    verbose: VerboseOpt = False,
    family: FamilyOpt = None,
    link: LinkOpt = None,
    nagq: NagqOpt = 1,
) -> None:
    """The model frame's rows with broom.mixed's augment() columns .fitted, .resid and .fixed (with
    --family: .fitted on the response scale, deviance residuals, .eta and .wtres)."""
    _family_notes(family, link, nagq, ml)
    from mlmcli.stats.predict import augment_report

    _memory_only("augment", source)  # its output is DATA's rows
    inputs = (data,)
    _check_outputs(inputs, output)
    if family is not None:
        from mlmcli.cli.glmer import glmer_fits

        (model,), frame = glmer_fits(data, [formula], family, link, nagq, source, optimizer.value, verbose)
        _warn(list(dict.fromkeys(model.warnings)))
    else:
        model, frame = _fit_and_warn(data, formula, ml, source=source, optimizer=optimizer.value, verbose=verbose)
    report, columns = augment_report(model, frame.int_columns)
    _deliver("augment", fmt, report, output, inputs, columns=columns)
    _strict_exit(strict, model.warnings, model)
