"""Axes of a figure: a row of panels sharing their scales, or a grid whose spare cells stay empty."""

from __future__ import annotations

from typing import Any


def panels(fig: Any, count: int) -> list[Any]:
    """`count` side-by-side axes on common x and y scales (one per --by value)."""
    return list(fig.subplots(1, count, squeeze=False, sharex=True, sharey=True).ravel())


def grid(fig: Any, nrows: int, ncols: int) -> Any:
    return fig.subplots(nrows, ncols, squeeze=False).ravel()


def hide_unused(axes: Any, used: int) -> None:
    """A grid has more cells than panels when the count does not fill its last row."""
    for ax in axes[used:]:
        ax.set_visible(False)
