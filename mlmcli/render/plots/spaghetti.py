"""spaghetti: the raw data of the groups, each group with its own least-squares line."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from mlmcli.render.plots.bysplit import by_split
from mlmcli.render.plots.columns import default_x, numeric_column
from mlmcli.render.plots.groups import factor_codes, pick_group, shown_levels
from mlmcli.render.plots.layout import panels
from mlmcli.render.plots.legend import MAX_LEGEND, group_colours, group_legend
from mlmcli.render.plots.options import Drawn, PlotOptions

if TYPE_CHECKING:
    from mlmcli.frame import Frame
    from mlmcli.model import FittedModel


def spaghetti(fig: Any, model: FittedModel, frame: Frame, keep: np.ndarray, opts: PlotOptions) -> Drawn:
    group = pick_group(model, opts.group)
    xname = opts.x if opts.x is not None else default_x(model, frame, "spaghetti")
    xall = numeric_column(frame, xname, "--x")[model.design.rows]
    y = model.design.y
    codes, levels = factor_codes(model, group)
    ok = keep & ~np.isnan(xall)
    split = by_split(model, frame, opts.by, group, ok)
    ok &= split.panel >= 0
    shown = shown_levels(codes, len(levels), ok)
    colour_index = {g: i for i, g in enumerate(shown)}
    colours = group_colours(len(shown))
    axes = panels(fig, len(split.labels))
    from matplotlib.collections import LineCollection

    # fainter and thinner as the groups crowd the picture
    crowd = 0 if len(shown) <= MAX_LEGEND else 1 if len(shown) <= 80 else 2
    size, point_alpha = (14, 0.75) if crowd == 0 else (8, 0.5) if crowd == 1 else (5, 0.35)
    lw, line_alpha = (1.4, 0.9) if crowd == 0 else (1.0, 0.75) if crowd == 1 else (0.6, 0.45)
    lines, points = [], []
    for p, ax in enumerate(axes):
        in_panel = ok & (split.panel == p)
        if not in_panel.any():
            continue
        x0, x1 = float(xall[in_panel].min()), float(xall[in_panel].max())
        idx = np.flatnonzero(in_panel)
        col = [colours[colour_index[c]] for c in codes[idx]]
        ax.scatter(xall[idx], y[idx], s=size, c=col, alpha=point_alpha, linewidths=0, zorder=2)
        segments, seg_colours = [], []
        for g in np.unique(codes[idx]):
            rows_g = idx[codes[idx] == g]
            intercept, slope = _least_squares(xall[rows_g], y[rows_g])
            line = {"level": levels[g], "n": len(rows_g), "intercept": intercept, "slope": slope,
                    "x0": x0, "x1": x1, "y0": intercept + slope * x0, "y1": intercept + slope * x1}
            if split.by is not None:
                line["by"] = split.labels[p]
            lines.append(line)
            if math.isfinite(slope):
                segments.append([(x0, line["y0"]), (x1, line["y1"])])
                seg_colours.append(colours[colour_index[g]])
        # one collection draws hundreds of lines far faster than one plot() call each
        ax.add_collection(LineCollection(segments, colors=seg_colours, linewidths=lw, alpha=line_alpha,
                                         zorder=3))
        for i in idx:
            points.append({"level": levels[codes[i]], "x": float(xall[i]), "y": float(y[i])})
        if split.by is not None:
            ax.set_title(split.labels[p])
        ax.set_xlabel(xname)
    axes[0].set_ylabel(model.design.response)
    group_legend(fig, axes, group, [levels[g] for g in shown], colours)
    title = f"{model.design.response} against {xname}: raw data and each {group}'s least-squares line"
    data = {"group": group, "x": xname, "y": model.design.response, "by": opts.by, "lines": lines,
            "points": points}
    return Drawn(data, lines, title, split.notes(group))


def _least_squares(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Intercept and slope of y on x; the slope is NaN when x does not vary (a mean only)."""
    xm, ym = x.mean(), y.mean()
    sxx = float(np.sum((x - xm) ** 2))
    if len(x) < 2 or sxx <= 1e-12 * max(1.0, float(np.sum(x * x))):
        return float(ym), float("nan")
    slope = float(np.sum((x - xm) * (y - ym)) / sxx)
    return float(ym - slope * xm), slope
