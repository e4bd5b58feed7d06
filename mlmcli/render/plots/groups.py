"""The grouping factors of a fitted model and the random effects each one carries."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlmcli.errors import MlmError

if TYPE_CHECKING:
    from mlmcli.model import FittedModel


def factors(model: FittedModel) -> list[str]:
    return list(model.groups())


def pick_group(model: FittedModel, group: str | None) -> str:
    """--group, checked; the first grouping factor without it."""
    names = factors(model)
    if group is None:
        return names[0]
    if group not in names:
        raise MlmError(
            f"--group '{group}' is not a grouping factor of the model (grouping factors: {', '.join(names)})"
        )
    return group


def factor_columns(model: FittedModel, group: str) -> list[tuple[int, int, str]]:
    """(term index, column, name) of every random effect of one grouping factor, in lme4's order."""
    return [
        (i, j, name) for i, t in enumerate(model.design.terms) if t.group == group for j, name in enumerate(t.cnames)
    ]


def factor_codes(model: FittedModel, group: str) -> tuple[np.ndarray, list[str]]:
    """Each observation's level of `group`, and the level names."""
    term = next(t for t in model.design.terms if t.group == group)
    return term.codes, [str(v) for v in term.levels]


def shown_levels(codes: np.ndarray, n_levels: int, keep: np.ndarray) -> np.ndarray:
    """Indices of the levels with at least one kept observation."""
    return np.flatnonzero(np.bincount(codes[keep], minlength=n_levels) > 0)
