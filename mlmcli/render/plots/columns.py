"""Data columns a picture reads: the x axis, and the predictors the model uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mlmcli.errors import DataError, MlmError

if TYPE_CHECKING:
    from mlmcli.io.frame import Frame
    from mlmcli.model import FittedModel


def data_column(frame: Frame, name: str, flag: str) -> Any:
    """The column `name` given with `flag`, or an error listing the columns there are."""
    col = frame.columns.get(name)
    if col is None:
        raise DataError(f"{flag} '{name}' is not a column of the data (columns: {', '.join(frame.columns)})")
    return col


def numeric_column(frame: Frame, name: str, flag: str) -> np.ndarray:
    """A column as numbers: a logical one as 0/1 (NaN where missing); text is refused."""
    from mlmcli.io.frame import Factor

    col = data_column(frame, name, flag)
    if isinstance(col, Factor):
        if col.logical:
            return np.where(col.codes < 0, np.nan, col.codes.astype(float))
        raise DataError(f"{flag} '{name}' holds text; the x axis needs a numeric column")
    return np.asarray(col, dtype=float)


def predictor_columns(model: FittedModel) -> list[str]:
    """Data columns read by the fixed part or by the random terms' model matrices."""
    out: list[str] = []
    specs = [model.formula.fixed] + [rt.lhs for rt in model.formula.random]
    for spec in specs:
        for term in spec.terms:
            for var in term.vars:
                for c in var.columns():
                    if c not in out:
                        out.append(c)
    return out


def default_x(model: FittedModel, frame: Frame, kind: str) -> str:
    """The first numeric predictor of the fixed part: a plain column first, else one inside a function."""
    from mlmcli.formula import Sym
    from mlmcli.io.frame import Factor

    def numeric(c: str) -> bool:
        col = frame.columns.get(c)
        return col is not None and not isinstance(col, Factor)

    for term in model.formula.fixed.terms:
        if len(term.vars) == 1 and isinstance(term.vars[0].expr, Sym) and numeric(term.vars[0].label):
            return term.vars[0].label
    for c in predictor_columns(model):
        if numeric(c):
            return c
    raise MlmError(
        f"the {kind} plot needs a numeric x, and the model has no numeric predictor: give one with --x COLUMN"
    )
