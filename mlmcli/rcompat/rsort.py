"""R's conventions for turning values into strings and ordering strings.

R (with ICU, as lme4's reference runs) sorts character vectors with the Unicode
collation algorithm and the CLDR root order, even in the C.UTF-8 locale: punctuation
before digits before letters, case and accents only breaking ties ("a" < "A" < "b",
"e" < "é" < "f"). `collation_key` approximates that order for Latin text; other
scripts sort after Latin by code point. `format_number` is R's as.character() for a
double (15 significant digits, fixed or scientific notation, whichever is narrower).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

# Primary order of whitespace, punctuation, symbols and digits in the CLDR root
# collation (read off R's sort() of every Latin-1 character).
_SYMBOLS = (
    "\t\n\x0b\x0c\r "
    "_-,;:!\u00a1?\u00bf.\u00b7'\"\u00ab\u00bb()[]{}\u00a7\u00b6@*/\\&#%`\u00b4^\u00af\u00a8\u00b8"
    "\u00b0\u00a9\u00ae+\u00b1\u00f7\u00d7<=>\u00ac|\u00a6~\u00a4\u00a2$\u00a3\u00a5"
)
# Letters with a primary weight of their own; everything else is a base letter
# plus accents (secondary), a case variant (tertiary) or an expansion.
_LETTERS = "abcdefghi\u0131jklmn\u014bopq\u0138rst\u0167uvwxyz\u00fe"
_PRIMARY: dict[str, int] = {}
for _i, _c in enumerate(_SYMBOLS):
    _PRIMARY[_c] = 1 + _i
_DIGIT_BASE = 1 + len(_SYMBOLS)
_LETTER_BASE = _DIGIT_BASE + 10
for _i, _c in enumerate(_LETTERS):
    _PRIMARY[_c] = _LETTER_BASE + _i
_OTHER_BASE = _LETTER_BASE + len(_LETTERS) + 1

# Secondary weights of combining accents, in the CLDR root order; the pseudo marks
# "stroke" (ø, đ, ł, ħ) and "eth" sit between cedilla and ogonek.
_STROKE, _ETH, _LONG_S, _LIGATURE = "stroke", "eth", "long-s", "ligature"
_ACCENTS = [
    "\u0301",
    "\u0300",
    "\u0306",
    "\u0302",
    "\u030c",
    "\u030a",
    "\u0308",
    "\u030b",
    "\u0303",
    "\u0307",
    "\u0327",
    _STROKE,
    _ETH,
    "\u0328",
    "\u0304",
    _LONG_S,
    _LIGATURE,
]
_SECONDARY = {m: 1 + i for i, m in enumerate(_ACCENTS)}

# Letters whose collation is a base letter plus a pseudo accent, or an expansion.
_SPECIAL: dict[str, tuple[str, str | None]] = {
    "\u00f8": ("o", _STROKE),
    "\u00d8": ("O", _STROKE),
    "\u0111": ("d", _STROKE),
    "\u0110": ("D", _STROKE),
    "\u0142": ("l", _STROKE),
    "\u0141": ("L", _STROKE),
    "\u0127": ("h", _STROKE),
    "\u0126": ("H", _STROKE),
    "\u00f0": ("d", _ETH),
    "\u00d0": ("D", _ETH),
    "\u017f": ("s", _LONG_S),
}
_EXPANSIONS = {
    "\u00e6": "ae",
    "\u00c6": "AE",
    "\u0153": "oe",
    "\u0152": "OE",
    "\u00df": "ss",
    "\u1e9e": "SS",
}
_UPPER_SPECIAL = {"\u0166": "\u0167", "\u014a": "\u014b", "\u00de": "\u00fe"}
_IGNORABLE_CATEGORIES = {"Cc", "Cf"}

# (primary, secondary, tertiary) collation elements
_Element = tuple[int, int, int]


def _base_elements(c: str, tertiary_bump: int = 0) -> list[_Element]:
    """Collation elements of one character that has no canonical decomposition."""
    if c in _PRIMARY:
        return [(_PRIMARY[c], 0, tertiary_bump)]
    if c in _UPPER_SPECIAL:
        return [(_PRIMARY[_UPPER_SPECIAL[c]], 0, 1 + tertiary_bump)]
    lower = c.lower()
    if lower != c and len(lower) == 1 and lower in _PRIMARY:
        return [(_PRIMARY[lower], 0, 1 + tertiary_bump)]
    if c in _SPECIAL:
        base, mark = _SPECIAL[c]
        elems = _base_elements(base, tertiary_bump)
        return elems + [(0, _SECONDARY[mark], 0)] if mark else elems
    if c in _EXPANSIONS:
        # as DUCET: first letter, a secondary-only ligature mark, second letter
        first, second = (_base_elements(ch) for ch in _EXPANSIONS[c])
        return [(p, s, t + 3) for p, s, t in first + [(0, _SECONDARY[_LIGATURE], 0)] + second]
    if unicodedata.category(c) in _IGNORABLE_CATEGORIES:
        return []
    if "0" <= c <= "9":
        return [(_DIGIT_BASE + ord(c) - 48, 0, tertiary_bump)]
    compat = unicodedata.normalize("NFKD", c)
    if compat != c:
        # superscripts, ligatures, no-break space: the plain form, tertiary variant
        return [e for ch in compat for e in _char_elements(ch, 2)]
    if c.isdigit():
        return [(_DIGIT_BASE + unicodedata.digit(c), 0, tertiary_bump)]
    case = 1 if lower != c else 0
    return [(_OTHER_BASE + ord(lower[0]), 0, case + tertiary_bump)]


def _char_elements(c: str, tertiary_bump: int = 0) -> list[_Element]:
    if unicodedata.combining(c):
        return [(0, _SECONDARY.get(c, len(_SECONDARY) + ord(c)), 0)]
    return _base_elements(c, tertiary_bump)


@lru_cache(maxsize=4096)
def collation_key(s: str) -> tuple:
    """A sort key that orders strings as R's sort() does under ICU's root collation."""
    primary: list[int] = []
    secondary: list[int] = []
    tertiary: list[int] = []
    for ch in unicodedata.normalize("NFD", s):
        for p, sec, t in _char_elements(ch):
            if p:
                primary.append(p)
            secondary.append(sec)
            tertiary.append(t)
    return (tuple(primary), tuple(secondary), tuple(tertiary), s)


def r_sort(strings: Iterable[str]) -> list[str]:
    """Sort strings as R's sort() does (ICU root collation)."""
    return sorted(strings, key=collation_key)


def format_number(x: float, digits: int = 15) -> str:
    """R's as.character() / deparse() of a double: "1", "0.5", "1e-04", "1e+05", "123456"."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Inf" if x > 0 else "-Inf"
    if x == 0:
        return "0"
    # significant digits needed to show x to `digits` precision
    mantissa, exp_text = f"{x:.{digits - 1}e}".split("e")
    kp = int(exp_text)
    sig = mantissa.replace("-", "").replace(".", "").rstrip("0")
    nsig = max(1, len(sig))
    neg = 1 if x < 0 else 0
    rgt = max(0, nsig - kp - 1)
    fixed_width = neg + (kp + 1 if kp >= 0 else 1) + (rgt + 1 if rgt > 0 else 0)
    sci_width = neg + (nsig + 1 if nsig > 1 else 1) + (4 if abs(kp) < 100 else 5)
    if fixed_width <= sci_width:
        return f"{x:.{rgt}f}"
    text = f"{x:.{nsig - 1}e}"
    mant, ex = text.split("e")
    sign = ex[0]
    return f"{mant}e{sign}{ex[1:].lstrip('0').rjust(2, '0')}"
