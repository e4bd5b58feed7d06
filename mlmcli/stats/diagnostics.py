"""The numbers behind `mlm plot --kind check`: performance::check_model()'s panels for an lmer fit.

Residuals against fitted values and the scale-location plot (sqrt |scaled residual| against fitted
values), each with a lowess smoother; a normal Q-Q plot of the scaled residuals and one of the random
effects, each standardized by its standard deviation in Tau; the residuals of each group of the first
grouping factor (boxplots, at most MAX_BOXES groups spread evenly over their medians); and influential
groups by an approximation: each group's conditional mode as a Mahalanobis distance in Tau,
b_j' Tau^-1 b_j / q, against the chi-square 0.95 quantile over q. It is not Cook's distance of a refit
without the group (check_model's influence panel is per observation); a large value marks a group far
from the population line.

The smoother is lowess's (stats::lowess, f = 2/3, three robustness steps) evaluated on SMOOTH_POINTS
values over the fitted range rather than at every observation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mlmcli.model import FittedModel

SMOOTH_POINTS = 60
MAX_BOXES = 30


def lowess(x: np.ndarray, y: np.ndarray, at: np.ndarray, f: float = 2.0 / 3.0, iters: int = 3) -> np.ndarray:
    """A locally weighted line through (x, y) at `at`: tricube weights over the nearest f * n points,
    bisquare robustness weights from the residuals, `iters` times (Cleveland's lowess)."""
    n = len(x)
    k = max(2, min(n, int(np.ceil(f * n))))
    robust = np.ones(n)

    def fit_at(points: np.ndarray) -> np.ndarray:
        out = np.empty(len(points))
        for i, p in enumerate(points):
            d = np.abs(x - p)
            h = np.partition(d, k - 1)[k - 1]
            h = h if h > 0 else 1.0
            w = np.clip(1 - (d / h) ** 3, 0, None) ** 3 * robust
            sw = w.sum()
            if sw <= 0:
                out[i] = np.nan
                continue
            mx, my = (w @ x) / sw, (w @ y) / sw
            sxx = w @ (x - mx) ** 2
            slope = (w @ ((x - mx) * (y - my))) / sxx if sxx > 1e-12 * max(1.0, mx * mx) else 0.0
            out[i] = my + slope * (p - mx)
        return out

    # the robustness steps on a subset of the observations keep the cost at O(n * points)
    ref = np.unique(np.quantile(x, np.linspace(0, 1, 4 * SMOOTH_POINTS)))
    for _ in range(iters):
        res = y - np.interp(x, ref, fit_at(ref))
        s = np.median(np.abs(res))
        if s <= 0:
            break
        robust = np.clip(1 - (res / (6 * s)) ** 2, 0, None) ** 2
    return fit_at(at)


def check_report(model: FittedModel) -> dict:
    from mlmcli.model import fitted_values

    fitted = np.asarray(fitted_values(model).values, dtype=float)
    scaled = np.asarray(model.pearson_residuals, dtype=float) / model.sigma
    grid = np.linspace(fitted.min(), fitted.max(), SMOOTH_POINTS)
    root = np.sqrt(np.abs(scaled))
    modes = model.conditional_modes()
    effects = []
    for term, vc, b in zip(model.design.terms, model.varcomps(), modes, strict=True):
        sd = vc.std_dev
        for j, name in enumerate(term.cnames):
            z = b[:, j] / sd[j] if sd[j] > 0 else np.zeros(len(b))
            effects.append({"group": term.group, "term": name, "levels": [str(v) for v in term.levels], "z": z})
    first = model.design.terms[0]
    groups = _boxes(first.codes, [str(v) for v in first.levels], scaled)
    influence = _influence(model)
    return {
        "fitted": fitted,
        "scaled_residuals": scaled,
        "smooth_x": grid,
        "smooth_residuals": lowess(fitted, scaled, grid),
        "smooth_scale": lowess(fitted, root, grid),
        "random_effects": effects,
        "box_group": first.group,
        "boxes": groups,
        "influence": influence,
    }


def _boxes(codes: np.ndarray, levels: list[str], r: np.ndarray) -> dict:
    """Each group's residuals, at most MAX_BOXES groups spread evenly over their medians."""
    by = [r[codes == i] for i in range(len(levels))]
    used = [i for i in range(len(levels)) if len(by[i])]
    order = sorted(used, key=lambda i: float(np.median(by[i])))
    if len(order) > MAX_BOXES:
        pick = np.unique(np.round(np.linspace(0, len(order) - 1, MAX_BOXES)).astype(int))
        order = [order[i] for i in pick]
    return {"total": len(used), "levels": [levels[i] for i in order], "values": [by[i] for i in order]}


def _influence(model: FittedModel) -> dict:
    """b_j' Tau^-1 b_j / q for each level of the first grouping factor (its first term)."""
    from scipy.stats import chi2

    term, vc, b = model.design.terms[0], model.varcomps()[0], model.conditional_modes()[0]
    q = b.shape[1]
    T = vc.covariance
    inv = np.linalg.pinv(T)
    d = np.einsum("ij,jk,ik->i", b, inv, b) / q
    return {
        "group": term.group,
        "levels": [str(v) for v in term.levels],
        "distance": d,
        "cutoff": float(chi2.ppf(0.95, q) / q),
        "q": q,
    }
