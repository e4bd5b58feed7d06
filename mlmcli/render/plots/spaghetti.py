"""spaghetti: the raw data of a sample of groups, each with its least-squares line over its own x range."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from mlmcli.render.plots.bysplit import by_split
from mlmcli.render.plots.columns import default_x, numeric_column
from mlmcli.render.plots.groups import factor_codes, pick_group, shown_levels
from mlmcli.render.plots.layout import panels
from mlmcli.render.plots.options import Drawn, PlotOptions
from mlmcli.render.plots.sample import DEFAULT_GROUPS, DEFAULT_SEED, sample_groups
from mlmcli.render.plots.style import ONE, PALETTE, Theme, colours

if TYPE_CHECKING:
    from mlmcli.io.frame import Frame
    from mlmcli.model import FittedModel


def spaghetti(fig: Any, model: FittedModel, frame: Frame, keep: np.ndarray, opts: PlotOptions, theme: Theme) -> Drawn:
    group = pick_group(model, opts.group)
    xname = opts.x if opts.x is not None else default_x(model, frame, "spaghetti")
    xall = numeric_column(frame, xname, "--x")[model.design.rows]
    y = model.design.y
    codes, levels = factor_codes(model, group)
    ok = keep & ~np.isnan(xall)
    split = by_split(model, frame, opts.by, group, ok)
    ok &= split.panel >= 0
    shown = shown_levels(codes, len(levels), ok)
    group_panel = np.full(len(levels), -1, dtype=np.int64)
    group_panel[codes[ok]] = split.panel[ok]
    n_wanted = DEFAULT_GROUPS if opts.groups is None else opts.groups
    seed = DEFAULT_SEED if opts.seed is None else opts.seed
    drawn = sample_groups(shown, group_panel, n_wanted, seed)
    sampled = len(drawn) < len(shown)
    ok &= np.isin(codes, drawn)

    # distinct colours and a legend for a few groups; one colour for more (a colour per group would not
    # be told apart, and a colour map would suggest an order the levels do not have)
    distinct = len(drawn) <= len(PALETTE)
    colour_of = dict(zip(drawn.tolist(), colours(len(drawn)), strict=True)) if distinct else {}
    crowd = 0 if distinct else 1 if len(drawn) <= 60 else 2
    size, point_alpha = ((16, 0.8), (9, 0.5), (5, 0.3))[crowd]
    lw, line_alpha = ((1.6, 0.95), (1.1, 0.7), (0.7, 0.45))[crowd]
    axes = panels(fig, len(split.labels))
    from matplotlib.collections import LineCollection

    lines, points = [], []
    for p, ax in enumerate(axes):
        in_panel = ok & (split.panel == p)
        idx = np.flatnonzero(in_panel)
        colour = [colour_of.get(c, ONE) for c in codes[idx]]
        ax.scatter(xall[idx], y[idx], s=theme.area(size), c=colour, alpha=point_alpha, linewidths=0, zorder=2)
        segments, seg_colours = [], []
        for g in np.unique(codes[idx]):
            rows_g = idx[codes[idx] == g]
            xg = xall[rows_g]
            intercept, slope = _least_squares(xg, y[rows_g])
            # over the group's own x range: a line through a small group's few points says nothing beyond them
            x0, x1 = float(xg.min()), float(xg.max())
            line = {
                "level": levels[g],
                "n": len(rows_g),
                "intercept": intercept,
                "slope": slope,
                "x0": x0,
                "x1": x1,
                "y0": intercept + slope * x0,
                "y1": intercept + slope * x1,
            }
            if split.by is not None:
                line["by"] = split.labels[p]
            lines.append(line)
            if math.isfinite(slope) and x1 > x0:
                segments.append([(x0, line["y0"]), (x1, line["y1"])])
                seg_colours.append(colour_of.get(g, ONE))
        # one collection draws hundreds of lines far faster than one plot() call each
        ax.add_collection(
            LineCollection(segments, colors=seg_colours, linewidths=theme.lw(lw), alpha=line_alpha, zorder=3)
        )
        for i in idx:
            points.append({"level": levels[codes[i]], "x": float(xall[i]), "y": float(y[i])})
        if split.by is not None:
            ax.set_title(split.labels[p])
        ax.set_xlabel(xname)
        ax.autoscale_view()
    axes[0].set_ylabel(model.design.response)
    if distinct:
        _legend(axes[-1], group, [levels[g] for g in drawn], list(colour_of.values()), theme)
    if sampled:
        what = f"{len(drawn)} of {len(shown)} {group} groups drawn at random"
    else:
        what = f"all {len(shown)} {group} groups"
    title = f"{model.design.response} against {xname}: {what}, each with its least-squares line"
    data = {
        "group": group,
        "x": xname,
        "y": model.design.response,
        "by": opts.by,
        "groups_total": len(shown),
        "groups_drawn": len(drawn),
        "seed": seed if sampled else None,
        "lines": lines,
        "points": points,
    }
    return Drawn(data, lines, title, split.notes(group))


def _legend(ax: Any, group: str, names: list[str], cols: list[str], theme: Theme) -> None:
    """Beside the last panel, where constrained layout makes room for it below the title."""
    from matplotlib.lines import Line2D

    entries = [Line2D([], [], color=c, marker="o", ms=theme.ms(4), lw=theme.lw(1.4)) for c in cols]
    ax.legend(
        entries, names, title=group, loc="upper left", bbox_to_anchor=(1.02, 1.0), handlelength=1.6, borderaxespad=0.0
    )


def _least_squares(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Intercept and slope of y on x; the slope is NaN when x does not vary (a mean only)."""
    xm, ym = x.mean(), y.mean()
    sxx = float(np.sum((x - xm) ** 2))
    if len(x) < 2 or sxx <= 1e-12 * max(1.0, float(np.sum(x * x))):
        return float(ym), float("nan")
    slope = float(np.sum((x - xm) * (y - ym)) / sxx)
    return float(ym - slope * xm), slope
