"""R's model.matrix with treatment contrasts: which factors get contrasts and which indicators in each
term (R's TermCode), and the columns with R's names in R's order."""

from __future__ import annotations

import numpy as np

from mlmcli.design.factors import Column
from mlmcli.errors import DataError
from mlmcli.formula import ModelSpec
from mlmcli.io.frame import Factor


def _n_levels(col: Column) -> int:
    return len(col.levels) if isinstance(col, Factor) else 0


def contrast_codes(spec: ModelSpec, values: dict[str, Column]) -> list[list[int]]:
    """R's factor coding per variable of each term: 1 = contrasts, 2 = indicators.

    A factor gets contrasts in a term when the term without it is empty or is part
    of an earlier term; without an intercept the first factor of the model gets
    indicators for all its levels (R's TermCode and model.matrix).
    """
    codes: list[list[int]] = []
    earlier: list[set[str]] = []
    for term in spec.terms:
        labels = {v.label for v in term.vars}
        row = []
        for v in term.vars:
            rest = labels - {v.label}
            row.append(1 if not rest or any(rest <= e for e in earlier) else 2)
        codes.append(row)
        earlier.append(labels)
    if not spec.intercept:
        for j, term in enumerate(spec.terms):
            hit = [i for i, v in enumerate(term.vars) if _n_levels(values[v.label]) > 1]
            if hit:
                codes[j][hit[0]] = 2
                break
    return codes


def model_matrix(spec: ModelSpec, values: dict[str, Column], n: int) -> tuple[np.ndarray, list[str]]:
    """R's model.matrix with treatment contrasts: columns and their names, in R's order."""
    columns: list[np.ndarray | None] = []  # None: a column of ones, written straight into X
    names: list[str] = []
    if spec.intercept:
        columns.append(None)
        names.append("(Intercept)")
    for term, coding in zip(spec.terms, contrast_codes(spec, values), strict=True):
        block: list[np.ndarray | None] = [None]  # None: the column of ones, never formed
        block_names = [""]
        for var, code in zip(term.vars, coding, strict=True):
            col = values[var.label]
            if isinstance(col, Factor):
                if len(col.levels) < 2:
                    raise DataError(
                        f"contrasts can be applied only to factors with 2 or more levels: '{var.label}' "
                        f"has {len(col.levels)} level after removing rows with missing values"
                    )
                first = 0 if code == 2 else 1
                pieces = [(col.codes == k).astype(float) for k in range(first, len(col.levels))]
                piece_names = [var.label + lev for lev in col.levels[first:]]
            elif col.ndim == 2 and col.shape[1] > 1:  # poly(): one column per degree, "poly(x, 2)1", ...
                pieces = [col[:, j] for j in range(col.shape[1])]
                piece_names = [f"{var.label}{j + 1}" for j in range(col.shape[1])]
            else:
                pieces = [np.asarray(col, dtype=float).reshape(-1)]
                piece_names = [var.label]
            # earlier variables vary fastest, as in R
            block = [p if b is None else b * p for p in pieces for b in block]
            block_names = [f"{b}:{p}" if b else p for p in piece_names for b in block_names]
        columns.extend(block)
        names.extend(block_names)
    # X filled column by column: on millions of rows a column of ones and column_stack's copy
    # would each touch as much fresh memory as X itself
    X = np.empty((n, len(columns)))
    for j, col in enumerate(columns):
        X[:, j] = 1.0 if col is None else col
    return X, names
