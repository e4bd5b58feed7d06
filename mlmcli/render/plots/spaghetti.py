"""spaghetti: the raw data of some groups, each with its least-squares line over its own x range, and the
population line (the fixed effects).

Which groups: by default evenly spread over the range of their random effect (the random slope of x
where the group has one, else the first term, the intercept), both extremes kept, so the picture shows
how far the groups differ; --seed N draws a random sample instead. The footer says which.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from mlmcli.errors import MlmError
from mlmcli.render.plots.bysplit import by_split
from mlmcli.render.plots.columns import default_x, numeric_column, predictor_columns
from mlmcli.render.plots.groups import factor_codes, factor_columns, pick_group, shown_levels
from mlmcli.render.plots.implied import Implied, line_ends
from mlmcli.render.plots.layout import panels
from mlmcli.render.plots.options import Drawn, PlotOptions
from mlmcli.render.plots.sample import DEFAULT_GROUPS, sample_groups, spread_groups
from mlmcli.render.plots.style import GROUP_COLOURS, ONE, POP, Theme

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
    in_panels = ok.copy()  # every observation of the panels: the population line's
    shown = shown_levels(codes, len(levels), ok)
    group_panel = np.full(len(levels), -1, dtype=np.int64)
    group_panel[codes[ok]] = split.panel[ok]
    n_wanted = DEFAULT_GROUPS if opts.groups is None else opts.groups
    term = _ordering_term(model, group, xname)
    if opts.seed is not None:
        drawn = sample_groups(shown, group_panel, n_wanted, opts.seed)
    else:
        drawn = spread_groups(shown, model.conditional_modes()[term[0]][:, term[1]], group_panel, n_wanted)
    some = len(drawn) < len(shown)
    ok &= np.isin(codes, drawn)

    # distinct colours and a legend for a few groups; one colour for more (a colour per group would not
    # be told apart, and a colour map would suggest an order the levels do not have)
    distinct = len(drawn) <= len(GROUP_COLOURS)
    colour_of = dict(zip(drawn.tolist(), GROUP_COLOURS[: len(drawn)], strict=True)) if distinct else {}
    crowd = 0 if distinct else 1 if len(drawn) <= 60 else 2
    size, point_alpha = ((16, 0.8), (9, 0.5), (5, 0.3))[crowd]
    lw, line_alpha = ((1.6, 0.95), (1.1, 0.7), (0.7, 0.45))[crowd]
    population, pop_lines = _population(model, frame, xname, xall, np.where(in_panels, split.own, -1), split)
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
        if p in pop_lines:  # the panel's population line, over every group drawn or not
            px, py = pop_lines[p]
            ax.plot(px, py, color=POP, lw=theme.lw(2.8), solid_capstyle="round", zorder=5)
        for i in idx:
            points.append({"level": levels[codes[i]], "x": float(xall[i]), "y": float(y[i])})
        if split.by is not None:
            ax.set_title(split.labels[p])
        ax.set_xlabel(xname)
        ax.autoscale_view()
    axes[0].set_ylabel(model.design.response)
    pop_handle = _pop_handle(theme)
    if distinct:
        _legend(axes[-1], group, [levels[g] for g in drawn], list(colour_of.values()), pop_handle, theme)
    else:
        _bottom_legend(fig, group, pop_handle, theme)
    if opts.seed is not None and some:
        which = f"{len(drawn)} of {len(shown)} {group} groups drawn at random (--seed {opts.seed})"
    elif some:
        which = (
            f"{len(drawn)} of {len(shown)} {group} groups, evenly spread over their {term[2]} random effect "
            "(--groups 0: all)"
        )
    else:
        which = f"all {len(shown)} {group} groups"
    caption = [f"{which}; population line: the fixed effects"]
    if xname not in predictor_columns(model):
        caption.append(f"{xname} is not in the model: its population line is flat")
    data = {
        "group": group,
        "x": xname,
        "y": model.design.response,
        "by": opts.by,
        "groups_total": len(shown),
        "groups_drawn": len(drawn),
        "picked": "all" if not some else "random" if opts.seed is not None else "spread",
        "spread_by": term[2] if some and opts.seed is None else None,
        "seed": opts.seed if some else None,
        "lines": lines,
        "population": population,
        "points": points,
    }
    title = f"{model.design.response} against {xname}: a least-squares line per {group} and the population line"
    short = f"{model.design.response} against {xname}, by {group}"
    return Drawn(data, lines, title, split.notes(group), caption=caption, short_title=short)


def _ordering_term(model: FittedModel, group: str, xname: str) -> tuple[int, int, str]:
    """The random effect the groups are spread over: the slope of x where the group has one, else its first."""
    cols = factor_columns(model, group)
    return next((c for c in cols if c[2] == xname), cols[0])


def _population(
    model: FittedModel, frame: Frame, xname: str, xall: np.ndarray, sets: np.ndarray, split: Any
) -> tuple[list[dict], dict[int, tuple[np.ndarray, np.ndarray]]]:
    """Each panel's population line: the fixed effects over the panel's x range, the other predictors at
    their mean in the panel (as the fitted kind's); its rows for the JSON and the (x, y) drawn per panel."""
    try:
        implied = Implied(model, frame, xname)
    except MlmError:  # x as a factor, or inside scale(): the model implies no line along this column
        return [], {}
    drawn, grid, means, se = implied.curves(xall, sets, len(split.labels), None)
    rows, curves = [], {}
    for q in np.flatnonzero(drawn).tolist():
        rows.append(line_ends(split.labels[q] if split.by is not None else None, grid[q], means[q], se[q]))
        curves[q] = (grid[q], means[q])
    return rows, curves


def _pop_handle(theme: Theme) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], color=POP, lw=theme.lw(2.8))


def _legend(ax: Any, group: str, names: list[str], cols: list[str], pop: Any, theme: Theme) -> None:
    """Beside the last panel, where constrained layout makes room for it below the title."""
    from matplotlib.lines import Line2D

    entries = [Line2D([], [], color=c, marker="o", ms=theme.ms(4), lw=theme.lw(1.4)) for c in cols]
    ax.legend(
        [*entries, pop],
        [*names, "population"],
        title=group,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        handlelength=1.6,
        borderaxespad=0.0,
    )


def _bottom_legend(fig: Any, group: str, pop: Any, theme: Theme) -> None:
    """Below the panels: what the thin lines and the thick one are."""
    from matplotlib.lines import Line2D

    each = Line2D([], [], color=ONE, lw=theme.lw(1.1), marker="o", ms=theme.ms(3))
    fig.legend([each, pop], [f"each {group}", "population"], loc="outside lower center", ncols=2, handlelength=1.6)


def _least_squares(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Intercept and slope of y on x; the slope is NaN when x does not vary (a mean only)."""
    xm, ym = x.mean(), y.mean()
    sxx = float(np.sum((x - xm) ** 2))
    if len(x) < 2 or sxx <= 1e-12 * max(1.0, float(np.sum(x * x))):
        return float(ym), float("nan")
    slope = float(np.sum((x - xm) * (y - ym)) / sxx)
    return float(ym - slope * xm), slope
