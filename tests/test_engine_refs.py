"""The engine against lme4 + lmerTest references generated on the same CSV files."""

from __future__ import annotations

from functools import lru_cache

import pytest

from mlmcli.compare import compare, compare_report
from mlmcli.design import build_design
from mlmcli.formula import parse_formula
from mlmcli.frame import read_csv
from mlmcli.model import fit_model
from mlmcli.report import fit_report, ranef_report, tau_report
from tests.refcheck import (
    SUITE,
    check_compare,
    check_fit,
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
    return fit_model(parsed, build_design(f, parsed), reml=case["reml"] if reml is None else reml,
                     data_name=f.name)


@pytest.mark.parametrize("case", fit_cases(), ids=lambda c: c["id"])
def test_fit_matches_lme4(case):
    ref = reference_exact_df(case["id"])
    model = fitted(case)
    report = fit_report(model)
    problems = check_fit(report, ref["fit"])
    problems += check_ranef(ranef_report(model), ref["ranef"], ref["fit"])
    assert not problems, "\n".join(problems)
    assert report["warnings"] == ref["fit"]["warnings"]
    assert report["deparsed_formula"] == ref["fit"]["deparsed_formula"]


# singular fits' variance components are not well determined (the checks above cover their criterion)
@pytest.mark.parametrize("case", [c for c in fit_cases() if not reference(c["id"])["fit"]["singular"]],
                         ids=lambda c: c["id"])
def test_tau_matches_lme4(case):
    ref = reference(case["id"])
    tau = tau_report(fitted(case))
    ref_tau = ref["tau"]
    assert [g["group"] for g in tau["groups"]] == [g["group"] for g in ref_tau["groups"]]
    assert tau["residual_variance"] == pytest.approx(ref_tau["residual_variance"], rel=1e-3)
    for ours, theirs in zip(tau["groups"], ref_tau["groups"], strict=True):
        assert ours["terms"] == theirs["terms"]
        scale = max(abs(v) for row in theirs["covariance"] for v in row)
        for a, b in zip(ours["covariance"], theirs["covariance"], strict=True):
            assert a == pytest.approx(b, rel=1e-3, abs=1e-3 * scale)


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
