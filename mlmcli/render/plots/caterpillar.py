"""caterpillar: conditional modes with 95% intervals, sorted (lme4's dotplot of ranef); many levels thinned."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from mlmcli.render.plots.groups import factor_codes, factor_columns, factors, pick_group, shown_levels
from mlmcli.render.plots.layout import grid, hide_unused
from mlmcli.render.plots.options import Drawn, PlotOptions
from mlmcli.render.plots.style import Theme, wrap

if TYPE_CHECKING:
    from mlmcli.io.frame import Frame
    from mlmcli.model import FittedModel

_SPACING_PT = 4.0  # least room per level (points, at any size) before intervals merge into a band
_BAR, _DOT, _ZERO = "#8fb8de", "#08306b", "#333333"


def caterpillar(fig: Any, model: FittedModel, frame: Frame, keep: np.ndarray, opts: PlotOptions, theme: Theme) -> Drawn:
    groups = [pick_group(model, opts.group)] if opts.group else factors(model)
    modes, sds = model.conditional_modes(), model.conditional_sd()
    family = getattr(model, "family", None)  # a GLMM's random effects are on its link's scale
    panels = []  # (group, term name, order, levels, value, sd)
    counts: dict[str, dict] = {}
    room = opts.height * 0.72 * 72.0  # the axes' height in points, about
    for g in groups:
        cols = factor_columns(model, g)
        codes, levels = factor_codes(model, g)
        shown = shown_levels(codes, len(levels), keep)
        # lme4's dotplot orders the levels of a factor by its first term, the same order in every panel
        first = modes[cols[0][0]][shown, cols[0][1]]
        order = shown[np.argsort(first, kind="stable")]
        limit = max(2, int(room / _SPACING_PT)) if opts.groups is None else opts.groups
        order = thin(order, limit)
        counts[g] = {"levels": len(shown), "drawn": len(order)}
        for ti, j, name in cols:
            panels.append((g, name, order, levels, modes[ti][:, j], sds[ti][:, j]))

    n = len(panels)
    ncols = min(n, 3)
    axes = grid(fig, math.ceil(n / ncols), ncols)
    panel_width = opts.width * 0.92 / ncols - 0.5 * theme.scale  # less the tick labels beside it
    rows: list[dict] = []
    first_of: dict[str, Any] = {}
    for ax, (g, name, order, levels, value, sd) in zip(axes, panels, strict=False):
        v, s = value[order], sd[order]
        lo, hi = v - 1.96 * s, v + 1.96 * s
        k = len(order)
        pos = np.arange(k)
        step = room / max(k, 1)  # points per level
        # bars and dots sized by the room each level has, in points whatever the figure's size
        ax.hlines(pos, lo, hi, color=_BAR, lw=min(theme.lw(2.2), max(0.6, 0.35 * step)), zorder=2)
        ax.plot(v, pos, "o", ms=min(theme.ms(5.0), max(1.8, 0.6 * step)), color=_DOT, zorder=4, markeredgewidth=0)
        # over the intervals, under the dots: a zero line behind the bars disappears
        ax.axvline(0.0, color=_ZERO, lw=theme.lw(0.8), ls=(0, (4, 3)), zorder=3)
        pad = max(0.8, 0.03 * k)  # the first and last dots clear of the frame
        ax.set_ylim(-pad, k - 1 + pad)
        ax.grid(False, axis="y")
        # the panels of one factor share its sorted levels: only the first names them
        if g in first_of:
            ax.sharey(first_of[g])
            ax.tick_params(labelleft=False)
        else:
            first_of[g] = ax
            tick_pt = 9 * theme.scale
            if k * tick_pt * 1.2 <= room and counts[g]["drawn"] == counts[g]["levels"]:
                ax.set_yticks(pos, [levels[i] for i in order])
                ax.set_ylabel(g)
            else:
                ax.set_yticks([])
                shown_of = counts[g]
                label = (
                    f"{g}, sorted"
                    if shown_of["drawn"] == shown_of["levels"]
                    else f"{g}: {shown_of['drawn']} of {shown_of['levels']} levels, sorted"
                )
                ax.set_ylabel(wrap(label, theme.chars(opts.height * 0.7, 10)))
        ax.set_title(wrap(f"{g}: {name}", theme.chars(panel_width, 10.5)))
        scale = "" if family is None else f", {family.link} scale"
        xlabel = f"conditional mode{scale} (95% interval)"
        ax.set_xlabel(xlabel if len(xlabel) <= theme.chars(panel_width, 10) else xlabel.replace(" (", "\n("))
        for i, vi, si, a, b in zip(order, v, s, lo, hi, strict=True):
            rows.append(
                {
                    "group": g,
                    "term": name,
                    "level": levels[i],
                    "value": float(vi),
                    "cond_sd": float(si),
                    "lower": float(a),
                    "upper": float(b),
                }
            )
    hide_unused(axes, n)
    caption = [
        f"{c['drawn']} of {c['levels']} {g} levels shown, evenly spaced in sorted order (--groups 0: all)"
        for g, c in counts.items()
        if c["drawn"] < c["levels"]
    ]
    return Drawn(
        {"groups": groups, "levels": counts, "rows": rows},
        rows,
        "Random effects: conditional modes with 95% intervals",
        caption=caption,
    )


def thin(order: np.ndarray, limit: int) -> np.ndarray:
    """At most `limit` of the sorted levels, evenly spaced and keeping both ends (0: all of them)."""
    if limit == 0 or len(order) <= limit:
        return order
    keep = np.unique(np.round(np.linspace(0, len(order) - 1, limit)).astype(np.int64))
    return order[keep]
