"""profile: the likelihood profiles behind `mlm confint` (lme4's xyplot(profile(fit))).

One panel per parameter (sd((Intercept)) | g, cor(x, (Intercept)) | g, sigma, then the fixed effects):
zeta, the signed square root of the ML deviance's rise when the parameter is held away from its
estimate, against the parameter's value. A REML fit is refitted by ML first, as lme4's profile does,
and the title and the footer both say ML. A straight line means a quadratic deviance, where Wald and
profile intervals agree; the dashed lines at +-1.96 cut the 95% interval.
The profiles are computed before drawing (confint.profile_curves): a renderer never refits.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from mlmcli.errors import MlmError
from mlmcli.render.plots.layout import grid, hide_unused
from mlmcli.render.plots.options import Drawn, PlotOptions
from mlmcli.render.plots.style import LINE, POINT, REF, Theme, fit_text

if TYPE_CHECKING:
    from mlmcli.io.frame import Frame
    from mlmcli.model import FittedModel

Z95 = 1.959963984540054
_KEYS = ("parameter", "label", "estimate", "lower", "upper")  # of each curve, into the JSON


def profile(fig: Any, model: FittedModel, frame: Frame, keep: np.ndarray, opts: PlotOptions, theme: Theme) -> Drawn:
    curves = opts.profiles
    if not curves:
        raise MlmError("no likelihood profiles to draw")
    n = len(curves)
    ncols = min(n, 3 if opts.width >= 5 else 2)
    nrows = math.ceil(n / ncols)
    axes = grid(fig, nrows, ncols)
    label_chars = theme.chars(opts.width * 0.9 / ncols, 10)
    rows: list[dict] = []
    for ax, c in zip(axes, curves, strict=False):
        x, z = np.asarray(c["value"]), np.asarray(c["zeta"])
        for level in (-Z95, Z95):
            ax.axhline(level, color=REF, lw=theme.lw(0.8), ls=(0, (4, 3)), zorder=1)
        ax.axvline(c["estimate"], color=REF, lw=theme.lw(0.6), zorder=1)
        ax.plot(x, z, color=LINE, lw=theme.lw(1.3), zorder=2)
        ax.plot(x, z, "o", ms=theme.ms(2.6), color=POINT, markeredgewidth=0, zorder=3)
        ax.set_yticks([-2, 0, 2])  # zeta's scale is fixed: the 95% ends sit near +-2
        label = c.get("label", c["parameter"])
        # a long label breaks before its grouping factor
        ax.set_xlabel(fit_text([label, label.replace(" | ", "\n| ")], label_chars))
        for xi, zi in zip(x, z, strict=True):
            rows.append({"parameter": c["parameter"], "value": float(xi), "zeta": float(zi)})
    for ax in axes[:n:ncols]:
        ax.set_ylabel("zeta")
    hide_unused(axes, n)
    data = {
        "parameters": [{k: c[k] for k in _KEYS if k in c} for c in curves],
        "points": rows,
    }
    # lme4 profiles the ML deviance: a REML fit is refitted by ML first, and its estimates are the refit's
    method = "ML refit of the REML fit" if model.method == "REML" else "ML"
    return Drawn(
        data=data,
        table=rows,
        title="Likelihood profiles of the ML deviance (zeta)",
        caption=["dashed: zeta = \u00b11.96, the ends of the 95% profile interval"],
        short_title="Profiles of the ML deviance",
        method=method,
    )
