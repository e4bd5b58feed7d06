"""Values made ready for JSON, shared by the reports and the renderers that write JSON."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def clean(x: Any) -> Any:
    """numpy scalars and arrays to plain Python; NaN and infinities to None (JSON null)."""
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return clean(x.tolist())
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x
