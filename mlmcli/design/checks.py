"""lme4's checks of the fixed-effects matrix X: the columns R's qr() keeps (chkRank.drop.cols), the
residual degrees of freedom left, and whether the predictors are on very different scales
(checkScaleX); on X's rows (fixed_effects) or on [1 X]'[1 X] summed over partitions
(fixed_effects_of_sums), so the in-memory design and the Dask engine's check alike."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlmcli.errors import DataError


def pivoted_rank(X: np.ndarray, tol: float = 1e-7) -> list[int]:
    """Columns kept by R's qr(X, tol, LAPACK = FALSE) (LINPACK dqrdc2, limited pivoting).

    A column whose remaining norm falls below tol times its original norm is moved
    to the end; the first `rank` pivots are the columns lme4 keeps, in their order.
    """
    n, p = X.shape
    if _clearly_full_rank(X):
        return list(range(p))
    x = np.array(X, dtype=float, copy=True)
    pivot = list(range(p))
    qraux = np.sqrt(np.sum(x * x, axis=0))
    original = np.where(qraux == 0, 1.0, qraux)
    k = p + 1  # 1-based, as in dqrdc2
    for col in range(min(n, p)):
        while col + 1 < k and qraux[col] < original[col] * tol:
            order = list(range(col + 1, p)) + [col]
            x[:, col:] = x[:, order]
            qraux[col:] = qraux[order]
            original[col:] = original[order]
            pivot[col:] = [pivot[i] for i in order]
            k -= 1
        if col == n - 1:
            break
        v = x[col:, col]
        norm = float(np.sqrt(v @ v))
        if norm == 0.0:
            continue
        if v[0] != 0.0:
            norm = abs(norm) if v[0] > 0 else -abs(norm)
        v /= norm
        v[0] += 1.0
        if col + 1 < p:
            rest = x[col:, col + 1 :]
            t = -(v @ rest) / v[0]
            rest += np.outer(v, t)
            for j in range(col + 1, p):
                if qraux[j] == 0.0:
                    continue
                tt = max(0.0, 1.0 - (abs(x[col, j]) / qraux[j]) ** 2)
                if abs(tt) < 1e-6:
                    qraux[j] = float(np.sqrt(x[col + 1 :, j] @ x[col + 1 :, j]))
                else:
                    qraux[j] *= np.sqrt(tt)
        qraux[col] = v[0]
        x[col, col] = -norm
    rank = min(k - 1, n)
    return pivot[:rank]


def _clearly_full_rank(X: np.ndarray) -> bool:
    """True when no column comes near dqrdc2's dropping threshold: each column keeps over 1e-3 of
    its norm after projecting out the ones before it (the Cholesky factor of X'X, accurate far
    beyond that margin).  Saves the column-by-column Householder pass on tall data."""
    n, p = X.shape
    if p == 0 or n < p or n < 1000:
        return False
    with np.errstate(all="ignore"):
        return gram_clearly_full_rank(X.T @ X)


def gram_clearly_full_rank(G: np.ndarray) -> bool:
    """The same test on X'X: each column keeps over 1e-3 of its norm after the ones before it."""
    with np.errstate(all="ignore"):
        norms = np.sqrt(np.diag(G))
        if not np.all(np.isfinite(G)) or np.any(norms == 0):
            return False
        try:
            R = np.linalg.cholesky(G / np.outer(norms, norms))
        except np.linalg.LinAlgError:
            return False
    return bool(np.all(np.abs(np.diag(R)) > 1e-3))


SCALE_WARNING = "Some predictor variables are on very different scales: consider rescaling"


def scales_differ(sd: np.ndarray) -> bool:
    """lme4's checkScaleX on the standard deviations of X's continuous columns: one far from 1, or two
    that differ by more than 1000-fold.  Takes SDs rather than X so that data summed over partitions
    (no rows at hand) is checked by the same rule."""
    with np.errstate(all="ignore"):
        ratios = np.abs(np.log(sd[:, None] / sd[None, :]))[np.tril_indices(len(sd), -1)]
        spread = np.concatenate([ratios, np.abs(np.log(sd))])
    return bool(np.any(spread[~np.isnan(spread)] > np.log(1000)))


# rows per piece where a check goes through a column in pieces: no temporary the size of the column
PIECE = 1 << 18


def _binary(col: np.ndarray) -> bool:
    """Whether every value is 0 or 1 (an indicator), stopping at the first piece that is not."""
    return all(np.all((v == 0) | (v == 1)) for v in (col[s : s + PIECE] for s in range(0, len(col), PIECE)))


def _column_sd(col: np.ndarray) -> float:
    """sd() of a column, two passes (the mean, then the squared deviations from it) in pieces."""
    with np.errstate(all="ignore"):
        mean = col.mean()
        ss = 0.0
        for s in range(0, len(col), PIECE):
            d = col[s : s + PIECE] - mean
            ss += float(d @ d)
        return float(np.sqrt(ss / (len(col) - 1)))


def scale_warning(X: np.ndarray) -> str | None:
    """lme4's checkScaleX: predictors whose standard deviations differ by more than 1000-fold."""
    if X.shape[0] < 2:
        return None
    continuous = [j for j in range(X.shape[1]) if not _binary(X[:, j])]
    if not continuous:
        return None
    sd = np.array([_column_sd(X[:, j]) for j in continuous])
    return SCALE_WARNING if scales_differ(sd) else None


def scale_warning_of_sums(G: np.ndarray, binary: np.ndarray, n: int) -> str | None:
    """checkScaleX from [1 X]'[1 X] over n rows: the continuous columns' (not `binary`) SDs, checked as
    scale_warning checks X's."""
    p = G.shape[0] - 1
    cont = [j for j in range(p) if not binary[j]]
    if n < 2 or not cont:
        return None
    s = G[0, 1 : p + 1][cont]
    ss = np.diag(G)[1 : p + 1][cont]
    with np.errstate(all="ignore"):
        sd = np.sqrt(np.maximum(ss - s * s / n, 0.0) / (n - 1))
    return SCALE_WARNING if scales_differ(sd) else None


def check_residual_df(p: int, n: int) -> None:
    """lmer stops when the fixed effects leave no residual degrees of freedom."""
    if p >= n:
        raise DataError(
            f"{p} fixed-effect coefficients for {n} observations: no residual degrees of freedom are "
            "left; remove fixed-effect terms (a factor with one row per level cannot be a fixed effect)"
        )


@dataclass
class FixedEffects:
    """X after lme4's checks: the columns kept, their names, those dropped, and lme4's messages."""

    X: np.ndarray
    xnames: list[str]
    dropped: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def fixed_effects(X: np.ndarray, xnames: list[str], n: int) -> FixedEffects:
    """lme4's checks of X on its n rows: rank-deficient columns dropped (chkRank.drop.cols, with its
    message), residual degrees of freedom, checkScaleX."""
    messages: list[str] = []
    dropped: list[str] = []
    keep = pivoted_rank(X)
    if len(keep) < X.shape[1]:
        m = X.shape[1] - len(keep)
        messages.append(
            f"fixed-effect model matrix is rank deficient so dropping {m} "
            + ("column / coefficient" if m == 1 else "columns / coefficients")
        )
        dropped = [xnames[j] for j in range(X.shape[1]) if j not in keep]
        X = X[:, keep]
        xnames = [xnames[j] for j in keep]
    check_residual_df(X.shape[1], n)
    warning = scale_warning(X)
    if warning:
        messages.append(warning)
    return FixedEffects(X, xnames, dropped, messages)


def fixed_effects_of_sums(G: np.ndarray, binary: np.ndarray, n: int) -> list[str]:
    """The same checks from [1 X]'[1 X] over n rows (data summed over partitions, no rows at hand):
    lme4's messages.  Which columns R's pivoting would drop cannot be told from the sums, so a rank
    deficient X is refused rather than reduced."""
    p = G.shape[0] - 1
    if p and not gram_clearly_full_rank(G[1:, 1:]):
        raise DataError(
            "the fixed-effect model matrix is rank deficient (or nearly so); --engine dask needs "
            "full rank: remove the redundant fixed-effect terms"
        )
    check_residual_df(p, n)
    warning = scale_warning_of_sums(G, binary, n)
    return [warning] if warning else []
