"""Normal quantiles as R's qqnorm and qqline compute them, and a Q-Q plot drawn from them."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlmcli.render.plots.style import LINE, Theme


def normal_quantiles(n: int) -> np.ndarray:
    """qnorm(ppoints(n)): the theoretical quantiles R's qqnorm uses."""
    from statistics import NormalDist

    a = 3.0 / 8.0 if n <= 10 else 0.5
    nd = NormalDist()
    return np.array([nd.inv_cdf((i - a) / (n + 1 - 2 * a)) for i in range(1, n + 1)])


def qq_line(sample: np.ndarray) -> tuple[float, float]:
    """R's qqline: intercept and slope of the line through the first and third quartiles."""
    from statistics import NormalDist

    q1, q3 = np.quantile(sample, [0.25, 0.75])
    z1, z3 = NormalDist().inv_cdf(0.25), NormalDist().inv_cdf(0.75)
    slope = (q3 - q1) / (z3 - z1)
    return float(q1 - slope * z1), float(slope)


def qq_plot(ax: Any, values: np.ndarray, colour: str, theme: Theme, many: bool) -> Any:
    """qqnorm(values) and qqline(values) on `ax`, smaller and fainter points for `many`; the points' handle."""
    sample = np.sort(values)
    theo = normal_quantiles(len(sample))
    (h,) = ax.plot(
        theo, sample, "o", ms=theme.ms(2.0 if many else 3.0), alpha=0.45 if many else 0.8, color=colour,
        markeredgewidth=0, zorder=2,
    )  # fmt: skip
    if len(sample) >= 2:
        a, b = qq_line(sample)
        ends = np.array([theo[0], theo[-1]])
        ax.plot(ends, a + b * ends, color=LINE, lw=theme.lw(1.1), zorder=3)
    return h
