"""confint of glmer fits against lme4 1.1-31 (tests/fixtures/glmer): Wald intervals and their print
for every case, profile intervals where R profiled, and the parametric bootstrap's properties."""

from __future__ import annotations

import json
import re

import jsonschema
import numpy as np
import pytest

from mlmcli.errors import MlmError
from mlmcli.render.inference import confint_text
from mlmcli.stats.bootstrap import bootstrap
from mlmcli.stats.confint import Bootstrap, confint_report
from tests.commands import mlm
from tests.test_glmer import CASES, FIXTURES, LME4_STOPS_SHORT, NUMBER, fitted, reference

# Wald: beta within 1e-3 SE of lme4's and the SEs within 1e-3 relative (test_glmer's tolerances)
# move a bound by at most ~3e-3 SE, i.e. under 1e-3 of the interval's width (2 x 1.96 SE)
WALD_TOL = 1e-3
# Profile: lme4 reads each bound off a spline through its profile points, from its own optimum's
# deviance; ours is the exact crossing of the converged Laplace (or AGQ) deviance.  Measured
# 1e-6 to 1.8e-4 of the width on the references
PROFILE_TOL = 5e-4
PROFILE_CASES = [c["id"] for c in CASES if c["profile"]]


def assert_intervals(got: dict, want: dict, tol: float) -> None:
    assert [r["parameter"] for r in got["intervals"]] == [r["parameter"] for r in want["intervals"]]
    assert [r["printed_name"] for r in got["intervals"]] == [r["printed_name"] for r in want["intervals"]]
    assert got["labels"] == want["labels"]
    for g, w in zip(got["intervals"], want["intervals"], strict=True):
        if w["lower"] is None:
            assert g["lower"] is None and g["upper"] is None
            continue
        width = w["upper"] - w["lower"]
        assert g["lower"] == pytest.approx(w["lower"], abs=tol * width), g["parameter"]
        assert g["upper"] == pytest.approx(w["upper"], abs=tol * width), g["parameter"]


def same_print(ours: str, theirs: str, want: dict, tol: float) -> None:
    """R's printed matrix word for word; each number within `tol` of its row's width (print()
    gives 7 significant digits, so a bound near zero shows digits the width does not resolve)."""
    a, b = ours.rstrip("\n").split("\n"), theirs.rstrip("\n").split("\n")
    assert len(a) == len(b)
    assert a[0].split() == b[0].split()  # the widths follow the numbers
    for x, y, w in zip(a[1:], b[1:], want["intervals"], strict=True):
        assert NUMBER.sub("#", x).split() == NUMBER.sub("#", y).split(), (x, y)
        if w["lower"] is None:
            assert x.split()[1:] == ["NA", "NA"]
            continue
        width = w["upper"] - w["lower"]
        for u, v in zip(NUMBER.findall(x), NUMBER.findall(y), strict=True):
            assert float(u) == pytest.approx(float(v), abs=tol * width + 1e-7 * abs(float(v))), (x, y)


# ------------------------------------------------------------ Wald


@pytest.mark.parametrize("case", [c["id"] for c in CASES if c["id"] not in LME4_STOPS_SHORT])
def test_wald_intervals_and_print_match_lme4(case):
    ref = reference(case)
    got = confint_report(fitted(case).model, "wald")
    assert_intervals(got, ref["confint_wald"], WALD_TOL)
    printed = (FIXTURES / f"{case}.confint_wald.txt").read_text()
    same_print(confint_text(got), printed, ref["confint_wald"], WALD_TOL)


def test_wald_where_lme4_stops_short():
    """guImmun: lme4 ends 0.09 above the optimum, so its intervals are not the reference; ours are
    beta +- qnorm(0.975) SE at ours, named and printed as lme4's."""
    case = "guimmun_laplace"
    model = fitted(case).model
    got = confint_report(model, "wald")
    want = reference(case)["confint_wald"]
    assert [r["printed_name"] for r in got["intervals"]] == [r["printed_name"] for r in want["intervals"]]
    z = 1.959963984540054
    fixed = got["intervals"][len(model.theta) :]
    np.testing.assert_allclose([r["lower"] for r in fixed], model.beta - z * model.std_errors, rtol=1e-12)
    np.testing.assert_allclose([r["upper"] for r in fixed], model.beta + z * model.std_errors, rtol=1e-12)
    printed = (FIXTURES / f"{case}.confint_wald.txt").read_text()
    assert [NUMBER.sub("#", x).split() for x in confint_text(got).splitlines()] == [
        NUMBER.sub("#", x).split() for x in printed.splitlines()
    ]


def test_wald_at_another_level_and_selected_parameters():
    model = fitted("cbpp_laplace").model
    got = confint_report(model, "wald", 0.9, ["period2", ".sig01"])
    assert [r["parameter"] for r in got["intervals"]] == ["period2", "sd_(Intercept)|herd"]
    assert got["labels"] == ["5 %", "95 %"]
    b, se = model.beta[1], model.std_errors[1]
    assert got["intervals"][0]["lower"] == pytest.approx(b - 1.6448536269514722 * se, rel=1e-12)
    with pytest.raises(MlmError, match="no parameter 'sigma'"):
        confint_report(model, "wald", parm=["sigma"])  # a GLMM has no residual scale


# ------------------------------------------------------------ profile


def test_profile_references_include_poisson_and_quadrature():
    kinds = {(reference(c)["family"], reference(c)["nagq"] > 1) for c in PROFILE_CASES}
    assert ("poisson", False) in kinds and ("binomial", True) in kinds and ("binomial", False) in kinds


@pytest.mark.parametrize("case", PROFILE_CASES)
def test_profile_intervals_and_print_match_lme4(case):
    ref = reference(case)
    got = confint_report(fitted(case).model, "profile")
    assert_intervals(got, ref["confint_profile"], PROFILE_TOL)
    printed = (FIXTURES / f"{case}.confint_profile.txt").read_text()
    same_print(confint_text(got), printed, ref["confint_profile"], PROFILE_TOL)


def test_profile_is_refused_for_nagq0():
    with pytest.raises(MlmError, match="nAGQ = 0"):
        confint_report(fitted("cbpp_nagq0").model, "profile")


def test_api_confint_of_a_glmer_fit():
    fit = fitted("bacteria_laplace")
    table = fit.confint()  # Wald by default, as the LmerFit's
    assert list(table.columns) == ["2.5 %", "97.5 %"]
    assert list(table.index) == [r["parameter"] for r in reference("bacteria_laplace")["confint_wald"]["intervals"]]
    assert np.isnan(table.iloc[0]).all()
    wald = reference("bacteria_laplace")["confint_wald"]["intervals"]
    for name, w in zip(table.index[1:], wald[1:], strict=True):
        width = w["upper"] - w["lower"]
        assert table.loc[name, "97.5 %"] == pytest.approx(w["upper"], abs=WALD_TOL * width)
    boot = fit.confint(method="boot", nsim=10, seed=4, level=0.8)
    assert list(boot.columns) == ["10 %", "90 %"] and list(boot.index) == list(table.index)
    assert np.all(np.isfinite(boot.to_numpy())) and np.all(boot["10 %"] < boot["90 %"])


# ------------------------------------------------------------ the command


def cbpp_csv(tmp_path):
    """cbpp with period as text, so that a reader of the CSV alone makes it a factor (period1, ...
    become periodp1, ...)."""
    import pandas as pd

    df = pd.read_csv(FIXTURES / "data" / "cbpp.csv")
    df["period"] = "p" + df["period"].astype(str)
    path = tmp_path / "cbpp.csv"
    df.to_csv(path, index=False)
    return str(path)


CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.mark.parametrize("method", ["wald", "profile"])
def test_the_command_prints_lme4s_confint(tmp_path, method):
    ref = reference("cbpp_laplace")[f"confint_{method}"]
    out = mlm("confint", cbpp_csv(tmp_path), CBPP, "--family", "binomial", "--method", method)
    assert out.returncode == 0, out.stderr
    printed = (FIXTURES / f"cbpp_laplace.confint_{method}.txt").read_text()
    printed = re.sub(r"\nperiod(\d)", r"\nperiodp\1", printed)
    # R's words (the names column is one wider with periodp2 than with period2)
    ours = out.stdout.splitlines()
    assert [NUMBER.sub("#", x).split() for x in ours] == [NUMBER.sub("#", x).split() for x in printed.splitlines()]
    tol = WALD_TOL if method == "wald" else PROFILE_TOL
    for line, w in zip(ours[1:], ref["intervals"], strict=True):
        if w["lower"] is None:
            assert line.split()[1:] == ["NA", "NA"]
            continue
        lo, hi = (float(v) for v in line.split()[1:])
        width = w["upper"] - w["lower"]
        assert lo == pytest.approx(w["lower"], abs=tol * width) and hi == pytest.approx(w["upper"], abs=tol * width)
    if method == "profile":
        assert "Computing profile confidence intervals ..." in out.stderr


def test_the_command_json_follows_the_schema(tmp_path):
    out = mlm("confint", cbpp_csv(tmp_path), CBPP, "--family", "binomial", "--method", "wald", "-f", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    schema = json.loads(mlm("schema", "confint").stdout)
    jsonschema.validate(doc, schema)
    from tests.test_cli_exit import undeclared

    assert undeclared(doc, schema) == []
    assert [r["parameter"] for r in doc["intervals"]][0] == "sd_(Intercept)|herd"
    assert all(r["parameter"] != "sigma" for r in doc["intervals"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--nagq", "0", "--method", "profile"], "nAGQ = 0"),
        (["--method", "boot", "--nsim", "0"], "--nsim"),
        (["--method", "boot", "--seed", "-1"], "--seed"),
        (["--parm", "sigma", "--method", "wald"], "no parameter 'sigma'"),
        (["--link", "log"], "--link log is not offered for binomial"),
        (["--level", "2"], "--level"),
    ],
)
def test_bad_input_is_one_line(tmp_path, args, message):
    out = mlm("confint", cbpp_csv(tmp_path), CBPP, "--family", "binomial", *args)
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("mlm: error:") and message in last, out.stderr
    assert "Traceback" not in out.stderr


# ------------------------------------------------------------ bootstrap


def test_bootstrap_same_seed_same_answer_whatever_the_chunks():
    model = fitted("cbpp_laplace").model
    one = bootstrap(model, 12, seed=5, workers=1)
    again = bootstrap(model, 12, seed=5, workers=1)
    np.testing.assert_array_equal(one.values, again.values)
    other = bootstrap(model, 12, seed=6, workers=1)
    assert not np.array_equal(one.values, other.values)
    # a replicate is the same in any chunk: replicate i of 12 is replicate i of 4
    first = bootstrap(model, 4, seed=5, workers=1)
    np.testing.assert_array_equal(first.values, one.values[:4])


def test_bootstrap_intervals_contain_the_estimates():
    model = fitted("bacteria_laplace").model
    spec = Bootstrap(nsim=60, seed=11)
    got = confint_report(model, "boot", spec=spec)
    assert got["method"] == "boot" and got["nsim"] == 60 and got["seed"] == 11
    assert [r["printed_name"] for r in got["intervals"]] == [
        r["printed_name"] for r in reference("bacteria_laplace")["confint_wald"]["intervals"]
    ]
    estimates = [float(model.theta[0]), *model.beta]
    for row, est in zip(got["intervals"], estimates, strict=True):
        assert row["lower"] < est < row["upper"], row
    assert got["failed"] == 0


def test_bootstrap_sd_of_beta_is_near_the_wald_se():
    """Across 300 simulations of cbpp, the bootstrap SD of each fixed effect estimates its sampling
    SD, which the Wald SE (from the Hessian) approximates.  The SD of 300 draws has a relative
    standard error of about 1/sqrt(2 x 299) = 4%; 15% is 3.7 of those, with room for the Wald
    approximation itself (15 herds).  Dropping the random effects from the simulation, or
    simulating from the wrong number of trials, moves the intercept's SD by more than that."""
    model = fitted("cbpp_laplace").model
    reps = bootstrap(model, 300, seed=2024)
    assert reps.failed == 0
    beta = reps.values[:, len(model.theta) :]
    ratio = beta.std(axis=0, ddof=1) / model.std_errors
    np.testing.assert_array_less(np.abs(ratio - 1.0), 0.15)
    # and the replicates centre on the estimates (bias well inside a standard error)
    np.testing.assert_array_less(np.abs(beta.mean(axis=0) - model.beta) / model.std_errors, 0.3)
    # the herd sd is estimated from 15 herds: its replicates spread around the estimate
    sd = reps.values[:, 0]
    assert np.quantile(sd, 0.25) < model.theta[0] < np.quantile(sd, 0.9)


def test_poisson_bootstrap_and_nagq0_refits():
    """Poisson counts are simulated and refitted (epil, an offset); an nAGQ = 0 fit is refitted as
    lme4 refits it, over theta with beta inside PIRLS."""
    for case in ("epil_offset_formula", "cbpp_nagq0"):
        model = fitted(case).model
        reps = bootstrap(model, 8, seed=1, workers=1)
        assert reps.failed == 0
        assert np.all(np.isfinite(reps.values))
        # eight refits scatter around the fit: within 5 standard errors each
        beta = reps.values[:, len(model.theta) :]
        assert np.all(np.abs(beta - model.beta) < 5 * model.std_errors)


def test_boot_command_with_family(tmp_path):
    out = mlm(
        "confint",
        cbpp_csv(tmp_path),
        CBPP,
        "--family",
        "binomial",
        "--method",
        "boot",
        "--nsim",
        "20",
        "--seed",
        "3",
        "-f",
        "json",
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    jsonschema.validate(doc, json.loads(mlm("schema", "confint").stdout))
    assert doc["nsim"] == 20 and doc["seed"] == 3 and doc["failed"] == 0
    assert "Computing bootstrap confidence intervals ..." in out.stderr
    again = json.loads(
        mlm(
            "confint",
            cbpp_csv(tmp_path),
            CBPP,
            "--family",
            "binomial",
            "--method",
            "boot",
            "--nsim",
            "20",
            "--seed",
            "3",
            "-f",
            "json",
        ).stdout
    )
    assert again["intervals"] == doc["intervals"]
