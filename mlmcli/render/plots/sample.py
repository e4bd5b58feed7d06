"""Which groups a picture of hundreds of groups draws: evenly spread over their random effects by default,
or a reproducible random sample (--seed)."""

from __future__ import annotations

import numpy as np

from mlmcli.render.plots.style import GROUP_COLOURS

DEFAULT_GROUPS = len(GROUP_COLOURS)  # as many groups as there are distinct colours beside the population's black


def evenly(order: np.ndarray, limit: int) -> np.ndarray:
    """At most `limit` of the sorted `order`, evenly spaced and keeping both ends (one: the middle; 0: all)."""
    if limit == 0 or len(order) <= limit:
        return order
    if limit == 1:
        return order[[(len(order) - 1) // 2]]
    keep = np.unique(np.round(np.linspace(0, len(order) - 1, limit)).astype(np.int64))
    return order[keep]


def spread_groups(shown: np.ndarray, key: np.ndarray, panel_of: np.ndarray, n: int) -> np.ndarray:
    """`n` of the levels `shown` (all when n is 0 or not fewer), in level order: evenly spaced in the
    order of `key` (a random effect of each level), the smallest and the largest kept.

    With panels (--by), each panel gets a share of n as large as its share of the levels, and at
    least one level where n allows, so no panel is left empty.
    """
    if n == 0 or len(shown) <= n:
        return shown
    panels, sizes = np.unique(panel_of[shown], return_counts=True)
    share = _shares(sizes, n)
    picked: list[int] = []
    for p, m in zip(panels, share, strict=True):
        mine = shown[panel_of[shown] == p]
        picked += evenly(mine[np.argsort(key[mine], kind="stable")], int(m)).tolist() if m else []
    return np.sort(np.array(picked, dtype=np.int64))


def _shares(sizes: np.ndarray, n: int) -> np.ndarray:
    """n split over groups of `sizes` in proportion (largest remainders), one each first where n allows."""
    k = len(sizes)
    if n < k:  # too few for every panel: one each for the largest
        out = np.zeros(k, dtype=np.int64)
        out[np.argsort(-sizes, kind="stable")[:n]] = 1
        return out
    quota = (n - k) * sizes / sizes.sum()
    out = 1 + np.floor(quota).astype(np.int64)
    extra = n - int(out.sum())
    out[np.argsort(-(quota - np.floor(quota)), kind="stable")[:extra]] += 1
    return np.minimum(out, sizes)


def sample_groups(shown: np.ndarray, panel_of: np.ndarray, n: int, seed: int) -> np.ndarray:
    """`n` of the levels `shown` drawn at random with `seed` (all when n is 0 or not fewer), in level order.

    With panels (--by), one level of each panel is taken first so no panel is left empty; the
    rest come from one permutation, so a larger n keeps the levels a smaller n drew.
    """
    if n == 0 or len(shown) <= n:
        return shown
    order = shown[np.random.default_rng(seed).permutation(len(shown))]
    firsts = [order[np.flatnonzero(panel_of[order] == p)[0]] for p in np.unique(panel_of[order])]
    picked = list(dict.fromkeys(firsts[:n] + order.tolist()))[:n]
    return np.sort(np.array(picked, dtype=np.int64))
