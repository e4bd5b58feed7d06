"""Numbers in table cells as R's format(), format.pval() and printCoefmat() write them.

The terminal tables (table.py, inference.py) format every number here, so that they read like lme4's
and lmerTest's printed summaries; nothing here draws, so nothing here imports rich.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

# R's .Machine$double.eps: format.pval prints anything below it as "<2e-16".
DOUBLE_EPS = 2.220446049250313e-16
SIGNIF_LEGEND = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"


def is_num(x: Any) -> bool:
    """A finite number (not a bool, not None): what the tables print as a number."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _sig_parts(x: float, digits: int) -> tuple[int, int]:
    """Decimal exponent of |x| rounded to `digits` significant digits, and how many of them are needed."""
    if x == 0:
        return 0, 1
    mantissa, exponent = f"{abs(x):.{digits - 1}e}".split("e")
    needed = mantissa.replace(".", "").rstrip("0")
    return int(exponent), max(1, len(needed))


def format_column(values: Sequence[float | None], digits: int = 4) -> list[str]:
    """Format numbers with a common layout as R's format(x, digits=) does.

    Each value gets at most `digits` significant digits, all share one number of decimals (enough for the
    value that needs most), and the column switches to scientific notation only when that is narrower.
    None and non-finite values become "".
    """
    finite = [float(v) for v in values if is_num(v)]
    if not finite:
        return ["" for _ in values]
    max_left, max_right, max_sig, wide_exp = 1, 0, 1, False
    any_neg = any(v < 0 for v in finite)
    for v in finite:
        kp, nsig = _sig_parts(v, digits)
        left = (v < 0) + (kp + 1 if kp >= 0 else 1)
        max_left = max(max_left, left)
        max_right = max(max_right, nsig - kp - 1)
        max_sig = max(max_sig, nsig)
        wide_exp = wide_exp or abs(kp) >= 100
    max_right = min(max_right, 15)
    width_fixed = max_left + max_right + (max_right > 0)
    mant = max_sig - 1
    width_sci = any_neg + 1 + (mant > 0) + mant + 4 + wide_exp
    out = []
    for v in values:
        if not is_num(v):
            out.append("")
        elif width_fixed <= width_sci:
            out.append(no_neg_zero(f"{float(v):.{max_right}f}"))
        else:
            out.append(f"{float(v):.{mant}e}")
    return out


def format_fixed(values: Sequence[float | None], digits: int = 4) -> list[str]:
    """Fixed decimals giving the largest |value| `digits` significant digits (long columns of estimates).

    Columns of tiny or huge numbers (a variance component at zero, badly scaled data) fall back to R's
    format(), which switches to scientific notation.
    """
    finite = [abs(float(v)) for v in values if is_num(v)]
    top = max(finite, default=0.0)
    if top and not 1e-3 <= top < 1e7:
        return format_column(values, digits)
    decimals = 0 if top == 0 else max(0, digits - 1 - math.floor(math.log10(top)))
    return [no_neg_zero(f"{float(v):.{decimals}f}") if is_num(v) else "" for v in values]


def zapsmall(values: Sequence[float | None], digits: int) -> list[float | None]:
    """R's zapsmall(): round to `digits` significant digits of the largest abs value, as summary.merMod."""
    top = max((abs(v) for v in values if is_num(v)), default=0.0)
    # R 4.2 rounds to digits - log10(max) places, that count itself rounded to a whole number
    decimals = max(0, math.floor(digits - math.log10(top) + 0.5)) if top > 0 else digits
    return [round(v, decimals) if is_num(v) else None for v in values]


def no_neg_zero(s: str) -> str:
    """A formatted number without the sign of a negative zero."""
    # "-0.000" says nothing more than "0.000" and misaligns the eye
    return s[1:] if s.startswith("-") and not s.strip("-0.") else s


def format_pvalues(pvalues: Sequence[float | None], digits: int = 3) -> list[str]:
    """p-values as R's format.pval(pv, digits) writes them, e.g. "0.0506", "2.59e-06", "<2e-16"."""
    out = ["" for _ in pvalues]
    tiny = [i for i, p in enumerate(pvalues) if is_num(p) and p < DOUBLE_EPS]
    rest = [i for i, p in enumerate(pvalues) if is_num(p) and p >= DOUBLE_EPS]
    # as format.pval: values from 1e-3 up (1e-4 up when digits > 1) are formatted together, the rest apart
    lowest = -4 if digits > 1 else -3
    fixp = [i for i in rest if math.floor(math.log10(pvalues[i])) >= lowest]
    small = [i for i in rest if i not in fixp]
    for idx in (fixp, small):
        for i, s in zip(idx, format_column([pvalues[i] for i in idx], digits), strict=True):
            out[i] = s
    if tiny:
        eps_digits = max(1, digits - 2)
        if rest:
            nc = max(len(out[i]) for i in rest)
            if eps_digits > 1 and eps_digits + 6 > nc:
                eps_digits = max(1, nc - 7)
            sep = "" if eps_digits == 1 and nc <= 6 else " "
        else:
            sep = "" if eps_digits == 1 else " "
        label = "<" + sep + format_column([DOUBLE_EPS], eps_digits)[0]
        for i in tiny:
            out[i] = label
    return out


def signif_stars(p: float | None) -> str:
    """R's significance codes: *** < 0.001 < ** < 0.01 < * < 0.05 < . < 0.1."""
    if not is_num(p):
        return ""
    for cut, star in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return star
    return ""


def format_corr(r: float | None, decimals: int) -> str:
    """A correlation with fixed decimals, "" where there is none."""
    return no_neg_zero(f"{r:.{decimals}f}") if is_num(r) else ""


def abbreviate(names: Sequence[str], minlength: int = 6) -> list[str]:
    """Short column labels in the spirit of R's abbreviate(): drop lower-case vowels, then truncate.

    Falls back to the full names when two abbreviations would collide.
    """
    short = []
    for name in names:
        core = name[1:-1] if name.startswith("(") and name.endswith(")") else name
        chars = list(core)
        i = len(chars) - 1
        while len(chars) > minlength and i > 0:
            if chars[i] in "aeiou":
                del chars[i]
            i -= 1
        s = "".join(chars)[:minlength]
        short.append(f"({s[:4]})" if core != name else s)
    return short if len(set(short)) == len(short) else list(names)
