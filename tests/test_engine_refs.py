"""The engine against lme4 + lmerTest references generated on the same CSV files."""

from __future__ import annotations

from functools import lru_cache

import pytest

from mlmcli.design import build_design
from mlmcli.formula import parse_formula
from mlmcli.io.csv import read_csv
from mlmcli.model import at_theta, fit_model
from mlmcli.report import fit_report, ranef_report, tau_report
from mlmcli.stats.compare import compare, compare_report
from tests.refcheck import (
    LME4_STOPS_SHORT,
    SUITE,
    check_compare,
    check_fit,
    check_optimum,
    check_ranef,
    compare_cases,
    fit_cases,
    reference,
    reference_exact_df,
)


@lru_cache
def frame(name: str):
    return read_csv(str(SUITE / "data" / name))


def fitted(case: dict, reml: bool | None = None):
    f = frame(case["data"])
    parsed = parse_formula(case["formula"])
    return fit_model(parsed, build_design(f, parsed), reml=case["reml"] if reml is None else reml, data_name=f.name)


@lru_cache
def fitted_case(case_id: str):
    return fitted(next(c for c in fit_cases() if c["id"] == case_id))


@lru_cache
def at_lme4_theta(case_id: str):
    return at_theta(fitted_case(case_id), reference(case_id)["fit"]["theta"])


@pytest.mark.parametrize("case", fit_cases(), ids=lambda c: c["id"])
def test_fit_reaches_lme4s_optimum(case):
    """Never above lme4's criterion; where lme4 converged, at its optimum (1e-8 relative), with
    summary()'s numbers within the suite's tolerances and lme4's messages, no more."""
    ref = reference_exact_df(case["id"])
    model = fitted_case(case["id"])
    problems = check_optimum(case["id"], model.criterion, ref["fit"])
    if case["id"] not in LME4_STOPS_SHORT:
        report = fit_report(model)
        problems += check_fit(report, ref["fit"])
        problems += check_ranef(ranef_report(model), ref["ranef"], ref["fit"])
        problems += [f"warnings: {report['warnings']} vs lme4's {ref['fit']['warnings']}"] * (
            report["warnings"] != ref["fit"]["warnings"]
        )
        problems += [f"formula: {report['deparsed_formula']}"] * (
            report["deparsed_formula"] != ref["fit"]["deparsed_formula"]
        )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("case", fit_cases(), ids=lambda c: c["id"])
def test_fit_at_lme4s_theta_matches_lme4(case):
    """At lme4's own theta every number of summary() and ranef() is lme4's to 1e-6, singular fits
    included, and lme4's checks there give lme4's messages: our arithmetic, free of the optimizer."""
    ref = reference_exact_df(case["id"])
    model = at_lme4_theta(case["id"])
    report = fit_report(model)
    problems = check_fit(report, ref["fit"], at_theta=True)
    problems += check_ranef(ranef_report(model), ref["ranef"], ref["fit"], at_theta=True)
    assert not problems, "\n".join(problems)
    assert report["warnings"] == ref["fit"]["warnings"]


@pytest.mark.parametrize("case", fit_cases(), ids=lambda c: c["id"])
def test_tau_matches_lme4(case):
    """VarCorr at lme4's theta to 1e-6, singular fits included; at our optimum to 1e-3 where lme4
    reached it (a singular fit's zero variance has no relative scale: its absolute floor)."""
    ref_tau = reference(case["id"])["tau"]
    for model, rel in [(at_lme4_theta(case["id"]), 1e-6), (fitted_case(case["id"]), 1e-3)]:
        if rel > 1e-6 and case["id"] in LME4_STOPS_SHORT:
            continue
        tau = tau_report(model)
        assert [g["group"] for g in tau["groups"]] == [g["group"] for g in ref_tau["groups"]]
        assert tau["residual_variance"] == pytest.approx(ref_tau["residual_variance"], rel=rel)
        for ours, theirs in zip(tau["groups"], ref_tau["groups"], strict=True):
            assert ours["terms"] == theirs["terms"]
            scale = max(abs(v) for row in theirs["covariance"] for v in row)
            for a, b in zip(ours["covariance"], theirs["covariance"], strict=True):
                assert a == pytest.approx(b, rel=rel, abs=rel * scale)


@pytest.mark.parametrize("case", compare_cases(), ids=lambda c: c["id"])
def test_compare_matches_lme4(case):
    ref = reference(case["id"])
    f = frame(case["data"])
    reml = case.get("reml", True)
    models = []
    for text in case["formulas"]:
        parsed = parse_formula(text)
        models.append(fit_model(parsed, build_design(f, parsed), reml=reml, data_name=f.name, ddf="none"))
    names = case.get("names") or [f"m{i + 1}" for i in range(len(models))]
    report = compare_report(compare(models, names))
    problems = check_compare(report, ref)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("case", fit_cases(big=True), ids=lambda c: c["id"])
def test_big_crossed_fit_matches_lme4(case):
    """InstEval: 73421 ratings, 2972 students crossed with 1128 lecturers."""
    ref = reference(case["id"])
    model = fitted(case)
    problems = check_fit(fit_report(model), ref["fit"])
    problems += check_ranef(ranef_report(model), ref["ranef"], ref["fit"])
    assert not problems, "\n".join(problems)
