"""lmer()'s weights = and offset = arguments (--weights, --offset) against R: estimates, criterion,
residuals, Satterthwaite df, random effects, ICC and R², profile intervals and lme4's printed text.
References: fixtures/weights/make_refs.R (lme4 1.1-31, lmerTest 3.1-3, performance, broom.mixed)."""

from __future__ import annotations

import csv
import io
import json
from functools import cache
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from mlmcli.design import ModelArguments, build_design
from mlmcli.formula import parse_formula
from mlmcli.io.csv import read_csv
from mlmcli.model import at_theta, fit_model
from tests.commands import mlm
from tests.test_cli_exit import undeclared
from tests.test_text_end_to_end import nearly_same

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "weights"
REFS = json.loads((FIXTURES / "refs.json").read_text())
CASES = {c["name"]: c for c in REFS["fits"]}
SLEEP_W = str(FIXTURES / "sleep_w.csv")
# lme4 stops short of the optimum here with a convergence warning; we go on to a lower criterion
STOPS_SHORT_IN_R = {"heck_w_slope"}


@cache
def frame(name: str):
    return read_csv(str(FIXTURES / name))


@cache
def optimum(name: str, ddf: str = "Satterthwaite"):
    case = CASES[name]
    f = frame(case["data"])
    parsed = parse_formula(case["formula"])
    design = build_design(f, parsed, ModelArguments(weights=case["weights"], offset=case["offset"]))
    return fit_model(parsed, design, reml=case["reml"], data_name=f.name, ddf=ddf)


@cache
def fitted(name: str, ddf: str = "Satterthwaite"):
    """Ours at lme4's theta: every number lme4 reports there is ours to rounding, whichever end
    point BOBYQA reached on this CPU (lme4 stops up to ~1e-6 above the minimum; we go on)."""
    return at_theta(optimum(name, ddf), _list(CASES[name]["theta"]))


def test_the_default_optimizer_goes_past_lme4s_end_point():
    """At lme4's end point its own checks fail; our optimum is lower and passes them."""
    ours = optimum("heck_w_slope")
    assert ours.converged and ours.criterion < CASES["heck_w_slope"]["criterion"]
    assert not fitted("heck_w_slope").converged


@pytest.mark.parametrize("name", list(CASES))
def test_our_optimum_is_lme4s_where_lme4_converged(name):
    """Never above lme4's criterion; where lme4 converged, within 1e-8 of it (relative), theta
    within BOBYQA's own tolerance (xtol_rel 1e-4 in lme4's nloptwrap)."""
    case, ours = CASES[name], optimum(name)
    assert ours.criterion <= case["criterion"] + 1e-9 * abs(case["criterion"])
    if name not in STOPS_SHORT_IN_R:
        assert ours.criterion == pytest.approx(case["criterion"], rel=1e-8)
        np.testing.assert_allclose(ours.theta, _list(case["theta"]), rtol=1e-4, atol=1e-4)
        assert ours.converged


def _list(x) -> list:
    return x if isinstance(x, list) else [x]


# ------------------------------------------------------------------ numbers


@pytest.mark.parametrize("name", list(CASES))
def test_estimates_and_criterion_match_lme4(name):
    case, model = CASES[name], fitted(name)
    assert model.design.xnames == _list(case["fixef_names"])
    assert model.n == case["n_obs"]
    rel = 1e-6
    np.testing.assert_allclose(model.beta, _list(case["fixef"]), rtol=rel)
    np.testing.assert_allclose(model.theta, _list(case["theta"]), rtol=1e-4, atol=1e-4)
    assert model.sigma == pytest.approx(case["sigma"], rel=rel)
    # REMLcrit() or deviance(): lme4's criterion with prior weights, -sum(log w) included
    assert model.criterion == pytest.approx(case["criterion"], rel=1e-9)
    assert model.loglik == pytest.approx(case["loglik"], rel=1e-9)
    # small off-diagonal entries carry the optimizers' end-point differences: relative to the largest
    np.testing.assert_allclose(
        model.vcov.ravel(), case["vcov"], rtol=0, atol=1e-5 * float(np.max(np.abs(case["vcov"])))
    )


@pytest.mark.parametrize("name", list(CASES))
def test_satterthwaite_df_match_lmertest(name):
    case, model = CASES[name], fitted(name)
    table = model.coef_table()
    np.testing.assert_allclose([r["df"] for r in table], _list(case["df"]), rtol=1e-4)
    np.testing.assert_allclose([r["p_value"] for r in table], _list(case["p"]), rtol=1e-3, atol=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_residuals_fitted_and_predictions_match_lme4(name):
    from mlmcli.model import fitted_values
    from mlmcli.stats.predict import augment_report

    case, model = CASES[name], fitted(name)
    k = len(case["fitted"])
    # BOBYQA's end points differ in the 5th digit of theta: fitted values in the 7th
    rel = 1e-6
    pred = fitted_values(model)
    np.testing.assert_allclose(pred.values[:k], case["fitted"], rtol=rel)
    np.testing.assert_allclose(pred.fixed[:k], case["predict_none"], rtol=rel)
    # residuals(): y - fitted, unweighted; "pearson": times sqrt(w)
    atol = 1e-4
    np.testing.assert_allclose(model.residuals[:k], case["resid"], atol=atol)
    np.testing.assert_allclose(model.pearson_residuals[:k], case["pearson"], atol=atol)
    # summary()'s scaled residuals: Pearson residuals over sigma
    np.testing.assert_allclose(model.scaled_residual_quantiles(), case["scaled_quantiles"], atol=1e-5)
    _, columns = augment_report(model)
    a = case["augment"]
    np.testing.assert_allclose(columns[".fitted"][:k], a["fitted"], rtol=rel)
    np.testing.assert_allclose(columns[".resid"][:k], a["resid"], atol=atol)
    np.testing.assert_allclose(columns[".fixed"][:k], a["fixed"], rtol=rel)
    # broom.mixed's model frame columns before its own
    model_frame = [c for c in a["columns"] if not c.startswith(".")]
    assert [c for c in columns if not c.startswith(".")][-len(model_frame) :][-2:] == model_frame[-2:]


@pytest.mark.parametrize("name", list(CASES))
def test_random_effects_match_lme4(name):
    from mlmcli.report import ranef_report

    case, model = CASES[name], fitted(name, "none")
    rows = ranef_report(model)["ranef"]
    atol = 1e-4
    for group, ref in case["ranef"].items():
        got = [r for r in rows if r["group"] == group]
        assert [r["level"] for r in got][:: len(_list(ref["terms"]))] == [str(v) for v in _list(ref["levels"])]
        np.testing.assert_allclose([r["value"] for r in got], _list(ref["values"]), atol=atol)
        np.testing.assert_allclose([r["cond_sd"] for r in got], _list(ref["sd"]), rtol=1e-4)


@pytest.mark.parametrize("name", list(CASES))
def test_icc_and_r2_match_performance(name):
    from mlmcli.effects import variance_components

    case, model = CASES[name], fitted(name)
    e = variance_components(model)
    for got, want in [(e.icc, case["icc"]), (e.r2, case["r2"])]:
        for key, value in want.items():
            if value is None:
                assert got[key] is None, key
            else:
                assert got[key] == pytest.approx(value, abs=1e-6), key


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if "ranova" in c])
def test_ranova_matches_lmertest(name):
    from mlmcli.stats.ranova import ranova_report

    case, model = CASES[name], fitted(name, "none")
    terms = ranova_report(model, frame(case["data"]))["terms"]
    assert [t["npar"] for t in terms] == _list(case["ranova"]["npar"])
    np.testing.assert_allclose([t["loglik"] for t in terms], _list(case["ranova"]["loglik"]), rtol=1e-7)


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if "confint_theta" in c])
def test_profile_intervals_with_weights(name):
    """Variance parameters against lme4's confint(); fixed effects against the ML deviance profiled
    directly in R (beta_j as an offset), since lme4's profile() leaves the prior weights out of its
    fixed-effect profiles (lme4 issue #192) and reports nonsense there."""
    from mlmcli.stats.confint import profile

    case, model = CASES[name], fitted(name, "none")
    ci = profile(model)
    th = case["confint_theta"]
    nv = len(th["names"])
    np.testing.assert_allclose([ci[i][0] for i in range(nv)], th["lower"], rtol=2e-4)
    np.testing.assert_allclose([ci[i][1] for i in range(nv)], th["upper"], rtol=2e-4)
    for j, term in enumerate(model.design.xnames):
        lo, hi = case["confint_beta"][term]
        width = hi - lo
        assert ci[nv + j][0] == pytest.approx(lo, abs=1e-4 * width)
        assert ci[nv + j][1] == pytest.approx(hi, abs=1e-4 * width)


# ------------------------------------------------------------------ lme4's printed text


def _text(name: str, what: str) -> str:
    return (FIXTURES / f"{name}.{what}.txt").read_text().rstrip("\n")


def _summary(name: str) -> str:
    from mlmcli.render.text import fit_summary_output
    from mlmcli.report import fit_report

    return fit_summary_output(fit_report(fitted(name))).out.rstrip("\n")


@pytest.mark.parametrize("name", list(CASES))
def test_summary_text_matches_lme4(name):
    """Same lines and words ("Weights:" and " Offset:" under "Data:"), numbers to 1e-5."""
    assert nearly_same(_summary(name), _text(name, "summary"), rel=1e-5) == []


def test_most_summaries_match_lme4_byte_for_byte():
    """A printed number may differ in its last digit (Satterthwaite's df to 7 digits), not more often."""
    same = [name for name in CASES if _summary(name) == _text(name, "summary")]
    assert len(same) >= len(CASES) - 3, same


@pytest.mark.parametrize("name", list(CASES))
def test_anova_and_ranova_text_match_lmertest(name):
    from mlmcli.render.inference import anova_text, ranova_text
    from mlmcli.stats.anova import anova_report
    from mlmcli.stats.ranova import ranova_report

    model = fitted(name)
    f = frame(CASES[name]["data"])
    assert anova_text(anova_report(model, f, 3)).rstrip("\n") == _text(name, "anova")
    assert ranova_text(ranova_report(model, f)).rstrip("\n") == _text(name, "ranova")


def test_compare_text_matches_lme4_anova():
    p = mlm(
        "compare",
        SLEEP_W,
        "Reaction ~ 1 + (1 | Subject)",
        "Reaction ~ Days + (1 | Subject)",
        "Reaction ~ Days + (Days | Subject)",
        "--weights",
        "w",
        "--offset",
        "off",
        "-f",
        "text",
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.rstrip("\n") == _text("sleep_compare", "anova")
    assert p.stderr == "refitting model(s) with ML (instead of REML)\n"


# ------------------------------------------------------------------ the command line


def test_offset_option_is_the_formula_offset():
    """--offset off gives what offset(off) in the formula gives, on top of offset() terms."""
    a = json.loads(
        mlm("fit", SLEEP_W, "Reaction ~ Days + offset(Days) + (1|Subject)", "--offset", "off", "-f", "json").stdout
    )
    b = json.loads(
        mlm("fit", SLEEP_W, "Reaction ~ Days + offset(Days) + offset(off) + (1|Subject)", "-f", "json").stdout
    )
    assert a["offset"] == "off" and b["offset"] is None
    for key in ("criterion", "sigma", "theta", "fixed_effects", "scaled_residuals", "icc", "r2"):
        assert a[key] == b[key], key
    ref = CASES["sleep_off_both"]
    assert a["criterion"] == pytest.approx(ref["criterion"], rel=1e-9)


def test_fit_json_names_weights_and_offset_and_follows_the_schema():
    doc = json.loads(
        mlm(
            "fit", SLEEP_W, "Reaction ~ Days + (Days|Subject)", "--weights", "w", "--offset", "off", "-f", "json"
        ).stdout
    )
    schema = json.loads((ROOT / "mlmcli" / "schemas" / "fit.schema.json").read_text())
    jsonschema.validate(doc, schema)
    assert undeclared(doc, schema) == []
    assert (doc["weights"], doc["offset"]) == ("w", "off")
    ref = CASES["sleep_w_off"]
    assert doc["criterion"] == pytest.approx(ref["criterion"], rel=1e-9)
    plain = json.loads(mlm("fit", SLEEP_W, "Reaction ~ Days + (Days|Subject)", "-f", "json").stdout)
    assert (plain["weights"], plain["offset"]) == (None, None)


def test_table_names_weights_and_offset():
    p = mlm(
        "fit",
        SLEEP_W,
        "Reaction ~ Days + (Days|Subject)",
        "--weights",
        "w",
        "--offset",
        "off",
        "-f",
        "table",
        "--no-color",
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert any(line.split() == ["│", "Weights", "w", "│"] for line in lines)
    assert any(line.split() == ["│", "Offset", "off", "│"] for line in lines)


def test_augment_csv_has_the_model_frames_weights_and_offset():
    p = mlm("augment", SLEEP_W, "Reaction ~ Days + (Days|Subject)", "--weights", "w", "--offset", "off")
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert list(rows[0]) == ["Reaction", "Days", "Subject", "(weights)", "(offset)", ".fitted", ".resid", ".fixed"]
    # the command's numbers are the library's at the optimum (those are lme4's at lme4's theta, above)
    np.testing.assert_allclose([float(r[".resid"]) for r in rows], optimum("sleep_w_off").residuals, rtol=1e-12)


def test_predict_new_data_leaves_the_offset_argument_out_as_lme4_does():
    p = mlm(
        "predict",
        SLEEP_W,
        "Reaction ~ Days + (Days|Subject)",
        "--weights",
        "w",
        "--offset",
        "off",
        "--newdata",
        SLEEP_W,
        "--re-form",
        "none",
    )
    assert p.returncode == 0, p.stderr
    assert "predictions for --newdata leave out --offset" in p.stderr
    got = [float(r[".fitted"]) for r in csv.DictReader(io.StringIO(p.stdout))]
    from mlmcli.model import fitted_values

    # the library's numbers at the optimum (lme4's at lme4's theta: test_residuals_fitted_...)
    model = optimum("sleep_w_off")
    beta = model.beta
    days = [float(r["Days"]) for r in csv.DictReader(io.StringIO((FIXTURES / "sleep_w.csv").read_text()))]
    np.testing.assert_allclose(got, [beta[0] + beta[1] * d for d in days], rtol=1e-12)
    # without new data the fitted values include it, as predict(fit) does
    p = mlm(
        "predict", SLEEP_W, "Reaction ~ Days + (Days|Subject)", "--weights", "w", "--offset", "off", "--re-form", "none"
    )
    got = [float(r[".fitted"]) for r in csv.DictReader(io.StringIO(p.stdout))]
    np.testing.assert_allclose(got, fitted_values(model).fixed, rtol=1e-12)


@pytest.mark.parametrize("command", ["tau", "ranef", "confint", "anova", "ranova"])
def test_every_fitting_command_takes_the_options(command):
    args = [command, SLEEP_W, "Reaction ~ Days + (1|Subject)", "--weights", "w", "--offset", "off", "-f", "json"]
    if command == "confint":
        args += ["--method", "wald"]
    p = mlm(*args)
    assert p.returncode == 0, p.stderr
    json.loads(p.stdout)


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ("w_neg", "mlm: error: --weights w_neg: the weight of data row 3 is negative; weights must be positive"),
        (
            "w_zero",
            "mlm: error: --weights w_zero: the weight of data row 3 is zero; weights must be positive "
            "(lme4's criterion is infinite with a zero weight; leave such rows out of the data)",
        ),
        ("Subjekt", "mlm: error: unknown column 'Subjekt' in --weights; did you mean 'Subject'?"),
        ("group", "mlm: error: --weights group: the column must be numeric"),
    ],
)
def test_bad_weights_are_one_line_and_exit_2(tmp_path, column, message):
    path = tmp_path / "bad.csv"
    lines = (FIXTURES / "sleep_w.csv").read_text().splitlines()
    out = [lines[0] + ',"w_neg","w_zero","group"']
    for i, line in enumerate(lines[1:]):
        out.append(line + (",-1,0,a" if i == 2 else ",1,1,b"))
    path.write_text("\n".join(out) + "\n")
    p = mlm("fit", str(path), "Reaction ~ Days + (1|Subject)", "--weights", column)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [message]
    # lme4: all(weights >= 0) is not TRUE; a zero weight gives an infinite REML criterion
    assert REFS["errors"]["negative"] == "all(weights >= 0) is not TRUE"
    assert REFS["errors"]["zero_criterion"] is None


def test_missing_weights_drop_rows_as_missing_data():
    case = CASES["sleep_w_na"]
    model = fitted("sleep_w_na")
    assert model.n == case["n_obs"] == 178
    assert 4 not in model.design.rows and 76 not in model.design.rows


def test_residual_plot_shows_pearson_residuals_against_fitted_values(tmp_path):
    """lme4's plot(fit): Pearson residuals over sigma against fitted(fit), offsets included."""
    p = mlm(
        "plot",
        SLEEP_W,
        "Reaction ~ Days + (Days|Subject)",
        "--weights",
        "w",
        "--offset",
        "off",
        "-k",
        "residuals",
        "-o",
        str(tmp_path / "r.png"),
        "-f",
        "json",
    )
    assert p.returncode == 0, p.stderr
    points = [q for q in json.loads(p.stdout)["points"] if q["panel"] == "residuals_vs_fitted"]
    from mlmcli.model import fitted_values

    model = optimum("sleep_w_off")
    np.testing.assert_allclose([q["x"] for q in points], fitted_values(model).values[: len(points)], rtol=1e-9)
    np.testing.assert_allclose(
        [q["y"] for q in points], model.pearson_residuals[: len(points)] / model.sigma, rtol=1e-9, atol=1e-12
    )


def test_fitted_lines_of_the_plot_carry_the_offset():
    """plot --kind fitted: a subject's line is the mean over its rows of what fitted() gives at each
    x, its rows' offsets included (Reaction is linear in Days, so the mean is exact)."""
    from mlmcli.design import ModelArguments, build_design
    from mlmcli.formula import parse_formula
    from mlmcli.io.csv import read_csv
    from mlmcli.model import fit_model
    from mlmcli.render.plots.implied import Implied

    frame = read_csv(str(FIXTURES / "sleep_w.csv"))
    parsed = parse_formula("Reaction ~ Days + (Days|Subject)")
    model = fit_model(parsed, build_design(frame, parsed, ModelArguments(offset="off")), reml=True, data_name="x")
    design = model.design
    codes = design.terms[0].codes
    x = np.asarray(design.values["Days"], dtype=float)
    _, grid, means, _ = Implied(model, frame, "Days").curves(x, codes, len(design.terms[0].levels), "Subject")
    b = model.conditional_modes()[0]
    beta = model.beta
    off_mean = np.bincount(codes, weights=design.offset) / np.bincount(codes)
    expected = (beta[0] + b[:, :1]) + (beta[1] + b[:, 1:]) * grid + off_mean[:, None]
    np.testing.assert_allclose(means, expected, rtol=1e-10)
    assert np.all(off_mean > 0.4)  # lines without the offsets would be this much lower: the test sees it
