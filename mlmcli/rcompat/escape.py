"""Strings printed as R prints them: control characters and backslashes escaped (R's encodeString).

A factor level holding a newline would otherwise break the layout of text and table output; R's
print(ranef(fit)) shows it as `a\\nb`.
"""

from __future__ import annotations

from typing import Any

_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\a": "\\a", "\b": "\\b", "\f": "\\f", "\v": "\\v", "\\": "\\\\"}


def encode_string(s: str) -> str:
    """R's encodeString(s) (no quotes): named escapes, other control characters as octal."""
    if s.isprintable() and "\\" not in s:
        return s
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return "".join(out)


# lme4's and lmerTest's own messages: printed as they are, with their line breaks ("very large
# eigenvalue\n - Rescale variables?"), not data to escape
MESSAGE_KEYS = frozenset(
    {"warnings", "conv_messages", "lmerTest_messages", "optimizer_warnings", "fit_warnings", "effects_warnings"}
)


def escape_strings(obj: Any) -> Any:
    """A copy of a report with every string (keys too) encoded for printing, lme4's messages
    (MESSAGE_KEYS) left as they are."""
    if isinstance(obj, str):
        return encode_string(obj)
    if isinstance(obj, dict):
        return {escape_strings(k): v if k in MESSAGE_KEYS else escape_strings(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [escape_strings(v) for v in obj]
    return obj
