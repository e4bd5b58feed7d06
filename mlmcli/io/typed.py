"""Columns that arrive typed (Parquet, Feather, SPSS, Stata) as the CSV reader's columns.

R's readers (arrow, haven) give character vectors, numbers and logicals; lmer makes factors of text
with sort(unique(x)) as levels. The same happens here, so a model fits to the same numbers whichever
file the data came from.
"""

from __future__ import annotations

import numpy as np

from mlmcli.errors import DataError
from mlmcli.io.frame import INT32_MAX, Factor, make_names
from mlmcli.rcompat.rsort import collation_key


def text_factor(uniques: list[str], codes: np.ndarray) -> Factor:
    """A text column as a factor: `codes` index `uniques` (-1: missing); levels in R's sort order."""
    order = sorted(range(len(uniques)), key=lambda i: collation_key(uniques[i]))
    remap = np.empty(len(uniques) + 1, dtype=np.int64)
    remap[-1] = -1  # codes of -1 land here
    remap[np.asarray(order, dtype=np.int64)] = np.arange(len(order), dtype=np.int64)
    return Factor(remap[np.asarray(codes, dtype=np.int64)], [uniques[i] for i in order])


def fits_integer(values: np.ndarray) -> bool:
    """Whole numbers within R's integer range (R reads such integer-typed columns as integer)."""
    present = values[~np.isnan(values)]
    return present.size == 0 or float(np.max(np.abs(present))) <= INT32_MAX


def pick(names: list[str], wanted: set[str] | None) -> dict[str, int]:
    """make.names of the file's columns -> the columns' positions, for the columns to convert: those
    asked for, or all of them when one asked for is not in the file (the caller's error lists them).
    Positions, not names: a file may hold one name twice (make.names makes the second "x.1")."""
    syntactic = make_names(names)
    if wanted is not None and wanted <= set(syntactic):
        return {s: j for j, s in enumerate(syntactic) if s in wanted}
    return {s: j for j, s in enumerate(syntactic)}


def unusable(column: str, what: str) -> DataError:
    return DataError(f"column '{column}' holds {what}, which a model cannot use")
