"""Confidence intervals, lmerTest's anova and ranova against R's references (tests/fixtures/inference)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from mlmcli.pipeline import lmer
from mlmcli.rcompat.distributions import f_upper
from mlmcli.render.inference import anova_text, confint_text, ranova_text
from mlmcli.stats.anova import anova_report, fstat_ddf
from mlmcli.stats.confint import confint_report, percent_labels
from mlmcli.stats.ranova import ranova_report
from tests.commands import mlm
from tests.refcheck import at_lme4

ROOT = Path(__file__).resolve().parent.parent
REFS = ROOT / "tests" / "fixtures" / "inference"
CASES = ["heck_ses", "heck_public", "sleep", "sleep_ml", "penicillin", "pastes", "factorial", "dye2", "sleep_uncorr"]
# lme4 reads each bound off a spline through profile points; the exact crossing agrees to this
# fraction of the interval's width (README: "Inference"; measured 6e-7 to 2.7e-4, the largest where
# a variance is estimated as zero)
PROFILE_TOL = 3e-4
_fits: dict[str, tuple] = {}


def ref(case: str) -> dict:
    return json.loads((REFS / f"{case}.json").read_text())


def optimum(case: str):
    if case not in _fits:
        c = ref(case)["case"]
        _fits[case] = lmer(str(ROOT / c["data"]), c["formula"], reml=c["reml"])
    return _fits[case]


def fitted(case: str):
    """Ours at lme4's theta (tests/refcheck.py: at_lme4)."""
    model, frame = optimum(case)
    return at_lme4(model, ref(case)), frame


def printed(case: str, what: str) -> str:
    return (REFS / f"{case}.{what}.txt").read_text()


def assert_intervals(got: dict, want: dict, tol: float, names: str = "parameter") -> None:
    """`names`: our key holding R's names (R's Wald references carry confint()'s printed names)."""
    assert [r[names] for r in got["intervals"]] == [r["parameter"] for r in want["intervals"]]
    for g, w in zip(got["intervals"], want["intervals"], strict=True):
        if w["lower"] is None:
            assert g["lower"] is None and g["upper"] is None
            continue
        width = w["upper"] - w["lower"]
        assert g["lower"] == pytest.approx(w["lower"], abs=tol * width), g["parameter"]
        assert g["upper"] == pytest.approx(w["upper"], abs=tol * width), g["parameter"]


# ------------------------------------------------------------ confint


@pytest.mark.parametrize("case", CASES)
def test_wald_intervals_and_text_match_lme4(case):
    model, _ = fitted(case)
    got = confint_report(model, "wald")
    assert_intervals(got, ref(case)["confint_wald"], 1e-6, names="printed_name")
    # JSON names as confint(fit, oldNames = FALSE), whatever the method
    profile_names = [r["parameter"] for r in ref(case)["confint_profile"]["intervals"]]
    assert [r["parameter"] for r in got["intervals"]] == profile_names
    assert confint_text(got) == printed(case, "confint_wald")


@pytest.mark.parametrize("case", [c for c in CASES if c != "heck_ses"])
def test_profile_intervals_match_lme4(case):
    model, _ = fitted(case)
    got = confint_report(model, "profile")
    assert_intervals(got, ref(case)["confint_profile"], PROFILE_TOL)


def test_profile_at_another_level_and_selected_parameters():
    model, _ = fitted("heck_public")
    got = confint_report(model, "profile", 0.9, ["sigma", "ses"])
    want = ref("heck_public")["confint_profile_90"]
    want = {**want, "intervals": [r for r in want["intervals"] if r["parameter"] in ("sigma", "ses")]}
    assert_intervals(got, want, PROFILE_TOL)
    assert got["labels"] == ["5 %", "95 %"]


def test_profile_boundaries_give_the_bounds():
    # a variance estimated as zero gives lower bound 0 (Dyestuff2, Pastes' batch)
    for case, name in (("dye2", "sd_(Intercept)|Batch"), ("pastes", "sd_(Intercept)|batch")):
        model, _ = fitted(case)
        row = next(r for r in confint_report(model, "profile", parm=[name])["intervals"])
        assert row["lower"] == 0.0 and row["upper"] > 0.0


def test_profile_of_a_correlation_on_its_bound():
    # heck2011's ML fit has the correlation at -1: lme4 reports -1 as the lower bound.  The rest of
    # that irregular profile is where lme4's spline and the exact crossing part (up to 5% of a width)
    model, _ = fitted("heck_ses")
    got = confint_report(model, "profile", parm=["cor_ses.(Intercept)|schcode", "ses"])
    want = {r["parameter"]: r for r in ref("heck_ses")["confint_profile"]["intervals"]}
    cor, ses = got["intervals"]
    assert cor["lower"] == -1.0
    assert cor["upper"] == pytest.approx(want[cor["parameter"]]["upper"], abs=5e-3)
    assert ses["lower"] == pytest.approx(want["ses"]["lower"], rel=1e-4)
    assert ses["upper"] == pytest.approx(want["ses"]["upper"], rel=1e-4)


def test_percent_labels_follow_format_perc():
    assert percent_labels(0.95) == ["2.5 %", "97.5 %"]
    assert percent_labels(0.99) == ["0.5 %", "99.5 %"]
    assert percent_labels(0.8) == ["10 %", "90 %"]


# ------------------------------------------------------------ anova


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", [1, 2, 3])
def test_anova_matches_lmertest(case, kind):
    model, frame = fitted(case)
    got = anova_report(model, frame, kind)
    want = ref(case)[f"anova_{kind}"]
    assert [r["term"] for r in got["terms"]] == [r["term"] for r in want["terms"]]
    for g, w in zip(got["terms"], want["terms"], strict=True):
        assert g["num_df"] == w["num_df"]
        for key in ("sum_sq", "mean_sq", "den_df", "f_value", "p_value"):
            assert g[key] == pytest.approx(w[key], rel=1e-6), (g["term"], key)
    assert anova_text(got) == printed(case, f"anova{kind}")


def test_fstat_ddf_as_lmertest():
    assert fstat_ddf([10.0]) == 10.0
    assert fstat_ddf([10.0, 10.0]) == 10.0
    assert fstat_ddf([1.5, 30.0]) == 2.0
    E = 10 / 8 + 20 / 18
    assert fstat_ddf([10.0, 20.0]) == pytest.approx(2 * E / (E - 2))


def test_f_upper_tail():
    # F(2, d2): P(F > f) = (1 + 2f/d2)^(-d2/2)
    assert f_upper(3.0, 2, 10) == pytest.approx(1.6**-5, rel=1e-12)
    assert f_upper(400.0, 2, 10) == pytest.approx(81.0**-5, rel=1e-10)
    assert f_upper(1.0, 2, 2) == pytest.approx(0.5, rel=1e-12)  # F(2,2): 1 / (1 + f)
    assert f_upper(0.0, 3, 7) == 1.0


# ------------------------------------------------------------ ranova


@pytest.mark.parametrize("case", CASES)
def test_ranova_matches_lmertest(case):
    model, frame = fitted(case)
    got = ranova_report(model, frame)
    want = ref(case)["ranova"]
    assert [r["term"] for r in got["terms"]] == [r["term"] for r in want["terms"]]
    for g, w in zip(got["terms"], want["terms"], strict=True):
        assert g["npar"] == w["npar"] and g["df"] == w["df"]
        assert g["loglik"] == pytest.approx(w["loglik"], abs=1e-6)
        if w["p_value"] is not None:
            assert g["p_value"] == pytest.approx(w["p_value"], rel=1e-5)
    assert ranova_text(got) == printed(case, "ranova")


# ------------------------------------------------------------ command line


def schema(name: str) -> dict:
    return json.loads((ROOT / "mlmcli" / "schemas" / f"{name}.schema.json").read_text())


DYE2 = "tests/fixtures/lme4/data/Dyestuff2.csv"
FACT = "tests/fixtures/lme4/data/factorial.csv"


def test_cli_confint_text_and_json():
    p = mlm("confint", DYE2, "Yield ~ 1 + (1|Batch)", "--method", "wald")
    assert p.returncode == 0, p.stderr
    assert p.stdout == printed("dye2", "confint_wald")
    p = mlm("confint", DYE2, "Yield ~ 1 + (1|Batch)", "-f", "json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    jsonschema.validate(out, schema("confint"))
    assert out["method"] == "profile" and out["intervals"][0]["lower"] == 0.0


def test_cli_anova_and_ranova():
    p = mlm("anova", FACT, "y ~ f1*f2*x + (1|g)", "--type", "3")
    assert p.returncode == 0, p.stderr
    assert p.stdout == printed("factorial", "anova3")
    p = mlm("anova", FACT, "y ~ f1*f2*x + (1|g)", "--type", "1", "-f", "json")
    jsonschema.validate(json.loads(p.stdout), schema("anova"))
    p = mlm("ranova", FACT, "y ~ f1*f2*x + (1|g)", "-f", "json")
    assert p.returncode == 0, p.stderr
    jsonschema.validate(json.loads(p.stdout), schema("ranova"))
    p = mlm("ranova", FACT, "y ~ f1*f2*x + (1|g)", "-f", "table")
    assert p.returncode == 0 and "(1 | g)" in p.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("confint", DYE2, "Yield ~ 1 + (1|Batch)", "--level", "1.5"), "--level"),
        (("confint", DYE2, "Yield ~ 1 + (1|Batch)", "--parm", "nope"), "no parameter 'nope'"),
        (("anova", FACT, "y ~ x + (1|g)", "--type", "4"), "--type"),
    ],
)
def test_cli_bad_options_exit_2(args, message):
    p = mlm(*args)
    assert p.returncode == 2
    # the fit's own warnings (a singular fit here) may come first; the error is one line
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("mlm: error:") and message in last
    assert "Traceback" not in p.stderr


def test_cli_fit_ci_adds_intervals_to_json():
    p = mlm(
        "fit",
        "tests/fixtures/lme4/data/sleepstudy.csv",
        "Reaction ~ Days + (Days|Subject)",
        "--ci",
        "profile",
        "-f",
        "json",
    )
    assert p.returncode == 0, p.stderr
    fit = json.loads(p.stdout)
    jsonschema.validate(fit, schema("fit"))
    want = {r["parameter"]: r for r in ref("sleep")["confint_profile"]["intervals"]}
    for row in fit["fixed_effects"]:
        w = want[row["term"]]
        width = w["upper"] - w["lower"]
        assert row["conf_low"] == pytest.approx(w["lower"], abs=PROFILE_TOL * width)
        assert row["conf_high"] == pytest.approx(w["upper"], abs=PROFILE_TOL * width)
    assert fit["confint"] == {"method": "profile", "level": 0.95, "labels": ["2.5 %", "97.5 %"]}


def test_cli_fit_ci_is_not_part_of_lme4_text():
    p = mlm(
        "fit",
        "tests/fixtures/lme4/data/sleepstudy.csv",
        "Reaction ~ Days + (Days|Subject)",
        "--ci",
        "wald",
        "-f",
        "text",
    )
    assert p.returncode == 0
    assert "2.5 %" not in p.stdout and "--ci applies to json, table and csv output" in p.stderr


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("confint", [DYE2, "Yield ~ 1 + (1|Batch)", "--method", "wald"]),
        ("anova", [FACT, "y ~ f1*x + (1|g)"]),
        ("ranova", [FACT, "y ~ f1*x + (1|g)"]),
        ("fit", [DYE2, "Yield ~ 1 + (1|Batch)", "--ci", "wald"]),
    ],
)
def test_every_json_key_is_in_the_schema(command, args):
    from tests.test_cli_exit import undeclared

    printed_schema = mlm("schema", command)
    assert printed_schema.returncode == 0
    sch = json.loads(printed_schema.stdout)
    jsonschema.Draft202012Validator.check_schema(sch)
    doc = json.loads(mlm(command, *args, "-f", "json").stdout)
    jsonschema.validate(doc, sch)
    assert undeclared(doc, sch) == []
    assert doc["schema_version"] == 1


def test_profile_text_prints_lme4s_default_names():
    """confint(fit) prints .sig01, ..., .sigma (oldNames = TRUE); the JSON keeps oldNames = FALSE."""
    model, _ = fitted("sleep")
    got = confint_report(model, "profile")
    assert [r["printed_name"] for r in got["intervals"]] == [
        ".sig01",
        ".sig02",
        ".sig03",
        ".sigma",
        "(Intercept)",
        "Days",
    ]
    assert [r["parameter"] for r in got["intervals"]] == [
        r["parameter"] for r in ref("sleep")["confint_profile"]["intervals"]
    ]
    assert [line.split()[0] for line in confint_text(got).splitlines()[1:]] == [
        r["printed_name"] for r in got["intervals"]
    ]
