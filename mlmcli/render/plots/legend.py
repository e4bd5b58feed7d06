"""Colours of the groups: a legend naming each of a few, a colour bar in level order for many."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlmcli.render.plots.style import tab10

MAX_LEGEND = 20     # beyond this many groups, a colour bar replaces the legend


def group_colours(k: int) -> Any:
    """Distinct colours for a legend of up to MAX_LEGEND groups, a colour map beyond."""
    from matplotlib import colormaps

    if k <= 10:
        return tab10()[:k]
    if k <= MAX_LEGEND:
        return [colormaps["tab20"](i) for i in range(k)]
    cmap = colormaps["viridis"]
    return [cmap(i / max(k - 1, 1)) for i in range(k)]


def group_legend(fig: Any, axes: list[Any], group: str, shown_levels: list[str], colours: list) -> None:
    """A legend of group colours, or a colour bar for many groups."""
    if len(shown_levels) <= MAX_LEGEND:
        from matplotlib.lines import Line2D

        entries = [Line2D([], [], color=c, marker="o", ms=4, lw=1.2) for c in colours]
        labels = list(shown_levels)
        axes[-1].legend(entries, labels, title=group, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                        ncols=1 if len(labels) <= 12 else 2, fontsize=7.5, title_fontsize=8.5)
        return
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    k = len(shown_levels)
    sm = ScalarMappable(norm=Normalize(0, k - 1), cmap=colormaps["viridis"])
    bar = fig.colorbar(sm, ax=axes, shrink=0.85, pad=0.02)
    # ticks name actual levels: level order need not match the level labels
    ticks = np.unique(np.linspace(0, k - 1, 6).round().astype(int))
    bar.set_ticks(ticks, labels=[shown_levels[i] for i in ticks])
    bar.set_label(f"{group}: {k} groups, in level order")
