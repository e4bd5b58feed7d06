"""`mlm fit --family ... --ci`: lme4's confint() of a glmer fit beside its fixed effects in json, table
and csv, as the lmer fit has them. The intervals are `mlm confint --family`'s: Wald against every
case's confint(fit, method = "Wald"), profile against cbpp_laplace's confint(fit), and the CSV against
broom.mixed's tidy(fit, conf.int = TRUE) with conf.method "Wald" and "profile"
(tests/fixtures/glmer/make_tidy_ci.R)."""

from __future__ import annotations

import csv
import io
import json

import jsonschema
import pytest

from mlmcli.render.tidy import glmer_tidy_csv
from mlmcli.stats.confint import add_fixed_effect_intervals
from tests.commands import mlm
from tests.test_glmer import CASES, FIXTURES, LME4_STOPS_SHORT, fitted, reference
from tests.test_glmer_confint import CBPP, PROFILE_TOL, WALD_TOL, cbpp_csv

WIDE = {"NO_COLOR": "1", "COLUMNS": "140"}


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def near(got: float, want: float, lo: float, hi: float, tol: float) -> bool:
    """`got` within `tol` of the reference interval's width of `want`."""
    return abs(got - want) <= tol * (hi - lo)


def assert_fixed_intervals(fixed: list[dict], want: list[dict], tol: float) -> None:
    """conf_low/conf_high of each fixed effect against confint()'s rows of the fixed effects, in order."""
    assert len(fixed) == len(want)
    for row, w in zip(fixed, want, strict=True):
        width = w["upper"] - w["lower"]
        assert row["conf_low"] == pytest.approx(w["lower"], abs=tol * width), row["term"]
        assert row["conf_high"] == pytest.approx(w["upper"], abs=tol * width), row["term"]


def fixed_rows(intervals: list[dict]) -> list[dict]:
    """confint()'s fixed-effect rows: those after the variance parameters (sd_, cor_)."""
    return [r for r in intervals if not r["parameter"].startswith(("sd_", "cor_"))]


# ------------------------------------------------------------ the report, every case


@pytest.mark.parametrize("case", [c["id"] for c in CASES if c["id"] not in LME4_STOPS_SHORT])
def test_wald_intervals_on_the_report_are_lme4s(case):
    fit = fitted(case)
    report = fit.to_dict()
    ci = add_fixed_effect_intervals(report, fit.model, "wald", 0.95)
    want = reference(case)["confint_wald"]["intervals"]
    assert_fixed_intervals(report["fixed_effects"], fixed_rows(want), WALD_TOL)
    # Wald gives the variance parameters nothing: NA in the CSV, as lme4 and broom.mixed
    nv = len(want) - len(report["fixed_effects"])
    assert ci[:nv] == [(None, None)] * nv
    assert report["confint"] == {"method": "wald", "level": 0.95, "labels": ["2.5 %", "97.5 %"]}


# ------------------------------------------------------------ json


def test_json_wald_is_confints_and_follows_the_schema(tmp_path):
    data = cbpp_csv(tmp_path)
    out = mlm("fit", data, CBPP, "--family", "binomial", "--ci", "wald", "-f", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    schema = json.loads(mlm("schema", "glmer_fit").stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(doc, schema)
    from tests.test_cli_exit import undeclared

    assert undeclared(doc, schema) == []
    assert doc["confint"] == {"method": "wald", "level": 0.95, "labels": ["2.5 %", "97.5 %"]}
    want = fixed_rows(reference("cbpp_laplace")["confint_wald"]["intervals"])
    assert_fixed_intervals(doc["fixed_effects"], want, WALD_TOL)
    # and exactly the confint command's, which computes them the same way on the same fit
    same = json.loads(mlm("confint", data, CBPP, "--family", "binomial", "--method", "wald", "-f", "json").stdout)
    by_name = {r["parameter"]: r for r in same["intervals"]}
    for row in doc["fixed_effects"]:
        assert (row["conf_low"], row["conf_high"]) == (by_name[row["term"]]["lower"], by_name[row["term"]]["upper"])


def test_json_profile_is_lme4s_profile(tmp_path):
    out = mlm("fit", cbpp_csv(tmp_path), CBPP, "--family", "binomial", "--ci", "profile", "-f", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    jsonschema.validate(doc, json.loads(mlm("schema", "glmer_fit").stdout))
    assert doc["confint"]["method"] == "profile"
    want = fixed_rows(reference("cbpp_laplace")["confint_profile"]["intervals"])
    assert_fixed_intervals(doc["fixed_effects"], want, PROFILE_TOL)


def test_json_boot_is_the_confint_commands_with_the_same_seed(tmp_path):
    data = cbpp_csv(tmp_path)
    boot = ("--nsim", "20", "--seed", "3")
    out = mlm("fit", data, CBPP, "--family", "binomial", "--ci", "boot", *boot, "--level", "0.9", "-f", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    jsonschema.validate(doc, json.loads(mlm("schema", "glmer_fit").stdout))
    assert doc["confint"] == {
        "method": "boot",
        "level": 0.9,
        "nsim": 20,
        "seed": 3,
        "failed": 0,
        "singular": 0,
        "labels": ["5 %", "95 %"],
    }
    cmd = mlm("confint", data, CBPP, "--family", "binomial", "--method", "boot", *boot, "--level", "0.9", "-f", "json")
    by_name = {r["parameter"]: r for r in json.loads(cmd.stdout)["intervals"]}
    for row in doc["fixed_effects"]:
        assert (row["conf_low"], row["conf_high"]) == (by_name[row["term"]]["lower"], by_name[row["term"]]["upper"])
        assert row["conf_low"] < row["estimate"] < row["conf_high"]


# ------------------------------------------------------------ csv: broom.mixed's tidy(conf.int = TRUE)


@pytest.mark.parametrize("method", ["wald", "profile"])
def test_csv_is_broom_mixeds_tidy_with_intervals(tmp_path, method):
    out = mlm("fit", cbpp_csv(tmp_path), CBPP, "--family", "binomial", "--ci", method, "-f", "csv")
    assert out.returncode == 0, out.stderr
    ours = rows(out.stdout)
    theirs = rows((FIXTURES / f"cbpp_laplace.tidy_{method}.csv").read_text())
    assert out.stdout.splitlines()[0] == (FIXTURES / f"cbpp_laplace.tidy_{method}.csv").read_text().splitlines()[0]
    assert [r["effect"] for r in ours] == [r["effect"] for r in theirs]
    # the CSV's period is text (periodp2, ...): the terms differ by that p only
    assert [r["term"].replace("periodp", "period") for r in ours] == [r["term"] for r in theirs]
    tol = WALD_TOL if method == "wald" else PROFILE_TOL
    for o, t in zip(ours, theirs, strict=True):
        if t["conf.low"] == "NA":  # Wald: no interval for a variance parameter
            assert (o["effect"], o["conf.low"], o["conf.high"]) == ("ran_pars", "NA", "NA")
            continue
        lo, hi = float(t["conf.low"]), float(t["conf.high"])
        assert near(float(o["conf.low"]), lo, lo, hi, tol), (o, t)
        assert near(float(o["conf.high"]), hi, lo, hi, tol), (o, t)
    # the profile's herd sd is lme4's confint(fit)'s .sig01
    if method == "profile":
        sig = reference("cbpp_laplace")["confint_profile"]["intervals"][0]
        assert sig["parameter"] == "sd_(Intercept)|herd"
        assert near(float(ours[-1]["conf.low"]), sig["lower"], sig["lower"], sig["upper"], PROFILE_TOL)
        assert near(float(ours[-1]["conf.high"]), sig["upper"], sig["lower"], sig["upper"], PROFILE_TOL)


def test_csv_boot_gives_the_variance_parameters_too(tmp_path):
    boot = ("--ci", "boot", "--nsim", "20", "--seed", "3")
    out = mlm("fit", cbpp_csv(tmp_path), CBPP, "--family", "binomial", *boot, "-f", "csv")
    assert out.returncode == 0, out.stderr
    herd = rows(out.stdout)[-1]
    assert herd["term"] == "sd__(Intercept)"
    assert 0 < float(herd["conf.low"]) < float(herd["estimate"]) < float(herd["conf.high"])


def test_the_tidy_csv_without_ci_is_unchanged():
    fit = fitted("cbpp_laplace")
    assert glmer_tidy_csv(fit.to_dict()).splitlines()[0] == (
        '"effect","group","term","estimate","std.error","statistic","p.value"'
    )


# ------------------------------------------------------------ table and text


def test_table_shows_the_intervals_beside_the_estimates(tmp_path):
    out = mlm(
        "fit",
        cbpp_csv(tmp_path),
        CBPP,
        "--family",
        "binomial",
        "--ci",
        "wald",
        "--level",
        "0.9",
        "-f",
        "table",
        env=WIDE,
    )
    assert out.returncode == 0, out.stderr
    header = next(ln for ln in out.stdout.splitlines() if "Estimate" in ln)
    assert header.split()[:6] == ["Estimate", "Std.", "Error", "5", "%", "95"]
    assert header.index("5 %") < header.index("z value")
    model = fitted("cbpp_laplace").model
    lo = model.beta[0] - 1.6448536269514722 * model.std_errors[0]
    intercept = next(ln for ln in out.stdout.splitlines() if ln.startswith("(Intercept)"))
    assert float(intercept.split()[3]) == pytest.approx(lo, abs=5e-4)


def test_text_ignores_ci_with_a_note(tmp_path):
    data = cbpp_csv(tmp_path)
    plain = mlm("fit", data, CBPP, "--family", "binomial", "-f", "text")
    out = mlm("fit", data, CBPP, "--family", "binomial", "--ci", "profile", "-f", "text")
    assert out.returncode == 0, out.stderr
    assert out.stdout == plain.stdout
    assert "--ci applies to json, table and csv output; ignored with --format text" in out.stderr


# ------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ci", "profile", "--engine", "dask"], "--ci profile is not offered with --engine dask"),
        (["--ci", "boot", "--engine", "dask"], "--ci boot is not offered with --engine dask"),
        (["--ci", "profile", "--nagq", "0"], "nAGQ = 0"),
        (["--ci", "wald", "--level", "2"], "--level"),
        (["--ci", "boot", "--nsim", "0"], "--nsim"),
        (["--ci", "boot", "--seed", "-1"], "--seed"),
    ],
)
def test_bad_input_is_one_line(tmp_path, args, message):
    out = mlm("fit", cbpp_csv(tmp_path), CBPP, "--family", "binomial", *args, "-f", "json")
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("mlm: error:") and message in last, out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
