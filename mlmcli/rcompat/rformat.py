"""R's number and text formatting, ported from R 4.2.2 so printed output matches R byte for byte.

Covered: ``formatReal`` (format.c, including its long-double digit counting), ``format()`` of
numeric and character vectors, ``round``/``signif`` (fround.c, fprec.c), ``zapsmall``,
``format.pval``, ``formatC``, ``abbreviate``, ``strwrap``, ``cat`` (with ``fill``), ``print`` of
named vectors and of character matrices (printvector.c, printarray.c), ``symnum`` significance
stars and ``printCoefmat``.

R's ``NA`` is ``None`` here; ``NaN`` and infinities are ordinary floats.  Widths count characters,
which equals R's display width for the ASCII text lme4 prints.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from fractions import Fraction
from functools import cache
from itertools import accumulate
from typing import NamedTuple

Num = float | None

PRINT_WIDTH = 80  # options(width)
PRINT_DIGITS = 7  # options(digits)
PRINT_GAP = 1
NA_WIDTH = 2
DBL_EPS = 2.220446049250313e-16  # .Machine$double.eps
_INT_MIN = -(2**31)
_INT_MAX = 2**31 - 1
_M_LOG10_2 = 0.301029995663981195
_KP_MAX = 27  # powers of ten exact in an 80-bit long double
_HALF = Fraction(1, 2)


# ---------------------------------------------------------------- long double emulation
# R's scientific() scales |x| in 80-bit long double (64-bit significand), and that rounding decides
# some digit counts.  Fractions give the exact result of each operation, rounded as the x87 unit
# rounds it, so the counts agree with R whatever the platform's own long double is; only powl()
# for exponents beyond 1e27 is taken from the platform when it has the x87 format.


def _round_ld(q: Fraction) -> Fraction:
    """Round a positive rational to the nearest long double (64 significant bits, ties to even)."""
    n, d = q.numerator, q.denominator
    e = n.bit_length() - d.bit_length() - 64
    while True:
        num, den = (n, d << e) if e >= 0 else (n << -e, d)
        if num >= den << 64:
            e += 1
        elif num < den << 63:
            e -= 1
        else:
            break
    m, rem = divmod(num, den)
    if 2 * rem > den or (2 * rem == den and m & 1):
        m += 1
    return Fraction(m << e) if e >= 0 else Fraction(m, 1 << -e)


@cache
def _powl10(k: int) -> Fraction:
    """powl(10, k) as glibc computes it (correctly rounded where no x87 long double is at hand)."""
    import numpy as np  # only for |k| > 27, rare: keep it off the start-up path

    if np.finfo(np.longdouble).nmant == 63:
        num, den = np.power(np.longdouble(10), np.longdouble(k)).as_integer_ratio()
        return Fraction(num, den)
    return _round_ld(Fraction(10) ** k)


def _rint(q: Fraction) -> int:
    """nearbyint: round to the nearest integer, ties to even."""
    fl = math.floor(q)
    diff = q - fl
    if diff > _HALF or (diff == _HALF and fl % 2 == 1):
        return fl + 1
    return fl


class _Sci(NamedTuple):
    neg: int
    kpower: int
    nsig: int
    roundingwidens: bool


def _scientific(x: float, digits: int) -> _Sci:
    """R's scientific(): sign, decimal exponent and significant digits of x at `digits` digits."""
    if x == 0.0:
        return _Sci(0, 0, 1, False)
    neg = 1 if x < 0 else 0
    r = -x if neg else x
    if digits >= 16:  # DBL_DIG + 1: R reads the digits off sprintf("%#.*e")
        buff = f"{r:.{digits - 1}e}"
        kpower = int(buff[digits + 2 :])
        i = digits
        while i >= 2 and buff[i] == "0":
            i -= 1
        return _Sci(neg, kpower, i, False)
    kp = math.floor(math.log10(r)) - digits + 1
    r_prec = Fraction(r)
    if abs(kp) <= _KP_MAX:
        if kp > 0:
            r_prec = _round_ld(r_prec / 10**kp)
        elif kp < 0:
            r_prec = _round_ld(r_prec * 10**-kp)
    else:
        r_prec = _round_ld(r_prec / _powl10(kp))
    if r_prec < 10 ** (digits - 1):
        r_prec = _round_ld(r_prec * 10)
        kp -= 1
    alpha = float(_rint(r_prec))
    nsig = digits
    for _ in range(digits):
        alpha /= 10.0
        if alpha == math.floor(alpha):
            nsig -= 1
        else:
            break
    if nsig == 0 and digits > 0:
        nsig = 1
        kp += 1
    kpower = kp + digits - 1
    # fixed notation may round less than scientific (9996 at 3 digits): R then needs one digit less
    rgt = min(max(digits - kpower, 0), _KP_MAX)
    fuzz = 0.5 / float(10**rgt)
    widens = 0 < kpower <= _KP_MAX and Fraction(r) < _round_ld(Fraction(10**kpower) - Fraction(fuzz))
    return _Sci(neg, kpower, nsig, widens)


# ---------------------------------------------------------------- formatReal and encoding


class RealFormat(NamedTuple):
    """formatReal's result: field width w, digits d after the point (or in the mantissa), e != 0 for
    scientific notation (e = number of exponent digits - 1)."""

    w: int
    d: int
    e: int


def format_real(x: Sequence[Num], digits: int = PRINT_DIGITS, nsmall: int = 0, scipen: int = 0) -> RealFormat:
    """R's formatReal(): the common format of a numeric vector (what format.info() reports)."""
    if not 1 <= digits <= 22:
        raise ValueError("digits must be in 1..22")
    naflag = nanflag = posinf = neginf = False
    neg = 0
    mnl = _INT_MAX
    mxl = rgt = mxsl = mxns = _INT_MIN
    for v in x:
        if v is None:
            naflag = True
        elif math.isnan(v):
            nanflag = True
        elif math.isinf(v):
            posinf, neginf = (True, neginf) if v > 0 else (posinf, True)
        else:
            s = _scientific(v, digits)
            left = s.kpower + 1
            if s.roundingwidens:
                left -= 1
            sleft = s.neg + (1 if left <= 0 else left)
            right = s.nsig - left
            if s.neg:
                neg = 1
            rgt = max(rgt, right)
            mxl = max(mxl, left)
            mnl = min(mnl, left)
            mxsl = max(mxsl, sleft)
            mxns = max(mxns, s.nsig)
    if mxl < 0:
        mxsl = 1 + neg
    if rgt < 0:
        rgt = 0
    wF = mxsl + rgt + (rgt != 0)
    e = 2 if (mxl > 100 or mnl <= -99) else 1
    if mxns != _INT_MIN:
        d = mxns - 1
        w = neg + (d > 0) + d + 4 + e
        if wF <= w + scipen:  # fixed notation whenever it is not wider
            e = 0
            if nsmall > rgt:
                rgt = nsmall
                wF = mxsl + rgt + (rgt != 0)
            d = rgt
            w = wF
    else:
        w = d = e = 0
    if naflag:
        w = max(w, NA_WIDTH)
    if nanflag or posinf:
        w = max(w, 3)
    if neginf:
        w = max(w, 4)
    return RealFormat(w, d, e)


def encode_real(x: Num, w: int, d: int, e: int, na: str = "NA") -> str:
    """R's EncodeReal0(): one number in the given format, right-justified in width w."""
    if x is None:
        return na.rjust(w)
    if math.isnan(x):
        return "NaN".rjust(w)
    if math.isinf(x):
        return ("Inf" if x > 0 else "-Inf").rjust(w)
    if x == 0.0:
        x = 0.0  # no negative zero
    return f"{x:{w}.{d}{'e' if e else 'f'}}"


def format_num(
    x: Sequence[Num], digits: int = PRINT_DIGITS, nsmall: int = 0, width: int = 0, trim: bool = False
) -> list[str]:
    """format(x, digits=, nsmall=, width=, trim=) for a numeric vector: one common format."""
    f = format_real(x, digits, nsmall)
    w = 0 if trim else f.w
    w = max(w, width)
    return [encode_real(v, w, f.d, f.e) for v in x]


def format_str(x: Sequence[str | None], justify: str = "left", width: int = 0) -> list[str]:
    """format() of a character vector: pad to a common width (NA prints as "NA")."""
    vals = ["NA" if v is None else v for v in x]
    if justify == "none":
        return vals
    w = max([width] + [len(v) for v in vals])
    if justify == "right":
        return [v.rjust(w) for v in vals]
    if justify == "centre":
        return [" " * ((w - len(v)) // 2) + v + " " * (w - len(v) - (w - len(v)) // 2) for v in vals]
    return [v.ljust(w) for v in vals]


def cat_num(x: Num) -> str:
    """A number as cat() writes it: 7 significant digits, no padding."""
    return format_num([x], PRINT_DIGITS)[0]


# ---------------------------------------------------------------- round, signif, zapsmall


def _pow_di(x: float, n: int) -> float:
    """R_pow_di(): x^n by repeated squaring, in doubles."""
    xn = 1.0
    if n != 0:
        is_neg = n < 0
        if is_neg:
            n = -n
        while True:
            if n & 1:
                xn *= x
            n >>= 1
            if n:
                x *= x
            else:
                break
        if is_neg:
            xn = 1.0 / xn
    return xn


def _nearbyint(x: float) -> float:
    return math.copysign(float(round(x)), x)  # half to even, keeping the sign of zero, as nearbyint


def _logb(x: float) -> int:
    return math.frexp(x)[1] - 1


def r_round(x: Num, digits: float = 0) -> Num:
    """round(x, digits) of R >= 4.0.0 (fround.c): the closer of the two candidates, ties to even."""
    if x is None:
        return None
    if math.isnan(x) or math.isnan(digits):
        return x + digits
    if math.isinf(x):
        return x
    if digits > 323 or x == 0.0:
        return x
    if digits < -308:
        return 0.0
    if digits == 0:
        return _nearbyint(x)
    dig = math.floor(digits + 0.5)
    sgn = 1.0
    if x < 0:
        sgn, x = -1.0, -x
    if _M_LOG10_2 * (0.5 + _logb(x)) + dig > 15:
        return sgn * x
    if dig <= 308:
        pow10 = _pow_di(10.0, dig)
        x10 = x * pow10
        i10 = math.floor(x10)
        xd = i10 / pow10
        xu = math.ceil(x10) / pow10
    else:
        p10 = _pow_di(10.0, dig - 308)
        pow10 = _pow_di(10.0, 308)
        x10 = (x * pow10) * p10
        i10 = math.floor(x10)
        xd = i10 / pow10 / p10
        xu = math.ceil(x10) / pow10 / p10
    du = xu - x
    dd = x - xd
    return sgn * (xu if (du < dd or (math.fmod(i10, 2.0) == 1 and du == dd)) else xd)


def r_signif(x: Num, digits: float = 6) -> Num:
    """signif(x, digits) (fprec.c)."""
    if x is None:
        return None
    if math.isnan(x) or math.isnan(digits):
        return x + digits
    if math.isinf(x):
        return x
    if math.isinf(digits):
        if digits > 0:
            return x
        digits = 1.0
    if x == 0:
        return x
    dig = int(math.copysign(math.floor(abs(digits) + 0.5), digits))
    if dig > 22:
        return x
    dig = max(dig, 1)
    sgn = 1.0
    if x < 0:
        sgn, x = -1.0, -x
    max10e = 308
    l10 = math.log10(x)
    e10 = int(dig - 1 - math.floor(l10))
    if abs(l10) < max10e - 2:
        p10 = 1.0
        if e10 > max10e:
            p10 = _pow_di(10.0, e10 - max10e)
            e10 = max10e
        if e10 > 0:
            pow10 = _pow_di(10.0, e10)
            return sgn * (_nearbyint((x * pow10) * p10) / pow10) / p10
        pow10 = _pow_di(10.0, -e10)
        return sgn * (_nearbyint(x / pow10) * pow10)
    do_round = max10e - l10 >= _pow_di(10.0, -dig)
    e2 = dig + (1 if e10 > 0 else -1) * 22
    p10 = _pow_di(10.0, e2)
    x *= p10
    P10 = _pow_di(10.0, e10 - e2)
    x *= P10
    if do_round:
        x += 0.5
    x = math.floor(x) / p10
    return sgn * x / P10


def zapsmall(x: Sequence[Num], digits: int = PRINT_DIGITS) -> list[Num]:
    """zapsmall(x, digits): round so that values tiny relative to the largest become 0."""
    ok = [abs(v) for v in x if v is not None and not math.isnan(v)]
    if not ok:
        return list(x)
    mx = max(ok)
    rd = max(0.0, digits - math.log10(mx)) if mx > 0 else digits
    return [r_round(v, rd) for v in x]


# ---------------------------------------------------------------- p-values, formatC


def format_pval(
    pv: Sequence[Num], digits: int = PRINT_DIGITS - 2, eps: float = DBL_EPS, na_form: str = "NA"
) -> list[str]:
    """format.pval(): p-values below eps print as "<eps" (e.g. "<2e-16" or "< 2e-16")."""
    vals = [v for v in pv if not (v is None or math.isnan(v))]
    is0 = [v < eps for v in vals]
    r = [""] * len(vals)
    rr: list[str] = []
    if not all(is0):
        rest = [v for v, z in zip(vals, is0, strict=True) if not z]
        expo = [math.floor(math.log10(v if v > 0 else 1e-50)) for v in rest]
        fixp = [ex >= -3 or (ex == -4 and digits > 1) for ex in expo]
        rr = [""] * len(rest)
        for flag in (True, False):
            idx = [i for i, f in enumerate(fixp) if f == flag]
            if idx:
                for i, s in zip(idx, format_num([rest[i] for i in idx], digits), strict=True):
                    rr[i] = s
        it = iter(rr)
        r = [next(it) if not z else "" for z in is0]
    if any(is0):
        dg = max(1, digits - 2)
        if not all(is0):
            nc = max(len(s) for s in rr)
            if dg > 1 and dg + 6 > nc:
                dg = max(1, nc - 7)
            sep = "" if (dg == 1 and nc <= 6) else " "
        else:
            sep = "" if dg == 1 else " "
        small = "<" + sep + format_num([eps], dg)[0]
        r = [small if z else s for s, z in zip(r, is0, strict=True)]
    it = iter(r)
    return [na_form if (v is None or math.isnan(v)) else next(it) for v in pv]


def format_c(x: Num | int, width: int = 0, digits: int | None = None, format: str = "g", flag: str = "") -> str:
    """formatC() for one number with format "d", "f", "e", "E", "g" or "G" (C's printf)."""
    if format == "d":
        if x is None:
            s = "NA"
            return s.ljust(width) if "-" in flag else s.rjust(width)
        return ("%" + flag + "*d") % (width, int(x))
    if x is None or math.isnan(x) or math.isinf(x):
        s = "NA" if x is None else ("NaN" if math.isnan(x) else ("Inf" if x > 0 else "-Inf"))
        return s.ljust(width) if "-" in flag else s.rjust(width)
    if digits is None:
        digits = 4
    elif digits < 0:
        digits = 6
    return ("%" + flag + "*.*" + format) % (width, abs(digits), x)


# ---------------------------------------------------------------- abbreviate


def _stripchars(s: str, minlen: int) -> str:
    """R's stripchars(): drop characters from the end, lower-case vowels first (use.classes)."""
    c = list(s)

    def at(i: int) -> str:
        return c[i] if 0 <= i < len(c) else "\0"

    def first_char(i: int) -> bool:  # starts a word
        return at(i - 1).isspace()

    def last_char(i: int) -> bool:  # ends a word
        return not at(i - 1).isspace() and (at(i + 1) == "\0" or at(i + 1).isspace())

    def lc_vowel(i: int) -> bool:
        return at(i) in "aeiou" and at(i) != "\0"

    def islower(i: int) -> bool:
        return "a" <= at(i) <= "z"

    nspace = 0

    def done() -> bool:
        return len(c) - nspace <= minlen

    def finish() -> str:
        if len(c) > minlen:
            for i in range(len(c) - 1, 0, -1):
                if at(i).isspace():
                    del c[i]
        return "".join(c)

    if len(c) < minlen:
        return finish()
    j = 1
    for i in range(len(c) - 1, 0, -1):  # trailing spaces go; inner ones count as word breaks
        if at(i).isspace():
            if j:
                del c[i:]
            else:
                nspace += 1
        else:
            j = 0
        if done():
            return finish()
    rules = (
        lambda i: lc_vowel(i) and last_char(i),
        lambda i: lc_vowel(i) and not first_char(i),
        lambda i: islower(i) and last_char(i),
        lambda i: islower(i) and not first_char(i),
        lambda i: not first_char(i) and not at(i).isspace(),
    )
    for rule in rules:
        for i in range(len(c) - 1, 0, -1):
            if rule(i):
                del c[i]
            if done():
                return finish()
    return finish()


def abbreviate(names: Sequence[str], minlength: int = 4) -> list[str]:
    """abbreviate(names, minlength) (method "left.kept", use.classes = TRUE): unique abbreviations."""
    if minlength <= 0:
        return [""] * len(names)
    old = [n.strip(" ") for n in names]
    uniq = list(dict.fromkeys(old))

    def abbr(v: str, ml: int) -> str:
        return _stripchars(v, ml) if len(v) > ml else v

    x = [abbr(v, minlength) for v in uniq]
    ml = minlength
    while True:
        seen: set[str] = set()
        dup2 = []
        for v in x:
            dup2.append(v in seen)
            seen.add(v)
        if not any(dup2):
            break
        ml += 1
        dup_vals = {v for v, d in zip(x, dup2, strict=True) if d}
        redo = [d or v in dup_vals for v, d in zip(x, dup2, strict=True)]
        x = [abbr(u, ml) if r else v for u, v, r in zip(uniq, x, redo, strict=True)]
    lookup = dict(zip(uniq, x, strict=True))
    return [lookup[v] for v in old]


# ---------------------------------------------------------------- strwrap and cat


def strwrap(
    x: str,
    width: int = int(0.9 * PRINT_WIDTH),
    indent: int = 0,
    exdent: int = 0,
    prefix: str = "",
    initial: str | None = None,
) -> list[str]:
    """strwrap() of one string: greedy filling of lines shorter than `width`."""
    if initial is None:
        initial = prefix
    y: list[str] = []
    for para in re.split(r"\n[ \t\n]*\n", x):
        words = re.split(r"[ \t\n]", para) if para else []
        if words and words[-1] == "":  # strsplit drops one trailing empty piece
            words.pop()
        nc = [len(w) for w in words]
        if 0 in nc:  # empty words survive only after a sentence end (double spacing)
            after_stop = {i + 1 for i, w in enumerate(words) if re.search(r"[.?!][)\"']{0,1}$", w)}
            keep = [i for i in range(len(words)) if nc[i] != 0 or i in after_stop]
            words = [words[i] for i in keep]
            nc = [nc[i] for i in keep]
        if not words:
            y.extend(["", initial])
            continue
        lens = list(accumulate(n + 1 for n in nc))
        current = 0
        lower = [1]
        upper: list[int] = []
        first = True
        max_len = width - len(initial) - indent
        while lens:
            k = max(sum(1 for v in lens if v <= max_len), 1)
            if first:
                first = False
                max_len = width - len(prefix) - exdent
            current += k
            upper.append(current - 1 if nc[current - 1] == 0 else current)
            if len(lens) > k:
                if nc[current] == 0:
                    current += 1
                    k += 1
                lower.append(current + 1)
            lens = [v - lens[k - 1] for v in lens[k:]] if len(lens) > k else []
        lines = [initial + " " * indent] + [prefix + " " * exdent] * (len(upper) - 1)
        initial = prefix
        for b in range(len(upper)):
            lines[b] += " ".join(words[lower[b] - 1 : upper[b]])
        y.extend(lines + [prefix])
    return y[:-1] if y else [""]


CatItem = str | float | int | None | Sequence[str] | Sequence[float]


def cat(*objs: CatItem, sep: str = " ", fill: bool | int = False) -> str:
    """What cat(...) writes: numbers as by cat_num(), `fill` breaks lines at the print width."""
    pwidth = PRINT_WIDTH if fill is True else (_INT_MAX if fill is False else int(fill))
    sepw = len(sep.encode())
    out: list[str] = []
    width = 0
    for iobj, s in enumerate(objs):
        if s is None:
            continue
        if isinstance(s, str):
            items = [s]
        elif isinstance(s, int | float):
            items = [cat_num(float(s))]
        else:
            items = [v if isinstance(v, str) else cat_num(v) for v in s]
        if iobj != 0:
            out.append(sep)
        if not items:
            continue
        w = len(items[0].encode())
        if iobj > 0 and width + w + sepw > pwidth:
            out.append("\n")
            width = 0
        for i, p in enumerate(items):
            out.append(p)
            width += w + sepw
            if i < len(items) - 1:
                out.append(sep)
                w = len(items[i + 1].encode())
                if width + w + sepw > pwidth:
                    out.append("\n")
                    width = 0
    if pwidth != _INT_MAX or "\n" in sep:
        out.append("\n")
    return "".join(out)


# ---------------------------------------------------------------- print() of vectors and matrices


def _index_width(n: int) -> int:
    return int(math.log10(n + 0.5) + 1)


def print_named(values: Sequence[str], names: Sequence[str], right: bool = True) -> str:
    """print() of a named vector whose entries are already encoded (printNamedVector)."""
    n = len(values)
    w = max([0] + [len(v) for v in values] + [len(v) for v in names])
    per_line = max(PRINT_WIDTH // (w + PRINT_GAP), 1)
    gap = " " * PRINT_GAP
    lines = []
    for start in range(0, n, per_line):
        chunk = range(start, min(start + per_line, n))
        lines.append("".join(names[k].rjust(w) + gap for k in chunk))
        lines.append("".join((values[k].rjust(w) if right else values[k].ljust(w)) + gap for k in chunk))
    return "\n".join(lines) + "\n"


def print_named_num(x: Sequence[Num], names: Sequence[str], digits: int = PRINT_DIGITS) -> str:
    """print(x, digits=) of a named numeric vector."""
    f = format_real(x, digits)
    return print_named([encode_real(v, f.w, f.d, f.e) for v in x], names)


def print_matrix(
    cells: Sequence[Sequence[str]],
    rownames: Sequence[str] | None = None,
    colnames: Sequence[str] | None = None,
    right: bool = False,
) -> str:
    """print(m, quote = FALSE, right = ) of a character matrix, wrapping columns at the width."""
    r = len(cells)
    c = len(cells[0]) if r else len(colnames or [])
    gap = " " * PRINT_GAP
    rlabw = max([0] + [len(v) for v in rownames]) if rownames is not None else _index_width(r + 1) + 3
    w = []
    for j in range(c):
        wj = max([0] + [len(cells[i][j]) for i in range(r)])
        clabw = len(colnames[j]) if colnames is not None else _index_width(j + 1) + 3
        w.append(max(wj, clabw))

    def col_label(j: int) -> str:
        if colnames is None:
            return gap + f"[,{j + 1}]".ljust(w[j])
        lab = colnames[j]
        return gap + (lab.rjust(w[j]) if right else lab.ljust(w[j]))

    def row_label(i: int) -> str:
        if rownames is None:
            return f"[{i + 1},]".rjust(rlabw)
        return rownames[i].ljust(rlabw)

    out: list[str] = []
    if c == 0:
        out.append(" " * rlabw)
        out.extend("\n" + row_label(i) for i in range(r))
        out.append("\n")
        return "".join(out)
    jmin = 0
    while jmin < c:
        width = rlabw
        jmax = jmin
        while True:
            width += w[jmax] + PRINT_GAP
            jmax += 1
            if not (jmax < c and width + w[jmax] + PRINT_GAP < PRINT_WIDTH):
                break
        out.append(" " * rlabw)
        out.extend(col_label(j) for j in range(jmin, jmax))
        for i in range(r):
            out.append("\n" + row_label(i))
            for j in range(jmin, jmax):
                v = cells[i][j]
                out.append(gap + (v.rjust(w[j]) if right else v.ljust(w[j])))
        out.append("\n")
        jmin = jmax
    return "".join(out)


# ---------------------------------------------------------------- printCoefmat

SIGNIF_LEGEND = "0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1"  # symnum's legend, sQuote()d in UTF-8


def symnum_stars(p: Num) -> str:
    """symnum() of a p-value with the cut points of printCoefmat."""
    if p is None or math.isnan(p):
        return ""
    for cut, sym in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p <= cut:
            return sym
    return " "


def _as_numeric(s: str) -> Num:
    try:
        return float(s)
    except ValueError:
        return None


def _isnan(v: Num) -> bool:
    return v is None or math.isnan(v)


def print_coefmat(
    x: Sequence[Sequence[Num]],
    rownames: Sequence[str],
    colnames: Sequence[str],
    digits: int = max(3, PRINT_DIGITS - 2),
    signif_stars: bool = True,
    signif_legend: bool | None = None,
    dig_tst: int | None = None,
    cs_ind: Sequence[int] | None = (),
    tst_ind: Sequence[int] | None = None,
    zap_ind: Sequence[int] = (),
    p_values: bool | None = None,
    has_pvalue: bool | None = None,
    eps_pvalue: float = DBL_EPS,
    na_print: str = "NA",
) -> str:
    """printCoefmat(); column indices are 0-based.  cs_ind=() means R's default 1:k, None means NULL."""
    xm = [list(row) for row in x]
    nr = len(xm)
    nc = len(colnames)
    if signif_legend is None:
        signif_legend = signif_stars
    if dig_tst is None:
        dig_tst = max(1, min(5, digits - 1))
    if has_pvalue is None:
        has_pvalue = nc >= 4 and colnames[-1][:3] in ("Pr(", "p-v")
    if p_values is None:
        p_values = has_pvalue
    cn = list(colnames)
    if has_pvalue and not p_values:
        xm = [row[:-1] for row in xm]
        cn = cn[:-1]
        nc -= 1
        has_pvalue = False
    k = nc - int(has_pvalue) - (1 if tst_ind is None else len(tst_ind))
    if tst_ind is None:
        tst_ind = [k]
    if cs_ind is not None and len(cs_ind) == 0:
        cs_ind = list(range(k))
    cs_ind = list(cs_ind or [])
    Cf = [[""] * nc for _ in range(nr)]
    ina = [[_isnan(v) for v in row] for row in xm]
    ok = [[not v for v in row] for row in ina]
    for j in zap_ind:
        col = zapsmall([row[j] for row in xm], digits)
        for i in range(nr):
            xm[i][j] = col[i]

    def put(j: int, strs: list[str]) -> None:
        for i in range(nr):
            Cf[i][j] = strs[i]

    if cs_ind:
        coef_se = [[xm[i][j] for j in cs_ind] for i in range(nr)]
        acs = [abs(v) for row in coef_se for v in row if v is not None and math.isfinite(v)]
        if acs:
            nz = [v for v in acs if v != 0]
            digmin_hi = 1 + (math.floor(math.log10(min(nz))) if nz else 0)
            rd = max(1, digits - digmin_hi)
            flat = [r_round(v, rd) for row in coef_se for v in row]
            strs = format_num(flat, digits)
            for i in range(nr):
                for jj, j in enumerate(cs_ind):
                    Cf[i][j] = strs[i * len(cs_ind) + jj]
    for j in tst_ind:
        put(j, format_num([r_round(row[j], dig_tst) for row in xm], digits))
    special = set(cs_ind) | set(tst_ind) | ({nc - 1} if has_pvalue else set())
    for j in range(nc):
        if j not in special:
            put(j, format_num([row[j] for row in xm], digits))
    for i in range(nr):
        for j in tst_ind:
            ok[i][j] = False
    # entries whose nonzero value printed as zero get one digit less of common formatting
    okp_cols = range(nc - 1) if has_pvalue else range(nc)
    fix = []
    for j in okp_cols:
        for i in range(nr):
            if ok[i][j]:
                val = xm[i][j]
                shown = _as_numeric(Cf[i][j])
                if val is not None and shown is not None and not math.isnan(val) and not math.isnan(shown):
                    if (val == 0) != (shown == 0):
                        fix.append((i, j))
    if fix:
        for (i, j), s in zip(fix, format_num([xm[i][j] for i, j in fix], max(1, digits - 1)), strict=True):
            Cf[i][j] = s
    for i in range(nr):
        for j in range(nc):
            if ina[i][j]:
                v = xm[i][j]
                Cf[i][j] = "NaN" if (v is not None and math.isnan(v)) else na_print
    stars = False
    if p_values:
        okp = [ok[i][nc - 1] for i in range(nr)]
        if any(okp):
            pv = [row[nc - 1] for row in xm]
            rows = [i for i in range(nr) if okp[i]]
            for i, s in zip(rows, format_pval([pv[i] for i in rows], dig_tst, eps_pvalue), strict=True):
                Cf[i][nc - 1] = s
            stars = signif_stars and any(pv[i] < 0.1 for i in rows)
            if stars:
                sym = format_str([symnum_stars(p) for p in pv])
                for i in range(nr):
                    Cf[i].append(sym[i])
                cn.append("")
    out = print_matrix(Cf, rownames, cn, right=True)
    if stars and signif_legend:
        out += "---\nSignif. codes:  " + SIGNIF_LEGEND + "\n"
    return out
