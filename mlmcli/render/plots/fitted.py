"""fitted: the model-implied line of every group beside the population line (fixed effects only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mlmcli.errors import MlmError
from mlmcli.render.plots.bysplit import by_split
from mlmcli.render.plots.columns import default_x, numeric_column, predictor_columns
from mlmcli.render.plots.groups import factor_codes, pick_group
from mlmcli.render.plots.implied import Implied
from mlmcli.render.plots.layout import panels
from mlmcli.render.plots.options import Drawn, PlotOptions
from mlmcli.render.plots.style import POP, darker, tab10

if TYPE_CHECKING:
    from mlmcli.frame import Frame
    from mlmcli.model import FittedModel


def fitted(fig: Any, model: FittedModel, frame: Frame, keep: np.ndarray, opts: PlotOptions) -> Drawn:
    group = pick_group(model, opts.group)
    xname = opts.x if opts.x is not None else default_x(model, frame, "fitted")
    predictors = predictor_columns(model)
    if xname not in predictors:
        numeric_column(frame, xname, "--x")  # unknown column: that error first
        raise MlmError(f"--x '{xname}' is not a predictor of the model (predictors: {', '.join(predictors)})")
    xall = numeric_column(frame, xname, "--x")[model.design.rows]
    codes, levels = factor_codes(model, group)
    split = by_split(model, frame, opts.by, group, keep)
    ok = keep & (split.panel >= 0)
    panel, panel_labels = split.panel, split.labels
    implied = Implied(model, frame, xname)

    # one line per group: x over the group's observed range
    drawn, grid, means = implied.curves(xall, np.where(ok, codes, -1), len(levels), group)
    shown = np.flatnonzero(drawn)
    group_panel = np.full(len(levels), -1, dtype=np.int64)
    group_panel[codes[ok]] = panel[ok]
    # the population line of each panel: fixed effects only, over the range of the panel's own value
    pdrawn, pgrid, pmeans = implied.curves(xall, np.where(ok, split.own, -1), len(panel_labels), None)

    from matplotlib.collections import LineCollection

    is_split = split.by is not None
    palette = tab10()
    axes = panels(fig, len(panel_labels))
    lines, population = [], []
    for p, ax in enumerate(axes):
        colour = palette[p % 10] if is_split else "#4a7fb5"
        mine = shown[group_panel[shown] == p]
        alpha, lw = (0.55, 0.9) if len(mine) <= 50 else (0.3, 0.6)
        ax.add_collection(LineCollection([np.column_stack([grid[g], means[g]]) for g in mine], colors=colour,
                                         linewidths=lw, alpha=alpha, zorder=2))
        for g in mine:
            line = {"level": levels[g], "x0": grid[g, 0], "x1": grid[g, -1], "y0": means[g, 0],
                    "y1": means[g, -1], "by": panel_labels[p] if is_split else None}
            if implied.points > 2:
                line["curve_x"], line["curve_y"] = grid[g], means[g]
            lines.append(line)
        # every panel's population line in each panel, so differences between the panels show
        for q in np.flatnonzero(pdrawn).tolist():
            own = q == p
            qcolour = POP if not is_split else darker(palette[q % 10])
            label = "population (fixed effects)" if not is_split else f"population, {panel_labels[q]}"
            ax.plot(pgrid[q], pmeans[q], color=qcolour, lw=3.0 if own else 1.6, ls="-" if own else "--",
                    alpha=1.0 if own else 0.8, zorder=4 if own else 3, label=label)
        if is_split:
            ax.set_title(f"{panel_labels[p]}: {len(mine)} groups")
        ax.set_xlabel(xname)
        if p == 0:
            from matplotlib.lines import Line2D

            handles, labels = ax.get_legend_handles_labels()
            handles.insert(0, Line2D([], [], color=colour if not is_split else "#777777", lw=1.0))
            labels.insert(0, f"{group}: fixed + random ({len(shown)} groups)")
            ax.legend(handles, labels, loc="best")
    for q in np.flatnonzero(pdrawn).tolist():
        row = {"by": panel_labels[q] if is_split else None, "x0": pgrid[q, 0], "x1": pgrid[q, -1],
               "y0": pmeans[q, 0], "y1": pmeans[q, -1]}
        if implied.points > 2:
            row["curve_x"], row["curve_y"] = pgrid[q], pmeans[q]
        population.append(row)
    axes[0].set_ylabel(f"{model.design.response} (model-implied)")
    title = f"Model-implied lines of {model.design.response} on {xname}, one per {group}"
    if is_split:
        title += f", by {opts.by}"
    data = {"group": group, "x": xname, "y": model.design.response, "by": opts.by, "lines": lines,
            "population": population}
    # --data-out: one row per line, the curves' points left to the JSON
    table = [_ends(r) for r in lines] + [{"level": "(population)", **_ends(r)} for r in population]
    return Drawn(data, table, title, split.notes(group))


def _ends(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("curve_")}
