"""--by: panels of a level-2 variable, each group drawn whole in the panel of its value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mlmcli.errors import MlmError
from mlmcli.render.plots.columns import data_column
from mlmcli.render.plots.groups import factor_codes

if TYPE_CHECKING:
    from mlmcli.io.frame import Frame
    from mlmcli.model import FittedModel

MAX_BY = 8  # panels of a --by split


@dataclass
class BySplit:
    by: str | None  # None: no --by, one panel of everything
    panel: np.ndarray  # each observation's panel, -1 when its group has no --by value
    labels: list[str]  # "public = 0", ...
    mixed: list[str]  # groups whose --by value is not constant (drawn by their most common value)
    own: np.ndarray  # each observation's own --by value (index into labels), -1 when missing

    def notes(self, group: str) -> list[str]:
        if not self.mixed:
            return []
        return [
            f"note: --by '{self.by}' varies within {group} {', '.join(self.mixed)}; each is drawn with "
            "its most common value"
        ]


def by_split(model: FittedModel, frame: Frame, by: str | None, group: str, keep: np.ndarray) -> BySplit:
    """Panels of a level-2 variable: each group goes, whole, to the panel of its value.

    A few groups with more than one value (data-entry slips happen) go to their most common
    value, with a note; a variable that varies within many groups is not level-2: an error.
    """
    if by is None:
        one = np.zeros(len(keep), dtype=np.int64)
        return BySplit(None, one, [""], [], one)
    from mlmcli.io.frame import Factor

    codes, levels = factor_codes(model, group)
    col = data_column(frame, by, "--by")
    rows = model.design.rows
    if isinstance(col, Factor):
        raw = col.codes[rows].astype(float)
        raw[raw < 0] = np.nan
        label_of = {float(i): lev for i, lev in enumerate(col.levels)}
    else:
        raw = np.asarray(col, dtype=float)[rows]
        label_of = {}
    ok = keep & ~np.isnan(raw)
    values = np.unique(raw[ok])
    if len(values) > MAX_BY:
        raise MlmError(
            f"--by '{by}' has {len(values)} distinct values; use a variable with at most {MAX_BY} "
            "(a level-2 indicator such as public)"
        )
    value_of = np.searchsorted(values, raw[ok])
    counts = np.zeros((len(levels), len(values)), dtype=np.int64)
    np.add.at(counts, (codes[ok], value_of), 1)
    present = counts.sum(axis=1) > 0
    mixed = np.flatnonzero((counts > 0).sum(axis=1) > 1)
    if len(mixed) > max(2, 0.05 * present.sum()):
        raise MlmError(
            f"--by '{by}' is not constant within {group} ({len(mixed)} of {present.sum()} groups "
            f"have more than one value, e.g. {levels[mixed[0]]}): --by needs a variable of the "
            "groups, such as public"
        )
    group_panel = np.where(present, counts.argmax(axis=1), -1)  # the most common value; ties: the first
    panel = np.where(keep, group_panel[codes], -1)
    own = np.full(len(raw), -1, dtype=np.int64)
    own[ok] = value_of
    labels = [f"{by} = {label_of.get(v, _format_value(v))}" for v in values]
    return BySplit(by, panel, labels, [levels[i] for i in mixed], own)


def _format_value(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"
