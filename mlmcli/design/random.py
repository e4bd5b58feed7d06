"""The random-effects terms, as lme4's mkReTrms builds them: each term's grouping factor (makeFac,
%i% for nested factors) and model matrix, terms sorted by decreasing number of levels; and lme4's
checkNlevels and checkZdims."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlmcli.design.factors import Column, _numeric_factor, drop_unused
from mlmcli.design.matrices import model_matrix
from mlmcli.errors import DataError
from mlmcli.formula import Formula
from mlmcli.io.frame import Factor, Frame


@dataclass
class ReTerm:
    group: str  # lme4's name of the grouping factor: "schcode", "b:a"
    levels: list[str]  # levels of the grouping factor, in lme4's order
    codes: np.ndarray  # (n,) level index of each observation
    X: np.ndarray  # (n, k) the term's model matrix
    cnames: list[str]  # its column names, e.g. ["(Intercept)", "ses"]
    label: str = ""  # lme4's name of the term: "1 + ses | schcode"


def _as_factor(col: Column, integer: bool) -> Factor:
    """lme4's makeFac: a factor stays, anything else becomes factor(x)."""
    if isinstance(col, Factor):
        return drop_unused(Factor(col.codes, col.levels)) if col.logical else col
    return _numeric_factor(col, integer)


def _interaction(factors: list[Factor]) -> Factor:
    """lme4's %i%: observed combinations, ordered by the first factor, then the next."""
    if len(factors) == 1:
        return factors[0]
    key = np.zeros(len(factors[0].codes), dtype=np.int64)
    for f in factors:
        key = key * len(f.levels) + f.codes
    keys, codes = np.unique(key, return_inverse=True)
    labels = []
    for k in keys.tolist():
        parts = []
        for f in reversed(factors):
            k, c = divmod(k, len(f.levels))
            parts.append(f.levels[c])
        labels.append(":".join(reversed(parts)))
    return Factor(codes.astype(np.int64).reshape(-1), labels)


def _random_terms(
    formula: Formula, frame: Frame, values: dict[str, Column], n: int, shared: dict | None = None
) -> list[ReTerm]:
    """lme4's mkReTrms: one term per bar, sorted by decreasing number of levels.  A term whose
    left-hand side is the fixed part, as in (x | g) beside y ~ x, has the fixed-effects model
    matrix as its own: it is made once, and `shared` (when given) receives it under the fixed
    part's spec.  Nothing writes into a term's matrix, so one array serves both."""
    terms: list[ReTerm] = []
    for rt in formula.random:
        for g in rt.group_vars:
            col = values[g]
            if not isinstance(col, Factor) and col.ndim != 1:
                raise DataError(f"the grouping factor {g} has several columns; it must be one")
        factors = [_as_factor(values[g], g in frame.int_columns) for g in rt.group_vars]
        group = _interaction(factors)
        if shared is not None and rt.lhs in shared:
            X, cnames = shared[rt.lhs]
        else:
            X, cnames = model_matrix(rt.lhs, values, n)
            if shared is not None and rt.lhs == formula.fixed:
                shared[rt.lhs] = (X, cnames)
        terms.append(ReTerm(rt.group, group.levels, group.codes, X, cnames, rt.label))
    n_levels = np.array([len(t.levels) for t in terms])
    if np.any(np.diff(n_levels) > 0):
        order = np.argsort(n_levels, kind="stable")[::-1]  # rev(order(nl)), as lme4
        terms = [terms[i] for i in order]
    return terms


def check_levels(terms: list[ReTerm], n: int, glmm: bool = False) -> None:
    """lme4's checkNlevels and checkZdims, with lme4's wording.  glmerControl ignores the checks
    against the number of observations (an observation-level random effect models overdispersion)."""
    groups: dict[str, int] = {}
    for t in terms:
        groups.setdefault(t.group, len(t.levels))
    if any(k < 2 for k in groups.values()):
        raise DataError("grouping factors must have > 1 sampled level")
    if glmm:
        return
    bad = [g for g, k in groups.items() if k >= n]
    if bad:
        raise DataError(
            f"number of levels of each grouping factor must be < number of observations (problems: {', '.join(bad)})"
        )
    for t in terms:
        q = len(t.levels) * t.X.shape[1]
        if n <= q:
            raise DataError(
                f"number of observations (={n}) <= number of random effects (={q}) for term ({t.label}); "
                "the random-effects parameters and the residual variance (or scale parameter) "
                "are probably unidentifiable"
            )
