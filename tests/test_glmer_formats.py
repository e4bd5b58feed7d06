"""glmer fits in every format the lmer fit offers: `mlm fit --family` as a terminal table and as
broom.mixed's tidy() CSV (tests/fixtures/glmer/<case>.tidy.csv), `mlm table --family` against
performance::model_performance(), the rows modelsummary shows for a glmerMod
(model_performance.json), linear and generalized columns side by side, `mlm tau --family` in its
formats, and the input these commands refuse."""

from __future__ import annotations

import csv
import io
import json

import jsonschema
import numpy as np
import pytest

from mlmcli.render.modeltable import markdown
from mlmcli.render.tidy import glmer_tidy_csv
from mlmcli.stats.modeltable import table_report
from tests.commands import mlm
from tests.test_glmer import CASES, FIXTURES, LME4_STOPS_SHORT, fitted, nearly_same, reference
from tests.test_glmer_effects import OTHER_OPTIMUM, SINGULAR_HERE

MODEL_PERFORMANCE = json.loads((FIXTURES / "model_performance.json").read_text())
TIDY_CASES = ["cbpp_laplace", "verbagg_laplace", "contra_slope", "epil_offset_formula"]
CBPP = str(FIXTURES / "data" / "cbpp.csv")
CBPP_F = "cbind(incidence, size - incidence) ~ factor(period) + (1 | herd)"
CBPP_NULL = "cbind(incidence, size - incidence) ~ 1 + (1 | herd)"
EPIL = str(FIXTURES / "data" / "epil.csv")
EPIL_F = "y ~ lbase * trt + lage + V4 + (1 | subject)"
WIDE = {"NO_COLOR": "1", "COLUMNS": "120"}


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


# ------------------------------------------------------------------------------ fit --format csv
@pytest.mark.parametrize("case", TIDY_CASES)
def test_the_csv_is_broom_mixeds_tidy(case):
    ours = rows(glmer_tidy_csv(fitted(case).to_dict()))
    theirs = rows((FIXTURES / f"{case}.tidy.csv").read_text())
    assert ours[0] == theirs[0] == ["effect", "group", "term", "estimate", "std.error", "statistic", "p.value"]
    assert [r[:3] for r in ours] == [r[:3] for r in theirs]
    for o, t in zip(ours[1:], theirs[1:], strict=True):
        assert [c == "NA" for c in o] == [c == "NA" for c in t]
        got = np.array([float(c) for c in o[3:] if c != "NA"])
        want = np.array([float(c) for c in t[3:] if c != "NA"])
        if o[0] == "fixed":  # estimate, SE, z within lme4's agreement (test_glmer), p-value near
            se = want[1]
            assert abs(got[0] - want[0]) < 1e-3 * se
            np.testing.assert_allclose(got[1:3], want[1:3], rtol=2e-3)
            assert got[3] == pytest.approx(want[3], rel=2e-2, abs=1e-12)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-3)


def test_the_fit_command_writes_the_tidy_csv_and_the_table(tmp_path):
    out = mlm("fit", CBPP, CBPP_F, "--family", "binomial", "--format", "csv")
    assert out.returncode == 0, out.stderr
    table = rows(out.stdout)
    assert table[0] == ["effect", "group", "term", "estimate", "std.error", "statistic", "p.value"]
    assert [r[2] for r in table[1:]] == [
        "(Intercept)",
        "factor(period)2",
        "factor(period)3",
        "factor(period)4",
        "sd__(Intercept)",
    ]
    assert float(table[1][3]) == pytest.approx(reference("cbpp_laplace")["beta"][0], abs=1e-4)
    assert "ICC" not in out.stderr  # the CSV has no ICC: no note about it
    shown = mlm("fit", CBPP, CBPP_F, "--family", "binomial", "--format", "table", "--correlation", env=WIDE)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "Generalized linear mixed model fit by maximum likelihood (Laplace Approximation)" in text
    assert "binomial (logit)" in text and "Wald z tests" in text
    assert "z value" in text and "Pr(>|z|)" in text and "Correlation of fixed effects" in text
    assert "Residual" not in text  # no residual row
    icc = next(ln for ln in text.splitlines() if ln.startswith("ICC"))
    p = reference("cbpp_laplace")["performance"]
    assert icc.split()[1:] == [f"{p['icc']['ICC_adjusted']:.3f}", f"{p['icc']['ICC_unadjusted']:.3f}"]
    fit_line = next(ln for ln in text.splitlines() if "194.1" in ln)  # AIC BIC logLik deviance df.resid
    assert fit_line.split()[1:6] == ["194.1", "204.2", "-92.0", "184.1", "51"]
    # a terminal too narrow for the table gets lme4's summary instead
    narrow = mlm("fit", CBPP, CBPP_F, "--family", "binomial", "--format", "table", env={"COLUMNS": "40"})
    assert narrow.stdout.startswith("Generalized linear mixed model fit by maximum likelihood (Laplace")
    js = mlm("fit", EPIL, EPIL_F, "--family", "poisson", "--format", "json")
    doc = json.loads(js.stdout)
    jsonschema.validate(doc, json.loads(mlm("schema", "glmer_fit").stdout))
    # performance's warning as a note on stderr, as the lmer fit's
    assert "mlm: note: mu of 5.1 is too close to zero" in js.stderr
    text_out = mlm("fit", EPIL, EPIL_F, "--family", "poisson", "--format", "text")
    assert "mu of" not in text_out.stderr and "ICC" not in text_out.stdout


def test_the_summary_needs_no_null_model(monkeypatch):
    """summary() of a Poisson fit prints no ICC, so it refits no null model; to_dict() does."""
    import mlmcli
    import mlmcli.glmm_effects as ge

    fit = mlmcli.GlmerFit(fitted("epil_main").model, fitted("epil_main").frame)

    def refuse(model):
        raise AssertionError("the null model was refitted")

    monkeypatch.setattr(ge, "null_model_mean", refuse)
    assert fit.summary().startswith("Generalized linear mixed model fit by maximum likelihood")
    assert fit.warnings == []
    with pytest.raises(AssertionError, match="refitted"):
        fit.to_dict()


# ------------------------------------------------------------------------------ mlm table
@pytest.mark.parametrize("case", [c["id"] for c in CASES])
def test_table_columns_are_model_performances(case):
    """AIC, BIC, ICC, R2 and RMSE of each glmer column as modelsummary takes them from
    performance::model_performance(metrics = "common"), and Num.Obs."""
    col = table_report([fitted(case).model], ["m"])["models"][0]
    mp = MODEL_PERFORMANCE[case]
    assert col["n_obs"] == mp["nobs"]
    stops_short = case in LME4_STOPS_SHORT  # ours is 0.09 lower: AIC and BIC too
    assert col["aic"] == pytest.approx(mp["AIC"], abs=0.1 if stops_short else 1e-5)
    assert col["bic"] == pytest.approx(mp["BIC"], abs=0.1 if stops_short else 1e-5)
    assert col["rmse"] == pytest.approx(mp["RMSE"], rel=1e-2 if stops_short else 1e-5)
    assert col["residual_sd"] is None and col["family"] == reference(case)["family"]
    assert all(r["df"] is None for r in col["fixed_effects"])
    if case in SINGULAR_HERE:
        assert col["icc"]["adjusted"] is None and col["r2"]["conditional"] is None
        return
    rel = OTHER_OPTIMUM.get(case, 2e-4)
    assert col["icc"]["adjusted"] == pytest.approx(mp["ICC"], rel=rel)
    assert col["r2"]["marginal"] == pytest.approx(mp["R2_marginal"], rel=rel, abs=1e-12)
    assert col["r2"]["conditional"] == pytest.approx(mp["R2_conditional"], rel=rel)


def test_a_glmer_table_has_modelsummarys_rows():
    out = mlm("table", CBPP, CBPP_NULL, CBPP_F, "--family", "binomial", "--format", "markdown")
    assert out.returncode == 0, out.stderr
    labels = [ln.split("|")[1].strip() for ln in out.stdout.splitlines() if ln.startswith("| ")]
    assert labels[-9:] == [
        "SD (Intercept herd)",
        "Num.Obs.",
        "N (herd)",
        "AIC",
        "BIC",
        "ICC",
        "R2 Marg.",
        "R2 Cond.",
        "RMSE",
    ]
    assert "Log.Lik." not in out.stdout and "SD (Observations)" not in out.stdout
    assert "(Wald z-tests)" in out.stdout
    rmse = next(ln for ln in out.stdout.splitlines() if ln.startswith("| RMSE"))
    expected = [MODEL_PERFORMANCE[c]["RMSE"] for c in ("cbpp_null", "cbpp_laplace")]
    assert [c.strip() for c in rmse.split("|")[2:4]] == [f"{v:.3f}" for v in expected]
    js = mlm("table", CBPP, CBPP_NULL, CBPP_F, "--family", "binomial", "--format", "json", "--ci")
    doc = json.loads(js.stdout)
    jsonschema.validate(doc, json.loads(mlm("schema", "table").stdout))
    wald = {i["parameter"]: i for i in reference("cbpp_laplace")["confint_wald"]["intervals"]}
    got = doc["models"][1]["fixed_effects"][0]
    assert got["conf_low"] == pytest.approx(wald["(Intercept)"]["lower"], abs=2e-3)
    assert got["conf_high"] == pytest.approx(wald["(Intercept)"]["upper"], abs=2e-3)


def test_linear_and_generalized_columns_side_by_side():
    """--family poisson,gaussian: the first column glmer's, the second lmer's, each with its rows."""
    lmm = "log(y + 1) ~ lbase * trt + lage + V4 + (1 | subject)"
    out = mlm("table", EPIL, EPIL_F, lmm, "--family", "poisson,gaussian", "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    jsonschema.validate(doc, json.loads(mlm("schema", "table").stdout))
    glmm, lmm_col = doc["models"]
    assert (glmm["family"], glmm["link"], glmm["method"]) == ("poisson", "log", "Laplace")
    assert (lmm_col["family"], lmm_col["link"], lmm_col["method"]) == ("gaussian", "identity", "REML")
    assert glmm["residual_sd"] is None and lmm_col["residual_sd"] > 0
    assert glmm["rmse"] == pytest.approx(MODEL_PERFORMANCE["epil_laplace"]["RMSE"], rel=1e-5)
    assert lmm_col["rmse"] is None
    assert all(r["df"] is None for r in glmm["fixed_effects"])
    assert all(r["df"] > 0 for r in lmm_col["fixed_effects"])
    assert glmm["aic"] == pytest.approx(reference("epil_laplace")["aic"], abs=1e-5)
    shown = markdown(doc)
    lines = {
        ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:4]]
        for ln in shown.splitlines()[2:]
        if ln.startswith("| ")
    }
    assert lines["Log.Lik."][0] == "" and lines["Log.Lik."][1] != ""
    assert lines["RMSE"][0] != "" and lines["RMSE"][1] == ""
    assert lines["SD (Observations)"][0] == "" and lines["SD (Observations)"][1] != ""
    assert "t-tests with Satterthwaite's df; Wald z-tests for binomial and Poisson models" in shown
    # a single family applies to every formula; the glmer fits' notes carry their column's name
    both = mlm("table", EPIL, EPIL_F, "y ~ lbase + trt + lage + V4 + (1 | subject)", "--family", "poisson")
    assert both.returncode == 0 and both.stderr.count("mu of 5.1 is too close to zero") == 2
    assert "Model 1: mu of 5.1" in both.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--family", "gamma"], "--family 'gamma': use gaussian, binomial, poisson"),
        (["--family", "binomial,poisson,gaussian"], "--family needs one family or 2 (one per formula), got 3"),
        (["--family", "poisson,gaussian", "--link", "logit"], "--link logit is not offered for poisson"),
        (["--family", "poisson", "--engine", "dask"], "with --family and --engine dask is not offered"),
        (["--family", "poisson", "--nagq", "-1"], "--nagq must be 0 or more"),
    ],
)
def test_table_refuses_bad_families_in_one_line(args, message):
    out = mlm("table", EPIL, EPIL_F, "y ~ trt + (1 | subject)", *args, "--format", "markdown")
    assert out.returncode == 2, out.stderr
    assert out.stdout == "" and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


# ------------------------------------------------------------------------------ tau
def test_tau_with_family_in_every_format():
    ref = reference("contra_slope")
    data = str(FIXTURES / ref["data"])
    args = ("tau", data, ref["formula"], "--family", "binomial")
    text = mlm(*args, "--format", "text")
    assert text.returncode == 0, text.stderr
    assert nearly_same(text.stdout, (FIXTURES / "contra_slope.tau.txt").read_text()) == []
    table = mlm(*args, "--format", "table", env=WIDE)
    assert table.returncode == 0, table.stderr
    assert "Tau: district" in table.stdout and "Residual variance" not in table.stdout
    corr = mlm(*args, "--format", "table", "--corr", env=WIDE)
    cell = f"{ref['random_effect_correlations'][0]['correlation']:.3f}"
    assert "Correlation: district" in corr.stdout and cell in corr.stdout
    js = json.loads(mlm(*args, "--format", "json").stdout)
    assert js["residual_variance"] is None and js["groups"][0]["terms"] == ["(Intercept)", "urbanY"]


@pytest.mark.parametrize(
    ("command", "args", "note"),
    [
        ("fit", ["--link", "probit"], "mlm: note: --link applies with --family; ignored"),
        ("tau", ["--nagq", "5"], "mlm: note: --nagq applies with --family; ignored"),
        ("fit", ["--family", "binomial", "--ml"], "mlm: note: --ml is ignored with --family"),
        ("ranef", ["--family", "binomial", "--ml"], "mlm: note: --ml is ignored with --family"),
    ],
)
def test_options_that_do_nothing_say_so(command, args, note):
    """A shell line's --link or --nagq without --family, or --ml with it, is noted on stderr; the
    command still does its work (lmer's fit without --family, glmer's with it)."""
    formula = CBPP_F if "--family" in args else "incidence ~ factor(period) + (1 | herd)"
    p = mlm(command, CBPP, formula, *args, "-f", "json")
    assert p.returncode == 0, p.stderr
    assert note in p.stderr
    out = json.loads(p.stdout)
    if command == "fit":
        assert ("family" in out) == ("--family" in args)
