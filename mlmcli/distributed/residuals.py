"""The scaled residuals' quantiles (R's type 7) from residuals that stay on the workers.

Each partition's residuals are sorted where they are computed.  The order statistics the quantiles
need are found exactly by narrowing a bracket around each: the partitions send samples from inside
the brackets and count the values below the candidates, until a bracket holds few enough values to
be sent whole.  The client sees O(LIMIT) values, never the rows."""

from __future__ import annotations

import numpy as np

from mlmcli.distributed.blocks import Layout, partition_design

PROBS = (0.0, 0.25, 0.5, 0.75, 1.0)
LIMIT = 200_000  # a bracket with no more values than this is sent whole
SAMPLE = 256  # values per partition and bracket in a narrowing round


def partition_residuals(pdf, layout: Layout, beta: np.ndarray, b: list[np.ndarray], sigma: float) -> np.ndarray:
    """One partition's scaled residuals, sorted (runs on a worker)."""
    d = partition_design(pdf, layout)
    fitted = d.X @ beta
    zb = np.zeros(len(d.y))
    for codes, Z, bi in zip(d.codes, d.Z, b, strict=True):
        for a in range(Z.shape[1]):
            zb += Z[:, a] * bi[:, a][codes]
    r = d.y - (fitted + zb)
    if d.weights is not None:  # Pearson residuals, as summary.merMod scales them
        r = r * np.sqrt(d.weights)
    return np.sort(r / sigma)


def _sample(r: np.ndarray, brackets: list[tuple[float, float]]) -> list[np.ndarray]:
    out = []
    for lo, hi in brackets:
        inside = r[np.searchsorted(r, lo, "left") : np.searchsorted(r, hi, "right")]
        take = (
            np.unique(np.linspace(0, len(inside) - 1, SAMPLE).astype(np.int64))
            if len(inside)
            else np.zeros(0, dtype=np.int64)
        )
        out.append(inside[take])
    return out


def _counts(r: np.ndarray, pivots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.searchsorted(r, pivots, "left"), np.searchsorted(r, pivots, "right")


def _within(r: np.ndarray, brackets: list[tuple[float, float]]) -> list[np.ndarray]:
    return [r[np.searchsorted(r, lo, "left") : np.searchsorted(r, hi, "right")] for lo, hi in brackets]


def order_statistics(client, parts: list, n: int, ranks: list[int]) -> dict[int, float]:
    """The values of the given 0-based ranks among all partitions' sorted values."""
    lo = {k: -np.inf for k in ranks}
    hi = {k: np.inf for k in ranks}
    below = dict.fromkeys(ranks, 0)  # values < lo
    upto = dict.fromkeys(ranks, n)  # values <= hi
    for _ in range(20):
        # a bracket [v, v] holds only v (ties): nothing is left to find
        active = [k for k in ranks if upto[k] - below[k] > LIMIT and lo[k] < hi[k]]
        if not active:
            break
        brackets = [(lo[k], hi[k]) for k in active]
        samples = client.gather([client.submit(_sample, p, brackets, pure=False) for p in parts])
        for m, k in enumerate(active):
            pivots = np.unique(np.concatenate([s[m] for s in samples]))
            counts = client.gather([client.submit(_counts, p, pivots, pure=False) for p in parts])
            less = np.sum([c[0] for c in counts], axis=0)
            leq = np.sum([c[1] for c in counts], axis=0)
            ok_lo = np.flatnonzero(less <= k)
            if ok_lo.size:
                j = ok_lo[-1]
                lo[k], below[k] = float(pivots[j]), int(less[j])
            ok_hi = np.flatnonzero(leq > k)
            if ok_hi.size:
                j = ok_hi[0]
                hi[k], upto[k] = float(pivots[j]), int(leq[j])
    out = {k: lo[k] for k in ranks if lo[k] == hi[k]}
    rest = [k for k in ranks if k not in out]
    brackets = [(lo[k], hi[k]) for k in rest]
    pieces = client.gather([client.submit(_within, p, brackets, pure=False) for p in parts]) if rest else []
    for m, k in enumerate(rest):
        values = np.sort(np.concatenate([piece[m] for piece in pieces]))
        out[k] = float(values[k - below[k]])
    return out


def scaled_residual_quantiles(client, leaves: list, layout_future, model) -> list[float]:
    """Min, quartiles and max of the scaled residuals, as the in-memory model computes them."""
    import dask

    task = dask.delayed(partition_residuals, pure=True)
    b = model.conditional_modes()
    parts = client.compute([task(leaf, layout_future, model.beta, b, model.sigma) for leaf in leaves])
    try:
        return quantiles(client, parts, model.n)
    finally:
        del parts


def quantiles(client, parts: list, n: int) -> list[float]:
    """R's quantile(r, c(0, .25, .5, .75, 1)) (type 7) of the n values the partitions hold sorted."""
    h = (n - 1) * np.array(PROBS)
    lo = np.floor(h).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    stats = order_statistics(client, parts, n, sorted(set(lo.tolist()) | set(hi.tolist())))
    return [
        float(stats[a] + (hh - a) * (stats[c] - stats[a])) for a, c, hh in zip(lo.tolist(), hi.tolist(), h, strict=True)
    ]
