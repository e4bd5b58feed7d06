"""predict and augment: lme4's predict() and broom.mixed's augment()."""

from __future__ import annotations

from typing import Annotated

import typer

from mlmcli.cli.app import (
    DataArg,
    FormulaArg,
    MlOpt,
    OffsetOpt,
    OutputOpt,
    ReForm,
    RowsFormat,
    SheetOpt,
    StrictOpt,
    VerboseOpt,
    WeightsOpt,
    app,
)
from mlmcli.cli.common import _check_outputs, _emit, _fit_and_warn, _json, _read, _user_errors, _warn
from mlmcli.errors import MlmError


@app.command()
def predict(
    data: DataArg,
    formula: FormulaArg,
    newdata: Annotated[str | None, typer.Option(
        "--newdata", help="File of new rows to predict, in any format DATA can have (default: the fitted values "
        "of DATA's rows).")] = None,
    newdata_sheet: Annotated[str | None, typer.Option(
        "--newdata-sheet", help="Excel sheet of --newdata: its name or 1-based position (default: the first).")
    ] = None,
    re_form: Annotated[ReForm, typer.Option(
        "--re-form", help="all: with the random effects (lme4's re.form = NULL); none: fixed part only (NA).")
    ] = ReForm.all,
    allow_new_levels: Annotated[bool, typer.Option(
        "--allow-new-levels", help="Predict unseen (or missing) groups at the population value, not an error.")
    ] = False,
    ml: MlOpt = False,
    sheet: SheetOpt = None,
    weights: WeightsOpt = None,
    offset: OffsetOpt = None,
    fmt: Annotated[RowsFormat, typer.Option("--format", "-f", help="csv or json.")] = RowsFormat.csv,
    output: OutputOpt = None,
    strict: StrictOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Predictions as lme4's predict(): NEWDATA's columns plus .fitted."""
    from mlmcli.report import prediction_report

    inputs = (data,) if newdata is None else (data, newdata)
    _check_outputs(inputs, output)
    if newdata is not None and newdata == "-" and data == "-":
        raise MlmError("DATA and --newdata cannot both be standard input")
    model, frame = _fit_and_warn(data, formula, ml, sheet=sheet, verbose=verbose, weights=weights,
                                 offset=offset)
    if offset is not None and newdata is not None:
        _warn(["mlm: note: as lme4's predict(), predictions for --newdata leave out --offset; write "
               f"offset({offset}) in the formula to include it"])
    with _user_errors(formula):
        new = _read(newdata, None, None, newdata_sheet, verbose) if newdata is not None else None
        report, columns = prediction_report(model, frame, new, re_form.value, allow_new_levels)
    if fmt == RowsFormat.json:
        _emit(_json(report), output, inputs)
    else:
        from mlmcli.render.rows import rows_csv

        _emit(rows_csv(columns), output, inputs)


@app.command()
def augment(
    data: DataArg,
    formula: FormulaArg,
    ml: MlOpt = False,
    sheet: SheetOpt = None,
    weights: WeightsOpt = None,
    offset: OffsetOpt = None,
    fmt: Annotated[RowsFormat, typer.Option("--format", "-f", help="csv or json.")] = RowsFormat.csv,
    output: OutputOpt = None,
    strict: StrictOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """The model frame's rows with broom.mixed's augment() columns .fitted, .resid and .fixed."""
    from mlmcli.report import augment_report

    inputs = (data,)
    _check_outputs(inputs, output)
    model, frame = _fit_and_warn(data, formula, ml, sheet=sheet, verbose=verbose, weights=weights, offset=offset)
    report, columns = augment_report(model, frame.int_columns)
    if fmt == RowsFormat.json:
        _emit(_json(report), output, inputs)
    else:
        from mlmcli.render.rows import rows_csv

        _emit(rows_csv(columns), output, inputs)
