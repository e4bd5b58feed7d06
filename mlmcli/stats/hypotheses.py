"""The hypothesis matrices of lmerTest's anova(): one L per fixed-effect term, types I, II and III.

Type I: rows of the Doolittle factor of X'X (sequential); type II: the same with the term and the
terms containing it moved last, or the term's own coefficients when nothing contains it; type III:
lmerTest's get_contrasts_type3 for treatment coding: each term's cell-mean contrasts (the columns of
the term's full-rank indicator matrix projected on X) made orthogonal to the terms that contain it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mlmcli.errors import DataError

if TYPE_CHECKING:
    from mlmcli.design import Column
    from mlmcli.formula import Term
    from mlmcli.io.frame import Frame
    from mlmcli.model import FittedModel

ZERO_ROW = 1e-8  # lmerTest drops contrast rows with sum |L| below this
DOOLITTLE_EPS = 1e-6


@dataclass
class FixedTerms:
    """The fixed part of a model as anova() sees it: terms, their columns of X, the data."""

    labels: list[str]
    terms: list[Term]
    columns: dict[str, list[int]]  # term label -> its columns of X
    values: dict[str, Column]  # every variable on the rows of the fit
    X: np.ndarray
    xnames: list[str]
    intercept: bool


def fixed_terms(model: FittedModel, frame: Frame) -> FixedTerms:
    """Map the fixed-effect terms to their columns (R's assign attribute)."""
    from mlmcli.design import contrast_codes, drop_unused, evaluate
    from mlmcli.io.frame import Factor

    design = model.design
    if design.dropped:
        raise DataError(
            "anova needs a full-rank fixed-effect model matrix; lme4 dropped "
            f"{', '.join(design.dropped)}: remove the redundant terms first"
        )
    spec = model.formula.fixed
    rows = design.rows
    values: dict[str, Column] = {}
    for v in model.formula.variables:
        col = evaluate(v, frame)
        values[v.label] = (
            drop_unused(Factor(col.codes[rows], col.levels, col.logical)) if isinstance(col, Factor) else col[rows]
        )
    columns: dict[str, list[int]] = {}
    pos = 1 if spec.intercept else 0
    for term, coding in zip(spec.terms, contrast_codes(spec, values), strict=True):
        width = 1
        for var, code in zip(term.vars, coding, strict=True):
            col = values[var.label]
            if isinstance(col, Factor):
                width *= len(col.levels) - (1 if code == 1 else 0)
            elif col.ndim == 2:
                width *= col.shape[1]
        columns[term.label] = list(range(pos, pos + width))
        pos += width
    if pos != design.X.shape[1]:
        raise DataError("anova: the fixed-effect terms do not map onto the model matrix")
    return FixedTerms(
        labels=[t.label for t in spec.terms],
        terms=list(spec.terms),
        columns=columns,
        values=values,
        X=design.X,
        xnames=list(design.xnames),
        intercept=spec.intercept,
    )


def _zapsmall(A: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's zapsmall(): round to `digits` significant digits of the largest entry."""
    mx = float(np.max(np.abs(A))) if A.size else 0.0
    if not mx > 0:
        return A
    return np.round(A, max(0, digits - int(np.ceil(np.log10(mx)))))


def doolittle(x: np.ndarray, eps: float = DOOLITTLE_EPS) -> np.ndarray:
    """lmerTest's doolittle(): the unit lower-triangular L of x = L U, small entries zeroed."""
    n = x.shape[0]
    L = np.eye(n)
    U = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            U[i, j] = x[i, j] - float(L[i, :i] @ U[:i, j])
        for j in range(i + 1, n):
            v = x[j, i] - float(L[j, :i] @ U[:i, i])
            L[j, i] = 0.0 if abs(U[i, i]) < eps else v / U[i, i]
    L[np.abs(L) < eps] = 0.0
    return L


def _drop_zero_rows(L: np.ndarray) -> np.ndarray:
    return L[np.abs(L).sum(axis=1) > ZERO_ROW]


def type1(ft: FixedTerms) -> dict[str, np.ndarray]:
    p = ft.X.shape[1]
    L = np.ones((1, 1)) if p == 1 else doolittle(ft.X.T @ ft.X).T
    return {t: L[ft.columns[t]] for t in ft.labels}


def _numeric_vars(ft: FixedTerms, term: Term) -> set[str]:
    from mlmcli.io.frame import Factor

    return {
        v.label for v in term.vars if not isinstance(ft.values[v.label], Factor) and np.ndim(ft.values[v.label]) == 1
    }


def containment(ft: FixedTerms) -> dict[str, list[str]]:
    """lmerTest's containment(): for each term, the terms that contain it (its variables and more,
    with the same numeric variables)."""
    vars_ = {t.label: {v.label for v in t.vars} for t in ft.terms}
    nums = {t.label: _numeric_vars(ft, t) for t in ft.terms}
    return {a: [b for b in ft.labels if vars_[a] < vars_[b] and nums[a] == nums[b]] for a in ft.labels}


def type2(ft: FixedTerms) -> dict[str, np.ndarray]:
    """lmerTest's get_contrasts_type2_unfolded."""
    p = ft.X.shape[1]
    if p <= 1 or len(ft.labels) <= 1:
        return type1(ft)
    contained = containment(ft)
    out = {}
    for term in ft.labels:
        if not contained[term]:
            out[term] = np.eye(p)[ft.columns[term]]
            continue
        cols = [c for t in [term] + contained[term] for c in ft.columns[t]]
        rest = [c for c in range(p) if c not in cols]
        order = rest + cols
        Xn = ft.X[:, order]
        Lc = doolittle(Xn.T @ Xn).T
        rows = [i for i, c in enumerate(order) if c in ft.columns[term]]
        L = np.zeros((len(rows), p))
        L[:, order] = Lc[rows]
        out[term] = L
    return out


def type3(ft: FixedTerms) -> dict[str, np.ndarray]:
    """lmerTest's get_contrasts_type3 (extract_contrasts_type3) for treatment-coded factors."""
    from mlmcli.design import model_matrix
    from mlmcli.formula import ModelSpec

    p = ft.X.shape[1]
    if p <= 1 or len(ft.labels) <= 1:
        return type1(ft)
    n = ft.X.shape[0]
    blocks, names = [], []
    if ft.intercept:
        blocks.append(np.ones((n, 1)))
        names.append("(Intercept)")
    for term in ft.terms:
        Xi, ni = model_matrix(ModelSpec(intercept=False, terms=(term,)), ft.values, n)
        blocks.append(Xi)
        names += ni
    rdX = np.hstack(blocks)
    L = _zapsmall((np.linalg.pinv(ft.X, rcond=np.sqrt(np.finfo(float).eps)) @ rdX).T)
    contained = containment(ft)
    order = sorted(range(len(ft.terms)), key=lambda i: -len(ft.terms[i].vars))  # stable, as R's radix order
    for i in order:
        term = ft.labels[i]
        if contained[term]:
            A = L[:, [c for t in contained[term] for c in ft.columns[t]]]
            Y = L[:, ft.columns[term]]
            coef = np.linalg.lstsq(A, Y, rcond=None)[0]
            L[:, ft.columns[term]] = _zapsmall(Y - A @ coef)
    index = {nm: i for i, nm in enumerate(names)}
    missing = [nm for nm in ft.xnames if nm not in index]
    if missing:
        raise DataError(f"anova type 3: no cell-means column for {', '.join(missing)}")
    L = L[[index[nm] for nm in ft.xnames]]
    return {t: _drop_zero_rows(L[:, ft.columns[t]].T) for t in ft.labels}


def contrasts(ft: FixedTerms, kind: int) -> dict[str, np.ndarray]:
    return {1: type1, 2: type2, 3: type3}[kind](ft)
