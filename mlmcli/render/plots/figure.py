"""draw(): one picture from a fitted model, written to its file, its numbers handed back.

matplotlib is imported here only, inside build(), with the Agg canvas, and figures are built
without pyplot's global state.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mlmcli.errors import MlmError
from mlmcli.render.plots.caterpillar import caterpillar
from mlmcli.render.plots.check import check
from mlmcli.render.plots.estimates import coef, effects
from mlmcli.render.plots.fitted import fitted
from mlmcli.render.plots.options import Drawn, PlotOptions, check_family_kind, check_kind, check_options, kept_rows
from mlmcli.render.plots.output import image_bytes, image_format, table_csv
from mlmcli.render.plots.profile import profile
from mlmcli.render.plots.ranef import ranef
from mlmcli.render.plots.residuals import residuals
from mlmcli.render.plots.shrinkage import shrinkage
from mlmcli.render.plots.spaghetti import spaghetti
from mlmcli.render.plots.style import (
    DEFAULT_DPI,
    Theme,
    caption_style,
    fit_text,
    make_theme,
    rc,
    title_pt,
    title_style,
    wrap,
)
from mlmcli.render.plots.textfit import keep_inside

if TYPE_CHECKING:
    import numpy as np

    from mlmcli.io.frame import Frame
    from mlmcli.model import FittedModel

_KIND_FUNCS = {
    "ranef": ranef,
    "caterpillar": caterpillar,
    "spaghetti": spaghetti,
    "fitted": fitted,
    "residuals": residuals,
    "profile": profile,
    "coef": coef,
    "effects": effects,
    "check": check,
    "shrinkage": shrinkage,
}


def dpi_of(opts: PlotOptions) -> int:
    """--dpi, or the theme's: 300 on paper, 100 on screen."""
    return opts.dpi if opts.dpi is not None else DEFAULT_DPI[opts.theme]


@contextmanager
def build(model: FittedModel, frame: Frame, opts: PlotOptions) -> Iterator[tuple[Any, Drawn, np.ndarray]]:
    """The laid-out figure of `opts.kind`, what it drew, and the observations kept (nothing written).

    A context: the figure must be drawn (saved, measured) inside it, under its theme's settings,
    because matplotlib reads some of them (fonts, new ticks) at each draw.
    """
    check_kind(opts)
    if getattr(model, "family", None) is not None:
        check_family_kind(opts.kind)
    check_options(opts)
    keep = kept_rows(model, frame, opts.where)

    import warnings

    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    theme = make_theme(opts.theme, opts.width, opts.height, opts.font_size)
    with warnings.catch_warnings(), matplotlib.rc_context(rc(theme)):
        # a tiny --width/--height makes constrained layout give up with a warning; keep_inside copes
        warnings.simplefilter("ignore")
        fig = Figure(figsize=(opts.width, opts.height), dpi=dpi_of(opts), layout="constrained")
        FigureCanvasAgg(fig)
        main, grid = _with_caption(fig, opts)
        drawn = _KIND_FUNCS[opts.kind](main, model, frame, keep, opts, theme)
        _axis_labels(main, opts, theme)
        room = theme.chars(opts.width * 0.95, title_pt(theme))
        if opts.title is not None:
            title = wrap(opts.title, room)
        else:  # the short form where the long one would take a second line
            title = fit_text([t for t in (drawn.title, drawn.short_title) if t], room)
        if title:
            main.suptitle(title, gid="title", **title_style(theme))
        if grid is not None:
            _caption_text(fig, grid, model, opts, theme, int(keep.sum()), drawn)
        if drawn.finish is not None:
            drawn.finish()
        left_out = keep_inside(fig)
        if left_out:
            drawn.notes.append(
                f"note: at {opts.width:g} x {opts.height:g} in, {' and '.join(left_out)} did not fit and were left out"
            )
        yield fig, drawn, keep


def draw(model: FittedModel, frame: Frame, opts: PlotOptions) -> dict:
    """Draw `opts.kind` to `opts.output`; return the plotted numbers (and write them to --data-out)."""
    fmt = image_format(opts.output)
    check_kind(opts)
    if opts.data_out is not None and os.path.abspath(opts.data_out) == os.path.abspath(opts.output):
        raise MlmError("--data-out must be a different file from --output")
    dpi = dpi_of(opts)
    with build(model, frame, opts) as (fig, drawn, keep):
        image = image_bytes(fig, fmt, dpi)

    for note in drawn.notes:
        sys.stderr.write(note + "\n")
    from mlmcli.outfile import write_outputs

    files = [(opts.output, image)]
    if opts.data_out is not None:
        files.append((opts.data_out, table_csv(drawn.table).encode()))
    write_outputs(files, opts.inputs)  # the picture and its numbers, all or none
    from mlmcli.render.jsonvalues import clean

    head = {
        "kind": opts.kind,
        "output": opts.output,
        "format": fmt,
        "theme": opts.theme,
        "width_px": int(round(opts.width * dpi)),
        "height_px": int(round(opts.height * dpi)),
        "formula": model.formula.text,
        "where": opts.where,
        "n_obs": int(keep.sum()),
    }
    if drawn.notes:
        head["notes"] = drawn.notes
    return clean({**head, **drawn.data})


def _axis_labels(fig: Any, opts: PlotOptions, theme: Theme) -> None:
    """--xlabel and --ylabel in place of the kind's own, on every panel that labels that axis."""
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        ncols = ax.get_subplotspec().get_gridspec().ncols
        nrows = ax.get_subplotspec().get_gridspec().nrows
        if opts.xlabel is not None and ax.get_xlabel():
            ax.set_xlabel(wrap(opts.xlabel, theme.chars(opts.width * 0.85 / ncols, 10)) if opts.xlabel else "")
        if opts.ylabel is not None and ax.get_ylabel():
            ax.set_ylabel(wrap(opts.ylabel, theme.chars(opts.height * 0.7 / nrows, 10)) if opts.ylabel else "")


def _with_caption(fig: Any, opts: PlotOptions) -> tuple[Any, Any]:
    """The (sub)figure the picture goes in, above a strip for the caption unless --caption "", and their grid.

    The caption gets its own strip because constrained layout gives a figure legend below the
    axes and a supxlabel the same bottom margin, one on top of the other.
    """
    if opts.caption == "":
        return fig, None
    grid = fig.add_gridspec(2, 1, height_ratios=[9, 1], hspace=0.0)
    return fig.add_subfigure(grid[0]), grid


def _caption_text(
    fig: Any, grid: Any, model: FittedModel, opts: PlotOptions, theme: Theme, n_kept: int, drawn: Drawn
) -> None:
    """The caption in its strip, the strip as tall as its lines."""
    width = theme.chars(opts.width * 0.95, 8)
    if opts.caption is not None:
        text = wrap(opts.caption, width)
    else:
        parts = _caption_parts(model, opts, n_kept, drawn.method)
        text = "\n".join([_pack(parts, width)] + [wrap(x, width) for x in drawn.caption])
    style = caption_style(theme)
    height = min(0.4 * opts.height, ((text.count("\n") + 1) * 1.25 * style["fontsize"] + 6 * theme.scale) / 72.0)
    grid.set_height_ratios([opts.height - height, height])
    fig.add_subfigure(grid[1]).text(
        0.5, 0.5, text, ha="center", va="center", multialignment="center", gid="caption", **style
    )


_SEP = "   ·   "
_NARROW_SEP = " · "


def _caption_parts(model: FittedModel, opts: PlotOptions, n_kept: int, method: str | None = None) -> list[str]:
    """The formula, the method (the kind's where it drew another fit's numbers) and the observations
    drawn; the --where that chose them."""
    family = getattr(model, "family", None)
    if method is None:
        method = model.method if family is None else f"{family.name} ({family.link}), {_glmm_method(model.nagq)}"
    parts = [
        model.formula.text,
        method,
        f"{n_kept} of {model.n} observations" if n_kept < model.n else f"{model.n} observations",
    ]
    if opts.where:
        parts.append(f"where {opts.where}")
    return parts


def _glmm_method(nagq: int) -> str:
    return "Laplace" if nagq == 1 else f"adaptive quadrature, nAGQ = {nagq}"


def _pack(parts: list[str], width: int) -> str:
    """`parts` joined by a separator, lines broken between parts (never before a separator) where they
    can be; a narrower separator where it saves a line."""
    wide, narrow = (_joined(parts, width, sep) for sep in (_SEP, _NARROW_SEP))
    return wide if wide.count("\n") <= narrow.count("\n") else narrow


def _joined(parts: list[str], width: int, sep: str) -> str:
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + len(sep) + len(part) <= width:
            lines[-1] += sep + part
        else:
            lines.extend(wrap(part, width).split("\n"))
    return "\n".join(lines)
