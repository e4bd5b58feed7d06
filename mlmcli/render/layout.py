"""Rich tables laid out as R prints a matrix: the console they draw on, their columns, and the split
of a matrix too wide for the terminal into chunks of columns."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

_BOX = box.SIMPLE_HEAD


# -------------------------------------------------------------------------------------------- console
class FittingConsole(Console):
    """A Console that notes whether a table or panel printed on it needed more than its width (rich then
    wraps or squeezes it)."""

    too_narrow = False

    def print(self, *objects: Any, **kwargs: Any) -> None:
        from rich.measure import Measurement

        unbounded = self.options.update_width(10**6)  # the width it would take, not what it is given
        for obj in objects:
            if isinstance(obj, Table | Panel) and Measurement.get(self, unbounded, obj).maximum > self.width:
                self.too_narrow = True
        super().print(*objects, **kwargs)


def make_console(
    no_color: bool = False, width: int | None = None, file=None, force_terminal: bool | None = None
) -> FittingConsole:
    """A Console that uses colour only on a terminal and not at all under NO_COLOR or no_color=True."""
    plain = no_color or bool(os.environ.get("NO_COLOR"))
    kwargs: dict[str, Any] = {"file": file, "width": width, "highlight": False, "emoji": False}
    if force_terminal is not None:
        kwargs["force_terminal"] = force_terminal
    if plain:
        # no colour system at all: rich then writes no escape sequences, not even bold
        kwargs.update(color_system=None, no_color=True)
    return FittingConsole(**kwargs)


# ------------------------------------------------------------------------------------------- layout
def cell(s: Any, style: str = "") -> Text:
    """One table cell; None is empty."""
    # cells are Text, never markup strings: factor levels like "[a]" must print verbatim
    return Text("" if s is None else str(s), style=style)


@dataclass
class Col:
    """One table column: header and cells; label columns (left-aligned) repeat in every chunk."""

    header: str
    cells: list[Text]
    label: bool = False
    justify: str = "right"

    @property
    def width(self) -> int:
        return max([len(self.header)] + [c.cell_len for c in self.cells])


_GAP = 2  # one space of padding plus the box's blank column rule: as compact as R's print-out


def _chunks(cols: list[Col], width: int) -> list[list[Col]]:
    """Split the value columns over several tables when they do not fit, as R splits a wide matrix."""
    labels = [c for c in cols if c.label]
    values = [c for c in cols if not c.label]
    room = width - sum(c.width + _GAP for c in labels)
    out: list[list[Col]] = []
    current: list[Col] = []
    used = 0
    for c in values:
        if current and used + c.width + _GAP > room:
            out.append(current)
            current, used = [], 0
        current.append(c)
        used += c.width + _GAP
    out.append(current)
    return [labels + chunk for chunk in out]


def print_columns(
    console: Console, title: str, cols: list[Col], notes: Sequence[str] = (), row_styles: Sequence[str] | None = None
) -> None:
    """Print a titled table (in column chunks if too wide), then its notes and a blank line.

    Title and notes are plain lines: as a rich title or caption they would wrap at the table's own width.
    """
    console.print(Text(title, style="bold"))
    n_rows = len(cols[0].cells) if cols else 0
    chunks = _chunks(cols, console.width)
    for i, chunk in enumerate(chunks):
        if i:
            console.print()
        values = [c for c in chunk if not c.label]
        # in a split matrix, rows with nothing in this chunk (upper triangle) are left out
        rows = [r for r in range(n_rows) if len(chunks) == 1 or any(c.cells[r].plain.strip() for c in values)]
        table = Table(box=_BOX, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), expand=False)
        for c in chunk:
            if c.label:
                table.add_column(c.header, overflow="fold")
            else:
                table.add_column(c.header, justify=c.justify, no_wrap=True)
        for r in rows:
            table.add_row(*(c.cells[r] for c in chunk), style=row_styles[r] if row_styles else None)
        console.print(table)
    for note in notes:
        console.print(Text(note, style="dim"))
    console.print()


def column(header: str, values: Iterable[Any], style: str = "", label: bool = False) -> Col:
    """A column of `values` as plain cells, all in one style."""
    return Col(header, [cell(v, style) for v in values], label)
