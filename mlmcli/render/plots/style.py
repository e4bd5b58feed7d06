"""The look every picture shares: matplotlib settings, reference colours, crowding limits."""

from __future__ import annotations

from typing import Any

MAX_LABELLED = 40   # beyond this many levels, level names would overlap: no labels

STYLE = {
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e3e3e3",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "legend.fontsize": 8.5,
    "legend.frameon": False,
    "svg.hashsalt": "mlm",  # identical SVG ids from run to run
}
POP = "#111111"     # the population (fixed-effects) line
REF = "#9a9a9a"     # reference lines at zero
POINT = "#1f77b4"   # points of a single series


def tab10() -> list[Any]:
    """matplotlib's ten categorical colours, for panels and a few groups."""
    from matplotlib import colormaps

    return [colormaps["tab10"](i) for i in range(10)]


def darker(rgba: tuple) -> tuple:
    return tuple(0.6 * c for c in rgba[:3]) + (1.0,)
