"""A reproducible random sample of groups, so a picture of hundreds of groups stays readable."""

from __future__ import annotations

import numpy as np

from mlmcli.render.plots.style import PALETTE

DEFAULT_GROUPS = len(PALETTE)  # as many groups as there are distinct colour-blind-safe colours
DEFAULT_SEED = 1


def sample_groups(shown: np.ndarray, panel_of: np.ndarray, n: int, seed: int) -> np.ndarray:
    """`n` of the levels `shown` (all when n is 0 or not fewer), in level order.

    With panels (--by), one level of each panel is taken first so no panel is left empty; the
    rest come from one permutation, so a larger n keeps the levels a smaller n drew.
    """
    if n == 0 or len(shown) <= n:
        return shown
    order = shown[np.random.default_rng(seed).permutation(len(shown))]
    firsts = [order[np.flatnonzero(panel_of[order] == p)[0]] for p in np.unique(panel_of[order])]
    picked = list(dict.fromkeys(firsts[:n] + order.tolist()))[:n]
    return np.sort(np.array(picked, dtype=np.int64))
