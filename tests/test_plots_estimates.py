"""`mlm plot --kind coef` (the fixed effects with lme4's Wald intervals, as sjPlot's plot_model draws
them) and `--kind effects` (ggeffects' ggpredict: predictions of the fixed part on a grid of one or two
predictors with a band from vcov(beta)): the numbers drawn against the fit's and lme4's."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest

from mlmcli.render.plots import PlotOptions, draw
from mlmcli.stats.confint import confint_report
from mlmcli.stats.estimates import GRID_POINTS, coef_report, effects_report
from tests.commands import mlm
from tests.plotfixtures import DATA, HECK, ROOT
from tests.plotfixtures import fit as _fit

SLEEP = str(DATA / "sleepstudy.csv")
SS = "Reaction ~ Days + (Days|Subject)"
INTERACTION = "math ~ ses * public + (ses|schcode)"
Z = 1.959963984540054

# lme4 1.1-31's fixef(fm1) and their standard errors (the fixture of tests/test_engine_refs.py), and
# confint(fm1, method = "Wald") from them: estimate -+ qnorm(0.975) SE
_LME4 = json.loads((DATA.parent / "ss_slope_reml.json").read_text())["fit"]["fixed_effects"]
SLEEP_LME4 = {
    r["term"]: (r["estimate"], r["std_error"], r["estimate"] - Z * r["std_error"], r["estimate"] + Z * r["std_error"])
    for r in _LME4
}


def _draw(model, frame, tmp_path, kind, estimates, **kw):
    opts = PlotOptions(kind=kind, output=str(tmp_path / "p.png"), dpi=40, width=5, height=4, estimates=estimates, **kw)
    return draw(model, frame, opts)


# ------------------------------------------------------------------ coef


def test_coef_draws_lme4s_estimates_and_wald_intervals(sleep, tmp_path):
    model, frame = sleep
    out = _draw(model, frame, tmp_path, "coef", coef_report(model, intercept=True), intercept=True)
    assert out["method"] == "Wald" and out["confidence_level"] == 0.95 and out["intercept"] is True
    assert [r["term"] for r in out["estimates"]] == list(SLEEP_LME4)
    for r in out["estimates"]:
        est, se, lo, hi = SLEEP_LME4[r["term"]]
        assert r["estimate"] == pytest.approx(est, rel=1e-7)
        assert r["std_error"] == pytest.approx(se, rel=1e-5)
        assert r["lower"] == pytest.approx(lo, rel=1e-6)
        assert r["upper"] == pytest.approx(hi, rel=1e-6)
    # the numbers confint(fm1, method = "Wald") prints
    assert [round(out["estimates"][1][k], 4) for k in ("lower", "upper")] == [7.4376, 13.497]


def test_coef_leaves_the_intercept_out_by_default_and_agrees_with_confint(heck_public):
    model, _ = heck_public
    report = coef_report(model)
    assert [r["term"] for r in report["estimates"]] == ["ses", "public", "ses:public"]
    wald = {r["parameter"]: r for r in confint_report(model, "wald")["intervals"]}
    beta = dict(zip(model.design.xnames, model.beta, strict=True))
    for r in report["estimates"]:
        assert r["estimate"] == beta[r["term"]]
        assert r["lower"] == pytest.approx(wald[r["term"]]["lower"], rel=1e-12)
        assert r["upper"] == pytest.approx(wald[r["term"]]["upper"], rel=1e-12)
        assert r["upper"] - r["estimate"] == pytest.approx(Z * r["std_error"], rel=1e-12)
    # ses:public's interval just reaches past zero: 4 significant digits of the fit's own numbers
    inter = report["estimates"][2]
    assert inter["estimate"] == pytest.approx(-0.62520, abs=1e-4) and inter["upper"] > 0


def test_coef_from_the_command_line(tmp_path):
    out = tmp_path / "coef.png"
    p = mlm("plot", SLEEP, SS, "-k", "coef", "-o", str(out), "--format", "json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["kind"] == "coef" and doc["intercept"] is False
    assert [r["term"] for r in doc["estimates"]] == ["Days"]
    assert doc["estimates"][0]["lower"] == pytest.approx(SLEEP_LME4["Days"][2], rel=1e-6)
    assert out.read_bytes()[:4] == b"\x89PNG"
    p = mlm("plot", SLEEP, SS, "-k", "coef", "--intercept", "-o", str(out), "--format", "json")
    assert [r["term"] for r in json.loads(p.stdout)["estimates"]] == ["(Intercept)", "Days"]


def test_coef_of_an_intercept_only_model_asks_for_the_intercept(tmp_path):
    p = mlm("plot", SLEEP, "Reaction ~ 1 + (1|Subject)", "-k", "coef", "-o", str(tmp_path / "p.png"))
    assert p.returncode == 2
    assert p.stderr == (
        "mlm: error: the model has no fixed effect besides the intercept: give --intercept to plot it\n"
    )


# ------------------------------------------------------------------ effects


def _direct(model, X):
    """Predictions and standard errors straight from beta and vcov."""
    beta, V = np.asarray(model.beta), np.asarray(model.vcov)
    return X @ beta, np.sqrt(np.array([x @ V @ x for x in X]))


def test_effects_of_one_term_at_lme4s_numbers(sleep):
    """ggpredict(fm1, "Days"): the population line over Days' range, its band from vcov(beta)."""
    model, _ = sleep
    report = effects_report(model, ["Days"])
    rows = report["predictions"]
    assert len(rows) == GRID_POINTS and report["line_values"] == [] and report["held_at"] == {}
    x = np.array([r["x"] for r in rows])
    assert x[0] == 0.0 and x[-1] == 9.0 and np.all(np.diff(x) > 0)
    # at Days = 0 the prediction is the intercept and its SE the intercept's (lme4's numbers)
    (b0, se0, _, _), (b1, _, _, _) = SLEEP_LME4["(Intercept)"], SLEEP_LME4["Days"]
    assert rows[0]["predicted"] == pytest.approx(b0, rel=1e-7)
    assert rows[0]["std_error"] == pytest.approx(se0, rel=1e-5)
    assert rows[-1]["predicted"] == pytest.approx(b0 + 9 * b1, rel=1e-7)
    X = np.column_stack([np.ones_like(x), x])
    pred, se = _direct(model, X)
    np.testing.assert_allclose([r["predicted"] for r in rows], pred, rtol=1e-12)
    np.testing.assert_allclose([r["std_error"] for r in rows], se, rtol=1e-10)
    np.testing.assert_allclose([r["upper"] for r in rows], pred + Z * se, rtol=1e-12)


def test_effects_of_an_interaction_one_line_per_value_of_a_binary_term(heck_public):
    model, frame = heck_public
    report = effects_report(model, ["ses", "public"])
    assert report["focal"] == ["ses", "public"] and report["line_values"] == [0.0, 1.0]
    rows = report["predictions"]
    assert len(rows) == 2 * GRID_POINTS
    ses = np.asarray(model.design.values["ses"])
    for g in (0.0, 1.0):
        mine = [r for r in rows if r["group"] == g]
        x = np.array([r["x"] for r in mine])
        assert x[0] == ses.min() and x[-1] == ses.max()
        X = np.column_stack([np.ones_like(x), x, np.full_like(x, g), x * g])
        pred, se = _direct(model, X)
        np.testing.assert_allclose([r["predicted"] for r in mine], pred, rtol=1e-12)
        np.testing.assert_allclose([r["std_error"] for r in mine], se, rtol=1e-10)


def test_effects_of_a_binary_first_term_are_its_two_values_drawn_as_points(heck_public, tmp_path):
    """public is 0/1: predictions at 0 and 1 (a line between them would show values it never takes)."""
    model, frame = heck_public
    report = effects_report(model, ["public", "ses"])
    assert report["x_is_factor"] is False and report["x_discrete"] is True
    rows = report["predictions"]
    assert [r["x"] for r in rows] == [0.0, 1.0] * 3
    ses = np.asarray(model.design.values["ses"], dtype=float)
    m, s = ses.mean(), ses.std(ddof=1)
    X = np.array([[1.0, g, p, g * p] for g in (m - s, m, m + s) for p in (0.0, 1.0)])
    pred, se = _direct(model, X)
    np.testing.assert_allclose([r["predicted"] for r in rows], pred, rtol=1e-12)
    np.testing.assert_allclose([r["std_error"] for r in rows], se, rtol=1e-10)
    assert effects_report(model, ["ses"])["x_discrete"] is False
    from mlmcli.render.plots import build

    opts = PlotOptions(kind="effects", output=str(tmp_path / "p.png"), dpi=40, estimates=report, terms="public,ses")
    with build(model, frame, opts) as (fig, _, _):
        (ax,) = fig.axes
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1"]
        assert len(ax.collections) == 3 and not any(len(line.get_xdata()) > 2 for line in ax.lines)


def test_effects_hold_the_other_predictors_at_ggpredicts_typical_values(heck_public, heck_factor):
    """The other numeric predictors at their mean, factors at their reference level; a numeric
    second term at mean - sd, mean, mean + sd."""
    model, _ = heck_public
    public = np.asarray(model.design.values["public"], dtype=float)
    report = effects_report(model, ["ses"])
    assert report["held_at"] == {"public": pytest.approx(public.mean(), rel=1e-14)}
    x = np.array([r["x"] for r in report["predictions"]])
    m = public.mean()
    pred, se = _direct(model, np.column_stack([np.ones_like(x), x, np.full_like(x, m), x * m]))
    np.testing.assert_allclose([r["predicted"] for r in report["predictions"]], pred, rtol=1e-12)
    np.testing.assert_allclose([r["std_error"] for r in report["predictions"]], se, rtol=1e-10)

    model, _ = heck_factor
    report = effects_report(model, ["public", "ses"])  # the column names factor(public)
    assert report["focal"] == ["factor(public)", "ses"] and report["x_is_factor"] is True
    ses = np.asarray(model.design.values["ses"], dtype=float)
    m, s = ses.mean(), ses.std(ddof=1)
    np.testing.assert_allclose(report["line_values"], [m - s, m, m + s], rtol=1e-12)
    female = np.asarray(model.design.values["female"], dtype=float).mean()
    assert report["held_at"] == {"female": pytest.approx(female, rel=1e-14)}
    rows = report["predictions"]
    assert [r["x"] for r in rows] == ["0", "1"] * 3
    X = np.array([[1.0, g, float(r["x"] == "1"), female] for g in (m - s, m, m + s) for r in rows[:2]])
    pred, se = _direct(model, X)
    np.testing.assert_allclose([r["predicted"] for r in rows], pred, rtol=1e-12)
    np.testing.assert_allclose([r["std_error"] for r in rows], se, rtol=1e-10)
    # a factor not in focus sits at its reference level
    report = effects_report(model, ["ses"])
    assert report["held_at"]["factor(public)"] == "0"


def test_effects_from_the_command_line(tmp_path):
    out, csv_ = tmp_path / "eff.png", tmp_path / "eff.csv"
    p = mlm(
        "plot", str(HECK), INTERACTION, "-k", "effects", "--terms", "ses,public",
        "-o", str(out), "--data-out", str(csv_), "--format", "json",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["kind"] == "effects" and doc["focal"] == ["ses", "public"] and doc["line_values"] == [0, 1]
    assert len(doc["predictions"]) == 2 * GRID_POINTS
    assert csv_.read_text().splitlines()[0] == "x,predicted,std_error,lower,upper,group"
    # without --terms: the first predictor of the fixed part
    p = mlm("plot", SLEEP, SS, "-k", "effects", "-o", str(out), "--format", "json")
    assert p.returncode == 0 and json.loads(p.stdout)["focal"] == ["Days"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["-k", "effects", "--terms", "age"], "--terms: 'age' is not a fixed-effect predictor (they are: ses, public)"),
        (["-k", "effects", "--terms", "ses,public,ses"], "--terms names one predictor or two joined by a comma"),
        (["-k", "effects", "--terms", "ses,ses"], "--terms names the same predictor twice"),
        (["-k", "coef", "--terms", "ses"], "--terms is not used by the coef plot"),
        (["-k", "effects", "--intercept"], "--intercept is not used by the effects plot"),
        (["-k", "caterpillar", "--terms", "ses"], "--terms is not used by the caterpillar plot"),
    ],
)
def test_effects_and_coef_refuse_what_they_cannot_draw(tmp_path, args, message):
    png = tmp_path / "p.png"
    p = mlm("plot", str(HECK), INTERACTION, *args, "-o", str(png))
    assert p.returncode == 2 and not png.exists()
    assert p.stderr.startswith("mlm: error: " + message) and p.stderr.count("\n") == 1, p.stderr


# ------------------------------------------------------------------ check


def test_check_panels_draw_the_fits_residuals_modes_and_distances(sleep, tmp_path):
    """performance::check_model()'s panels: the numbers each one draws, against the fit's own."""
    from mlmcli.model import fitted_values
    from mlmcli.stats.diagnostics import MAX_BOXES, SMOOTH_POINTS, check_report, lowess

    model, frame = sleep
    r = check_report(model)
    np.testing.assert_allclose(r["fitted"], fitted_values(model).values, rtol=1e-14)
    np.testing.assert_allclose(r["scaled_residuals"], model.residuals / model.sigma, rtol=1e-12)
    # the random effects, each over its sd in Tau: lme4's ranef(fm1) / attr(VarCorr(fm1)$Subject, "stddev")
    modes, sd = model.conditional_modes()[0], model.varcomps()[0].std_dev
    assert [(e["group"], e["term"]) for e in r["random_effects"]] == [("Subject", "(Intercept)"), ("Subject", "Days")]
    np.testing.assert_allclose(r["random_effects"][1]["z"], modes[:, 1] / sd[1], rtol=1e-14)
    # the influence approximation: b' Tau^-1 b / q, its cut-off qchisq(0.95, 2) / 2
    tau = model.varcomps()[0].covariance
    d = np.array([b @ np.linalg.solve(tau, b) / 2 for b in modes])
    np.testing.assert_allclose(r["influence"]["distance"], d, rtol=1e-9)
    assert r["influence"]["cutoff"] == pytest.approx(5.991464547107979 / 2, rel=1e-12)
    # every subject's residuals in a box (18 of them, under the thinning limit)
    assert r["boxes"]["total"] == 18 == len(r["boxes"]["levels"]) <= MAX_BOXES
    medians = [np.median(v) for v in r["boxes"]["values"]]
    assert medians == sorted(medians)
    assert len(r["smooth_x"]) == SMOOTH_POINTS and np.all(np.isfinite(r["smooth_residuals"]))
    # lowess reproduces a straight line, and a robust one ignores an outlier
    x = np.linspace(0, 10, 101)
    np.testing.assert_allclose(lowess(x, 2 + 3 * x, x[::10]), 2 + 3 * x[::10], rtol=1e-9)
    y = 2 + 3 * x
    y[50] += 100
    assert lowess(x, y, np.array([5.0]))[0] == pytest.approx(17.0, abs=1e-6)

    out = _draw(model, frame, tmp_path, "check", r)
    assert [row["level"] for row in out["influence"]][0] == model.design.terms[0].levels[int(np.argmax(d))]
    assert out["influence_cutoff"] == pytest.approx(2.9957322735539895)


def test_check_thins_the_boxes_of_many_groups(tmp_path):
    from mlmcli.stats.diagnostics import MAX_BOXES, check_report

    model, _ = _fit(HECK, "math ~ ses + (ses|schcode)")
    r = check_report(model)
    assert r["boxes"]["total"] == 419 and len(r["boxes"]["levels"]) == MAX_BOXES
    p = mlm("plot", SLEEP, SS, "-k", "check", "-o", str(tmp_path / "c.png"), "--format", "json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["box_group"] == "Subject"
    p = mlm("plot", SLEEP, SS, "-k", "check", "--xlabel", "x", "-o", str(tmp_path / "c.png"))
    assert p.returncode == 2 and "--xlabel is not used by the check plot (its panels have different axes)" in p.stderr


# ------------------------------------------------------------------ effects of a GLMM


def test_effects_of_a_glmm_are_ggpredicts_on_the_response_scale(tmp_path):
    """cbpp's period (a factor): plogis(X beta) at each level, the band plogis(X beta -+ z se) with se
    from vcov(beta); lme4's fixef and vcov of the same fit (tests/fixtures/glmer/cbpp_laplace.json)."""
    from scipy.special import expit

    ref = json.loads((ROOT / "tests" / "fixtures" / "glmer" / "cbpp_laplace.json").read_text())
    beta, V = np.array(ref["beta"]), np.array(ref["vcov"]["matrix"])
    cbpp = ROOT / "tests" / "fixtures" / "glmer" / "data" / "cbpp.csv"
    formula = "cbind(incidence, size - incidence) ~ factor(period) + (1 | herd)"
    p = mlm("plot", cbpp, formula, "--family", "binomial", "-k", "effects", "-o", str(tmp_path / "e.png"), "-f", "json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    schema = json.loads((ROOT / "mlmcli" / "schemas" / "plot.schema.json").read_text())
    jsonschema.validate(doc, schema)
    assert doc["scale"] == "response" and doc["x_is_factor"] is True
    rows = doc["predictions"]
    assert [r["x"] for r in rows] == ["1", "2", "3", "4"]
    X = np.column_stack([np.ones(4), np.eye(4)[:, 1:]])
    eta, se = X @ beta, np.sqrt(np.einsum("ij,jk,ik->i", X, V, X))
    np.testing.assert_allclose([r["std_error"] for r in rows], se, rtol=1e-3)
    np.testing.assert_allclose([r["predicted"] for r in rows], expit(eta), rtol=1e-4)
    np.testing.assert_allclose([r["lower"] for r in rows], expit(eta - Z * se), rtol=1e-3)
    np.testing.assert_allclose([r["upper"] for r in rows], expit(eta + Z * se), rtol=1e-3)
    assert all(r["lower"] < r["predicted"] < r["upper"] for r in rows)  # not symmetric about it, but around it
