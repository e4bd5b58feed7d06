"""Predictions of a fitted model, as lme4's predict(fit, newdata, re.form, allow.new.levels) makes them.

New data are coded as the fit's model frame was: every factor with the training levels (R's xlevels;
a level the fit never saw is an error in the fixed part), scale() and poly() with the training data's
centre, scale and basis (R's predvars). cwc() and cmean() average within the new data, as an R
function in the formula would. Grouping factors are matched to the fitted levels by label: a new
level is an error unless new levels are allowed, and then contributes no random effect (the
population value), as in lme4. Offsets are added back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mlmcli.design import Column, evaluate, model_matrix, total_offset, value_labels
from mlmcli.errors import DataError
from mlmcli.io.frame import Factor, Frame
from mlmcli.model import FittedModel, Prediction, fitted_values
from mlmcli.render.jsonvalues import clean
from mlmcli.report import SCHEMA_VERSION

if TYPE_CHECKING:
    from mlmcli.formula import RandomTerm, Var
    from mlmcli.glmmodel import GlmmModel


NEW_LEVELS_HINT = " (give --allow-new-levels to predict {what} without their random effects)"


def predict_new(
    model: FittedModel | GlmmModel, train: Frame, new: Frame, random: bool = True, allow_new_levels: bool = False
) -> Prediction:
    """lme4's predict(fit, newdata, re.form = NULL (random) or NA, allow.new.levels)."""
    formula, design = model.formula, model.design
    fixed_vars = _unique([v for t in formula.fixed.terms for v in t.vars] + list(formula.offsets))
    random_terms = list(formula.random) if random else []
    needed = fixed_vars + _unique([v for rt in random_terms for t in rt.lhs.terms for v in t.vars])
    _check_columns(needed, random_terms, new, formula.variables)
    values = {v.label: _recode(v, evaluate(v, new, reference=train), design.levels) for v in needed}
    n = new.n_rows
    missing = np.zeros(n, dtype=bool)
    for col in values.values():
        missing |= _missing(col)

    X, names = model_matrix(formula.fixed, values, n)
    index = {name: j for j, name in enumerate(names)}
    X = X[:, [index[name] for name in design.xnames]]  # columns dropped for rank deficiency stay out
    fixed = X @ np.asarray(model.beta, dtype=float)
    offset = total_offset(formula, values, n)
    if offset is not None:
        fixed = fixed + offset
    out = fixed.copy()
    if random_terms:
        out = out + _random_part(model, train, new, values, allow_new_levels)
    out[missing] = np.nan
    fixed[missing] = np.nan
    return Prediction(values=out, fixed=fixed)


def _unique(vs: list[Var]) -> list[Var]:
    seen: dict[str, Var] = {}
    for v in vs:
        seen.setdefault(v.label, v)
    return list(seen.values())


def _check_columns(
    needed: list[Var], random_terms: list[RandomTerm], new: Frame, formula_variables: tuple[Var, ...]
) -> None:
    variables = {v.label: v for v in formula_variables}
    # a grouping variable is a column, or a call such as factor(g) of columns
    groups = [
        c for rt in random_terms for g in rt.group_vars for c in (variables[g].columns() if g in variables else [g])
    ]
    columns = [c for v in needed for c in v.columns()] + groups
    absent = [c for c in dict.fromkeys(columns) if c not in new.columns]
    if absent:
        names = ", ".join(f"'{c}'" for c in absent)
        raise DataError(f"the new data have no column {names}, which the model needs")


def _missing(col: Column) -> np.ndarray:
    if isinstance(col, Factor):
        return col.codes < 0
    return np.isnan(np.asarray(col, dtype=float)).reshape(len(col), -1).any(axis=1)


def _recode(var: Var, col: Column, levels: dict[str, list[str]]) -> Column:
    """A factor of the new data with the fit's levels: R's model.frame(..., xlev =)."""
    train = levels.get(var.label)
    if train is None:
        if isinstance(col, Factor):
            raise DataError(f"'{var.label}' is a factor in the new data but numeric in the fit")
        return col
    if not isinstance(col, Factor):
        raise DataError(f"'{var.label}' is numeric in the new data but a factor in the fit")
    index = {lev: i for i, lev in enumerate(train)}
    mapping = np.array([index.get(lev, -1) for lev in col.levels] + [-1], dtype=np.int64)
    used = np.zeros(len(col.levels), dtype=bool)
    used[col.codes[col.codes >= 0]] = True
    new_levels = [lev for lev, u in zip(col.levels, used, strict=True) if u and lev not in index]
    if new_levels:
        # R's wording; it says "levels" whenever the new data's factor has more than one level
        word = "levels" if len(col.levels) > 1 else "level"
        raise DataError(f"factor {var.label} has new {word} {', '.join(new_levels)}")
    codes = np.where(col.codes >= 0, mapping[np.maximum(col.codes, 0)], -1)
    return Factor(codes, list(train), col.logical)


def _random_part(
    model: FittedModel | GlmmModel, train: Frame, new: Frame, values: dict[str, Column], allow_new_levels: bool
) -> np.ndarray:
    """Sum over random terms of z' b for each new row; unseen or missing levels add nothing."""
    n = new.n_rows
    total = np.zeros(n)
    remaining = list(model.formula.random)
    modes = model.conditional_modes()
    for term, b in zip(model.design.terms, modes, strict=True):
        rt = next(r for r in remaining if r.label == term.label)  # design terms are sorted by levels
        remaining.remove(rt)
        labels = _group_labels(rt.group_vars, new, train, model.formula.variables)
        index = {lev: i for i, lev in enumerate(term.levels)}
        codes = np.array([-1 if lab is None else index.get(lab, -1) for lab in labels], dtype=np.int64)
        if not allow_new_levels:
            if any(lab is None for lab in labels):
                raise DataError(
                    "NAs are not allowed in prediction data for grouping variables unless "
                    f"allow.new.levels is TRUE{NEW_LEVELS_HINT.format(what='those rows')}"
                )
            unseen = list(dict.fromkeys(lab for lab, c in zip(labels, codes, strict=True) if c < 0))
            if unseen:
                # lme4's words, then the option that allows them
                raise DataError(
                    f"new levels detected in newdata: {', '.join(str(u) for u in unseen)}"
                    + NEW_LEVELS_HINT.format(what="them")
                )
        Z, _ = model_matrix(rt.lhs, values, n)
        known = codes >= 0
        contribution = np.zeros(n)
        contribution[known] = np.sum(Z[known] * b[codes[known]], axis=1)
        total += contribution
    return total


def _group_labels(
    group_vars: tuple[str, ...], new: Frame, train: Frame, formula_variables: tuple[Var, ...]
) -> list[str | None]:
    """Each new row's grouping level as the fit labels it ("308", "a:b", "A.a" for interaction(a, b));
    None if any part is missing."""
    variables = {v.label: v for v in formula_variables}
    parts = [
        value_labels(
            new.columns[g] if g in new.columns else evaluate(variables[g], new, reference=train), g in new.int_columns
        )
        for g in group_vars
    ]
    out: list[str | None] = []
    for row in zip(*parts, strict=True):
        out.append(None if any(p is None for p in row) else ":".join(row))  # type: ignore[arg-type]
    return out


def prediction_report(
    model: FittedModel | GlmmModel,
    frame: Frame,
    new: Frame | None,
    re_form: str,
    allow_new_levels: bool,
    type_: str = "link",
) -> tuple[dict, dict]:
    """`mlm predict`: the new data's columns (without new data, the fit's rows of the data) and .fitted,
    for a GLMM on the link scale or (`type_` "response") the response's, as predict.merMod's type.

    Returns the JSON report and the columns for CSV."""
    from mlmcli.render.rows import named_columns, records

    family = getattr(model, "family", None)
    if new is None:
        pred = fitted_values(model) if isinstance(model, FittedModel) else model.fitted_values()
        rows = model.design.rows
        source = {name: _take(col, rows) for name, col in frame.columns.items()}
        columns = named_columns(source, frame.int_columns)
    else:
        pred = predict_new(model, frame, new, random=re_form == "all", allow_new_levels=allow_new_levels)
        columns = named_columns(new.columns, new.int_columns)
    fitted = pred.values if re_form == "all" else pred.fixed
    if family is not None and type_ == "response":
        fitted = family.linkinv(fitted)  # NaN (a missing value) stays NaN
    columns[".fitted"] = clean(fitted)
    report = {
        "schema_version": SCHEMA_VERSION,
        "formula": model.formula.text,
        "data_name": model.data_name,
        "newdata_name": new.name if new is not None else None,
        "re_form": re_form,
        "allow_new_levels": allow_new_levels,
        **({"type": type_} if family is not None else {}),
        "n": len(fitted),
        "rows": records(columns),
    }
    return clean(report), columns


def augment_report(model: FittedModel | GlmmModel, int_columns: set[str] | None = None) -> tuple[dict, dict]:
    """`mlm augment`: broom.mixed's augment(fit) columns .fitted, .resid and .fixed on the model frame;
    for a GLMM (augment of a glmerMod) .fitted on the response scale, deviance residuals, and the
    linear predictor and Pearson residuals besides."""
    from mlmcli.render.rows import named_columns, records

    # lme4's model frame: the formula's variables (a cbind() response as its two columns), then
    # the "(weights)" and "(offset)" columns of the arguments
    columns = named_columns({**model.design.values, **model.design.arg_values}, int_columns or set())
    family = getattr(model, "family", None)
    if isinstance(model, FittedModel):
        pred = fitted_values(model)
        columns[".fitted"] = clean(pred.values)
        columns[".resid"] = clean(np.asarray(model.residuals, dtype=float))
        columns[".fixed"] = clean(pred.fixed)
    else:
        pred = model.fitted_values()
        columns[".fitted"] = clean(np.asarray(model.fitted, dtype=float))  # mu: fitted(fit)
        columns[".resid"] = clean(model.deviance_residuals())  # residuals(fit)
        columns[".fixed"] = clean(pred.fixed)  # predict(fit, re.form = NA): the link scale
        columns[".eta"] = clean(pred.values)  # predict(fit): the link scale, random effects included
        columns[".wtres"] = clean(model.pearson_residuals())  # residuals(fit, "pearson")
    report = {
        "schema_version": SCHEMA_VERSION,
        "formula": model.formula.text,
        "data_name": model.data_name,
        **({"family": family.name, "link": family.link} if family is not None else {}),
        "n": model.n,
        "rows": records(columns),
    }
    return clean(report), columns


def _take(col: Any, rows: np.ndarray) -> Any:
    if isinstance(col, Factor):
        return Factor(col.codes[rows], col.levels, col.logical)
    return col[rows]
