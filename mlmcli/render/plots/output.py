"""The image file's format and bytes, and the plotted numbers as CSV (--data-out)."""

from __future__ import annotations

import io
import math
import os
from typing import Any

import numpy as np

from mlmcli.errors import MlmError

FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}

# dates and the software's version would make every run's file differ
_NO_STAMP = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}


def image_format(path: str) -> str:
    """png, svg or pdf from the file name's extension."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise MlmError(f"cannot tell the image format of '{path}': name it .png, .svg or .pdf")
    return FORMATS[ext]


def image_bytes(fig: Any, fmt: str, dpi: int) -> bytes:
    """The figure rendered as `fmt`, the same bytes from run to run."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, metadata=_NO_STAMP[fmt])
    return buf.getvalue()


def table_csv(rows: list[dict]) -> str:
    """The plotted numbers as CSV: every key of the rows, in order of first appearance; NA for missing."""
    import csv

    header: list[str] = []
    for r in rows:
        for k in r:
            if k not in header:
                header.append(k)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([_cell(r.get(k)) for k in header])
    return buf.getvalue()


def _cell(v: Any) -> str:
    if v is None:
        return "NA"
    if isinstance(v, (bool, np.bool_)):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (float, np.floating)):
        return repr(float(v)) if math.isfinite(v) else "NA"
    return str(v)
