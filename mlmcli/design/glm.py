"""A GLMM's response as glmer's family initialize() makes it (R's binomial()$initialize and
poisson()$initialize, run by lme4's mkRespMod).

binomial takes a 0/1 (or proportion) column, a factor whose first level is failure, logical values,
or cbind(successes, failures); the response becomes the proportion of successes and the prior
weights are multiplied by the number of trials.  poisson takes non-negative counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlmcli.errors import DataError
from mlmcli.io.frame import Factor

FAMILIES = ("binomial", "poisson")


@dataclass
class GlmResponseValues:
    y: np.ndarray  # proportions (binomial) or counts (poisson)
    trials: np.ndarray  # R's n: the numbers of trials (1 for 0/1 data and for poisson)
    weights: np.ndarray  # prior weights times trials, as initialize() leaves them
    messages: list[str]  # R's warnings


def glm_response(
    family: str, column: np.ndarray | Factor, weights: np.ndarray | None, rows: np.ndarray, label: str
) -> GlmResponseValues:
    """The response column (on the rows used) as family$initialize() leaves y, n and the weights."""
    n = len(rows)
    wt = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    messages: list[str] = []
    if family == "poisson":
        if isinstance(column, Factor):
            raise DataError(f"the response '{label}' is not numeric: poisson needs counts")
        y = np.asarray(column, dtype=float)
        if y.ndim != 1:
            raise DataError(f"the response '{label}' must be one column of counts for poisson")
        if np.any(y < 0):
            raise DataError("negative values not allowed for the 'Poisson' family")
        if np.any(np.abs(y - np.round(y)) > 1e-7):
            # R's dpois() warns in C's %f
            messages.append(f"non-integer x = {float(y[np.abs(y - np.round(y)) > 1e-7][0]):f}")
        return GlmResponseValues(y, np.ones(n), wt, messages)
    if isinstance(column, Factor):
        # R: y <- y != levels(y)[1] (a logical column is FALSE/TRUE: TRUE is success)
        y = (column.codes != 0).astype(float) if not column.logical else _logical_values(column)
        return GlmResponseValues(y, np.ones(n), wt, messages)
    y = np.asarray(column, dtype=float)
    if y.ndim == 2:
        if y.shape[1] != 2:
            raise DataError(f"the response '{label}' must have two columns, successes and failures")
        if np.any(y < 0):
            raise DataError("negative values in a binomial response: cbind(successes, failures) counts")
        trials = y[:, 0] + y[:, 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            prop = np.where(trials == 0, 0.0, y[:, 0] / np.where(trials == 0, 1.0, trials))
        if np.any(np.abs(y - np.round(y)) > 1e-3):
            messages.append("non-integer counts in a binomial glm!")
        return GlmResponseValues(prop, trials, wt * trials, messages)
    if y.ndim != 1:
        raise DataError(f"the response '{label}' must be one column")
    y = np.where(wt == 0, 0.0, y)
    if np.any((y < 0) | (y > 1)):
        raise DataError(
            f"y values must be 0 <= y <= 1: the response '{label}' of a binomial model is 0/1, a proportion "
            "with --weights giving the trials, a two-level factor, or cbind(successes, failures)"
        )
    m = wt * y
    if np.any(np.abs(m - np.round(m)) > 1e-3):
        messages.append("non-integer #successes in a binomial glm!")
    return GlmResponseValues(y, np.ones(n), wt, messages)


def _logical_values(column: Factor) -> np.ndarray:
    true = [i for i, lev in enumerate(column.levels) if lev == "TRUE"]
    return np.isin(column.codes, true).astype(float)
