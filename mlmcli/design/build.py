"""The model matrices lmer builds from a formula and a data frame.

Follows lme4's lFormula: the model frame holds every variable of the formula,
evaluated on the whole data and then restricted to complete rows (na.omit, unused
factor levels dropped); each random term gets its grouping factor and its model
matrix (mkReTrms, terms reordered by number of levels); the fixed-effects matrix is
R's model.matrix with treatment contrasts, and columns that make it rank deficient
are dropped as chkRank.drop.cols does. lme4's input checks raise DataError with
lme4's wording.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mlmcli.design.checks import fixed_effects
from mlmcli.design.factors import Column, drop_unused
from mlmcli.design.frame import (
    ModelArguments,
    _argument_columns,
    _check_not_empty,
    _check_weights,
    _missing,
    _missing_in_data,
    _nan_rows_message,
    total_offset,
)
from mlmcli.design.matrices import model_matrix
from mlmcli.design.random import ReTerm, _random_terms, check_levels
from mlmcli.design.transforms import _unknown_column, _uses_group_means, evaluate
from mlmcli.errors import DataError
from mlmcli.formula import Formula
from mlmcli.io.frame import Factor, Frame

if TYPE_CHECKING:
    from mlmcli.design.glm import GlmResponseValues  # glmer's response, imported when a family asks for it


@dataclass
class Design:
    y: np.ndarray
    X: np.ndarray
    xnames: list[str]
    terms: list[ReTerm]
    n_obs: int
    rows: np.ndarray  # indices into the CSV rows of the observations used
    response: str
    messages: list[str] = field(default_factory=list)  # lme4's messages and warnings
    dropped: list[str] = field(default_factory=list)  # fixed-effect columns dropped for rank deficiency
    # offset() terms summed over the rows used (None without any): y above is the response minus it,
    # as lme4 fits; fitted values and predictions add it back
    offset: np.ndarray | None = None
    # the model frame: every formula variable on the rows used, and the factors' levels (R's xlevels)
    values: dict[str, Column] = field(default_factory=dict)
    levels: dict[str, list[str]] = field(default_factory=dict)
    response_values: np.ndarray | None = None  # the response itself, before the offset is taken off
    # prior weights on the rows used (None without --weights), and the columns lmer's arguments named
    weights: np.ndarray | None = None
    args: ModelArguments = field(default_factory=lambda: ModelArguments())
    # the model frame's "(weights)" and "(offset)" columns (lmer's arguments) on the rows used
    arg_values: dict[str, np.ndarray] = field(default_factory=dict)
    # rows na.omit left out for a missing value in the data (lme4 says nothing of them; mlm notes them)
    missing_rows: int = 0
    # a GLMM's response as family$initialize() leaves it (y above is its y, not offset-adjusted)
    glm: GlmResponseValues | None = None


def build_design(frame: Frame, formula: Formula, args: ModelArguments | None = None) -> Design:
    """Response, fixed-effects matrix and random-effects terms as lmer builds them."""
    args = args or ModelArguments()
    for name in formula.columns():
        if name not in frame.columns:
            raise _unknown_column(name, frame)
    extra = _argument_columns(frame, args)
    full = {v.label: evaluate(v, frame) for v in formula.variables}
    response = formula.response.label
    y_full = full[response]
    _check_not_empty(formula.response, y_full, frame, response=True)
    binomial = args.family == "binomial"
    if isinstance(y_full, Factor) and not binomial:
        kind = (
            "TRUE/FALSE values"
            if y_full.logical
            else "value labels, so it is a factor as haven::as_factor makes it"
            if y_full.labelled
            else "text"
        )
        raise DataError(f"the response '{response}' is not numeric: its column holds {kind}")
    if isinstance(y_full, Factor):
        if len(y_full.levels) > 2 and not y_full.logical:
            raise DataError(
                f"the response '{response}' is a factor with {len(y_full.levels)} levels: a binomial "
                "response has two (the first is failure)"
            )
    elif y_full.ndim != 1 and not (binomial and y_full.ndim == 2):
        hint = ": cbind(successes, failures) is a binomial response (--family binomial)" if y_full.ndim == 2 else ""
        raise DataError(f"the response '{response}' must be one column{hint}")

    # na.omit over every variable of the model frame
    complete = np.ones(frame.n_rows, dtype=bool)
    for col in list(full.values()) + list(extra.values()):
        if isinstance(col, Factor):
            complete &= col.codes >= 0
        else:
            complete &= ~_missing(col)
    every_row = bool(complete.all())  # no copies of whole columns when no row is dropped
    rows = np.arange(frame.n_rows) if every_row else np.flatnonzero(complete)
    n = len(rows)
    if n == 0:
        for v in formula.variables:
            _check_not_empty(v, full[v.label], frame)
        for option, name in (("--weights", args.weights), ("--offset", args.offset)):
            if name is not None and _missing(extra[name]).all():
                raise DataError(f"{option} {name}: the column is missing in every row; no rows are left")
        raise DataError("no rows left after removing rows with missing values in the model's columns")
    for v in formula.variables:
        if _uses_group_means(v.expr):
            # cluster means over the model frame's rows, now that they are known
            full[v.label] = evaluate(v, frame, used=complete)
    # rows dropped for a missing value in the data, and for one a transformation produced
    nan_message = None if every_row else _nan_rows_message(frame, formula, full, complete, args)
    missing_rows = 0 if every_row else int((~complete & _missing_in_data(frame, formula, args)).sum())
    values: dict[str, Column] = {}
    for label, col in full.items():
        if isinstance(col, Factor):
            values[label] = drop_unused(col if every_row else Factor(col.codes[rows], col.levels, col.logical))
        else:
            values[label] = col if every_row else col[rows]

    shared: dict = {}
    terms = _random_terms(formula, frame, values, n, shared)
    check_levels(terms, n, glmm=args.family is not None)

    X, xnames = shared[formula.fixed] if formula.fixed in shared else model_matrix(formula.fixed, values, n)
    xnames = list(xnames)
    y_col = values[response]
    check_finite(y_col if not isinstance(y_col, Factor) else np.zeros(1), X, xnames, terms, response)
    fixed = fixed_effects(X, xnames, n)
    messages = fixed.messages
    if nan_message:
        messages.append(nan_message)
    offset = total_offset(formula, values, n)
    if args.offset is not None:
        offset = (0.0 if offset is None else offset) + extra[args.offset][rows]
    if offset is not None:
        if not np.all(np.isfinite(offset)):
            labels = [v.label for v in formula.offsets] + ([args.offset] if args.offset else [])
            raise DataError("NA/NaN/Inf in the offset: " + ", ".join(labels))
    weights = None if args.weights is None else _check_weights(extra[args.weights][rows], args.weights, rows)
    glm = None
    if args.family is not None:
        from mlmcli.design.glm import glm_response

        glm = glm_response(args.family, y_col, weights, rows, response)
        messages.extend(glm.messages)
        y = glm.y
    else:
        y = np.asarray(y_col, dtype=float)
    levels = {label: list(col.levels) for label, col in values.items() if isinstance(col, Factor)}
    arg_values = {
        f"({key})": extra[name][rows]
        for key, name in (("weights", args.weights), ("offset", args.offset))
        if name is not None
    }
    return Design(
        y=y if offset is None or glm is not None else y - offset,
        X=fixed.X,
        xnames=fixed.xnames,
        terms=terms,
        n_obs=n,
        rows=rows,
        response=response,
        messages=messages,
        dropped=fixed.dropped,
        offset=offset,
        values=values,
        levels=levels,
        response_values=y,
        weights=weights,
        args=args,
        arg_values=arg_values,
        missing_rows=missing_rows,
        glm=glm,
    )


def check_finite(y: Column, X: np.ndarray, xnames: list[str], terms: list[ReTerm], response: str) -> None:
    """lmer stops at infinite values (log(0), 1/0): NaN rows were dropped as missing, Inf rows were not."""

    def bad(M: np.ndarray, names: list[str]) -> str | None:
        with np.errstate(all="ignore"):
            # a sum is finite only when every term is; the whole array's, in its memory order (a
            # column sum of a long row-major array strides, ten times slower)
            if np.isfinite(M.sum()):
                return None
        cols = np.flatnonzero(~np.all(np.isfinite(M), axis=0))
        return names[cols[0]] if cols.size else None

    if not np.all(np.isfinite(np.asarray(y, dtype=float))):
        raise DataError(f"NA/NaN/Inf in 'y': the response '{response}' has infinite values")
    col = bad(X, xnames)
    if col is not None:
        # R's own words first, as lFormula stops in qr()
        raise DataError(
            f"NA/NaN/Inf in foreign function call (arg 1): the fixed-effects column '{col}' has infinite values"
        )
    for t in terms:
        if t.X is X:  # the fixed-effects matrix itself (a term sharing it): checked just above
            continue
        col = bad(t.X, t.cnames)
        if col is not None:
            raise DataError(f"NA/NaN/Inf in the random-effects term ({t.label}): '{col}' has infinite values")
