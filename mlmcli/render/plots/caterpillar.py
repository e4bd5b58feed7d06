"""caterpillar: every level's conditional mode with a 95% interval, sorted (lme4's dotplot of ranef)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from mlmcli.render.plots.groups import factor_codes, factor_columns, factors, pick_group, shown_levels
from mlmcli.render.plots.layout import grid, hide_unused
from mlmcli.render.plots.options import Drawn, PlotOptions
from mlmcli.render.plots.style import MAX_LABELLED

if TYPE_CHECKING:
    from mlmcli.frame import Frame
    from mlmcli.model import FittedModel


def caterpillar(fig: Any, model: FittedModel, frame: Frame, keep: np.ndarray, opts: PlotOptions) -> Drawn:
    groups = [pick_group(model, opts.group)] if opts.group else factors(model)
    modes, sds = model.conditional_modes(), model.conditional_sd()
    panels = []  # (group, term name, order, levels, value, sd)
    for g in groups:
        cols = factor_columns(model, g)
        codes, levels = factor_codes(model, g)
        shown = shown_levels(codes, len(levels), keep)
        # lme4's dotplot orders the levels of a factor by its first term, the same order in every panel
        first = modes[cols[0][0]][shown, cols[0][1]]
        order = shown[np.argsort(first, kind="stable")]
        for ti, j, name in cols:
            panels.append((g, name, order, levels, modes[ti][:, j], sds[ti][:, j]))

    n = len(panels)
    ncols = min(n, 3)
    axes = grid(fig, math.ceil(n / ncols), ncols)
    rows: list[dict] = []
    first_of: dict[str, Any] = {}
    for ax, (g, name, order, levels, value, sd) in zip(axes, panels, strict=False):
        v, s = value[order], sd[order]
        lo, hi = v - 1.96 * s, v + 1.96 * s
        pos = np.arange(len(order))
        k = len(order)
        lw = 1.3 if k <= 60 else 0.8 if k <= 200 else 0.5
        ax.hlines(pos, lo, hi, color="#7a9cc6", lw=lw, zorder=2)
        ax.plot(v, pos, "o", ms=4.5 if k <= 60 else 2.2 if k <= 200 else 1.4, color="#1f3f77", zorder=3)
        ax.axvline(0.0, color="#c0392b", lw=0.9, ls="--", zorder=1)
        ax.set_ylim(-0.8, k - 0.2)
        ax.grid(False, axis="y")
        # the panels of one factor share its sorted levels: only the first names them
        if g in first_of:
            ax.sharey(first_of[g])
            ax.tick_params(labelleft=False)
        else:
            first_of[g] = ax
            if k <= MAX_LABELLED:
                size = max(6.0, min(9.0, 300.0 / max(k, 1)))
                ax.set_yticks(pos, [levels[i] for i in order], fontsize=size)
                ax.set_ylabel(g)
            else:
                ax.set_yticks([])
                ax.set_ylabel(f"{k} levels of {g}, sorted")
        ax.set_title(f"{g}: {name}")
        ax.set_xlabel("conditional mode ± 1.96 cond. SD")
        for i, vi, si, a, b in zip(order, v, s, lo, hi, strict=True):
            rows.append({"group": g, "term": name, "level": levels[i], "value": float(vi),
                         "cond_sd": float(si), "lower": float(a), "upper": float(b)})
    hide_unused(axes, n)
    return Drawn({"groups": groups, "rows": rows}, rows,
                 "Random effects: conditional modes with 95% intervals")
