"""residuals: scaled residuals against fitted values, and normal Q-Q plots of residuals and random effects."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from mlmcli.render.plots.groups import factor_codes, factor_columns, factors, shown_levels
from mlmcli.render.plots.layout import grid, hide_unused
from mlmcli.render.plots.normal import normal_quantiles, qq_line
from mlmcli.render.plots.options import Drawn, PlotOptions
from mlmcli.render.plots.style import LINE, POINT, REF, Theme, fit_text

if TYPE_CHECKING:
    from mlmcli.io.frame import Frame
    from mlmcli.model import FittedModel


def residuals(fig: Any, model: FittedModel, frame: Frame, keep: np.ndarray, opts: PlotOptions, theme: Theme) -> Drawn:
    idx = np.flatnonzero(keep)
    scaled = model.pearson_residuals[idx] / model.sigma  # lme4's plot(fit): Pearson residuals
    from mlmcli.model import fitted_values

    fitted = fitted_values(model).values[idx]  # lme4's fitted(): offsets included
    row_labels = [str(r + 1) for r in model.design.rows[idx]]  # data row of the CSV file, from 1
    re_panels = []
    modes = model.conditional_modes()
    for g in factors(model):
        codes, levels = factor_codes(model, g)
        shown = shown_levels(codes, len(levels), keep)
        for ti, j, name in factor_columns(model, g):
            re_panels.append((g, name, modes[ti][shown, j], [levels[i] for i in shown]))
    n = 2 + len(re_panels)
    nrows, ncols = (2, 2) if n == 4 else (1, n) if n <= 3 else (math.ceil(n / 3), 3)
    axes = grid(fig, nrows, ncols)
    points: list[dict] = []

    ax = axes[0]
    many = len(idx) > 500
    ax.axhline(0.0, color=REF, lw=theme.lw(0.9), ls="--", zorder=1)
    ax.plot(
        fitted,
        scaled,
        "o",
        ms=theme.ms(2.0 if many else 3.5),
        alpha=0.35 if many else 0.8,
        color=POINT,
        markeredgewidth=0,
        zorder=2,
    )
    fit = _Fit(opts.width * 0.92 / ncols - 0.5 * theme.scale, opts.height * 0.8 / nrows - 0.5 * theme.scale, theme)
    ax.set_title(fit.title("Scaled residuals against fitted values", "Residuals against fitted", "Residuals vs fitted"))
    ax.set_xlabel(fit.x(f"fitted {model.design.response}"))
    ax.set_ylabel(fit.y("scaled residual (residual / sigma)", "scaled residual"))
    for lab, f, r in zip(row_labels, fitted, scaled, strict=True):
        points.append({"panel": "residuals_vs_fitted", "row": lab, "x": float(f), "y": float(r)})

    _qq_panel(
        axes[1],
        scaled,
        row_labels,
        "qq_residuals",
        fit.title("Normal Q-Q: scaled residuals", "Q-Q: scaled residuals", "Q-Q: residuals"),
        (fit.x("theoretical normal quantile", "normal quantile"), fit.y("scaled residual")),
        points,
        "row",
        theme,
    )
    # the random effects' panels titled alike: the longest form that fits every one of them
    forms = [(f"Normal Q-Q: {g} {name}", f"Q-Q: {g} {name}", f"{g} {name}") for g, name, _, _ in re_panels]
    form = next((i for i in range(2) if all(fit.fits_title(f[i]) for f in forms)), 2)
    for ax, (g, name, values, labels), titles in zip(axes[2:], re_panels, forms, strict=False):
        _qq_panel(
            ax,
            values,
            labels,
            f"qq_ranef:{g}:{name}",
            fit.title(*titles[form:]),
            (fit.x("theoretical normal quantile", "normal quantile"), fit.y("conditional mode")),
            points,
            "level",
            theme,
        )
    hide_unused(axes, n)
    for i in range(n - 1, 0, -1):  # a label its left neighbour already gives is not repeated
        if i % ncols and axes[i].get_ylabel() == axes[i - 1].get_ylabel():
            axes[i].set_ylabel("")
    data = {
        "sigma": model.sigma,
        "panels": ["residuals_vs_fitted", "qq_residuals"] + [f"qq_ranef:{g}:{name}" for g, name, _, _ in re_panels],
        "points": points,
    }
    return Drawn(data, points, "Residual diagnostics")


class _Fit:
    """Labels fitted to a panel's room (its share of the figure less the tick labels and the other axis
    label): the first of the choices that fits one line, else the last wrapped."""

    def __init__(self, width: float, height: float, theme: Theme) -> None:
        self.width, self.height, self.theme = width, height, theme

    def title(self, *choices: str) -> str:
        return fit_text(list(choices), self.theme.chars(self.width, 10.5))

    def fits_title(self, text: str) -> bool:
        return len(text) <= self.theme.chars(self.width, 10.5)

    def x(self, *choices: str) -> str:
        return fit_text(list(choices), self.theme.chars(self.width, 10))

    def y(self, *choices: str) -> str:
        return fit_text(list(choices), self.theme.chars(self.height, 10))


def _qq_panel(
    ax: Any,
    values: np.ndarray,
    labels: list[str],
    panel: str,
    title: str,
    axis_labels: tuple[str, str],
    out: list[dict],
    key: str,
    theme: Theme,
) -> None:
    """Sorted `values` against normal quantiles with R's qqline; each point appended to `out`."""
    order = np.argsort(values, kind="stable")
    sample = values[order]
    theo = normal_quantiles(len(sample))
    many = len(sample) > 500
    ax.plot(
        theo,
        sample,
        "o",
        ms=theme.ms(2.0 if many else 3.5),
        alpha=0.45 if many else 0.8,
        color=POINT,
        markeredgewidth=0,
        zorder=2,
    )
    if len(sample) >= 2:
        a, b = qq_line(sample)
        ends = np.array([theo[0], theo[-1]])
        ax.plot(ends, a + b * ends, color=LINE, lw=theme.lw(1.1), zorder=3)
    ax.set_title(title)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    for i, t, v in zip(order, theo, sample, strict=True):
        out.append({"panel": panel, key: labels[i], "x": float(t), "y": float(v)})
