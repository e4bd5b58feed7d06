"""check: performance::check_model()'s panels for an lmer fit, from stats/diagnostics.py's numbers.

Residuals against fitted values and scale-location, each with a lowess line; normal Q-Q plots of the
scaled residuals and of the standardized random effects; the residuals of each group as boxplots; and
influential groups (an approximation the caption names).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mlmcli.errors import MlmError
from mlmcli.render.plots.layout import grid
from mlmcli.render.plots.normal import qq_plot
from mlmcli.render.plots.options import Drawn, PlotOptions
from mlmcli.render.plots.style import GROUP_COLOURS, LINE, POINT, REF, Theme, fit_text

if TYPE_CHECKING:
    from mlmcli.io.frame import Frame
    from mlmcli.model import FittedModel


def check(fig: Any, model: FittedModel, frame: Frame, keep: np.ndarray, opts: PlotOptions, theme: Theme) -> Drawn:
    r = opts.estimates
    if r is None:
        raise MlmError("no diagnostics to draw for the check plot")
    axes = grid(fig, 2, 3)
    chars = theme.chars(opts.width * 0.9 / 3, 10.5)
    # the right column's titles have no neighbour's room to spread into past the canvas's edge
    edge = theme.chars(opts.width * 0.75 / 3, 10.5)
    small = opts.width < 5 or opts.height < 4  # one journal column: short labels, the colours in the caption
    many = len(r["fitted"]) > 500
    dots = dict(ms=theme.ms(2.0 if many else 3.0), alpha=0.3 if many else 0.7, color=POINT, markeredgewidth=0)

    ax = axes[0]
    ax.axhline(0.0, color=REF, lw=theme.lw(0.9), ls="--", zorder=1)
    ax.plot(r["fitted"], r["scaled_residuals"], "o", zorder=2, **dots)
    ax.plot(r["smooth_x"], r["smooth_residuals"], color=LINE, lw=theme.lw(1.4), zorder=3)
    ax.set_title(fit_text(["Residuals vs fitted", "Resid. vs fitted"], chars))
    ax.set_xlabel("fitted")
    ax.set_ylabel("residual" if small else "scaled residual")

    ax = axes[1]
    ax.plot(r["fitted"], np.sqrt(np.abs(r["scaled_residuals"])), "o", zorder=2, **dots)
    ax.plot(r["smooth_x"], r["smooth_scale"], color=LINE, lw=theme.lw(1.4), zorder=3)
    ax.set_title(fit_text(["Scale-location", "Scale-loc."], chars))
    ax.set_xlabel("fitted")
    ax.set_ylabel("\u221a|residual|" if small else "\u221a|scaled residual|")

    ax = axes[2]
    qq_plot(ax, np.asarray(r["scaled_residuals"]), POINT, theme, many)
    ax.set_title(fit_text(["Normal Q-Q: residuals", "Q-Q: residuals", "Q-Q: resid."], edge))
    ax.set_xlabel("normal quantile" if not small else "quantile")
    ax.set_ylabel("residual" if small else "scaled residual")

    ax = axes[3]
    handles, names = [], []
    for i, e in enumerate(r["random_effects"]):
        h = qq_plot(ax, np.asarray(e["z"]), GROUP_COLOURS[i % len(GROUP_COLOURS)], theme, len(e["z"]) > 500)
        handles.append(h)
        names.append(f"{e['term']} | {e['group']}")
    ax.set_title(fit_text(["Normal Q-Q: random effects", "Q-Q: random effects", "Q-Q: ranef"], chars))
    ax.set_xlabel("normal quantile" if not small else "quantile")
    ax.set_ylabel("mode / sd")
    if len(names) > 1 and not small:
        ax.legend(handles, names, loc="upper left", handlelength=1.0, borderaxespad=0.3)

    ax = axes[4]
    boxes = r["boxes"]
    ax.axhline(0.0, color=REF, lw=theme.lw(0.9), ls="--", zorder=1)
    ax.boxplot(
        [np.asarray(v) for v in boxes["values"]],
        widths=0.6,
        showfliers=False,
        medianprops={"color": LINE, "lw": theme.lw(1.2)},
        boxprops={"color": POINT, "lw": theme.lw(0.8)},
        whiskerprops={"color": POINT, "lw": theme.lw(0.8)},
        capprops={"color": POINT, "lw": theme.lw(0.8)},
    )
    ax.set_xticks([])
    shown = len(boxes["levels"])
    of = f"{shown} of {boxes['total']} " if shown < boxes["total"] else ""
    ax.set_title(fit_text([f"Residuals by {r['box_group']}", "Residuals by group", "By group"], chars))
    ax.set_xlabel(fit_text([f"{of}{r['box_group']}, by median", f"{of}groups"], chars))
    ax.set_ylabel("residual" if small else "scaled residual")

    ax = axes[5]
    inf = r["influence"]
    d = np.asarray(inf["distance"])
    order = np.argsort(d, kind="stable")[::-1]
    x = np.arange(1, len(d) + 1)
    far = d[order] > inf["cutoff"]
    ax.axhline(inf["cutoff"], color=REF, lw=theme.lw(0.9), ls="--", zorder=1)
    ax.plot(x[~far], d[order][~far], "o", ms=theme.ms(3.0), color=POINT, markeredgewidth=0, zorder=2)
    ax.plot(x[far], d[order][far], "o", ms=theme.ms(3.5), color=GROUP_COLOURS[1], markeredgewidth=0, zorder=3)
    ax.set_title(fit_text(["Influential groups (approx.)", "Influence (approx.)", "Influence"], edge))
    ax.set_xlabel(fit_text([f"{inf['group']}, by distance", "rank"], chars))
    ax.set_ylabel("distance" if small else "b' Tau^-1 b / q")

    data = {
        "smooth": [
            {"fitted": float(a), "residual": float(b), "scale": float(c)}
            for a, b, c in zip(r["smooth_x"], r["smooth_residuals"], r["smooth_scale"], strict=True)
        ],
        "box_group": r["box_group"],
        "box_levels": boxes["levels"],
        "influence": [{"level": inf["levels"][i], "distance": float(d[i])} for i in order],
        "influence_cutoff": inf["cutoff"],
    }
    table = [{"level": inf["levels"][i], "distance": float(d[i])} for i in order]
    if small:  # the caption's room is the panels' at one column
        caption = ["influence: b' Tau^-1 b / q of each group's mode (an approximation)"]
        if len(names) > 1:
            terms = [e["term"] for e in r["random_effects"]]
            if len(set(terms)) < len(terms):  # the same term of two factors (InstEval's intercepts): say whose
                terms = [
                    e["group"] if e["term"] == "(Intercept)" else f"{e['term']} | {e['group']}"
                    for e in r["random_effects"]
                ]
            colours = ("blue", "orange", "green", "pink", "yellow", "light blue")
            caption.insert(0, "ranef Q-Q: " + ", ".join(f"{c} {t}" for c, t in zip(colours, terms, strict=False)))
    else:
        caption = [
            "influence: each group's conditional mode as b' Tau^-1 b / q, dashed at the chi-square 0.95 "
            "quantile / q; an approximation, not a refit without the group"
        ]
    return Drawn(data, table, "Model diagnostics", caption=caption, short_title="Diagnostics")
