"""The static structure of a random-effects term: levels, columns, and its piece of theta."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mlmcli.design import ReTerm


@dataclass
class TermStructure:
    """One random-effects term: ell levels of k columns each, and where its theta goes in T_i."""

    k: int
    ell: int
    codes: np.ndarray
    X: np.ndarray
    # positions of theta in the k x k lower-triangular template, column by column (lme4's layout)
    tri_rows: np.ndarray
    tri_cols: np.ndarray

    @property
    def q(self) -> int:
        return self.k * self.ell

    @property
    def ntheta(self) -> int:
        return self.k * (self.k + 1) // 2

    def lower_bounds(self) -> np.ndarray:
        """Zero on the diagonal of the factor, unbounded below elsewhere (lme4's lower)."""
        return np.where(self.tri_rows == self.tri_cols, 0.0, -np.inf)

    def template(self, theta_i: np.ndarray) -> np.ndarray:
        """The k x k lower-triangular relative covariance factor T_i."""
        T = np.zeros((self.k, self.k))
        T[self.tri_rows, self.tri_cols] = theta_i
        return T


def term_structure(term: ReTerm) -> TermStructure:
    k = term.X.shape[1]
    rows, cols = [], []
    for j in range(k):
        for i in range(j, k):
            rows.append(i)
            cols.append(j)
    return TermStructure(
        k=k,
        ell=len(term.levels),
        codes=np.asarray(term.codes, dtype=np.int64),
        X=np.asarray(term.X, dtype=float),
        tri_rows=np.array(rows),
        tri_cols=np.array(cols),
    )


def nesting_parent(inner: TermStructure, outer: TermStructure) -> np.ndarray | None:
    """For each level of `inner`, the one level of `outer` all its rows share; None when some
    level of `inner` meets two levels of `outer` (the factors are crossed, not nested)."""
    parent = np.full(inner.ell, -1, dtype=np.int64)
    parent[inner.codes] = outer.codes
    if np.any(parent < 0) or np.any(parent[inner.codes] != outer.codes):
        return None
    return parent
