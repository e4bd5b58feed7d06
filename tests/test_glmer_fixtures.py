"""The glmer references under tests/fixtures/glmer (lme4 1.1-31's glmer on cbpp, VerbAgg, grouseticks,
Contraception, guImmun, epil and bacteria; made by make_glmer.R) hold together: each fit names its data
file and the rows lme4 used, its likelihood, information criteria and parameters agree with each other,
its printed summary is there, and the comparisons and predictions refer to fits and files that exist.
The engine's numeric tests against these references come with the GLMM support."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from functools import cache
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "glmer"
INDEX = json.loads((FIXTURES / "cases.json").read_text())
FITS = [c["id"] for c in INDEX if c["kind"] == "fit"]
COMPARISONS = [c["id"] for c in INDEX if c["kind"] == "compare"]
TITLE = "Generalized linear mixed model fit by maximum likelihood"
# families whose deviance is -2 logLik: no dispersion parameter, so npar = len(beta) + len(theta)
NO_DISPERSION = {"binomial", "poisson"}


@cache
def case(case_id: str) -> dict:
    return json.loads((FIXTURES / f"{case_id}.json").read_text())


def csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def test_the_index_lists_every_reference_file():
    named = {f"{c['id']}.json" for c in INDEX}
    present = {p.name for p in FIXTURES.glob("*.json") if not p.name.startswith("stamp")}
    assert named == present - {"cases.json", "model_performance.json", "exact_modes.json"}
    assert len(FITS) == len(set(FITS)) >= 15


@pytest.mark.parametrize(
    "stamp, script",
    [
        ("stamp_model_performance.json", "make_model_performance.R"),
        ("stamp_tidy.json", "make_tidy.R"),
        ("stamp_tidy_ci.json", "make_tidy_ci.R"),
    ],
)
def test_the_smaller_scripts_stamps_name_them(stamp, script):
    """model_performance.json and <case>.tidy.csv: made by their scripts as they stand, with the
    fits' lme4."""
    got = json.loads((FIXTURES / stamp).read_text())
    assert got["script"] == f"tests/fixtures/glmer/{script}"
    assert got["packages"]["lme4"] == "1.1.31"
    assert got["script_md5"] == hashlib.md5((FIXTURES / script).read_bytes()).hexdigest()
    if script == "make_model_performance.R":
        assert set(json.loads((FIXTURES / "model_performance.json").read_text())) == set(FITS)


def test_the_stamp_names_this_generator():
    stamp = json.loads((FIXTURES / "stamp.json").read_text())
    assert stamp["script"] == "tests/fixtures/glmer/make_glmer.R"
    assert stamp["packages"]["lme4"] == "1.1.31"
    # the references were made by the script as it stands
    assert stamp["script_md5"] == hashlib.md5((FIXTURES / "make_glmer.R").read_bytes()).hexdigest()


def test_the_folder_stays_small():
    size = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file())
    assert size < 5_000_000


@pytest.mark.parametrize("case_id", FITS)
def test_the_data_file_has_the_rows_lme4_used(case_id):
    ref = case(case_id)
    header, rows = csv_rows(FIXTURES / ref["data"])
    assert set(ref["columns"]) <= set(header)
    assert set(ref["factor_levels"]) <= set(ref["columns"])
    # lme4's na.action = na.omit: a row with NA in any column the model uses is left out
    used = [r for r in rows if all(r[c] not in ("NA", "") for c in ref["columns"])]
    assert len(used) == ref["n_obs"] > 0
    for column, levels in ref["factor_levels"].items():
        assert {r[column] for r in used} <= set(levels)


@pytest.mark.parametrize("case_id", FITS)
def test_likelihood_criteria_and_parameters_agree(case_id):
    ref = case(case_id)
    assert ref["family"] in NO_DISPERSION
    assert ref["sigma"] == 1
    assert ref["deviance"] == -2 * ref["loglik"]
    assert ref["npar"] == len(ref["beta"]) + len(ref["theta"])
    assert ref["aic"] == pytest.approx(ref["deviance"] + 2 * ref["npar"], rel=1e-14)
    assert ref["bic"] == pytest.approx(ref["deviance"] + math.log(ref["n_obs"]) * ref["npar"], rel=1e-14)
    assert ref["df_resid"] == ref["n_obs"] - ref["npar"]
    assert len(ref["theta_names"]) == len(ref["theta_lower"]) == len(ref["theta"])
    # lower bounds: 0 for a standard deviation's theta, null (-Inf) for the others
    assert all(lo is None or t >= lo for t, lo in zip(ref["theta"], ref["theta_lower"], strict=True))
    assert [f["term"] for f in ref["fixed_effects"]] == ref["beta_names"] == ref["vcov"]["terms"]
    assert [f["estimate"] for f in ref["fixed_effects"]] == ref["beta"]
    for f, row in zip(ref["fixed_effects"], ref["vcov"]["matrix"], strict=True):
        assert len(row) == len(ref["beta"])
        assert f["z_value"] == pytest.approx(f["estimate"] / f["std_error"], rel=1e-12)
    # lme4's deviance function gives the reported deviance at the optimum
    assert ref["devfun"]["at_optimum"] == pytest.approx(ref["deviance"], rel=1e-12)
    assert ref["devfun"]["arguments"] == ("theta" if ref["nagq"] == 0 else "c(theta, beta)")
    assert ref["optimizers"]["best_deviance"] <= ref["deviance"]
    assert ref["method"] == ("Laplace" if ref["nagq"] == 1 else "AGQ")


@pytest.mark.parametrize("case_id", FITS)
def test_groups_and_conditional_modes_agree(case_id):
    ref = case(case_id)
    assert {g: len(levels) for g, levels in ref["groups"].items()} == ref["ngroups"]
    terms: dict[str, int] = {}
    for r in ref["random_effects"]:
        terms[r["group"]] = terms.get(r["group"], 0) + 1
    assert set(terms) == set(ref["groups"])
    modes = sum(len(ref["groups"][g]) * k for g, k in terms.items())
    assert len(ref["u"]) == len(ref["b"]) == len(ref["ranef"]["ranef"]) == modes
    assert {(r["group"], r["level"]) for r in ref["ranef"]["ranef"]} == {
        (g, level) for g, levels in ref["groups"].items() for level in levels
    }
    assert all(r["cond_sd"] > 0 for r in ref["ranef"]["ranef"])


@pytest.mark.parametrize("case_id", FITS)
def test_the_printed_summary_is_lme4s(case_id):
    ref = case(case_id)
    text = (FIXTURES / ref["summary_file"]).read_text()
    assert text.startswith(TITLE)
    assert f" Family: {ref['family']}  ( {ref['link']} )\n" in text
    assert f"   Data: {ref['data_name']}\n" in text
    assert f"Number of obs: {ref['n_obs']}, groups:  " in text
    title = " ".join(text.split("[glmerMod]")[0].split())
    method = "(Laplace Approximation)" if ref["nagq"] == 1 else f"Quadrature, nAGQ = {ref['nagq']})"
    assert title.endswith(method)
    assert (FIXTURES / f"{case_id}.tau.txt").exists()
    assert (FIXTURES / f"{case_id}.confint_wald.txt").exists()


@pytest.mark.parametrize("case_id", [c for c in FITS if "predict" in case(c)])
def test_predictions_cover_the_new_data(case_id):
    ref = case(case_id)["predict"]
    _, rows = csv_rows(FIXTURES / ref["newdata"])
    assert len(rows) == ref["n"]
    kinds = {(p["type"], p["re_form"]) for p in ref["predictions"]}
    assert kinds == {(t, r) for t in ("link", "response") for r in ("all", "none")}
    assert all(len(p["fitted"]) == ref["n"] for p in ref["predictions"])


@pytest.mark.parametrize("case_id", COMPARISONS)
def test_comparisons_are_of_the_fits(case_id):
    ref = case(case_id)
    rows = ref["models"]
    assert [m["case"] for m in rows] == next(c["models"] for c in INDEX if c["id"] == case_id)
    for m in rows:
        fit = case(m["case"])
        assert (m["npar"], m["loglik"], m["deviance"], m["aic"]) == (
            fit["npar"],
            fit["loglik"],
            fit["deviance"],
            fit["aic"],
        )
    assert rows[0]["chisq"] is None and rows[0]["df"] is None
    assert rows[1]["chisq"] == pytest.approx(2 * (rows[1]["loglik"] - rows[0]["loglik"]), rel=1e-12)
    assert rows[1]["df"] == rows[1]["npar"] - rows[0]["npar"]
    assert (FIXTURES / ref["anova_file"]).read_text().startswith(f"Data: {ref['data_name']}\nModels:\n")


def test_the_cases_cover_what_the_glmm_support_needs():
    refs = [case(c) for c in FITS]
    assert {r["family"] for r in refs} == NO_DISPERSION
    assert {"logit", "probit", "cloglog", "log"} <= {r["link"] for r in refs}
    assert {0, 1} < {r["nagq"] for r in refs}  # and adaptive quadrature with nAGQ > 1
    assert any(r["singular"] for r in refs)
    assert any(not r["converged"] for r in refs)
    assert any(r["random_effect_correlations"] for r in refs)  # a random slope
    assert any(len(r["groups"]) >= 3 for r in refs)
    assert any(r["offset"] for r in refs) and any("offset(" in r["formula"] for r in refs)
    assert any(r["weights"] for r in refs)
    assert sum("confint_profile" in r for r in refs) >= 2
    # a prediction for a group level the fit did not see
    new_level = False
    for r in refs:
        if "predict" in r:
            _, rows = csv_rows(FIXTURES / r["predict"]["newdata"])
            new_level |= any(row[g] not in r["groups"][g] for row in rows for g in r["groups"] if g in row)
    assert new_level
