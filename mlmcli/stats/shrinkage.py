"""The numbers behind `mlm plot --kind shrinkage`: each group's own least-squares fit against the model's.

For a linear mixed model with one grouping factor, a random intercept and at most one random slope:
per group, nlme/lme4's lmList(y ~ fixed part | group), the fixed-effects formula fitted by least
squares to that group's rows alone (weighted by the prior weights where the model has them); beside
it, lme4's coef(fit), the fixed effects plus the group's conditional modes; and fixef(fit), the
population estimate. The partial pooling the plot shows is the move from the first to the second,
towards the third.

A group whose own fit is not identifiable (one row, x not varying within it, or any fixed-effect
column aliased on its rows: lmList would give NA) is left out and counted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlmcli.errors import MlmError

if TYPE_CHECKING:
    from mlmcli.model import FittedModel

INTERCEPT = "(Intercept)"


def shrinkage_report(model: FittedModel, x: str | None = None) -> dict:
    """lmList's per-group intercept and slope of `x`, coef(fit)'s, and fixef(fit)'s."""
    design = model.design
    if getattr(model, "family", None) is not None:
        raise MlmError("--kind shrinkage is offered for a linear mixed model (no --family)")
    groups = list(dict.fromkeys(t.group for t in design.terms))
    if len(groups) > 1:
        raise MlmError(
            f"--kind shrinkage needs a model with one grouping factor, and this one has {len(groups)} "
            f"({', '.join(groups)}): fit one of them alone"
        )
    group = groups[0]
    terms = [t for t in design.terms if t.group == group]
    random = [name for t in terms for name in t.cnames]
    xnames = list(design.xnames)
    if INTERCEPT not in random or INTERCEPT not in xnames:
        raise MlmError("--kind shrinkage needs a fixed and a random intercept ((1|g) or (x|g))")
    slopes = [name for name in random if name != INTERCEPT]
    if len(slopes) > 1:
        raise MlmError(
            f"--kind shrinkage draws a random intercept and at most one random slope, and {group} has "
            f"{len(slopes)} ({', '.join(slopes)})"
        )
    missing = [name for name in random if name not in xnames]
    if missing:
        raise MlmError(f"--kind shrinkage needs every random effect among the fixed effects; {missing[0]} is not")
    candidates = [name for name in xnames if name != INTERCEPT]
    if not candidates:
        raise MlmError("--kind shrinkage needs a fixed-effect slope: the model has only an intercept")
    if x is None:
        x = slopes[0] if slopes else candidates[0]
    elif x not in candidates:
        raise MlmError(f"--x '{x}' is not a fixed-effect column of the model (they are: {', '.join(candidates)})")

    ix, jx = xnames.index(INTERCEPT), xnames.index(x)
    term = terms[0]
    codes, levels = term.codes, [str(v) for v in term.levels]
    own, n_rows = _per_group_least_squares(design.X, design.y, design.weights, codes, len(levels))
    beta = np.asarray(model.beta, dtype=float)
    coef = np.tile(beta, (len(levels), 1))  # coef(fit): the fixed effects plus each level's modes
    for t, b in zip(design.terms, model.conditional_modes(), strict=True):
        for j, name in enumerate(t.cnames):
            coef[:, xnames.index(name)] += b[:, j]
    rows, left_out = [], []
    for g, level in enumerate(levels):
        if not np.all(np.isfinite(own[g])):
            left_out.append(level)
            continue
        rows.append(
            {
                "level": level,
                "index": g,
                "n": int(n_rows[g]),
                "own_intercept": float(own[g, ix]),
                "own_slope": float(own[g, jx]),
                "model_intercept": float(coef[g, ix]),
                "model_slope": float(coef[g, jx]),
            }
        )
    if not rows:
        raise MlmError(
            f"no {group} group has its own least-squares fit of every fixed effect (lmList gives NA): a "
            f"predictor constant within each {group}, such as a group-level variable, cannot be fitted "
            "from one group's rows"
        )
    return {
        "group": group,
        "x": x,
        "random_slope": slopes[0] if slopes else None,
        "population": {"intercept": float(beta[ix]), "slope": float(beta[jx])},
        "groups": rows,
        "groups_total": len(levels),
        "left_out": left_out,
        "other_fixed": [name for name in xnames if name not in (INTERCEPT, x)],
    }


def _per_group_least_squares(
    X: np.ndarray, y: np.ndarray, weights: np.ndarray | None, codes: np.ndarray, n_levels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each group's least-squares coefficients (NaN where its columns are not of full rank, as lm's
    NA), and its number of rows."""
    p = X.shape[1]
    out = np.full((n_levels, p), np.nan)
    if weights is not None:  # lm(weights = w): least squares of sqrt(w) y on sqrt(w) X
        root = np.sqrt(np.asarray(weights, dtype=float))
        X, y = X * root[:, None], y * root
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=n_levels)
    starts = np.concatenate([[0], np.cumsum(counts)])
    for g in range(n_levels):
        rows = order[starts[g] : starts[g + 1]]
        if len(rows) < p:
            continue
        Xg = X[rows]
        coef, _, rank, sv = np.linalg.lstsq(Xg, y[rows], rcond=None)
        # rank as lm judges it, near enough: a column aliased to within 1e-7 of the others counts as aliased
        if rank == p and sv[-1] > 1e-7 * sv[0]:
            out[g] = coef
    return out, counts
