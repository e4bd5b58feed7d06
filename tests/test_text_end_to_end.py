"""From CSV to lme4's printed text: our fits rendered, against lme4's own output on the same files.

At lme4's own theta our text is lme4's byte for byte (lmerTest's df aside, which come from a
noisy numerical Hessian).  At our optimum, which lme4 stops up to ~1e-6 short of on a flat
criterion, a printed number can differ in its last digit: there each case is checked for the same
lines and words, numbers within a small relative difference.
"""

from __future__ import annotations

import re
from functools import lru_cache

import pytest

from mlmcli.design import build_design
from mlmcli.formula import parse_formula
from mlmcli.io.csv import read_csv
from mlmcli.model import at_theta, fit_model
from mlmcli.render.text import anova_output, fit_summary_output, tau_output
from mlmcli.report import fit_report, tau_report
from mlmcli.stats.compare import compare, compare_report
from tests.refcheck import DF_ARTEFACTS, LME4_STOPS_SHORT, SUITE, compare_cases, fit_cases, reference

NUMBER = re.compile(r"-?\d+\.?\d*(?:e[-+]\d+)?")
REFIT = "refitting model(s) with ML (instead of REML)"


@lru_cache
def frame(name: str):
    return read_csv(str(SUITE / "data" / name))


@lru_cache
def optimum(case_id: str, ddf: str):
    case = next(c for c in fit_cases() if c["id"] == case_id)
    f = frame(case["data"])
    parsed = parse_formula(case["formula"])
    return fit_model(parsed, build_design(f, parsed), reml=case["reml"], data_name=f.name, ddf=ddf)


@lru_cache
def model(case_id: str, ddf: str, at_lme4: bool = True):
    """Ours at lme4's theta (the default), or at our optimum."""
    fit = optimum(case_id, ddf)
    return at_theta(fit, reference(case_id)["fit"]["theta"]) if at_lme4 else fit


def expected(case_id: str, suffix: str) -> str:
    text = (SUITE / f"{case_id}.{suffix}.txt").read_text()
    return "".join(line for line in text.splitlines(True) if line.rstrip("\n") != REFIT).rstrip("\n")


def ours(case: dict, suffix: str, at_lme4: bool = True) -> str:
    if suffix == "anova":
        f = frame(case["data"])
        fits = []
        for text in case["formulas"]:
            parsed = parse_formula(text)
            fits.append(
                fit_model(parsed, build_design(f, parsed), reml=case.get("reml", True), data_name=f.name, ddf="none")
            )
        names = case.get("names") or [f"m{i + 1}" for i in range(len(fits))]
        return anova_output(compare_report(compare(fits, names))).out.rstrip("\n")
    if suffix == "tau":
        return tau_output(tau_report(model(case["id"], "none", at_lme4))).out.rstrip("\n")
    ddf = "none" if suffix == "summary_lme4" else "Satterthwaite"
    return fit_summary_output(fit_report(model(case["id"], ddf, at_lme4))).out.rstrip("\n")


def nearly_same(a: str, b: str, rel: float = 1e-3) -> list[str]:
    """Differences beyond numbers that agree to `rel`; same lines, same words.  Column widths
    may differ where a number prints fewer digits (R drops a trailing zero: 5.26841, not 5.268410)."""
    problems = []
    la, lb = a.split("\n"), b.split("\n")
    if len(la) != len(lb):
        return [f"{len(la)} lines, lme4 has {len(lb)}"]
    for i, (x, y) in enumerate(zip(la, lb, strict=True)):
        if x == y:
            continue
        if NUMBER.sub("#", x).split() != NUMBER.sub("#", y).split():
            problems.append(f"line {i + 1}: {x!r} vs {y!r}")
            continue
        for u, v in zip(NUMBER.findall(x), NUMBER.findall(y), strict=True):
            if u != v and abs(float(u) - float(v)) > rel * abs(float(v)):
                problems.append(f"line {i + 1}: {u} vs {v}")
    return problems


OUTPUTS = [(c, s) for c in fit_cases() for s in ("summary", "summary_lme4", "tau")] + [
    (c, "anova") for c in compare_cases()
]


@pytest.mark.parametrize(("case", "suffix"), OUTPUTS, ids=lambda v: v if isinstance(v, str) else v["id"])
def test_printed_output_matches_lme4(case, suffix):
    got, want = ours(case, suffix), expected(case["id"], suffix)
    if suffix == "summary" and case["id"] in DF_ARTEFACTS:
        # lmerTest's df (hence p and stars) are an artefact here: those rows are checked by number
        # in test_engine_refs; every other line is lme4's
        got, want = (_without_coefficient_rows(x) for x in (got, want))
    assert not nearly_same(got, want)


@pytest.mark.parametrize(
    ("case", "suffix"),
    [(c, s) for c, s in OUTPUTS if s != "anova" and c["id"] not in LME4_STOPS_SHORT],
    ids=lambda v: v if isinstance(v, str) else v["id"],
)
def test_printed_output_at_our_optimum_matches_lme4(case, suffix):
    """At our optimum, lme4's lines and words, numbers to 2e-3: lme4's early stop moves theta by
    up to 1e-4 over this suite, a variance's 4th-5th digit, and a p-value of 1e-9 (t = 6) by 1e-3."""
    got, want = ours(case, suffix, at_lme4=False), expected(case["id"], suffix)
    if suffix == "summary" and case["id"] in DF_ARTEFACTS:
        got, want = (_without_coefficient_rows(x) for x in (got, want))
    assert not nearly_same(got, want, rel=2e-3)


def _without_coefficient_rows(text: str) -> str:
    lines = text.split("\n")
    start = next(i for i, ln in enumerate(lines) if ln.startswith("Fixed effects:")) + 2
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    return "\n".join(ln for i, ln in enumerate(lines[:start] + lines[end:]) if not ln.startswith(("---", "Signif.")))


def test_most_outputs_match_byte_for_byte():
    exact = sum(ours(c, s) == expected(c["id"], s) for c, s in OUTPUTS)
    assert exact >= 0.9 * len(OUTPUTS), f"{exact} of {len(OUTPUTS)} byte for byte"
