"""What each tool's fit reached, read from its output, and whether the tools agree: the REML criterion
for a linear mixed model, the deviance (-2 logLik) for a GLMM; and the speed contract's verdicts."""

from __future__ import annotations

import re
from collections.abc import Mapping

from cases import Case, Target

NUMBER = r"(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
REML = re.compile(r"REML criterion at convergence:\s*" + NUMBER)
# The full-precision last line of the R script and the lme-python peer (bench/cases.py, bench/peers/).
DEVIANCE = re.compile(r"deviance \(-2 logLik\) at convergence:\s*" + NUMBER)
# lme4's summary table of a GLMM (and mlm's): "     AIC      BIC   logLik deviance df.resid" and the numbers.
AICTAB = re.compile(r"^\s*AIC\s+BIC\s+logLik\s+deviance\s+df\.resid\s*\n\s*\S+\s+\S+\s+\S+\s+" + NUMBER, re.M)
# A GLMM fit counts as at the optimum when its deviance is within this of the best (lowest) one.
DEVIANCE_SLACK = 1e-3


def criterion(text: str, glmm: bool) -> str | None:
    """The last criterion printed in `text`, as printed (a string, so its precision is kept)."""
    if not glmm:
        found = REML.findall(text)
        return found[-1] if found else None
    found = DEVIANCE.findall(text) or AICTAB.findall(text)
    return found[-1] if found else None


def parse_criterion(text: str | None) -> tuple[float, float] | None:
    """(value, half of its last printed digit): lme4 prints round(x, 1) with 7 significant digits."""
    if text is None:
        return None
    decimals = len(text.split(".")[1]) if "." in text else 0
    return float(text), 0.5 * 10.0**-decimals


def agree(a: str | None, b: str | None, slack: float = 0.05) -> bool | None:
    """Whether two printed criteria agree within their printing precision plus optimizer slack."""
    pa, pb = parse_criterion(a), parse_criterion(b)
    if pa is None or pb is None:
        return None
    return abs(pa[0] - pb[0]) <= pa[1] + pb[1] + slack


def reference(crit: Mapping[str, str | None]) -> str:
    return "lme4" if crit.get("lme4") else "mlm"


def remarks(case: Case, crit: Mapping[str, str | None]) -> dict[str, str]:
    """For each tool whose criterion is off, why ("" for the others).

    LMMs: a REML criterion that differs from lme4's (else mlm's) beyond printing precision plus 0.05.
    GLMMs fitted by Laplace or AGQ minimise the deviance, so a tool more than 1e-3 above the lowest
    (beyond its printing precision) stopped short of the optimum. nAGQ = 0 minimises nothing (the fixed
    effects come from PIRLS, and the deviance is the Laplace one there), so there a tool is flagged when
    it is more than 1e-3 from lme4's (else mlm's) either way.
    """
    parsed = {k: parse_criterion(v) for k, v in crit.items()}
    out = {k: "" for k in crit}
    ref = reference(crit)
    if not case.glmm:
        for k, v in crit.items():
            if k != ref and agree(v, crit.get(ref)) is False:
                out[k] = f"differs from {ref}"
        return out
    if case.nagq == 0:
        if parsed.get(ref) is None:
            return out
        r, r_half = parsed[ref]
        for k, p in parsed.items():
            if k != ref and p is not None and abs(p[0] - r) > p[1] + r_half + DEVIANCE_SLACK:
                out[k] = f"{p[0] - r:+.4f} from {ref}"
        return out
    known = [(p[0], k) for k, p in parsed.items() if p is not None]
    if not known:
        return out
    best, best_tool = min(known)
    for k, p in parsed.items():
        if p is not None and p[0] - p[1] > best + DEVIANCE_SLACK:
            out[k] = f"{p[0] - best:+.4f} above {best_tool}"
    return out


def verdict(target: Target, medians: Mapping[str, float | None], crit: Mapping[str, str | None],
            cpu: Mapping[str, float | None] | None = None) -> tuple[str, str]:
    """(measured, met) for one line of the speed contract: met is "yes", "no" or "-" (not measured).

    Met is judged on wall time, as the contract is; the CPU-time ratio is shown beside it because on a
    shared, busy machine it is the steadier of the two.
    """
    other = target.other
    if target.optimum:
        ours, theirs = parse_criterion(crit.get("mlm")), parse_criterion(crit.get(other))
        if ours is None or theirs is None:
            return "no deviance from " + ("mlm" if ours is None else other), "-"
        gap = ours[0] - theirs[0]
        met = gap <= ours[1] + theirs[1] + DEVIANCE_SLACK
        return (f"deviance {crit['mlm']} vs {other} {crit[other]} ({gap:+.6f})", "yes" if met else "no")
    ours_s, theirs_s = medians.get("mlm"), medians.get(other)
    if ours_s is None or theirs_s is None:
        return "no time from " + ("mlm" if ours_s is None else other), "-"
    ratio = theirs_s / ours_s
    met = ratio >= (target.speedup or 1.0)
    ours_cpu, theirs_cpu = (cpu or {}).get("mlm"), (cpu or {}).get(other)
    cpu_ratio = f"; CPU {theirs_cpu / ours_cpu:.2f}x" if ours_cpu and theirs_cpu else ""
    return f"{fmt_s(ours_s)} s vs {other} {fmt_s(theirs_s)} s ({ratio:.2f}x{cpu_ratio})", "yes" if met else "no"


def fmt_s(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"
