"""Tail probabilities of the t, chi-square and F distributions.

Written out here (continued fractions for the incomplete beta and gamma functions) because
importing scipy.special costs a command-line call more time than the whole fit of a typical model.
"""

from __future__ import annotations

import math

_EPS = 1e-16
_TINY = 1e-300


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 10000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def _log_front(a: float, b: float, x: float, y: float) -> float:
    """log of x^a y^b / (a B(a, b)), with y = 1 - x given separately for accuracy."""
    lbeta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    return a * math.log(x) + b * math.log(y) - lbeta - math.log(a)


def incomplete_beta(a: float, b: float, x: float, y: float | None = None) -> float:
    """Regularized I_x(a, b); y = 1 - x may be passed when it is known more accurately."""
    if y is None:
        y = 1.0 - x
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(_log_front(a, b, x, y)) * _betacf(a, b, x)
    return 1.0 - math.exp(_log_front(b, a, y, x)) * _betacf(b, a, y)


def t_two_sided(t: float, df: float) -> float:
    """P(|T| > |t|) for Student's t with df degrees of freedom (as 2 * pt(-|t|, df))."""
    if not (math.isfinite(t) and df > 0):
        return float("nan")
    t2 = t * t
    x = df / (df + t2)
    y = t2 / (df + t2)
    a, b = df / 2.0, 0.5
    # I_x(df/2, 1/2) is the two-sided tail; pick the side that avoids cancellation
    if x < (a + 1.0) / (a + b + 2.0):
        return min(1.0, math.exp(_log_front(a, b, x, y)) * _betacf(a, b, x))
    return min(1.0, 1.0 - math.exp(_log_front(b, a, y, x)) * _betacf(b, a, y))


def chisq_upper(x: float, df: float) -> float:
    """P(X > x) for the chi-square distribution (pchisq(x, df, lower.tail = FALSE))."""
    if not math.isfinite(x):
        return float("nan")
    if x <= 0:
        return 1.0
    a, z = df / 2.0, x / 2.0
    log_front = a * math.log(z) - z - math.lgamma(a)
    if z < a + 1.0:
        # series for the lower regularized gamma P
        term = 1.0 / a
        total = term
        ap = a
        for _ in range(100000):
            ap += 1.0
            term *= z / ap
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        return 1.0 - math.exp(log_front) * total
    # continued fraction for the upper Q (modified Lentz)
    b = z + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, 100000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = b + an / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return math.exp(log_front) * h


def f_upper(f: float, df1: float, df2: float) -> float:
    """P(F > f) for the F distribution (pf(f, df1, df2, lower.tail = FALSE)).

    P(F > f) = I_x(df2/2, df1/2) with x = df2 / (df2 + df1 f); 1 - x is passed separately so that
    large F values keep their tiny tail probabilities.
    """
    if not (math.isfinite(f) and df1 > 0 and df2 > 0):
        return float("nan")
    if f <= 0:
        return 1.0
    denom = df2 + df1 * f
    return incomplete_beta(df2 / 2.0, df1 / 2.0, df2 / denom, df1 * f / denom)


def normal_upper(z: float) -> float:
    """pnorm(z, lower.tail = FALSE): erfc keeps its relative accuracy far into the tail."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))
