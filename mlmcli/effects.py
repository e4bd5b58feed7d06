"""Intraclass correlation and Nakagawa's R² of a linear mixed model, as performance::icc() and
performance::r2_nakagawa() (performance 0.10, insight 0.19) compute them.

The variance of the fixed part is the variance (n - 1) of X beta; the random-effects variance sums,
over the grouping factors, the mean of z_i' Sigma z_i across the observations, where z_i holds the
row's fixed-effects columns named as the random terms (a random slope whose variable is not in the
fixed part is left out, as insight does); the residual variance is sigma². A singular fit (a
diagonal element of theta below 1e-5) has no random-effects variance: the ICC and the conditional R²
are then not available.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mlmcli.glmmodel import GlmmModel
    from mlmcli.model import FittedModel

SINGULAR_TOLERANCE = 1e-5
SINGULAR_WARNING = (
    "Can't compute random effect variances. Some variance components equal zero. Your model "
    "may suffer from singularity (see `?lme4::isSingular` and `?performance::check_singularity`)."
)
SLOPES_WARNING = (
    "Random slopes not present as fixed effects. This artificially inflates the conditional random effect variances."
)


@dataclass
class Effects:
    var_fixed: float
    var_random: float | None  # None for a singular fit
    var_residual: float | None  # None where it cannot be computed (a Poisson fit on a cluster)
    warnings: list[str]

    @property
    def icc(self) -> dict[str, float | None]:
        if self.var_random is None or self.var_residual is None:
            return {"adjusted": None, "unadjusted": None}
        vr = self.var_random
        return {"adjusted": vr / (vr + self.var_residual), "unadjusted": vr / (self.var_fixed + vr + self.var_residual)}

    @property
    def r2(self) -> dict[str, float | None]:
        vf, ve = self.var_fixed, self.var_residual
        if ve is None:
            return {"marginal": None, "conditional": None}
        if self.var_random is None:  # performance: the marginal R² without random effects
            return {"marginal": vf / (vf + ve), "conditional": None}
        total = vf + self.var_random + ve
        return {"marginal": vf / total, "conditional": (vf + self.var_random) / total}


def _r_var(x: np.ndarray) -> float:
    """R's var(): the mean refined by a second pass (so a constant has variance exactly 0), n - 1."""
    if len(x) < 2:
        return 0.0
    mean = x.sum() / len(x)
    d = x - mean
    mean += d.sum() / len(x)
    # the deviations from the refined mean squared in the same array: one temporary on long data
    np.subtract(x, mean, out=d)
    d *= d
    return float(d.sum() / (len(x) - 1))


# rows per piece where X beta is gone through in pieces
PIECE = 1 << 16


def _var_of_product(X: np.ndarray, beta: np.ndarray) -> float:
    """_r_var(X @ beta), its three passes made over pieces of rows: on millions of rows no array as
    long as the data (whose fresh pages cost more than the arithmetic)."""
    n = X.shape[0]
    if n < 2:
        return 0.0
    starts = range(0, n, PIECE)
    mean = sum(float((X[i : i + PIECE] @ beta).sum()) for i in starts) / n
    mean += sum(float((X[i : i + PIECE] @ beta - mean).sum()) for i in starts) / n
    total = 0.0
    for i in starts:
        d = X[i : i + PIECE] @ beta
        d -= mean
        d *= d  # squared and summed as _r_var does (a dot product's order is the BLAS kernel's)
        total += float(d.sum())
    return total / (n - 1)


def _diagonal_theta(model: FittedModel | GlmmModel) -> np.ndarray:
    """The elements of theta on the diagonals of the relative covariance factors (lower bound 0)."""
    out: list[float] = []
    offset = 0
    for term in model.design.terms:
        k = term.X.shape[1]
        tril = [(i, j) for j in range(k) for i in range(j, k)]  # lme4's column-major lower triangle
        out.extend(model.theta[offset + m] for m, (i, j) in enumerate(tril) if i == j)
        offset += len(tril)
    return np.asarray(out, dtype=float)


def variance_components(model: FittedModel) -> Effects:
    """var.fixed, var.random and var.residual as insight::get_variance() gives them for lmer fits."""
    if model.remote is not None:
        return _from_moments(model, model.remote.fixed_moments())
    var_fixed, gram, names = fixed_part(model)
    return _effects(model, var_fixed, gram, names, [])


def fixed_part(model: FittedModel | GlmmModel) -> tuple[float, np.ndarray, list[str]]:
    """var(X beta), and the Gram matrix of X's columns (a column of ones first where X has no
    intercept, as insight adds one for the random intercepts) with the columns' names."""
    X = np.asarray(model.design.X, dtype=float)
    var_fixed = _var_of_product(X, np.asarray(model.beta, dtype=float))
    names = list(model.design.xnames)
    # mean(z' Sigma z) over the rows is sum(Sigma * Z'Z) / n: the Gram matrix of X's columns is
    # all it needs, and no n x k product is formed
    gram = X.T @ X
    if "(Intercept)" not in names:
        sums = X.sum(axis=0)
        gram = np.block([[np.array([[float(X.shape[0])]]), sums[None, :]], [sums[:, None], gram]])
        names = ["(Intercept)", *names]
    return var_fixed, gram, names


def slopes_warning(model: FittedModel | GlmmModel) -> list[str]:
    """insight's warning where a random slope's variable is not among the fixed part's variables
    (insight compares data columns: week in `(week | ID)` is in `y ~ I(week > 2)`)."""
    f = model.formula
    fixed = {c for t in f.fixed.terms for v in t.vars for c in v.columns()}
    slopes = {c for r in f.random for t in r.lhs.terms for v in t.vars for c in v.columns()}
    return [SLOPES_WARNING] if slopes - fixed else []


def is_singular(model: FittedModel | GlmmModel) -> bool:
    """insight's test: a diagonal element of theta below 1e-5."""
    return bool(np.any(np.abs(_diagonal_theta(model)) < SINGULAR_TOLERANCE))


def _effects(model: FittedModel, var_fixed: float, gram: np.ndarray, names: list[str], warnings: list[str]) -> Effects:
    """The random part from the Gram matrix of the columns named `names`, and insight's warnings."""
    warnings += slopes_warning(model)
    var_random: float | None = None
    if is_singular(model):
        warnings.insert(0, SINGULAR_WARNING)
    else:
        var_random = random_variance(model, gram, names)
    return Effects(var_fixed, var_random, float(model.sigma) ** 2, warnings)


def random_variance(
    model: FittedModel | GlmmModel, gram: np.ndarray, names: list[str], observation_level: bool = False
) -> float:
    """Sum over grouping factors of mean(z_i' Sigma z_i).

    insight takes VarCorr's blocks by the names of ranef(), one per grouping factor: of the terms
    lme4 names "g", "g.1", ... for one factor (as `||` makes) only the first counts. Factors with one
    level per observation are left out, or (`observation_level`, a GLMM's dispersion) are the only
    ones counted."""
    n = model.n
    counted: set[str] = set()
    total = 0.0
    for vc in model.varcomps():
        if vc.factor in counted or vc.name != vc.factor:
            continue
        counted.add(vc.factor)
        if (model.groups()[vc.factor] == n) != observation_level:
            continue
        keep = [i for i, t in enumerate(vc.terms) if t in names]
        if not keep:
            continue
        cols = [names.index(vc.terms[i]) for i in keep]
        S = vc.covariance[np.ix_(keep, keep)]
        total += float(np.sum(S * gram[np.ix_(cols, cols)])) / n
    return total


def _from_moments(model: FittedModel, M: np.ndarray) -> Effects:
    return _effects(model, *moments_part(model, M), [])


def moments_part(model: FittedModel | GlmmModel, M: np.ndarray) -> tuple[float, np.ndarray, list[str]]:
    """fixed_part from M = [1 X]'[1 X] alone (rows kept elsewhere): var(X beta) is
    (beta'X'X beta - (1'X beta)^2 / n) / (n - 1), and M is the Gram matrix."""
    n = model.n
    beta = np.asarray(model.beta, dtype=float)
    s = float(M[0, 1:] @ beta)
    var_fixed = float(beta @ M[1:, 1:] @ beta - s * s / n) / (n - 1) if n > 1 else 0.0
    names = ["(Intercept)", *model.design.xnames]  # [1 X]: X's own intercept is a copy of the ones
    return var_fixed, M, names
