"""draw(): one picture from a fitted model, written to its file, its numbers handed back.

matplotlib is imported here only, inside draw(), with the Agg backend, and figures are built
without pyplot's global state.
"""

from __future__ import annotations

import os
import sys
import textwrap
from typing import TYPE_CHECKING

from mlmcli.errors import MlmError
from mlmcli.render.plots.caterpillar import caterpillar
from mlmcli.render.plots.fitted import fitted
from mlmcli.render.plots.options import PlotOptions, check_kind, check_options, kept_rows
from mlmcli.render.plots.output import image_bytes, image_format, table_csv
from mlmcli.render.plots.ranef import ranef
from mlmcli.render.plots.residuals import residuals
from mlmcli.render.plots.spaghetti import spaghetti
from mlmcli.render.plots.style import STYLE

if TYPE_CHECKING:
    from mlmcli.frame import Frame
    from mlmcli.model import FittedModel

_KIND_FUNCS = {"ranef": ranef, "caterpillar": caterpillar, "spaghetti": spaghetti, "fitted": fitted,
               "residuals": residuals}


def draw(model: FittedModel, frame: Frame, opts: PlotOptions) -> dict:
    """Draw `opts.kind` to `opts.output`; return the plotted numbers (and write them to --data-out)."""
    fmt = image_format(opts.output)
    check_kind(opts)
    if opts.data_out is not None and os.path.abspath(opts.data_out) == os.path.abspath(opts.output):
        raise MlmError("--data-out must be a different file from --output")
    check_options(opts)
    keep = kept_rows(model, frame, opts.where)

    import warnings

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    with warnings.catch_warnings(), matplotlib.rc_context(STYLE):
        # a tiny --width/--height makes constrained layout give up with a warning: the image is still drawn
        warnings.simplefilter("ignore")
        fig = Figure(figsize=(opts.width, opts.height), dpi=opts.dpi, layout="constrained")
        drawn = _KIND_FUNCS[opts.kind](fig, model, frame, keep, opts)
        title = opts.title if opts.title is not None else drawn.title
        # about ten bold 13-point characters to the inch
        fig.suptitle("\n".join(textwrap.wrap(title, max(20, int(opts.width * 10)))) or title, fontsize=13,
                     fontweight="bold")
        fig.supxlabel(_caption(model, opts, int(keep.sum())), fontsize=8, color="#555555")
        image = image_bytes(fig, fmt, opts.dpi)

    for note in drawn.notes:
        sys.stderr.write(note + "\n")
    from mlmcli.outfile import write_atomic

    write_atomic(opts.output, image)
    if opts.data_out is not None:
        write_atomic(opts.data_out, table_csv(drawn.table).encode())
    from mlmcli.report import clean

    head = {"kind": opts.kind, "output": opts.output, "format": fmt,
            "width_px": int(round(opts.width * opts.dpi)), "height_px": int(round(opts.height * opts.dpi)),
            "formula": model.formula.text, "where": opts.where, "n_obs": int(keep.sum())}
    if drawn.notes:
        head["notes"] = drawn.notes
    return clean({**head, **drawn.data})


def _caption(model: FittedModel, opts: PlotOptions, n_kept: int) -> str:
    """The formula, the method and the observations drawn, under the picture."""
    parts = [model.formula.text, model.method,
             f"{n_kept} of {model.n} observations" if n_kept < model.n else f"{model.n} observations"]
    if opts.where:
        parts.append(f"where {opts.where}")
    width = max(40, int(opts.width * 14))
    return "\n".join(textwrap.wrap("   ·   ".join(parts), width))
