"""--format json: a report as the JSON its schema describes (mlmcli/schemas/)."""

from __future__ import annotations

import json


def json_text(report: dict) -> str:
    """The report indented by one space, one value a line; R's NA is null, never NaN (not JSON)."""
    return json.dumps(report, indent=1, allow_nan=False) + "\n"
