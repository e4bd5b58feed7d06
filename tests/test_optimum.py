"""The default optimizer never ends at a worse criterion than lme4 1.1-31, on ill-conditioned fits
(tests/fixtures/illcond: badly scaled slopes, near-singular covariances, where lme4 warns) and on
the well-conditioned reference suite (tests/fixtures/lme4)."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from mlmcli.design import build_design
from mlmcli.formula import parse_formula
from mlmcli.io.csv import read_csv
from mlmcli.model import at_theta, fit_model
from tests.refcheck import SUITE, fit_cases, reference

ILLCOND = Path(__file__).parent / "fixtures" / "illcond"
NOT_WORSE = 1e-6  # ours may exceed lme4's criterion by rounding only
STOPPED_SHORT = 1e-3  # lme4's criterion above ours by more: lme4 stopped before the optimum


def illcond_cases() -> list[dict]:
    return json.loads((ILLCOND / "cases.json").read_text())["cases"]


@lru_cache
def _frame(path: str):
    return read_csv(path)


def criterion(data: Path, formula: str, reml: bool) -> float:
    f = _frame(str(data))
    parsed = parse_formula(formula)
    return fit_model(parsed, build_design(f, parsed), reml=reml, data_name=f.name).criterion


@lru_cache
def illcond_criterion(case_id: str) -> float:
    case = next(c for c in illcond_cases() if c["id"] == case_id)
    return criterion(ILLCOND / "data" / case["data"], case["formula"], case["reml"])


def test_fixtures_are_ill_conditioned():
    cases = illcond_cases()
    assert sum(c["warned"] for c in cases) >= 20
    for c in cases:
        assert c["warned"] == bool(c["warnings"])
        # every case's own file holds the same reference
        ref = json.loads((ILLCOND / f"{c['id']}.json").read_text())
        assert ref["criterion"] == c["criterion"] and ref["case"]["formula"] == c["formula"]


@pytest.mark.parametrize("case", illcond_cases(), ids=lambda c: c["id"])
def test_illcond_not_worse_than_lme4(case):
    ours = illcond_criterion(case["id"])
    assert ours <= case["criterion"] + NOT_WORSE, (
        f"{case['id']}: ours {ours!r} > lme4 {case['criterion']!r} ({case['formula']})"
    )


def test_lme4_stops_short_only_where_it_says_so():
    """Where lme4 ends above our criterion, it warned (convergence, scaling) or reported a boundary
    (singular) fit: lme4 stops short silently nowhere in these fixtures."""
    short = {c["id"]: c for c in illcond_cases() if c["criterion"] - illcond_criterion(c["id"]) > STOPPED_SHORT}
    report = {k: (c["criterion"], illcond_criterion(k), c["warned"]) for k, c in short.items()}
    assert len(short) >= 10, report
    for c in short.values():
        boundary = any(m.startswith("boundary (singular) fit") for m in c["messages"])
        assert c["warned"] or boundary, report
    # the largest gaps are lme4's warned, badly scaled fits (Sitka's Time in the hundreds)
    assert {"sitka_ml", "sitka_reml", "oxboys_age100_reml"} <= set(short)
    assert all(short[k]["warned"] for k in ("sitka_ml", "sitka_reml", "oxboys_age100_reml"))


def test_sitka_ml_reaches_the_true_optimum():
    # lme4 stops at 115.784 with max|grad| = 3.4; the optimum is 98.0705 (nlme's lme agrees)
    assert illcond_criterion("sitka_ml") == pytest.approx(98.0705, abs=1e-3)


@pytest.mark.parametrize("case", fit_cases(), ids=lambda c: c["id"])
def test_reference_suite_not_worse_than_lme4(case):
    ref = reference(case["id"])["fit"]
    ours = criterion(SUITE / "data" / case["data"], case["formula"], case["reml"])
    assert ours <= ref["criterion"] + NOT_WORSE, (
        f"{case['id']}: ours {ours!r} > lme4 {ref['criterion']!r} ({case['formula']})"
    )


@pytest.mark.parametrize("case", [c for c in illcond_cases() if c.get("well_scaled")], ids=lambda c: c["id"])
def test_rescaled_copies_reach_the_well_scaled_optimum(case):
    """A covariate multiplied by 10-1000 does not change the optimum: lme4's own fit of the original
    column, mapped to the copy, is a criterion we must reach (or beat, where lme4 warned there too)."""
    ours = illcond_criterion(case["id"])
    assert ours <= case["well_scaled"]["criterion"] + 1e-5, (ours, case["well_scaled"]["criterion"])


def test_command_line_optimizer_switch():
    """--optimizer lme4 stops where BOBYQA on lme4's settings stops; the default goes on to the optimum."""
    import json as _json
    import subprocess

    from tests.commands import MLM, environment

    data = str(ILLCOND / "data" / "Sitka.csv")
    out = {}
    for choice in ("robust", "lme4"):
        p = subprocess.run(
            [
                MLM,
                "fit",
                data,
                "size ~ Time * treat + (Time|tree)",
                "--ml",
                "-f",
                "json",
                "--optimizer",
                choice,
            ],
            capture_output=True,
            text=True,
            env=environment(),
        )
        assert p.returncode == 0, p.stderr
        out[choice] = _json.loads(p.stdout)
    assert out["robust"]["criterion"] == pytest.approx(98.0705, abs=1e-3)
    # at the optimum lme4's gradient check passes; its Hessian check still sees Time in days
    assert out["robust"]["warnings"] == ["Model is nearly unidentifiable: very large eigenvalue\n - Rescale variables?"]
    # where BOBYQA on lme4's settings stops depends on the CPU's rounding (lme4 stops at 115.78,
    # this CPU's kernels anywhere from there down): only that it is never below the optimum
    assert out["lme4"]["criterion"] >= out["robust"]["criterion"] - 1e-9


CONVERGENCE_WARNINGS = (
    "Model failed to converge",
    "unable to evaluate scaled gradient",
    "Hessian is numerically singular",
    "Model is nearly unidentifiable",
)


def _masked(messages: list[str]) -> list[str]:
    """Messages with their numbers to 4 digits: lme4's max|grad| is a finite difference whose 6th
    digit is rounding."""
    return [re.sub(r"\d+\.\d+", lambda m: f"{float(m.group()):.4g}", w) for w in dict.fromkeys(messages)]


@lru_cache
def illcond_fit(case_id: str):
    case = next(c for c in illcond_cases() if c["id"] == case_id)
    f = _frame(str(ILLCOND / "data" / case["data"]))
    parsed = parse_formula(case["formula"])
    return fit_model(parsed, build_design(f, parsed), reml=case["reml"], data_name=f.name)


@pytest.mark.parametrize("case", illcond_cases(), ids=lambda c: c["id"])
def test_illcond_at_lme4s_theta_is_lme4s_fit(case):
    """At lme4's own end point our criterion, estimates and sigma are lme4's, and lme4's checks
    there give lme4's warnings: the arithmetic is right where the optimizers part."""
    ref = json.loads((ILLCOND / f"{case['id']}.json").read_text())
    model = illcond_fit(case["id"])
    at = at_theta(model, ref.get("theta_full") or ref["theta"])
    assert at.criterion == pytest.approx(ref["criterion"], rel=1e-12)
    assert at.sigma == pytest.approx(ref["sigma"], rel=1e-9)
    assert np.all(np.abs(at.beta - list(ref["beta"].values())) <= 1e-6 * model.std_errors)
    assert _masked(at.warnings) == _masked(ref["warnings"] + [m for m in ref["messages"] if m not in ref["warnings"]])
    assert at.singular == ref["singular"]


@pytest.mark.parametrize("case", illcond_cases(), ids=lambda c: c["id"])
def test_illcond_optimum_and_its_warnings(case):
    """Our optimum: never above lme4's criterion.  Where lme4 reached it (criterion to 1e-8), the
    estimates are lme4's to 1e-3 of their SE (1e-2 where lme4 warned: it stopped up to 1e-5 short)
    and, where lme4 did not warn, so are the messages.  Where lme4 stopped short it said so (a
    convergence warning, or a boundary fit it took for the optimum), and we add no message but
    lme4's own checks made at our end point (its max|grad| is a finite difference with a step of
    1e-4 in theta, too coarse for a slope on a covariate in the hundreds) and the singular message
    where the optimum is on the boundary."""
    ref = json.loads((ILLCOND / f"{case['id']}.json").read_text())
    model = illcond_fit(case["id"])
    theirs = ref["criterion"]
    lme4_says = ref["warnings"] + [m for m in ref["messages"] if m not in ref["warnings"]]
    lme4_warned = any(w.startswith(CONVERGENCE_WARNINGS) for w in ref["warnings"])
    assert model.criterion <= theirs + 1e-9 * abs(theirs)
    if theirs - model.criterion <= 1e-8 * abs(theirs):
        frac = 1e-2 if lme4_warned else 1e-3
        assert np.all(np.abs(model.beta - list(ref["beta"].values())) <= frac * model.std_errors)
        if not lme4_warned:
            assert _masked(model.warnings) == _masked(lme4_says)
    else:
        assert lme4_warned or ref["singular"], (theirs, model.criterion)
    extra = [
        w
        for w in model.warnings
        if w not in lme4_says and not w.startswith((*CONVERGENCE_WARNINGS, "boundary (singular) fit"))
    ]
    assert extra == []
