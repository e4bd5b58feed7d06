"""Normal quantiles as R's qqnorm and qqline compute them."""

from __future__ import annotations

import numpy as np


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
