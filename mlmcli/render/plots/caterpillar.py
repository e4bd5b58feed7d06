"""caterpillar: conditional modes with 95% intervals, sorted (lme4's dotplot of ranef); many levels thinned.

Every level drawn is named on the y axis, so a reader can tell which groups differ: by default a
factor shows as many levels as its panel's height has room to name (evenly spaced in the sorted
order, both ends kept), measured once the figure is laid out; with more (--groups N), every second
or third is named. An interval that excludes zero is drawn dark with a filled dot, one that
includes zero light with an open dot, and the legend says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlmcli.render.plots.groups import factor_codes, factor_columns, factors, pick_group, shown_levels
from mlmcli.render.plots.layout import grid, hide_unused
from mlmcli.render.plots.options import Drawn, PlotOptions
from mlmcli.render.plots.sample import evenly
from mlmcli.render.plots.style import Theme, fit_text

if TYPE_CHECKING:
    from mlmcli.io.frame import Frame
    from mlmcli.model import FittedModel

_ZERO = "#333333"
_DOT = "#08306b"
# (bar, dot face) of an interval that excludes zero and of one that includes it
_EXCLUDES = ("#3d7ab8", _DOT)
_INCLUDES = ("#a9c9e8", "white")
_LINE = 1.2  # a level's name needs this many times its type size of height (its text box is 1.17)


@dataclass
class _Panel:
    ax: Any
    group: str
    term: str
    sorted_levels: np.ndarray  # every level shown, sorted by the factor's first term
    levels: list[str]
    value: np.ndarray
    sd: np.ndarray
    first: bool = True  # the first panel of its factor, which names the levels


def caterpillar(fig: Any, model: FittedModel, frame: Frame, keep: np.ndarray, opts: PlotOptions, theme: Theme) -> Drawn:
    groups = [pick_group(model, opts.group)] if opts.group else factors(model)
    modes, sds = model.conditional_modes(), model.conditional_sd()
    family = getattr(model, "family", None)  # a GLMM's random effects are on its link's scale
    specs = []  # (group, term name, sorted levels, level names, value, sd)
    for g in groups:
        cols = factor_columns(model, g)
        codes, levels = factor_codes(model, g)
        shown = shown_levels(codes, len(levels), keep)
        # lme4's dotplot orders the levels of a factor by its first term, the same order in every panel
        first = modes[cols[0][0]][shown, cols[0][1]]
        order = shown[np.argsort(first, kind="stable")]
        specs += [(g, name, order, levels, modes[ti][:, j], sds[ti][:, j]) for ti, j, name in cols]

    n = len(specs)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    axes = grid(fig, nrows, ncols)
    panel_width = opts.width * 0.92 / ncols - 0.5 * theme.scale  # less the tick labels beside it
    scale = "" if family is None else f", {family.link} scale"
    panels = [_Panel(ax, *spec) for ax, spec in zip(axes, specs, strict=False)]
    # every panel's x label in the same form, the longest that fits them all
    forms = [(f"{p.term}: conditional mode{scale}", f"{p.term}{scale}", p.term) for p in panels]
    room = theme.chars(panel_width, 10)
    form = next((i for i in range(2) if all(len(f[i]) <= room for f in forms)), 2)
    for p, labels in zip(panels, forms, strict=True):
        p.ax.set_xlabel(fit_text(list(labels[form:]), room))
        p.ax.grid(False, axis="y")
        p.first = next(q for q in panels if q.group == p.group) is p
        if not p.first:  # the panels of one factor share its sorted levels: the first names them
            p.ax.sharey(next(q.ax for q in panels if q.group == p.group))
            p.ax.tick_params(labelleft=False, left=False)
    hide_unused(axes, n)
    _legend(fig, theme, opts.width)
    # a first guess of the levels each factor's height can name; _Levels.finish measures it
    guess = max(2, int(opts.height * 72.0 * 0.55 / nrows / (_LINE * theme.pt(9))))
    drawn = _Levels(fig, panels, opts, theme, opts.height / nrows)
    drawn.draw(guess if opts.groups is None else opts.groups)
    return Drawn(
        {"groups": groups, "levels": drawn.counts, "rows": drawn.rows},
        drawn.rows,
        "Random effects: conditional modes with 95% intervals",
        short_title="Conditional modes, 95% intervals",
        finish=drawn.finish,
    )


class _Levels:
    """The intervals of the levels drawn, which the laid-out height may thin once more."""

    def __init__(self, fig: Any, panels: list[_Panel], opts: PlotOptions, theme: Theme, row_height: float) -> None:
        self.fig, self.panels, self.opts, self.theme, self.row_height = fig, panels, opts, theme, row_height
        self.rows: list[dict] = []
        self.counts: dict[str, dict] = {}
        self.limit = 0

    def draw(self, limit: int) -> None:
        """Each panel's intervals of at most `limit` levels (0: all), its factor's first panel naming them."""
        self.limit = limit
        self.rows.clear()
        for p in self.panels:
            for artist in [*p.ax.lines, *p.ax.collections]:
                artist.remove()
            p.ax.ignore_existing_data_limits = True  # the x range of what is drawn now
            order = evenly(p.sorted_levels, limit)
            self.counts[p.group] = {"levels": len(p.sorted_levels), "drawn": len(order)}
            self._intervals(p, order)
            if not p.first:
                continue
            p.ax.set_yticks(np.arange(len(order)), [p.levels[i] for i in order])
            c = self.counts[p.group]
            part = f"{p.group}: {c['drawn']} of {c['levels']} levels"
            room = self.theme.chars(self.row_height * 0.7, 10)
            p.ax.set_ylabel(
                p.group if c["drawn"] == c["levels"] else fit_text([f"{part}, sorted", part, p.group], room)
            )

    def _intervals(self, p: _Panel, order: np.ndarray) -> None:
        theme, ax = self.theme, p.ax
        v, s = p.value[order], p.sd[order]
        lo, hi = v - 1.96 * s, v + 1.96 * s
        out = (lo > 0) | (hi < 0)
        k = len(order)
        pos = np.arange(k)
        step = self.row_height * 72.0 * 0.7 / max(k, 1)  # points per level, about
        # bars and dots sized by the room each level has, in points whatever the figure's size
        bar_lw = min(theme.lw(2.2), max(0.6, 0.35 * step))
        ms = min(theme.ms(5.0), max(1.8, 0.6 * step))
        for mask, (bar, face) in ((~out, _INCLUDES), (out, _EXCLUDES)):
            ax.hlines(pos[mask], lo[mask], hi[mask], color=bar, lw=bar_lw, zorder=2)
            ax.plot(
                v[mask], pos[mask], "o", ms=ms, markerfacecolor=face, markeredgecolor=_DOT,
                markeredgewidth=max(0.4, min(theme.lw(0.9), 0.15 * ms)), ls="none", zorder=4,
            )  # fmt: skip
        # over the intervals, under the dots: a zero line behind the bars disappears
        ax.axvline(0.0, color=_ZERO, lw=theme.lw(0.8), ls=(0, (4, 3)), zorder=3)
        ax.set_ylim(-_pad(k), k - 1 + _pad(k))
        for i, vi, si, a, b, o in zip(order, v, s, lo, hi, out, strict=True):
            self.rows.append(
                {
                    "group": p.group,
                    "term": p.term,
                    "level": p.levels[i],
                    "value": float(vi),
                    "cond_sd": float(si),
                    "lower": float(a),
                    "upper": float(b),
                    "excludes_zero": bool(o),
                }
            )

    def finish(self) -> None:
        """Once laid out: by default as many levels as the panels' height can name, all named; with
        --groups N, every level named where they fit and every m-th where they do not."""
        self.fig.figure.draw_without_rendering()
        if self.opts.groups is None:
            fits = min(self._fits(p) for p in self.panels)
            if fits < max(c["drawn"] for c in self.counts.values()):
                self.draw(fits)  # the height is the layout's, whatever the levels drawn
                self.fig.figure.draw_without_rendering()
        for p in self.panels:
            names = [t.get_text() for t in p.ax.yaxis.get_ticklabels()]
            if not p.first or not names:
                continue
            step = math.ceil(_LINE * self._size(p) / self._per_level(p))
            if step > 1:
                pos = np.arange(0, len(names), step)
                p.ax.set_yticks(pos, [names[i] for i in pos])

    def _per_level(self, p: _Panel) -> float:
        """Points from one level to the next in a laid-out panel."""
        lo, hi = p.ax.get_ylim()
        return p.ax.get_window_extent().height * 72.0 / self.fig.figure.dpi / (hi - lo)

    def _size(self, p: _Panel) -> float:
        labels = p.ax.yaxis.get_ticklabels()
        return labels[0].get_fontsize() if labels else self.theme.pt(9)

    def _fits(self, p: _Panel) -> int:
        """How many levels a laid-out panel can draw and name: k levels span k - 1 + 2 pad of its height."""
        lo, hi = p.ax.get_ylim()
        units = (hi - lo) * self._per_level(p) / (_LINE * self._size(p))
        k = max(2, int(units) + 1)
        while k > 2 and k - 1 + 2 * _pad(k) > units:
            k -= 1
        return k


def _pad(k: int) -> float:
    """Levels of room above the last and below the first level, so their dots clear the frame."""
    return max(0.8, 0.03 * k)


def _legend(fig: Any, theme: Theme, width: float) -> None:
    """Filled and open dots: intervals that exclude zero and those that include it."""
    from matplotlib.legend_handler import HandlerTuple
    from matplotlib.lines import Line2D

    def entry(bar: str, face: str) -> tuple[Any, Any]:
        line = Line2D([], [], color=bar, lw=theme.lw(2.2))
        dot = Line2D([], [], marker="o", ms=theme.ms(5.0), markerfacecolor=face, markeredgecolor=_DOT, ls="none")
        return line, dot

    handles = [entry(*_EXCLUDES), entry(*_INCLUDES)]
    fig.legend(
        handles,
        ["95% interval excludes 0", "includes 0"],
        loc="outside lower center",
        ncols=2,
        handler_map={h: HandlerTuple(ndivide=1) for h in handles},
        handlelength=1.6,
        columnspacing=1.2 if width < 5 else 2.0,
    )
