"""The model frame, as R's model.frame builds it for lmer: every variable of the formula evaluated on
the whole data, then only complete rows (na.omit); lmer's weights and offset arguments join it.  Counts
the rows left out for missing data and for values log(), sqrt() ... cannot take ("NaNs produced")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlmcli.design.factors import Column
from mlmcli.design.transforms import ScaleParameters, _unknown_column, evaluate
from mlmcli.errors import DataError
from mlmcli.formula import Formula, Var
from mlmcli.io.frame import Factor, Frame


@dataclass(frozen=True)
class ModelArguments:
    """lmer()'s and glmer()'s arguments besides the formula: `weights =` (prior weights, residual
    variance sigma^2 / w; for binomial, the numbers of trials) and `offset =` (added to the
    formula's offset() terms) name columns of the data; `family` is glmer's.
    Their columns join the model frame: a missing value drops the row, as na.omit does."""

    weights: str | None = None
    offset: str | None = None
    # glmer's family (binomial, poisson); None for lmer
    family: str | None = None

    def columns(self) -> list[str]:
        return [c for c in (self.weights, self.offset) if c is not None]


def model_frame(
    frame: Frame, formula: Formula, scales: ScaleParameters | None = None, family: str | None = None
) -> tuple[dict[str, Column], np.ndarray]:
    """Every formula variable evaluated on the whole data, and the complete rows (na.omit), as
    build_design starts (without --weights and --offset columns): for data read in partitions.
    A binomial response (`family`) may also be a factor or cbind(successes, failures)."""
    for name in formula.columns():
        if name not in frame.columns:
            raise _unknown_column(name, frame)
    full = {v.label: evaluate(v, frame, scales=scales) for v in formula.variables}
    response = formula.response.label
    y_full = full[response]
    if isinstance(y_full, Factor) and y_full.logical:
        # a column of NA alone reads as logical: say so rather than call it TRUE/FALSE values
        _check_not_empty(formula.response, y_full, frame, response=True)
    binomial = family == "binomial"
    if isinstance(y_full, Factor) and not binomial:
        kind = "TRUE/FALSE values" if y_full.logical else "text"
        raise DataError(f"the response '{response}' is not numeric: its column holds {kind}")
    if not isinstance(y_full, Factor) and y_full.ndim != 1 and not (binomial and y_full.ndim == 2):
        hint = ": cbind(successes, failures) is a binomial response (--family binomial)" if y_full.ndim == 2 else ""
        raise DataError(f"the response '{response}' must be one column{hint}")
    complete = np.ones(frame.n_rows, dtype=bool)
    for col in full.values():
        if isinstance(col, Factor):
            complete &= col.codes >= 0
        else:
            complete &= ~np.isnan(col).reshape(len(col), -1).any(axis=1)
    return full, complete


def _argument_columns(frame: Frame, args: ModelArguments) -> dict[str, np.ndarray]:
    """The numeric columns --weights and --offset name, on every row of the data."""
    out = {}
    for option, name in (("--weights", args.weights), ("--offset", args.offset)):
        if name is None:
            continue
        if name not in frame.columns:
            raise _unknown_column(name, frame, option)
        col = frame.columns[name]
        if isinstance(col, Factor) and frame.n_rows and _missing(col).all():
            raise DataError(f"{option} {name}: the column is missing in every row")
        if isinstance(col, Factor):
            raise DataError(f"{option} {name}: the column must be numeric")
        out[name] = np.asarray(col, dtype=float)
    return out


def _check_weights(w: np.ndarray, name: str, rows: np.ndarray) -> np.ndarray:
    """lme4 stops at negative weights (mkRespMod: all(weights >= 0)); a zero weight makes its
    criterion infinite (log 0 in the weights' determinant), so it is refused too."""
    for bad, what in ((~np.isfinite(w), "is infinite"), (w < 0, "is negative"), (w == 0, "is zero")):
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            extra = (
                ""
                if what != "is zero"
                else (" (lme4's criterion is infinite with a zero weight; leave such rows out of the data)")
            )
            raise DataError(
                f"--weights {name}: the weight of data row {int(rows[i]) + 1} {what}; weights must be positive{extra}"
            )
    return w


def total_offset(formula: Formula, values: dict[str, Column], n: int) -> np.ndarray | None:
    """The sum of the formula's offset() variables (R adds several), None when there are none."""
    if not formula.offsets:
        return None
    total = np.zeros(n)
    for v in formula.offsets:
        col = values[v.label]
        if isinstance(col, Factor):
            raise DataError(f"{v.label}: an offset must be numeric")
        total = total + np.asarray(col, dtype=float).reshape(n)
    return total


def _check_not_empty(var: Var, col: Column, frame: Frame, response: bool = False) -> None:
    """A variable missing in every row is named, and so is the column that makes it so."""
    if frame.n_rows == 0 or not _missing(col).all():
        return
    empty = [c for c in var.columns() if c in frame.columns and _missing(frame.columns[c]).all()]
    what = "the response " if response else ""
    then = "" if response else "; no rows are left"
    if empty == [var.label]:
        raise DataError(f"{what}column '{var.label}' is missing in every row{then}")
    if empty:
        raise DataError(f"{what}'{var.label}' is missing in every row, as its column '{empty[0]}' is{then}")
    raise DataError(f"{what}'{var.label}' is missing (NA or NaN) in every row{then}")


def _missing(col: Column) -> np.ndarray:
    if isinstance(col, Factor):
        return col.codes < 0
    if col.ndim == 1:
        return np.isnan(col)
    return np.asarray(np.isnan(col).reshape(len(col), -1).any(axis=1))


def _nan_rows_message(
    frame: Frame, formula: Formula, full: dict[str, Column], complete: np.ndarray, args: ModelArguments
) -> str | None:
    """R warns "NaNs produced" where log(), sqrt() ... of a value outside their domain drop rows; say how
    many rows went that way, beyond those with missing data."""
    produced = ~complete & ~_missing_in_data(frame, formula, args)
    count = int(produced.sum())
    if count == 0:
        return None
    labels = [label for label, col in full.items() if _missing(col)[produced].any()]
    rows = "row" if count == 1 else "rows"
    return f"NaNs produced by {', '.join(labels)}: {count} {rows} dropped"


def _missing_in_data(frame: Frame, formula: Formula, args: ModelArguments) -> np.ndarray:
    """Rows with a missing value in a column the model uses."""
    missing = np.zeros(frame.n_rows, dtype=bool)
    for name in formula.columns() + args.columns():
        missing |= _missing(frame.columns[name])
    return missing
