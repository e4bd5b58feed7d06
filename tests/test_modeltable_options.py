"""`mlm table`'s options for a journal: --rename (modelsummary's coef_rename), --gof (gof_map), --variance
(broom.mixed's scales = "vcov") and --lr (anova against the model before). Each number is checked against
`mlm fit` or `mlm compare` for the same models, and each option in every output format."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import jsonschema
import pytest

from mlmcli.render.modeltable import rows
from tests.commands import mlm
from tests.test_cli_exit import undeclared

ROOT = Path(__file__).resolve().parent.parent
SLEEP = str(ROOT / "tests" / "fixtures" / "lme4" / "data" / "sleepstudy.csv")
HECK = str(ROOT / "sample_data" / "heck2011.csv")
CBPP = str(ROOT / "tests" / "fixtures" / "glmer" / "data" / "cbpp.csv")
SCHEMA = json.loads((ROOT / "mlmcli" / "schemas" / "table.schema.json").read_text())
S1 = "Reaction ~ Days + (1|Subject)"
S2 = "Reaction ~ Days + (Days|Subject)"
H1 = "math ~ ses + (1|schcode)"
H2 = "math ~ female + (1|schcode)"
B1 = "cbind(incidence, size - incidence) ~ 1 + (1|herd)"
B2 = "cbind(incidence, size - incidence) ~ factor(period) + (1|herd)"
FORMATS = ("markdown", "latex", "html", "csv", "table")


def run(*args: str, fmt: str = "json") -> str:
    p = mlm(*args, "-f", fmt, env={"COLUMNS": "200"})
    assert p.returncode == 0, p.stderr
    return p.stdout


def run_json(*args: str) -> dict:
    report = json.loads(run(*args))
    jsonschema.validate(report, SCHEMA)
    assert undeclared(report, SCHEMA) == []
    return report


def one_line_error(*args: str) -> str:
    p = mlm(*args)
    assert p.returncode == 2 and p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    return p.stderr


# ------------------------------------------------------------------ --rename


def test_rename_renames_terms_and_groups_in_every_row():
    report = run_json("table", HECK, H1, H2, "--rename", "ses=SES", "--rename", "schcode=School")
    assert report["rename"] == {"ses": "SES", "schcode": "School"}
    m1, m2 = report["models"]
    assert [r["term"] for r in m1["fixed_effects"]] == ["(Intercept)", "SES"]
    assert m1["groups"] == {"School": 419} and m1["random_effects"][0]["group"] == "School"
    labels = [r.label for r in rows(report)]
    assert "SES" in labels and "ses" not in labels and "female" in labels
    assert "SD (Intercept School)" in labels and "N (School)" in labels
    assert not any("schcode" in label for label in labels)
    ses = next(r for r in rows(report) if r.label == "SES")
    assert ses.cells[0].text == f"{m1['fixed_effects'][1]['estimate']:.3f}" and ses.cells[1].text == ""


def test_rename_puts_two_models_terms_on_one_row():
    report = run_json("table", HECK, H1, H2, "--rename", "ses=x", "--rename", "female=x")
    grid = rows(report)
    assert [r.label for r in grid if r.statistic == "estimate"] == ["(Intercept)", "x"]
    x = next(r for r in grid if r.label == "x")
    fe = [m["fixed_effects"][1]["estimate"] for m in report["models"]]
    assert [c.text for c in x.cells] == [f"{v:.3f}" for v in fe]
    assert fe[0] == pytest.approx(3.874, abs=5e-4)  # the ses slope of mlm fit (and lme4)


def test_rename_a_term_with_an_equals_sign():
    f = "Reaction ~ I(Days == 0) + (1|Subject)"
    report = run_json("table", SLEEP, f, "--rename", "I(Days == 0)TRUE=Day 0")
    assert [r["term"] for r in report["models"][0]["fixed_effects"]] == ["(Intercept)", "Day 0"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rename", "sex=Sex"], "--rename 'sex': no model has such a term or grouping factor"),
        (["--rename", "ses"], "write OLD=NEW"),
        (["--rename", "ses="], "the new name is empty"),
        (["--rename", "ses=a", "--rename", "ses=b"], "given twice"),
        (["--rename", "ses=(Intercept)"], "two terms of Model 1 the name '(Intercept)'"),
    ],
)
def test_rename_mistakes_are_one_line(args, message):
    assert message in one_line_error("table", HECK, H1, *args)


# ------------------------------------------------------------------ --gof


def gof_rows(report: dict) -> dict[str, list[str]]:
    return {r.label: [c.text for c in r.cells] for r in rows(report) if r.part == "gof"}


def test_gof_chooses_the_rows_and_their_order():
    report = run_json("table", SLEEP, S1, S2, "--gof", "bic,nobs,icc,groups,logLik")
    assert report["gof"] == ["bic", "n_obs", "icc", "groups", "loglik"]
    gof = gof_rows(report)
    assert list(gof) == ["BIC", "Num.Obs.", "ICC", "N (Subject)", "Log.Lik."]
    assert gof["Num.Obs."] == ["180", "180"] and gof["N (Subject)"] == ["18", "18"]
    assert gof["BIC"] == [f"{m['bic']:.1f}" for m in report["models"]]
    # lme4's REML criterion of the random-slope model: 1743.628
    assert report["models"][1]["loglik"] == pytest.approx(-1743.628 / 2, abs=1e-3)
    assert gof_rows(run_json("table", SLEEP, S1, "--gof", "none")) == {}
    default = gof_rows(run_json("table", SLEEP, S1, S2))
    assert list(default) == ["Num.Obs.", "N (Subject)", "AIC", "BIC", "Log.Lik.", "ICC", "R2 Marg.", "R2 Cond."]


def test_gof_rmse_and_loglik_of_glmer_columns_when_asked():
    report = run_json("table", CBPP, B1, B2, "--family", "binomial", "--gof", "rmse,loglik")
    gof = gof_rows(report)
    assert list(gof) == ["RMSE", "Log.Lik."]
    assert gof["Log.Lik."] == [f"{m['loglik']:.1f}" for m in report["models"]]
    # lme4: logLik of glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), binomial) -92.0267
    assert report["models"][1]["loglik"] == pytest.approx(-92.0267, abs=1e-3)


def test_gof_unknown_key_lists_the_keys():
    err = one_line_error("table", SLEEP, S1, "--gof", "nobs,r2")
    assert "--gof 'r2'" in err and "n_obs, groups, aic, bic, loglik, icc, r2_marginal, r2_conditional, rmse" in err
    assert "needs --lr" not in one_line_error("table", SLEEP, S1, "--gof", "aic,aic")
    assert "need --lr" in one_line_error("table", SLEEP, S1, "--gof", "lr_p")


# ------------------------------------------------------------------ --variance


def test_variance_shows_the_fit_s_variances_and_covariances():
    report = run_json("table", SLEEP, S1, S2, "--variance")
    fit = json.loads(run("fit", SLEEP, S2))
    assert report["random_scale"] == "variance"
    col = report["models"][1]
    variances = {r["term"]: r["variance"] for r in fit["random_effects"]}
    assert [r["variance"] for r in col["random_effects"]] == [variances["(Intercept)"], variances["Days"]]
    # lme4's VarCorr of the random-slope model: 612.10, 35.07, cor 0.066, residual 654.94
    assert variances["(Intercept)"] == pytest.approx(612.09, rel=1e-4)
    assert variances["Days"] == pytest.approx(35.072, rel=1e-4)
    cor = fit["random_effect_correlations"][0]["correlation"]
    sd = [r["std_dev"] for r in fit["random_effects"]]
    assert col["random_effect_correlations"][0]["covariance"] == pytest.approx(cor * sd[0] * sd[1], rel=1e-12)
    assert col["residual_variance"] == pytest.approx(fit["sigma"] ** 2, rel=1e-12)
    assert col["residual_variance"] == pytest.approx(654.94, rel=1e-4)
    grid = {r.label: [c.text for c in r.cells] for r in rows(report) if r.part == "random"}
    assert list(grid) == ["Var (Intercept Subject)", "Var (Days Subject)", "Cov (Intercept~Days Subject)",
                          "Var (Observations)"]  # fmt: skip
    assert grid["Var (Days Subject)"] == ["", f"{variances['Days']:.3f}"]
    assert grid["Cov (Intercept~Days Subject)"][1] == f"{cor * sd[0] * sd[1]:.3f}"
    assert grid["Var (Observations)"] == [f"{m['residual_variance']:.3f}" for m in report["models"]]


def test_variance_of_a_glmer_column():
    report = run_json("table", CBPP, B1, B2, "--family", "binomial", "--variance")
    labels = [r.label for r in rows(report) if r.part == "random"]
    assert labels == ["Var (Intercept herd)"]  # no residual variance in a binomial model
    col = report["models"][1]
    assert col["random_effects"][0]["variance"] == pytest.approx(col["random_effects"][0]["std_dev"] ** 2)
    # lme4: the herd variance of the period model, 0.4123 (SD 0.6421)
    assert col["random_effects"][0]["variance"] == pytest.approx(0.4123, abs=2e-4)


# ------------------------------------------------------------------ --lr


def test_lr_is_mlm_compare_s_test_against_the_model_before():
    f3 = "Reaction ~ Days + I(Days^2) + (Days|Subject)"
    report = run_json("table", SLEEP, S1, S2, f3, "--lr")
    assert report["models"][0]["lr_test"] is None
    for i, col in enumerate(report["models"][1:], start=1):
        ref = json.loads(run("compare", SLEEP, (S1, S2, f3)[i - 1], (S1, S2, f3)[i]))["models"][1]
        test = col["lr_test"]
        assert test["against"] == f"Model {i}" and test["refit_ml"] is True
        assert test["chisq"] == pytest.approx(ref["chisq"], rel=1e-12)
        assert test["df"] == ref["df"] and test["p_value"] == pytest.approx(ref["p_value"], rel=1e-12)
    # lme4's anova(m1, m2) refitted by ML: Chisq 42.139 on 2 df
    assert report["models"][1]["lr_test"]["chisq"] == pytest.approx(42.139, abs=1e-3)
    gof = gof_rows(report)
    assert list(gof)[-3:] == ["LR Chisq", "LR df", "LR p"]
    assert gof["LR Chisq"] == ["", *(f"{m['lr_test']['chisq']:.3f}" for m in report["models"][1:])]
    assert gof["LR df"] == ["", "2", "1"] and gof["LR p"][1] == "<0.001"
    assert gof["LR p"][2] == f"{report['models'][2]['lr_test']['p_value']:.3f}"
    p = report["models"][2]["lr_test"]["p_value"]
    assert {r.label: [c.text for c in r.cells] for r in rows(report, 0)}["LR p"] == ["", "<0.1", f"{p:.1f}"]


LR_REFS = json.loads((ROOT / "tests" / "fixtures" / "modeltable" / "lr_anova.json").read_text())


@pytest.mark.parametrize("ref", LR_REFS, ids=[r["id"] for r in LR_REFS])
def test_lr_of_reml_fits_is_lme4s_anova_with_its_default_refit(ref):
    """anova(m1, m2) refits REML fits by ML (refit = TRUE), whichever model is to the left; refit = FALSE's
    REML comparison gives another chi-square, which the table does not show."""
    report = run_json("table", SLEEP if ref["data"] == "sleep" else HECK, *ref["formulas"], "--lr")
    test = report["models"][1]["lr_test"]
    lme4, reml = ref["refit"], ref["no_refit"]
    assert test["refit_ml"] is True and test["df"] == lme4["df"]
    assert test["chisq"] == pytest.approx(lme4["chisq"], rel=1e-7)
    assert test["p_value"] == pytest.approx(lme4["p_value"], rel=1e-6)
    assert abs(test["chisq"] - reml["chisq"]) > 0.5
    # the Log.Lik. row is the REML fits' (anova(refit = FALSE)'s, its rows sorted by npar), not what the
    # test compares
    logliks = sorted(m["loglik"] for m in report["models"])
    assert logliks == [pytest.approx(v, rel=1e-9) for v in sorted(reml["loglik"])]
    note = run("table", SLEEP if ref["data"] == "sleep" else HECK, *ref["formulas"], "--lr", fmt="markdown")
    assert "LR: likelihood-ratio test against the model to the left, as lme4's anova()" in note
    assert "LR of REML fits: both refitted by ML first (anova's default), not from the Log.Lik. row" in note


def test_lr_of_ml_fits_needs_no_refit_and_says_nothing_of_one():
    ref = LR_REFS[0]
    report = run_json("table", SLEEP, *ref["formulas"], "--lr", "--ml")
    assert report["models"][1]["lr_test"]["refit_ml"] is False
    assert report["models"][1]["lr_test"]["chisq"] == pytest.approx(ref["refit"]["chisq"], rel=1e-7)
    note = run("table", SLEEP, *ref["formulas"], "--lr", "--ml", fmt="markdown")
    assert "as lme4's anova()" in note and "refitted" not in note


def test_lr_of_ml_glmer_fits_and_placed_by_gof():
    report = run_json("table", CBPP, B1, B2, "--family", "binomial", "--lr", "--gof", "lr_chisq,nobs")
    ref = json.loads(run("compare", CBPP, B1, B2, "--family", "binomial"))["models"][1]
    test = report["models"][1]["lr_test"]
    assert test["refit_ml"] is False and test["df"] == 3
    assert test["chisq"] == pytest.approx(ref["chisq"], rel=1e-12)
    # lme4's anova of the two fits (the fixture `mlm compare`'s tests check)
    lme4 = json.loads((ROOT / "tests" / "fixtures" / "glmer" / "cmp_cbpp_period.json").read_text())["models"][1]
    assert test["chisq"] == pytest.approx(lme4["chisq"], rel=1e-6)
    assert test["p_value"] == pytest.approx(lme4["p_value"], rel=1e-5)
    assert list(gof_rows(report)) == ["LR Chisq", "Num.Obs."]


def test_lr_mistakes_are_one_line():
    assert "needs two models" in one_line_error("table", SLEEP, S1, "--lr")
    f = "incidence ~ 1 + (1|herd)"
    err = one_line_error("table", CBPP, f, f, "--family", "gaussian,poisson", "--lr")
    assert "not of one family" in err


# ------------------------------------------------------------------ every format


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_option_in_every_format(fmt):
    args = ["table", SLEEP, S1, S2, "--rename", "Days=Day", "--gof", "nobs,aic", "--variance", "--lr"]
    out = run(*args, fmt=fmt)
    assert "Days" not in out and "Day" in out
    assert "Var (Day" in out or "Var (Day".replace(" ", "~") in out
    assert "SD (" not in out and "BIC" not in out and "Num.Obs." in out
    assert "LR Chisq" in out and "LR p" in out
    if fmt == "csv":
        lines = list(csv.reader(io.StringIO(out)))
        assert [line[1] for line in lines if line[0] == "gof"] == ["Num.Obs.", "AIC", "LR Chisq", "LR df", "LR p"]
        lr = next(line for line in lines if line[2] == "lr_chisq")
        report = run_json(*args)
        assert lr[3:] == ["", f"{report['models'][1]['lr_test']['chisq']:.3f}"]
        assert math.isfinite(float(lr[4]))
