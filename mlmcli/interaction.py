"""R's interaction(..., sep = ".", lex.order = FALSE): the factor of the combinations of factors."""

from __future__ import annotations

import numpy as np

from mlmcli.io.frame import Factor


def interaction(factors: list[Factor], sep: str = ".", lex_order: bool = False) -> Factor:
    """The combinations the rows take, in the order of R's levels: the first factor varies fastest
    (the last with lex.order = TRUE); labels are the factors' levels joined by `sep`; a row missing
    any factor is missing.

    Only combinations some row takes are levels: R lists every combination (unless drop = TRUE),
    but lme4's factor() of a grouping factor and the model frame's drop.unused.levels drop the others,
    which is all mlm evaluates a factor for.  Combinations whose labels coincide ("a.b" + "c" and
    "a" + "b.c") are one level, as in R, placed where the first of them is among those used.
    """
    n = len(factors[0].codes)
    codes = np.stack([f.codes for f in factors], axis=1) if factors else np.zeros((n, 0), dtype=np.int64)
    ok = np.all(codes >= 0, axis=1)
    # the most significant factor first, so that sorting the rows sorts by R's level order
    order = codes[ok] if lex_order else codes[ok][:, ::-1]
    out = np.full(n, -1, dtype=np.int64)
    if not order.size:
        return Factor(out, [])
    combos, inverse = np.unique(order, axis=0, return_inverse=True)
    if not lex_order:
        combos = combos[:, ::-1]
    labels = [sep.join(f.levels[c] for f, c in zip(factors, row, strict=True)) for row in combos.tolist()]
    first: dict[str, int] = {}
    merged = np.array([first.setdefault(lab, len(first)) for lab in labels], dtype=np.int64)
    out[ok] = merged[np.asarray(inverse).reshape(-1)]
    return Factor(out, list(first))
