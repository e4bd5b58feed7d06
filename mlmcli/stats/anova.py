"""lmerTest's anova(fit, type =, ddf =): an F test per fixed-effect term with Satterthwaite's or
Kenward-Roger's df.

Each term's hypothesis matrix L (hypotheses.py) is tested as lmerTest's contestMD does.
Satterthwaite: the eigen-decomposition L V L' = P D P' turns L beta into q independent t
statistics, F is the mean of their squares, and the denominator df comes from the per-eigenvector
Satterthwaite df nu_m (get_Fstat_ddf: 2E / (E - q) with E = sum nu_m / (nu_m - 2)).
Kenward-Roger: pbkrtest's KRmodcomp; the sums of squares come from the Wald F on the adjusted
covariance, the F value is that F scaled as pbkrtest scales it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from mlmcli.rcompat.distributions import f_upper

if TYPE_CHECKING:
    from mlmcli.engine.kenward_roger import KenwardRoger
    from mlmcli.engine.satterthwaite import Satterthwaite
    from mlmcli.io.frame import Frame
    from mlmcli.model import FittedModel

TYPES = (1, 2, 3)
ROMAN = {1: "I", 2: "II", 3: "III"}
EPS = math.sqrt(np.finfo(float).eps)  # contestMD's eigenvalue tolerance
FSTAT_TOL = 1e-8  # get_Fstat_ddf: equal df are averaged


def fstat_ddf(nu: list[float]) -> float:
    """lmerTest's get_Fstat_ddf."""
    if len(nu) == 1:
        return nu[0]
    if all(abs(b - a) < FSTAT_TOL for a, b in zip(nu[:-1], nu[1:], strict=True)):
        return float(np.mean(nu))
    if any(v <= 2 for v in nu):
        return 2.0
    E = sum(v / (v - 2) for v in nu)
    return 2 * E / (E - len(nu))


def contest(beta: np.ndarray, sat: Satterthwaite, L: np.ndarray, sigma: float) -> dict | None:
    """contestMD: {sum_sq, mean_sq, num_df, den_df, f_value, p_value}, or None for an empty L."""
    if L.shape[0] == 0:
        return None
    if L.shape[0] == 1:
        c = L[0]
        t = float(c @ beta) / math.sqrt(float(c @ sat.vcov_beta @ c))
        return _row(t * t, 1, sat.df(c), sigma)
    d, P = np.linalg.eigh(L @ sat.vcov_beta @ L.T)
    d, P = d[::-1], P[:, ::-1]  # R's eigen(): decreasing
    tol = max(EPS * d[0], 0.0)
    q = int(np.sum(d > tol))
    if q == 0:
        return None
    PtL = (P.T @ L)[:q]
    if q == 1:
        c = PtL[0]
        t = float(c @ beta) / math.sqrt(float(c @ sat.vcov_beta @ c))
        return _row(t * t, 1, sat.df(c), sigma)
    t2 = (PtL @ beta) ** 2 / d[:q]
    F = float(np.sum(t2) / q)
    nu = []
    for m in range(q):
        grad = np.array([float(PtL[m] @ J @ PtL[m]) for J in sat.jacobian])
        nu.append(2 * d[m] ** 2 / float(grad @ sat.vcov_varpar @ grad))
    return _row(F, q, fstat_ddf(nu), sigma)


def contest_kr(beta: np.ndarray, kr: KenwardRoger, L: np.ndarray, sigma: float) -> dict | None:
    """contestMD with ddf = "Kenward-Roger": KRmodcomp's test of L beta = 0."""
    if L.shape[0] == 0:
        return None
    F, ndf, ddf, scale = kr.ftest(L, beta)
    return _row(F, ndf, ddf, sigma, scale)


def _row(F: float, ndf: int, ddf: float, sigma: float, scale: float = 1.0) -> dict:
    """lmerTest's mk_Ftable: sums of squares from F, the test on F * scale."""
    ms = F * sigma**2
    F = F * scale
    p = f_upper(F, ndf, ddf) if math.isfinite(ddf) and math.isfinite(F) else None
    return {"sum_sq": ms * ndf, "mean_sq": ms, "num_df": ndf, "den_df": ddf, "f_value": F, "p_value": p}


def anova_report(model: FittedModel, frame: Frame, kind: int = 3) -> dict:
    """{"type", "ddf", "heading", "terms": [{"term", "sum_sq", ...}]}; a fit without fixed-effect
    terms gives an empty table, as lmerTest does."""
    from mlmcli.render.jsonvalues import clean
    from mlmcli.report import SCHEMA_VERSION
    from mlmcli.stats.hypotheses import contrasts, fixed_terms

    ddf = "Kenward-Roger" if model.ddf == "Kenward-Roger" else "Satterthwaite"
    ft = fixed_terms(model, frame)
    rows = []
    if ft.labels:
        if ddf == "Kenward-Roger":
            method, test = model.kenward_roger(), contest_kr
        else:
            method, test = model.satterthwaite(), contest
        for term, L in contrasts(ft, kind).items():
            r = test(model.beta, method, L, model.sigma)
            if r is None:
                r = dict.fromkeys(("sum_sq", "mean_sq", "num_df", "den_df", "f_value", "p_value"))
            rows.append({"term": term, **r})
    heading = f"Type {ROMAN[kind]} Analysis of Variance Table with {ddf}'s method"
    return clean(
        {
            "schema_version": SCHEMA_VERSION,
            "formula": model.formula.text,
            "type": kind,
            "ddf": ddf,
            "heading": heading,
            "terms": rows,
        }
    )
