"""The Python API as a user calls it: mlmcli.lmer on DataFrames and paths, the fit's methods against
lme4's references (tests/fixtures), and summary()/to_dict() against the command's own output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlmcli
from mlmcli.errors import DataError, FormulaError, MlmError
from tests.commands import python, run

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "fixtures" / "lme4" / "data"
LME4 = ROOT / "tests" / "fixtures" / "lme4"
INFERENCE = ROOT / "tests" / "fixtures" / "inference"
SLEEP = DATA / "sleepstudy.csv"
HECK = ROOT / "sample_data" / "heck2011.csv"
SLOPES = "Reaction ~ Days + (Days|Subject)"
# our optimizer goes slightly past lme4's end point: agreement to this relative difference
REL = 1e-3


def reference(name: str, folder: Path = LME4) -> dict:
    return json.loads((folder / f"{name}.json").read_text())


def mlm(*args: str) -> str:
    proc = run(*args, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def sleep_fit() -> mlmcli.LmerFit:
    return mlmcli.lmer(SLOPES, str(SLEEP))


@pytest.fixture(scope="module")
def heck() -> pd.DataFrame:
    return pd.read_csv(HECK)


def test_fit_of_a_path_agrees_with_lme4(sleep_fit):
    ref = reference("ss_slope_reml")["fit"]
    fixef = sleep_fit.fixef()
    assert list(fixef.index) == [r["term"] for r in ref["fixed_effects"]]
    assert fixef.to_numpy() == pytest.approx([r["estimate"] for r in ref["fixed_effects"]], rel=REL)
    assert sleep_fit.sigma == pytest.approx(ref["sigma"], rel=REL)
    assert sleep_fit.theta == pytest.approx(ref["theta"], rel=REL, abs=1e-3)
    assert sleep_fit.loglik == pytest.approx(ref["loglik"], rel=1e-6)
    assert sleep_fit.aic == pytest.approx(ref["aic"], rel=1e-6)
    assert sleep_fit.bic == pytest.approx(ref["bic"], rel=1e-6)
    assert sleep_fit.nobs == ref["n_obs"] == 180
    se = np.sqrt(np.diag(sleep_fit.vcov().to_numpy()))
    assert se == pytest.approx([r["std_error"] for r in ref["fixed_effects"]], rel=REL)
    assert list(sleep_fit.vcov().columns) == ["(Intercept)", "Days"]


def test_dataframe_from_read_csv_gives_the_fit_of_the_path(sleep_fit):
    fit = mlmcli.lmer(SLOPES, pd.read_csv(SLEEP))
    pd.testing.assert_series_equal(fit.fixef(), sleep_fit.fixef())
    assert fit.theta == pytest.approx(sleep_fit.theta, abs=1e-12)
    assert fit.loglik == pytest.approx(sleep_fit.loglik, abs=1e-9)
    assert mlmcli.lmer(SLOPES, SLEEP).loglik == sleep_fit.loglik  # a pathlib.Path is a path too


def test_summary_is_the_commands_text_and_to_dict_its_json(sleep_fit):
    assert sleep_fit.summary() == mlm("fit", str(SLEEP), SLOPES, "-f", "text")
    assert sleep_fit.to_dict() == json.loads(mlm("fit", str(SLEEP), SLOPES, "-f", "json"))


def test_summary_of_an_ml_fit_with_a_factor_is_the_commands_text():
    formula = "math ~ ses*public + (1|schcode)"
    fit = mlmcli.lmer(formula, str(HECK), reml=False)
    assert fit.summary() == mlm("fit", str(HECK), formula, "--ml", "-f", "text")
    assert fit.to_dict()["method"] == "ML"


def test_ranef_has_lme4s_modes_and_conditional_sds(sleep_fit):
    ref = reference("ss_slope_reml")["ranef"]["ranef"]
    r = sleep_fit.ranef()
    assert list(r) == ["Subject"]
    df = r["Subject"]
    assert list(df.columns) == ["(Intercept)", "Days"]
    assert df.index[0] == "308" and len(df) == 18
    want = {(x["level"], x["term"]): x for x in ref}
    for level in df.index:
        for term in df.columns:
            assert df.loc[level, term] == pytest.approx(want[(level, term)]["value"], rel=REL, abs=1e-2)
    with_sd = sleep_fit.ranef(condvar=True)["Subject"]
    assert with_sd["mode"].equals(df)
    assert with_sd["cond_sd"].loc["308", "Days"] == pytest.approx(want[("308", "Days")]["cond_sd"], rel=REL)


def test_confint_wald_and_profile_against_lme4(sleep_fit):
    ref = reference("sleep", INFERENCE)
    wald = sleep_fit.confint()
    assert list(wald.columns) == ["2.5 %", "97.5 %"]
    # oldNames = FALSE names, as the JSON's `parameter`
    assert list(wald.index) == [
        "sd_(Intercept)|Subject",
        "cor_Days.(Intercept)|Subject",
        "sd_Days|Subject",
        "sigma",
        "(Intercept)",
        "Days",
    ]
    assert wald.iloc[:4].isna().all().all()
    want = [(r["lower"], r["upper"]) for r in ref["confint_wald"]["intervals"][4:]]
    assert wald.iloc[4:].to_numpy() == pytest.approx(np.array(want), rel=1e-4)
    prof = sleep_fit.confint(method="profile")
    want = {r["parameter"]: (r["lower"], r["upper"]) for r in ref["confint_profile"]["intervals"]}
    assert list(prof.index) == list(want)
    for name, (lo, hi) in want.items():
        assert prof.loc[name].to_numpy() == pytest.approx([lo, hi], abs=3e-3 * (hi - lo))
    assert list(sleep_fit.confint(level=0.9).columns) == ["5 %", "95 %"]


def test_confint_boot_is_repeatable_with_a_seed():
    fit = mlmcli.lmer("Reaction ~ Days + (1|Subject)", str(SLEEP))
    a = fit.confint(method="boot", nsim=20, seed=7)
    b = fit.confint(method="boot", nsim=20, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.index) == ["sd_(Intercept)|Subject", "sigma", "(Intercept)", "Days"]
    assert (a["2.5 %"] < a["97.5 %"]).all()


def test_anova_is_lmertests_table(heck):
    ref = reference("heck_public", INFERENCE)["anova_3"]
    fit = mlmcli.lmer("math ~ ses*public + (1|schcode)", heck)
    table = fit.anova()
    assert list(table.columns) == ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
    assert list(table.index) == [r["term"] for r in ref["terms"]]
    for term, r in zip(table.index, ref["terms"], strict=True):
        assert table.loc[term, "F value"] == pytest.approx(r["f_value"], rel=REL)
        assert table.loc[term, "DenDF"] == pytest.approx(r["den_df"], rel=REL)
        assert table.loc[term, "Pr(>F)"] == pytest.approx(r["p_value"], rel=1e-2)
    kr = fit.anova(type=1, ddf="Kenward-Roger")
    assert "Kenward-Roger" in kr.attrs["heading"] and "Type I " in kr.attrs["heading"]
    with pytest.raises(MlmError, match="REML"):
        mlmcli.lmer("math ~ ses + (1|schcode)", heck, reml=False).anova(ddf="Kenward-Roger")


def test_compare_is_lme4s_anova_with_the_refit_note():
    ref = reference("cmp_ss_named")
    df = pd.read_csv(SLEEP)
    fits = [mlmcli.lmer(r["formula"], df) for r in ref["models"]]
    with pytest.warns(mlmcli.MlmWarning, match="refitting model"):
        table = mlmcli.compare(*fits, names=[r["name"] for r in ref["models"]])
    assert list(table.columns) == ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]
    assert list(table.index) == ["base", "days", "slopes"]
    assert table.attrs["messages"] == ["refitting model(s) with ML (instead of REML)"]
    for name, r in zip(table.index, ref["models"], strict=True):
        assert table.loc[name, "npar"] == r["npar"]
        assert table.loc[name, "logLik"] == pytest.approx(r["loglik"], rel=1e-6)
        if r["chisq"] is None:
            assert np.isnan(table.loc[name, "Chisq"])
        else:
            assert table.loc[name, "Chisq"] == pytest.approx(r["chisq"], rel=1e-4)
    with pytest.raises(MlmError, match="at least two"):
        mlmcli.compare(fits[0])


def test_strings_are_factors_with_levels_in_rs_order(heck):
    """R sorts "private" before "Public" (case breaks ties only); Python's sorted() would not."""
    df = heck.assign(sector=np.where(heck["public"] == 1, "Public", "private"))
    numeric = mlmcli.lmer("math ~ ses + public + (1|schcode)", heck).fixef()
    text = mlmcli.lmer("math ~ ses + sector + (1|schcode)", df).fixef()
    assert list(text.index) == ["(Intercept)", "ses", "sectorPublic"]
    assert text["sectorPublic"] == pytest.approx(numeric["public"], rel=1e-6)


def test_categorical_levels_keep_their_order(heck):
    df = heck.assign(
        sector=pd.Categorical(np.where(heck["public"] == 1, "Public", "private"), categories=["Public", "private"])
    )
    numeric = mlmcli.lmer("math ~ ses + public + (1|schcode)", heck).fixef()
    fixef = mlmcli.lmer("math ~ ses + sector + (1|schcode)", df).fixef()
    assert list(fixef.index) == ["(Intercept)", "ses", "sectorprivate"]
    assert fixef["sectorprivate"] == pytest.approx(-numeric["public"], rel=1e-6)


def test_bool_columns_are_logicals(heck):
    df = heck.assign(pub=heck["public"] == 1)
    numeric = mlmcli.lmer("math ~ ses + public + (1|schcode)", heck).fixef()
    fixef = mlmcli.lmer("math ~ ses + pub + (1|schcode)", df).fixef()
    assert list(fixef.index) == ["(Intercept)", "ses", "pubTRUE"]
    assert fixef["pubTRUE"] == pytest.approx(numeric["public"], rel=1e-6)


def test_missing_values_are_left_out_with_a_note():
    df = pd.read_csv(SLEEP)
    df.loc[[0, 5], "Reaction"] = np.nan
    df["Subject"] = df["Subject"].astype(object)
    df.loc[7, "Subject"] = None
    with pytest.warns(mlmcli.MlmWarning, match="3 rows with missing values were left out"):
        fit = mlmcli.lmer(SLOPES, df)
    assert fit.nobs == 177
    assert fit.notes == ["3 rows with missing values were left out (of 180)"]


def test_predict_with_and_without_random_effects(sleep_fit):
    df = pd.read_csv(SLEEP)
    fitted = sleep_fit.predict()
    assert fitted.shape == (180,)
    assert sleep_fit.predict(df) == pytest.approx(fitted, rel=1e-12)
    fixed = sleep_fit.predict(df, re_form="none")
    beta = sleep_fit.fixef()
    assert fixed == pytest.approx(beta["(Intercept)"] + beta["Days"] * df["Days"].to_numpy(), rel=1e-12)
    new = pd.DataFrame({"Days": [0.0, 1.0], "Subject": ["999", "308"]})
    with pytest.raises(DataError, match="new level"):
        sleep_fit.predict(new)
    got = sleep_fit.predict(new, allow_new_levels=True)
    ranef = sleep_fit.ranef()["Subject"].loc["308"]
    assert got[0] == pytest.approx(beta["(Intercept)"])
    assert got[1] == pytest.approx(beta.sum() + ranef.sum())


def test_reprs(sleep_fit):
    assert repr(sleep_fit).startswith("<LmerFit 'Reaction ~ Days + (Days|Subject)' (REML)")
    shown = sleep_fit._repr_html_()
    assert "<table>" in shown and "Days" in shown and "Residual" in shown and "Subject" in shown


def test_mistakes_are_the_projects_errors():
    with pytest.raises(FormulaError):
        mlmcli.lmer("Reaction ~ Days + (Days|", str(SLEEP))
    with pytest.raises(DataError, match="nosuch"):
        mlmcli.lmer("Reaction ~ nosuch + (1|Subject)", pd.read_csv(SLEEP))
    with pytest.raises(MlmError, match="optimizer"):
        mlmcli.lmer(SLOPES, str(SLEEP), optimizer="nelder")


def test_import_is_cheap_and_the_api_survives_the_statistics_modules():
    """`import mlmcli` loads neither numpy nor pandas; importing the statistics module behind
    mlmcli.compare leaves mlmcli.compare the API's function."""
    code = (
        "import sys, mlmcli; heavy = [m for m in ('numpy', 'pandas', 'scipy') if m in sys.modules]; "
        "import mlmcli.stats.compare; print(heavy, callable(mlmcli.compare), mlmcli.compare.__module__)"
    )
    out = python("-c", code, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "True", "mlmcli.api"]
