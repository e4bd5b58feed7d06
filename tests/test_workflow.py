"""The analyst's workflow against R: centring within clusters, ICC and R² (performance), predictions
(lme4's predict), augment (broom.mixed) and functions in formulas. References: fixtures/workflow/make_refs.R."""

from __future__ import annotations

import csv
import io
import json
import re
from functools import cache
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from mlmcli.design import build_design
from mlmcli.errors import DataError, FormulaError
from mlmcli.formula import parse_formula
from mlmcli.io.csv import read_csv
from mlmcli.io.frame import Frame
from mlmcli.model import at_theta, fit_model, fitted_values
from mlmcli.stats.predict import predict_new
from tests.commands import mlm
from tests.test_cli_exit import undeclared

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "workflow"
REFS = json.loads((FIXTURES / "refs.json").read_text())
SCHEMAS = ROOT / "mlmcli" / "schemas"
SLEEP = str(ROOT / "tests" / "fixtures" / "lme4" / "data" / "sleepstudy.csv")
SLEEP_NEW = str(FIXTURES / "sleep_new.csv")
HECK = str(ROOT / "sample_data" / "heck2011.csv")
SS = "Reaction ~ Days + (Days|Subject)"

# R's formulas use precomputed columns for cwc() and cmean(): the names differ, the numbers agree
NAMES = {
    "heck_cwc": ["(Intercept)", "cwc(ses, schcode)", "cmean(ses, schcode)"],
    "sleep_na_cwc": ["(Intercept)", "cwc(Days, Subject)", "cmean(Days, Subject)"],
}


@cache
def fitted(formula: str, data: str):
    frame = read_csv(str(ROOT / data))
    f = parse_formula(formula)
    return fit_model(f, build_design(frame, f)), frame


@cache
def at_lme4(formula: str, data: str):
    """Ours at lme4's theta for that fit (lme4 stops up to ~1e-6 above the minimum, where our
    optimizer goes on): every number R reports there is ours to rounding."""
    model, frame = fitted(formula, data)
    ref = next((c for c in REFS["fits"] if (c["formula"], c["data"]) == (formula, data)), None)
    return (model if ref is None else at_theta(model, _list(ref["theta"]))), frame


def _list(x) -> list:
    return x if isinstance(x, list) else [x]


# ------------------------------------------------------------------ fits, ICC and R² against R


@pytest.mark.parametrize("case", REFS["fits"], ids=lambda c: c["name"])
def test_fit_matches_lme4_and_performance(case):
    from mlmcli.effects import variance_components

    optimum, _ = fitted(case["formula"], case["data"])
    # our optimum is lme4's (it converged on every fit here), to BOBYQA's own tolerances
    assert optimum.criterion <= case["criterion"] + 1e-9 * abs(case["criterion"])
    assert optimum.criterion == pytest.approx(case["criterion"], rel=1e-8)
    np.testing.assert_allclose(optimum.theta, _list(case["theta"]), rtol=1e-4, atol=1e-4)
    model, _ = at_lme4(case["formula"], case["data"])
    assert model.design.xnames == NAMES.get(case["name"], _list(case["fixef_names"]))
    assert model.n == case["n_obs"]
    np.testing.assert_allclose(model.beta, _list(case["fixef"]), rtol=1e-6, atol=1e-8)
    assert model.sigma == pytest.approx(case["sigma"], rel=1e-6)
    assert model.criterion == pytest.approx(case["criterion"], rel=1e-9)
    k = len(case["fitted"])
    pred = fitted_values(model)
    np.testing.assert_allclose(pred.values[:k], case["fitted"], rtol=1e-7)
    np.testing.assert_allclose(model.residuals[:k], case["resid"], atol=1e-6)
    e = variance_components(model)
    for got, want in [(e.icc, case["icc"]), (e.r2, case["r2"])]:
        for key, value in want.items():
            if value is None:
                assert got[key] is None, key
            else:
                assert got[key] == pytest.approx(value, abs=1e-7), key


def test_singular_fit_has_no_icc_and_says_why():
    from mlmcli.effects import SINGULAR_WARNING, variance_components

    model, _ = fitted("Yield ~ 1 + (1|Batch)", "tests/fixtures/lme4/data/Dyestuff2.csv")
    e = variance_components(model)
    assert e.icc == {"adjusted": None, "unadjusted": None}
    assert e.r2 == {"marginal": 0.0, "conditional": None}
    assert e.warnings == [SINGULAR_WARNING]


def test_cluster_means_use_only_the_rows_the_model_uses():
    model, frame = fitted(
        "Reaction ~ cwc(Days, Subject) + cmean(Days, Subject) + (1|Subject)",
        "tests/fixtures/workflow/sleepstudy_na.csv",
    )
    design = model.design
    days = frame.columns["Days"][design.rows]
    subject = frame.columns["Subject"][design.rows]
    means = design.values["cmean(Days, Subject)"]
    for s in np.unique(subject):
        rows = subject == s
        assert np.allclose(means[rows], days[rows].mean())
    # subject 308 lost the reaction of day 2: its mean day is no longer 4.5
    assert means[subject == 308][0] == pytest.approx(np.mean([0, 1, 3, 4, 5, 6, 7, 8, 9]))
    np.testing.assert_allclose(design.values["cwc(Days, Subject)"], days - means)


# ------------------------------------------------------------------ predictions against R


def _new_frame(case) -> Frame:
    if case["newdata"] != "known":
        return read_csv(str(ROOT / case["newdata"]))
    new = read_csv(SLEEP_NEW)
    keep = np.flatnonzero(new.columns["Subject"] != 999)
    return Frame(new.name, {k: v[keep] for k, v in new.columns.items()}, len(keep), new.int_columns)


@pytest.mark.parametrize("case", [c for c in REFS["predictions"] if "newdata" in c], ids=lambda c: c["name"])
def test_predictions_match_lme4(case):
    model, frame = at_lme4(case["formula"], case["data"])
    new = _new_frame(case)
    got = predict_new(model, frame, new, random=True, allow_new_levels=True)
    np.testing.assert_allclose(got.values, case["all"], rtol=1e-7)
    np.testing.assert_allclose(got.fixed, case["none"], rtol=1e-7)
    fixed_only = predict_new(model, frame, new, random=False)  # no level checks without random effects
    np.testing.assert_allclose(fixed_only.values, case["none"], rtol=1e-7)
    if case.get("error"):
        # lme4's words first, then the option that allows new levels
        hint = " (give --allow-new-levels to predict them without their random effects)"
        with pytest.raises(DataError, match="^" + re.escape(case["error"] + hint) + "$"):
            predict_new(model, frame, new, random=True)


@pytest.mark.parametrize("case", [c for c in REFS["predictions"] if "augment" in c], ids=lambda c: c["name"])
def test_augment_matches_broom_mixed(case):
    model, _ = at_lme4(case["formula"], case["data"])
    pred = fitted_values(model)
    a = case["augment"]
    np.testing.assert_allclose(pred.values, a[".fitted"], rtol=1e-8)
    np.testing.assert_allclose(pred.fixed, a[".fixed"], rtol=1e-8)
    np.testing.assert_allclose(model.residuals, a[".resid"], atol=1e-6)


def test_a_new_factor_level_in_the_fixed_part_is_an_error_as_in_r():
    case = next(c for c in REFS["predictions"] if c["name"] == "heck_factor")
    model, frame = fitted(case["formula"], case["data"])
    new = read_csv(str(ROOT / case["newdata"]))
    new.columns["public"] = np.array([0.0, 2.0, 1.0, 0.0])
    with pytest.raises(DataError, match="^" + re.escape(case["factor_error"]) + "$"):
        predict_new(model, frame, new, allow_new_levels=True)


def test_missing_values_in_new_data_give_missing_predictions(tmp_path):
    model, frame = fitted(SS, "tests/fixtures/lme4/data/sleepstudy.csv")
    path = tmp_path / "new.csv"
    path.write_text("Days,Subject\n1,308\nNA,308\n2,NA\n")
    new = read_csv(str(path))
    got = predict_new(model, frame, new, allow_new_levels=True)
    assert np.isfinite(got.values[0]) and np.isnan(got.values[1])
    assert got.values[2] == pytest.approx(got.fixed[2])  # a missing group: the population value
    with pytest.raises(DataError, match="NAs are not allowed in prediction data for grouping variables"):
        predict_new(model, frame, new)


# ------------------------------------------------------------------ the command line


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


def test_fit_json_has_icc_and_r2_and_follows_the_schema():
    p = mlm("fit", SLEEP, SS, "-f", "json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    jsonschema.validate(doc, schema("fit"))
    assert undeclared(doc, schema("fit")) == []
    from mlmcli.effects import variance_components

    # the library's numbers at the optimum (performance's at lme4's theta: test_fit_matches_...)
    e = variance_components(fitted(SS, "tests/fixtures/lme4/data/sleepstudy.csv")[0])
    assert doc["icc"]["adjusted"] == pytest.approx(e.icc["adjusted"], rel=1e-12)
    assert doc["r2"]["conditional"] == pytest.approx(e.r2["conditional"], rel=1e-12)
    assert doc["effects_warnings"] == []


def test_singular_fit_json_gives_null_icc_with_a_note():
    p = mlm("fit", str(ROOT / "tests/fixtures/lme4/data/Dyestuff2.csv"), "Yield ~ 1 + (1|Batch)", "-f", "json")
    assert p.returncode == 0
    doc = json.loads(p.stdout)
    jsonschema.validate(doc, schema("fit"))
    assert doc["icc"] == {"adjusted": None, "unadjusted": None} and doc["r2"]["conditional"] is None
    assert "mlm: note: Can't compute random effect variances" in p.stderr


def test_fit_table_shows_icc_and_r2_but_lme4_text_does_not():
    table = mlm("fit", SLEEP, SS, "-f", "table", "--no-color").stdout
    assert "Variance explained" in table
    icc_line = next(line for line in table.splitlines() if line.startswith("ICC"))
    assert icc_line.split()[1:] == ["0.722", "0.521"]
    r2_line = next(line for line in table.splitlines() if line.startswith("R²"))
    assert r2_line.split()[1:] == ["0.279", "0.799"]
    text = mlm("fit", SLEEP, SS, "-f", "text")
    assert "ICC" not in text.stdout and "note" not in text.stderr


def test_predict_csv_and_json():
    p = mlm("predict", SLEEP, SS, "--newdata", SLEEP_NEW, "--allow-new-levels")
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    model, frame = fitted(SS, "tests/fixtures/lme4/data/sleepstudy.csv")
    ref = predict_new(model, frame, read_csv(SLEEP_NEW), random=True, allow_new_levels=True)
    assert list(rows[0]) == ["Days", "Subject", ".fitted"]
    assert [r["Days"] for r in rows] == ["0", "4.5", "9", "2", "12"]
    np.testing.assert_allclose([float(r[".fitted"]) for r in rows], ref.values, rtol=1e-12)
    p = mlm("predict", SLEEP, SS, "--newdata", SLEEP_NEW, "--re-form", "none", "-f", "json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    jsonschema.validate(doc, schema("predict"))
    assert undeclared(doc, schema("predict")) == []
    assert doc["re_form"] == "none" and doc["newdata_name"] == "sleep_new"
    np.testing.assert_allclose([r[".fitted"] for r in doc["rows"]], ref.fixed, rtol=1e-12)


def test_predict_without_new_data_gives_the_fitted_values():
    p = mlm("predict", str(FIXTURES / "sleepstudy_na.csv"), SS)
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert len(rows) == 171 and list(rows[0]) == ["Reaction", "Days", "Subject", ".fitted"]
    model, _ = fitted(SS, "tests/fixtures/workflow/sleepstudy_na.csv")
    np.testing.assert_allclose([float(r[".fitted"]) for r in rows], model.fitted, rtol=1e-12)


def test_predict_new_level_is_an_error_naming_the_level():
    p = mlm("predict", SLEEP, SS, "--newdata", SLEEP_NEW)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().splitlines() == [
        "mlm: error: new levels detected in newdata: 999 (give --allow-new-levels to predict them without their "
        "random effects)"
    ]


def test_predict_new_data_without_a_needed_column(tmp_path):
    path = tmp_path / "new.csv"
    path.write_text("Subject\n308\n")
    p = mlm("predict", SLEEP, SS, "--newdata", str(path))
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1] == "mlm: error: the new data have no column 'Days', which the model needs"


def test_augment_csv_and_json_with_an_offset():
    f = "Reaction ~ Days + offset(Days * 10) + (Days|Subject)"
    model, _ = fitted(f, "tests/fixtures/lme4/data/sleepstudy.csv")
    ref = fitted_values(model)
    p = mlm("augment", SLEEP, f)
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert list(rows[0]) == ["Reaction", "Days", "offset(Days * 10)", "Subject", ".fitted", ".resid", ".fixed"]
    np.testing.assert_allclose([float(r[".fitted"]) for r in rows], ref.values, rtol=1e-12)
    doc = json.loads(mlm("augment", SLEEP, f, "-f", "json").stdout)
    jsonschema.validate(doc, schema("augment"))
    assert doc["n"] == 180 and doc["rows"][0]["Subject"] == 308
    np.testing.assert_allclose([r[".fixed"] for r in doc["rows"]], ref.fixed, rtol=1e-12)


@pytest.mark.parametrize("command", ["predict", "augment"])
def test_schema_command_prints_the_new_schemas(command):
    p = mlm("schema", command)
    assert p.returncode == 0
    jsonschema.Draft202012Validator.check_schema(json.loads(p.stdout))


# ------------------------------------------------------------------ formulas


def test_term_names_print_as_written():
    f = parse_formula(
        'y ~ cwc(x, g) + cmean(x, g) + relevel(f, ref = "b") + factor(z, levels = c(3, 1)) + '
        "offset(log(n)) + (cwc(x, g)|g)"
    )
    assert f.fixed.labels == ["cwc(x, g)", "cmean(x, g)", 'relevel(f, ref = "b")', "factor(z, levels = c(3, 1))"]
    assert [v.label for v in f.offsets] == ["offset(log(n))"]
    assert f.columns() == ["y", "x", "g", "f", "z", "n"]
    assert parse_formula("y/10 ~ sin(x * pi) + (1|g)").columns() == ["y", "x", "g"]


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ('y ~ "a" + (1|g)', "invalid term in model formula: a string"),
        ("y ~ relevel(f, ref = x) + (1|g)", "relevel(): ref must be a level in quotes or a number"),
        ("y ~ factor(f, levels = x) + (1|g)", 'factor(): levels must be levels in quotes, as c("a", "b")'),
        ("y ~ cwc(x, g + h) + (1|g)", "cwc(): the cluster must be a column name"),
        ("y ~ x + (offset(z)|g)", "offset() belongs to the fixed part of the formula"),
        ("10 ~ x + (1|g)", "the response must be a column or a function of columns"),
        ("y ~ round(x, d) + (1|g)", "round(): digits must be TRUE, FALSE or a number"),
        ("y > 1 | z ~ x + (1|g)", "random-effects terms belong on the right"),
    ],
)
def test_formula_errors(formula, message):
    with pytest.raises(FormulaError, match="^" + re.escape(message)):
        parse_formula(formula)


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ('Reaction ~ relevel(Days, ref = "1") + (1|Subject)', "'relevel' only for (unordered) factors"),
        ('diameter ~ relevel(sample, ref = "Z") + (1|plate)', "'ref' must be an existing level"),
        ("Reaction ~ pmin(Days) + (1|Subject)", "pmin() needs two arguments"),
    ],
)
def test_function_errors_on_data(formula, message):
    name = "Penicillin.csv" if "diameter" in formula else "sleepstudy.csv"
    data = ROOT / "tests" / "fixtures" / "lme4" / "data" / name
    p = mlm("fit", str(data), formula)
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr
