"""`mlm plot --kind shrinkage`: each group's own least-squares fit (lmList) against the model's (coef(fit)),
the numbers against numpy's least squares and lme4's reference fit, the groups left out and thinned, and
the models it refuses in one line."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest

from mlmcli.errors import MlmError
from mlmcli.render.plots import PlotOptions, build, draw
from mlmcli.stats.shrinkage import shrinkage_report
from tests.commands import ROOT, mlm
from tests.plotfixtures import DATA, HECK
from tests.plotfixtures import fit as _fit
from tests.test_plots import _caption_of

SLEEP = str(DATA / "sleepstudy.csv")
SS = "Reaction ~ Days + (Days|Subject)"
_LME4 = json.loads((DATA.parent / "ss_slope_reml.json").read_text())


def _opts(tmp_path, report, **kw) -> PlotOptions:
    return PlotOptions(
        kind="shrinkage", output=str(tmp_path / "p.png"), dpi=40, width=5, height=4, estimates=report, **kw
    )


def test_own_fits_are_each_subjects_least_squares_line(sleep):
    model, frame = sleep
    report = shrinkage_report(model)
    assert (report["group"], report["x"], report["random_slope"]) == ("Subject", "Days", "Days")
    days = np.array(frame.columns["Days"], dtype=float)
    reaction = np.array(frame.columns["Reaction"], dtype=float)
    subject = np.array([str(int(v)) for v in frame.columns["Subject"]])
    assert len(report["groups"]) == 18 and report["left_out"] == []
    for r in report["groups"]:
        rows = subject == r["level"]
        X = np.column_stack([np.ones(rows.sum()), days[rows]])
        (a, b), *_ = np.linalg.lstsq(X, reaction[rows], rcond=None)
        assert r["n"] == 10
        assert (r["own_intercept"], r["own_slope"]) == (pytest.approx(a, rel=1e-10), pytest.approx(b, rel=1e-10))
    # lmList(Reaction ~ Days | Subject, sleepstudy)["308", ]: 244.1927, 21.7647
    first = report["groups"][0]
    assert first["level"] == "308"
    assert first["own_intercept"] == pytest.approx(244.1927, abs=5e-5)
    assert first["own_slope"] == pytest.approx(21.7647, abs=5e-5)


def test_model_points_are_lme4s_coef_and_the_population_its_fixef(sleep):
    model, _ = sleep
    report = shrinkage_report(model)
    fixef = {r["term"]: r["estimate"] for r in _LME4["fit"]["fixed_effects"]}
    ranef = {(r["level"], r["term"]): r["value"] for r in _LME4["ranef"]["ranef"]}
    pop = report["population"]
    assert pop["intercept"] == pytest.approx(fixef["(Intercept)"], abs=1e-4)
    assert pop["slope"] == pytest.approx(fixef["Days"], abs=1e-5)
    for r in report["groups"]:  # coef(fm1)$Subject: fixef plus the conditional modes
        intercept = fixef["(Intercept)"] + ranef[(r["level"], "(Intercept)")]
        assert r["model_intercept"] == pytest.approx(intercept, abs=1e-3)
        assert r["model_slope"] == pytest.approx(fixef["Days"] + ranef[(r["level"], "Days")], abs=1e-4)
    # partial pooling: taken together, the model's estimates lie nearer the population's than the own fits
    own = np.array([[r["own_intercept"], r["own_slope"]] for r in report["groups"]])
    fit = np.array([[r["model_intercept"], r["model_slope"]] for r in report["groups"]])
    centre = np.array([pop["intercept"], pop["slope"]])
    assert np.sum((fit - centre) ** 2) < np.sum((own - centre) ** 2)


def test_a_random_intercept_only_gives_every_group_the_fixed_slope(heck):
    model, _ = _fit(HECK, "math ~ ses + (1|schcode)")
    report = shrinkage_report(model)
    assert report["random_slope"] is None and report["x"] == "ses"
    assert {r["model_slope"] for r in report["groups"]} == {float(model.beta[1])}
    # the own fits are the same lmList whatever the random part
    own = {r["level"]: r["own_slope"] for r in shrinkage_report(heck[0])["groups"]}
    assert all(own[r["level"]] == pytest.approx(r["own_slope"], rel=1e-9) for r in report["groups"])


def test_groups_without_an_own_fit_are_left_out_and_counted(tmp_path):
    rows = ["y,x,g"]
    rng = np.random.default_rng(3)
    for g in range(8):
        for x in range(5):
            rows.append(f"{10 + g + 2 * x + rng.normal():.4f},{x},g{g}")
    rows.append("12.5,3,single")  # one row
    rows += [f"{v},2,flat" for v in (11.0, 13.0, 12.0)]  # x does not vary
    path = tmp_path / "d.csv"
    path.write_text("\n".join(rows) + "\n")
    model, frame = _fit(path, "y ~ x + (1|g)")
    report = shrinkage_report(model)
    assert sorted(report["left_out"]) == ["flat", "single"] and len(report["groups"]) == 8
    assert report["groups_total"] == 10
    with build(model, frame, _opts(tmp_path, report)) as (fig, drawn, _):
        caption = _caption_of(fig).replace("\n", " ")
    assert "2 g groups left out: no own least-squares fit (a single row, or x constant within it)" in caption
    assert drawn.data["left_out"] == report["left_out"] and drawn.data["groups_drawn"] == 8


def test_many_groups_are_thinned_evenly_over_the_arrows_lengths(heck, tmp_path):
    model, frame = heck
    report = shrinkage_report(model)
    out = draw(model, frame, _opts(tmp_path, report))
    assert (out["groups_total"], out["groups_drawn"], out["picked"]) == (419, 50, "spread")
    own_sd = [np.std([r[f"own_{k}"] for r in report["groups"]]) for k in ("intercept", "slope")]

    def length(r):
        return np.hypot(
            *[(r[f"model_{k}"] - r[f"own_{k}"]) / s for k, s in zip(("intercept", "slope"), own_sd, strict=True)]
        )

    every = sorted(length(r) for r in report["groups"])
    drawn = sorted(length(r) for r in out["fits"])
    assert (drawn[0], drawn[-1]) == (every[0], every[-1])  # the shortest and the longest arrows kept
    levels = [r["level"] for r in out["fits"]]
    assert levels == [r["level"] for r in report["groups"] if r["level"] in set(levels)]  # in level order
    assert draw(model, frame, _opts(tmp_path, report, groups=0))["groups_drawn"] == 419
    assert draw(model, frame, _opts(tmp_path, report, groups=7))["groups_drawn"] == 7


def test_the_drawing_is_the_reports_numbers(sleep, tmp_path):
    model, frame = sleep
    report = shrinkage_report(model)
    with build(model, frame, _opts(tmp_path, report)) as (fig, drawn, _):
        (ax,) = fig.axes
        own, fit, pop = ax.lines
        np.testing.assert_array_equal(own.get_xdata(), [r["own_intercept"] for r in report["groups"]])
        np.testing.assert_array_equal(fit.get_ydata(), [r["model_slope"] for r in report["groups"]])
        assert (pop.get_xdata()[0], pop.get_ydata()[0]) == tuple(report["population"].values())
        assert len(ax.patches) == 18  # one arrow a subject
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("intercept (at Days = 0)", "slope of Days")
    assert drawn.data["fits"][0] == {k: v for k, v in report["groups"][0].items() if k != "index"}


@pytest.mark.parametrize(
    ("data", "formula", "message"),
    [
        (DATA / "Penicillin.csv", "diameter ~ 1 + (1|plate) + (1|sample)", "one grouping factor, and this one has 2"),
        (DATA / "sleepstudy.csv", "Reaction ~ 1 + (1|Subject)", "needs a fixed-effect slope"),
        (DATA / "sleepstudy.csv", "Reaction ~ Days + (0 + Days|Subject)", "needs a fixed and a random intercept"),
        (HECK, "math ~ ses + female + (ses + female|schcode)", "at most one random slope, and schcode has 2"),
    ],
)
def test_models_it_cannot_draw_are_refused(data, formula, message):
    model, _ = _fit(data, formula)
    with pytest.raises(MlmError, match=message):
        shrinkage_report(model)


def test_a_group_level_predictor_leaves_no_group_an_own_fit():
    model, _ = _fit(HECK, "math ~ ses + ses_mean + (1|schcode)")  # ses_mean: the school's mean ses
    with pytest.raises(MlmError, match="no schcode group has its own least-squares fit of every fixed effect"):
        shrinkage_report(model)


def test_the_command_and_its_json(tmp_path):
    out = tmp_path / "s.png"
    p = mlm("plot", SLEEP, SS, "-k", "shrinkage", "-o", str(out), "-f", "json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    schema = json.loads((ROOT / "mlmcli" / "schemas" / "plot.schema.json").read_text())
    jsonschema.validate(doc, schema)
    assert doc["kind"] == "shrinkage" and doc["groups_drawn"] == 18 and len(doc["fits"]) == 18
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for args, message in (
        (["--x", "Subject"], "--x 'Subject' is not a fixed-effect column of the model (they are: Days)"),
        (["--by", "Days"], "--by is not used by the shrinkage plot"),
    ):
        bad = mlm("plot", SLEEP, SS, "-k", "shrinkage", *args, "-o", str(tmp_path / "x.png"))
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and message in bad.stderr, bad.stderr
    bad = mlm("plot", DATA / "Penicillin.csv", "diameter ~ 1 + (1|plate) + (1|sample)", "-k", "shrinkage",
              "-o", str(tmp_path / "x.png"))  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "one grouping factor" in bad.stderr
    glmm = ROOT / "tests" / "fixtures" / "glmer" / "data" / "Contraception.csv"
    bad = mlm("plot", glmm, "use ~ age + (1|district)", "--family", "binomial", "-k", "shrinkage",
              "-o", str(tmp_path / "x.png"))  # fmt: skip
    assert bad.returncode == 2 and "--kind shrinkage is not offered with --family" in bad.stderr
