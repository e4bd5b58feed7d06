"""fitted: the model-implied line of every group beside the population line (fixed effects, with a 95% band)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mlmcli.errors import MlmError
from mlmcli.render.plots.bysplit import by_split
from mlmcli.render.plots.columns import default_x, numeric_column, predictor_columns
from mlmcli.render.plots.groups import factor_codes, pick_group
from mlmcli.render.plots.implied import Implied, line_ends
from mlmcli.render.plots.layout import panels
from mlmcli.render.plots.options import Drawn, PlotOptions
from mlmcli.render.plots.style import ONE, PALETTE, POP, Theme, darker, wrap

if TYPE_CHECKING:
    from mlmcli.io.frame import Frame
    from mlmcli.model import FittedModel

Z95 = 1.959963984540054  # the band: estimate ± Z95 standard errors of the fixed part


def fitted(fig: Any, model: FittedModel, frame: Frame, keep: np.ndarray, opts: PlotOptions, theme: Theme) -> Drawn:
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
    drawn, grid, means, _ = implied.curves(xall, np.where(ok, codes, -1), len(levels), group)
    shown = np.flatnonzero(drawn)
    group_panel = np.full(len(levels), -1, dtype=np.int64)
    group_panel[codes[ok]] = panel[ok]
    # the population line of each panel: fixed effects only, over the range of the panel's own value
    pdrawn, pgrid, pmeans, pse = implied.curves(xall, np.where(ok, split.own, -1), len(panel_labels), None)
    # the band: the fixed part's pointwise 95% interval; a GLMM's curves, band included, go through
    # the inverse link onto the response scale
    plo, phi = pmeans - Z95 * pse, pmeans + Z95 * pse
    family = implied.family
    if family is not None:
        means, pmeans, plo, phi = (family.linkinv(a) for a in (means, pmeans, plo, phi))

    from matplotlib.collections import LineCollection

    is_split = split.by is not None
    hue = [PALETTE[p % len(PALETTE)] if is_split else ONE for p in range(len(panel_labels))]
    pop = [darker(h) if is_split else POP for h in hue]
    axes = panels(fig, len(panel_labels))
    lines, population = [], []
    for p, ax in enumerate(axes):
        mine = shown[group_panel[shown] == p]
        alpha, lw = (0.55, 0.9) if len(mine) <= 50 else (0.3, 0.6)
        ax.add_collection(
            LineCollection(
                [np.column_stack([grid[g], means[g]]) for g in mine],
                colors=hue[p],
                linewidths=theme.lw(lw),
                alpha=alpha,
                zorder=2,
            )
        )
        for g in mine:
            line = {
                "level": levels[g],
                "x0": grid[g, 0],
                "x1": grid[g, -1],
                "y0": means[g, 0],
                "y1": means[g, -1],
                "by": panel_labels[p] if is_split else None,
            }
            if implied.points > 2:
                line["curve_x"], line["curve_y"] = grid[g], means[g]
            lines.append(line)
        # every panel's population line in each panel, so differences between the panels show
        for q in np.flatnonzero(pdrawn).tolist():
            if q == p:
                ax.fill_between(
                    pgrid[q],
                    plo[q],
                    phi[q],
                    color=pop[q],
                    alpha=0.22,
                    linewidth=0,
                    zorder=1.5,
                )  # under the group lines
                ax.plot(pgrid[q], pmeans[q], color=pop[q], lw=theme.lw(2.6), zorder=4)
            else:
                ax.plot(pgrid[q], pmeans[q], color=pop[q], lw=theme.lw(1.4), ls=(0, (4, 2.5)), alpha=0.9, zorder=3)
        if is_split:
            ax.set_title(f"{panel_labels[p]}: {len(mine)} groups")
        ax.set_xlabel(xname)
        ax.autoscale_view()
    _legend(
        fig, group, hue, pop, [int(q) for q in np.flatnonzero(pdrawn)], is_split, theme, opts.width, family is not None
    )
    for q in np.flatnonzero(pdrawn).tolist():
        row = line_ends(panel_labels[q] if is_split else None, pgrid[q], pmeans[q], pse[q])
        if family is not None:  # the band's ends on the response scale (se is the link's)
            row.update(lower0=plo[q, 0], upper0=phi[q, 0], lower1=plo[q, -1], upper1=phi[q, -1])
        if implied.points > 2:
            row["curve_x"], row["curve_y"], row["curve_se"] = pgrid[q], pmeans[q], pse[q]
        population.append(row)
    what = response_label(model)
    axes[0].set_ylabel(wrap(f"{what} (model-implied)", theme.chars(opts.height * 0.7, 10)))
    if family is None:
        title = f"Model-implied lines of {what} on {xname}, one per {group}"
    else:
        title = f"Model-implied {what} on {xname}, one curve per {group}"
    short = f"Model-implied {'curves' if family is not None else 'lines'} per {group}"
    if is_split:
        title += f", by {opts.by}"
        short += f", by {opts.by}"
    others = [c for c in predictors if c not in (xname, opts.by)]
    held = (
        (
            f"{', '.join(others)} held at {'its' if len(others) == 1 else 'their'} mean within each {group} "
            f"(its line) and within {'each panel' if is_split else 'the data'} (population line)"
        )
        if others
        else ""
    )
    band = "band: pointwise 95% interval of the population line"
    if family is not None:
        band = (
            "population curve: random effects at zero (not the average over groups); band: pointwise 95% "
            f"interval of the fixed part on the {family.link} scale, through the inverse link"
        )
    data = {
        "group": group,
        "x": xname,
        "y": model.design.response,
        **({"scale": "response"} if family is not None else {}),
        "by": opts.by,
        "held_at_mean": others,
        "lines": lines,
        "population": population,
    }
    # --data-out: one row per line, the curves' points left to the JSON
    table = [_ends(r) for r in lines] + [{"level": "(population)", **_ends(r)} for r in population]
    return Drawn(data, table, title, split.notes(group), caption=[s for s in (held, band) if s], short_title=short)


def response_label(model: FittedModel) -> str:
    """The y axis: the response; for a GLMM its mean on the response scale, Pr(y = its second level)
    for a two-level factor."""
    family = getattr(model, "family", None)
    response = model.design.response
    if family is None:
        return response
    if family.name == "poisson":
        return f"mean of {response}"
    from mlmcli.io.frame import Factor

    y = model.design.values.get(response)
    if isinstance(y, Factor) and not y.logical and len(y.levels) == 2:
        return f"Pr({response} = {y.levels[1]})"
    return f"probability of {response}"


def _legend(
    fig: Any,
    group: str,
    hue: list,
    pop: list,
    panels_drawn: list[int],
    is_split: bool,
    theme: Theme,
    width: float,
    glmm: bool = False,
) -> None:
    """One legend for all panels; with --by each entry shows every panel's colour side by side."""
    from matplotlib.legend_handler import HandlerTuple
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    def entry(make: Any) -> Any:
        return tuple(make(p) for p in panels_drawn)

    groups = entry(lambda p: Line2D([], [], color=hue[p], lw=theme.lw(1.2), alpha=0.8))
    band = entry(
        lambda p: (Patch(color=pop[p], alpha=0.22, linewidth=0), Line2D([], [], color=pop[p], lw=theme.lw(2.6)))
    )
    population = "population: fixed effects, 95% band" if not glmm else "population (random effects 0), 95% band"
    handles, labels = [groups, band], [f"{group}: fixed + random effects", population]
    if is_split and len(panels_drawn) > 1:
        handles.append(entry(lambda p: Line2D([], [], color=pop[p], lw=theme.lw(1.4), ls=(0, (4, 2.5)))))
        labels.append("population of the other panel" + ("s" if len(panels_drawn) > 2 else ""))
    wide = HandlerTuple(ndivide=None, pad=0.3)
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=len(handles) if width >= 6.5 else 1,
        handler_map={h: wide for h in handles},
        handlelength=1.6 * max(1, len(panels_drawn)),
    )


def _ends(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("curve_")}
