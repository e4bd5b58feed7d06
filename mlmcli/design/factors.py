"""R's factors made from values: factor() of numbers (levels sorted, labelled as as.character()
writes them), logical vectors, and droplevels (drop.unused.levels)."""

from __future__ import annotations

import numpy as np

from mlmcli.io.frame import Factor
from mlmcli.rcompat.rsort import format_number

Column = np.ndarray | Factor
PIECE = 1 << 18  # rows per piece where a column is gone through in pieces


def value_labels(col: Column, integer: bool) -> list[str | None]:
    """Each value as R's as.character() writes it (None for NA)."""
    if isinstance(col, Factor):
        return [col.levels[c] if c >= 0 else None for c in col.codes.tolist()]
    out: list[str | None] = []
    for v in col.tolist():
        if v != v:
            out.append(None)
        else:
            out.append(str(int(v)) if integer and v == int(v) else format_number(float(v)))
    return out


def _logical(x: np.ndarray) -> Factor:
    """A comparison's result: R's logical vector (NA where either side is NA)."""
    codes = np.where(np.isnan(x), -1, x).astype(np.int64)
    return Factor(codes, ["FALSE", "TRUE"], logical=True)


def _numeric_factor(x: np.ndarray, integer: bool) -> Factor:
    """factor() of numbers: levels sorted numerically, labelled as R's as.character()."""
    ok = ~np.isnan(x)
    if ok.all():
        values, codes = _sorted_codes(x)
    else:
        codes = np.full(len(x), -1, dtype=np.int64)
        values, codes[ok] = _sorted_codes(x[ok])
    if integer:
        levels = values.astype(np.int64).astype(str).tolist()
    else:
        levels = [format_number(float(v)) for v in values]
    return Factor(codes, levels)


def _sorted_codes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct values of x and each element's index among them.  Whole numbers in a
    range not much wider than the data (ids) go through a lookup table instead of a sort."""
    if x.size:
        lo, hi = float(x.min()), float(x.max())
        if hi - lo <= 4 * x.size + 1000:
            # in pieces, the codes' array the only one as long as x (millions of rows)
            codes = np.empty(x.size, dtype=np.int64)
            for s in range(0, x.size, PIECE):
                v = x[s : s + PIECE]
                if not np.array_equal(v, np.floor(v)):
                    break
                codes[s : s + PIECE] = v - lo  # whole numbers: exact
            else:
                present = np.zeros(int(hi - lo) + 1, dtype=bool)
                present[codes] = True
                rank = np.cumsum(present) - 1
                for s in range(0, x.size, PIECE):
                    codes[s : s + PIECE] = rank[codes[s : s + PIECE]]
                return np.flatnonzero(present) + lo, codes
    values, codes = np.unique(x, return_inverse=True)
    return values, codes.ravel()


def drop_unused(f: Factor) -> Factor:
    """Drop levels no row uses (R's drop.unused.levels); R's logicals keep FALSE and TRUE."""
    if f.logical:
        return f
    used = np.zeros(len(f.levels), dtype=bool)
    used[f.codes[f.codes >= 0]] = True
    if used.all():
        return f
    new_index = np.cumsum(used) - 1
    codes = np.where(f.codes >= 0, new_index[np.maximum(f.codes, 0)], -1)
    return Factor(codes, [lev for lev, u in zip(f.levels, used, strict=True) if u])
