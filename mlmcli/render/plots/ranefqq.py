"""ranef of a factor with one random effect: lme4's plot(ranef(fit)) draws a normal Q-Q plot (lattice's
qqmath) of its conditional modes where there is only one column, as there is nothing to plot it against.

Without --group, every factor whose random effect is its intercept alone gets a panel (InstEval's
students and lecturers side by side); with --group, that factor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mlmcli.render.plots.groups import factor_codes, factor_columns, factors, shown_levels
from mlmcli.render.plots.layout import grid
from mlmcli.render.plots.normal import normal_quantiles, qq_plot
from mlmcli.render.plots.options import Drawn, PlotOptions
from mlmcli.render.plots.style import POINT, Theme, fit_text

if TYPE_CHECKING:
    from mlmcli.model import FittedModel


def ranef_qq(fig: Any, model: FittedModel, keep: np.ndarray, opts: PlotOptions, theme: Theme, group: str) -> Drawn:
    """One panel per single-term factor (or --group's): sorted conditional modes against qnorm(ppoints(n))."""
    if opts.group is None:
        chosen = [g for g in factors(model) if len(factor_columns(model, g)) == 1]
    else:
        chosen = [group]
    modes = model.conditional_modes()
    axes = list(grid(fig, 1, len(chosen)))  # each factor on its own scale
    family = getattr(model, "family", None)
    scale = "" if family is None else f", {family.link} scale"
    points = []
    for ax, g in zip(axes, chosen, strict=True):
        ti, j, _ = factor_columns(model, g)[0]
        codes, levels = factor_codes(model, g)
        shown = shown_levels(codes, len(levels), keep)
        values = modes[ti][shown, j]
        order = np.argsort(values, kind="stable")
        sample = values[order]
        theo = normal_quantiles(len(sample))
        qq_plot(ax, sample, POINT, theme, len(sample) > 500)
        room = theme.chars(opts.width * 0.8 / len(chosen), 10)
        ax.set_title(fit_text([f"{g}: {len(sample)} levels", g], room))
        ax.set_xlabel(fit_text(["standard normal quantile", "normal quantile", "quantile"], room))
        points += [
            {"level": levels[shown[i]], "panel": g, "x": float(q), "y": float(v)}
            for i, q, v in zip(order, theo, sample, strict=True)
        ]
    axes[0].set_ylabel(fit_text([f"conditional mode{scale}", "mode"], theme.chars(opts.height * 0.7, 10)))
    data = {
        "group": chosen[0] if len(chosen) == 1 else ", ".join(chosen),
        "x_term": None,
        "y_term": factor_columns(model, chosen[0])[0][2],
        "correlation": None,
        "correlation_of_estimates": None,
        "points": points,
    }
    caption = ["one random effect: its conditional modes against normal quantiles, as lme4's plot(ranef(fit))"]
    title = "Random effects: normal Q-Q plot" + ("s" if len(chosen) > 1 else "")
    return Drawn(data, points, title, caption=caption, short_title="Random effects, Q-Q")
