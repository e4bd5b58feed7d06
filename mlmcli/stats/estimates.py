"""The numbers behind `mlm plot --kind coef` and `--kind effects`, computed before drawing.

coef: the fixed effects with lme4's confint.merMod(method = "Wald") intervals, estimate +- z SE, as
sjPlot's plot_model(type = "est") draws them; like sjPlot, the intercept is left out unless asked for.

effects: ggeffects::ggpredict(fit, terms) for a linear mixed model: population-level predictions
(re.form = NA) on a grid of one focal predictor, or of two (the second as one line per level, or for
a numeric second term at mean - sd, mean and mean + sd, or at its two values where it has only
two, such as a 0/1 indicator). The other numeric variables sit at their
means over the model frame and factors at their reference level (ggpredict's typical values). The
95% band is from vcov(beta): se = sqrt(diag(X V X')). ggpredict picks "pretty" values over the focal
term's range; here the grid is GRID_POINTS evenly spaced values over the range, the same line.
For a GLMM (glmerMod), as ggpredict does: the prediction and its band on the link scale, X beta +- z se,
taken through the inverse link onto the response scale (probabilities, mean counts); the standard
error stays the link scale's. A
first term with two values only (a 0/1 indicator) is predicted at those two, drawn as points with
intervals, as a factor is: a line between them would show values it never takes.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np

from mlmcli.design import model_matrix
from mlmcli.errors import MlmError
from mlmcli.io.frame import Factor

if TYPE_CHECKING:
    from mlmcli.formula import Formula
    from mlmcli.glmmodel import GlmmModel
    from mlmcli.model import FittedModel

GRID_POINTS = 50
INTERCEPT = "(Intercept)"


def _z(level: float) -> float:
    return NormalDist().inv_cdf((1.0 + level) / 2.0)


def coef_report(model: FittedModel | GlmmModel, intercept: bool = False, level: float = 0.95) -> dict:
    """Each fixed effect's estimate, standard error and Wald interval (confint(fit, method = "Wald"))."""
    z = _z(level)
    se = model.std_errors
    rows = [
        {
            "term": name,
            "estimate": float(b),
            "std_error": float(s),
            "lower": float(b - z * s),
            "upper": float(b + z * s),
        }
        for name, b, s in zip(model.design.xnames, model.beta, se, strict=True)
        if intercept or name != INTERCEPT
    ]
    if not rows:
        raise MlmError("the model has no fixed effect besides the intercept: give --intercept to plot it")
    return {"method": "Wald", "confidence_level": level, "intercept": intercept, "estimates": rows}


def effects_report(model: FittedModel | GlmmModel, terms: list[str], level: float = 0.95) -> dict:
    """ggpredict(fit, terms): predictions of the fixed part on a grid of `terms`, with their Wald band."""
    formula, design = model.formula, model.design
    family = getattr(model, "family", None)
    if formula.offsets:
        raise MlmError("--kind effects is not offered for a model with an offset")
    fixed = {v.label: v for t in formula.fixed.terms for v in t.vars}
    if not 1 <= len(terms) <= 2:
        raise MlmError("--terms names one predictor, or two for an interaction (ses,public)")
    terms = [_variable(t, fixed) for t in terms]
    if len(set(terms)) < len(terms):
        raise MlmError("--terms names the same predictor twice")
    values = {label: design.values[label] for label in fixed}
    for t in terms:
        col = values[t]
        if not isinstance(col, Factor) and np.asarray(col).ndim > 1:
            raise MlmError(f"--terms: {t!r} is a matrix (poly() or the like): name a single variable")

    x_grid, x_labels = _focal(values[terms[0]], first=True)
    if len(terms) == 2:
        g_grid, g_labels = _focal(values[terms[1]], first=False)
    else:
        g_grid, g_labels = [None], [None]
    n = len(x_grid) * len(g_grid)
    grid: dict = {}
    for label, col in values.items():
        if label == terms[0]:
            grid[label] = _repeat(col, x_grid, len(g_grid), inner=False)
        elif len(terms) == 2 and label == terms[1]:
            grid[label] = _repeat(col, g_grid, len(x_grid), inner=True)
        elif isinstance(col, Factor):  # the reference level
            grid[label] = Factor(np.zeros(n, dtype=np.int64), list(col.levels), col.logical)
        else:
            arr = np.asarray(col, dtype=float)
            mean = arr.mean(axis=0)
            grid[label] = np.broadcast_to(mean, (n, *arr.shape[1:])).copy()
    X, names = model_matrix(formula.fixed, grid, n)
    index = {name: j for j, name in enumerate(names)}
    X = X[:, [index[name] for name in design.xnames]]  # columns dropped for rank deficiency stay out
    beta = np.asarray(model.beta, dtype=float)
    V = np.asarray(model.vcov, dtype=float)
    eta = X @ beta
    se = np.sqrt(np.einsum("ij,jk,ik->i", X, V, X))
    z = _z(level)
    pred, lower, upper = eta, eta - z * se, eta + z * se
    if family is not None:  # ggpredict: the band on the link scale, both ends through the inverse link
        pred, a, b = (np.asarray(family.linkinv(v), dtype=float) for v in (eta, lower, upper))
        lower, upper = np.minimum(a, b), np.maximum(a, b)
    rows = []
    for k in range(n):
        gi, xi = divmod(k, len(x_grid))
        row = {"x": x_labels[xi], "predicted": float(pred[k]), "std_error": float(se[k])}
        row["lower"], row["upper"] = float(lower[k]), float(upper[k])
        if len(terms) == 2:
            row["group"] = g_labels[gi]
        rows.append(row)
    held = {
        label: (col.levels[0] if isinstance(col, Factor) else _number(np.asarray(col, dtype=float).mean(axis=0)))
        for label, col in values.items()
        if label not in terms
    }
    return {
        "focal": terms,
        "x_is_factor": isinstance(values[terms[0]], Factor),
        "x_discrete": isinstance(values[terms[0]], Factor) or len(x_grid) <= 2,
        "line_values": g_labels if len(terms) == 2 else [],
        "confidence_level": level,
        "held_at": held,
        "response": design.response,
        "predictions": rows,
        **({"scale": "response", "link": family.link} if family is not None else {}),
    }


def check_terms(formula: Formula, terms: list[str]) -> None:
    """--terms against the formula's fixed part, before any fit."""
    fixed = {v.label: v for t in formula.fixed.terms for v in t.vars}
    named = [_variable(t, fixed) for t in terms]
    if len(set(named)) < len(named):
        raise MlmError("--terms names the same predictor twice")


def _variable(term: str, fixed: dict) -> str:
    """The fixed part's variable `term` names: itself, or the one call of that column (factor(public))."""
    if term in fixed:
        return term
    calls = [label for label, v in fixed.items() if v.columns() == [term]]
    if len(calls) == 1:
        return calls[0]
    names = ", ".join(fixed) or "none"
    raise MlmError(f"--terms: {term!r} is not a fixed-effect predictor (they are: {names})")


def _number(v: np.ndarray) -> float | list[float]:
    return float(v) if np.ndim(v) == 0 else [float(x) for x in v]


def _focal(col: object, first: bool) -> tuple[list, list]:
    """The grid of one focal term and its labels: a factor's levels, a binary variable's two values; for
    the first numeric term GRID_POINTS values over its range, for the second mean - sd, mean, mean + sd
    (ggpredict's default)."""
    if isinstance(col, Factor):
        return list(range(len(col.levels))), list(col.levels)
    x = np.asarray(col, dtype=float)
    distinct = np.unique(x)
    if len(distinct) <= 2:  # a binary (0/1) variable: its two values, not a line or mean +- sd between them
        return list(distinct), [float(v) for v in distinct]
    if first:
        grid = np.linspace(x.min(), x.max(), GRID_POINTS)
        return list(grid), [float(v) for v in grid]
    m, s = float(x.mean()), float(x.std(ddof=1))
    spread = [m - s, m, m + s]
    return spread, list(spread)


def _repeat(col: object, grid: list, times: int, inner: bool) -> object:
    """The grid's values repeated to the n rows: the first term varies fastest."""
    vals = np.repeat(grid, times) if inner else np.tile(grid, times)
    if isinstance(col, Factor):
        return Factor(np.asarray(vals, dtype=np.int64), list(col.levels), col.logical)
    return np.asarray(vals, dtype=float)
