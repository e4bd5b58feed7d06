"""augment and plot with --family: broom.mixed's augment() of glmer fits (tests/fixtures/glmer: the
augment key of every case, and augment/<case>.csv written by make_augment.R), and the pictures a
GLMM offers (caterpillar, ranef, fitted on the response scale)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest

from mlmcli.errors import MlmError
from mlmcli.render.plots import PlotOptions, draw
from tests.commands import mlm
from tests.test_glmer import CASES, FIXTURES, LME4_STOPS_SHORT, fitted, reference

SCHEMAS = Path(__file__).resolve().parent.parent / "mlmcli" / "schemas"
BROOM = sorted(p.stem for p in (FIXTURES / "augment").glob("*.csv"))
DATA = FIXTURES / "data"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def close(ours, theirs, rtol: float = 1e-4, atol: float = 2e-4) -> bool:
    return np.allclose(np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float), rtol=rtol, atol=atol)


# ---------------------------------------------------------------- augment: values


@pytest.mark.parametrize("case", [c["id"] for c in CASES])
def test_augment_columns_are_lme4s_fitted_values_and_residuals(case):
    """.fitted is fitted(fit) (mu), .eta predict(fit), .resid the deviance residuals and .wtres the
    Pearson residuals, on the first 300 rows R wrote; y - mu is residuals(fit, "response")."""
    ref = reference(case)["augment"]
    fit = fitted(case)
    frame = fit.augment()
    k = ref["rows"]
    assert len(frame) == fit.nobs and k == min(300, fit.nobs)
    # where lme4 stops short (guImmun) mlm's optimum is 0.09 lower: its values differ as much
    atol = 0.05 if case in LME4_STOPS_SHORT else 2e-4
    assert close(frame[".fitted"][:k], ref["fitted"], atol=atol)
    assert close(frame[".eta"][:k], ref["linear_predictor"], atol=atol)
    assert close(frame[".resid"][:k], ref["resid_deviance"], atol=atol)
    assert close(frame[".wtres"][:k], ref["resid_pearson"], atol=atol)
    response = fit.model.problem.response
    assert close((response.y - fit.model.fitted)[:k], ref["resid_response"], atol=atol)
    # the link scale and the response scale are one inverse link apart
    assert np.allclose(fit.model.family.linkinv(frame[".eta"].to_numpy()), frame[".fitted"], rtol=1e-12, atol=0)
    # R's deviance(fit) of a GLMM: the deviance residuals' sum of squares
    ss = float(np.sum(frame[".resid"].to_numpy() ** 2))
    assert ss == pytest.approx(reference(case)["deviance_residuals_sum_of_squares"], rel=2e-2 if atol > 1e-3 else 1e-5)


def _text(v: object) -> str:
    """A cell as R's write.csv writes it."""
    return str(v).upper() if isinstance(v, (bool, np.bool_)) else str(v)


def broom(case: str) -> pd.DataFrame:
    return pd.read_csv(FIXTURES / "augment" / f"{case}.csv", keep_default_na=False)


@pytest.mark.parametrize("case", BROOM)
def test_augment_is_broom_mixeds_with_fitted_on_the_response_scale(case):
    """The model frame as broom.mixed's augment() has it (names and values), .resid, .fixed, .eta and
    .wtres as there; mlm's .fitted is broom.mixed's .mu (its .fitted is the linear predictor)."""
    theirs = broom(case)
    ours = fitted(case).augment()
    k = len(theirs)
    model_frame = [c for c in theirs.columns if not c.startswith(".")]
    assert list(ours.columns) == model_frame + [".fitted", ".resid", ".fixed", ".eta", ".wtres"]
    for col in model_frame:
        a, b = ours[col][:k], theirs[col]
        if not pd.api.types.is_numeric_dtype(b) or b.dtype == bool:
            assert [_text(v) for v in a] == [_text(v) for v in b], col
        else:
            assert np.allclose(a.astype(float), b, rtol=1e-13, atol=0), col
    assert close(ours[".fitted"][:k], theirs[".mu"])
    assert close(ours[".eta"][:k], theirs[".eta"])
    assert close(ours[".eta"][:k], theirs[".fitted"])
    for col in (".resid", ".fixed", ".wtres"):
        assert close(ours[col][:k], theirs[col]), col


def test_fixed_is_the_fixed_part_and_offset_on_the_link_scale():
    fit = fitted("epil_offset_formula")
    frame = fit.augment()
    X = fit.model.design.X
    offset = np.log(pd.read_csv(DATA / "epil.csv")["base"].to_numpy() / 4)
    assert np.allclose(frame[".fixed"], X @ fit.model.beta + offset, rtol=1e-12, atol=1e-12)
    assert np.allclose(frame["offset(log(base/4))"], offset, rtol=1e-12, atol=0)
    assert np.allclose(frame[".fixed"], fit.predict(re_form="none"), rtol=1e-12, atol=0)
    assert np.allclose(frame[".eta"], fit.predict(), rtol=1e-12, atol=0)
    assert np.allclose(frame[".fitted"], fit.predict(type="response"), rtol=1e-12, atol=0)


def test_the_lmm_augment_keeps_its_columns():
    import mlmcli

    sleep = Path(__file__).resolve().parent / "fixtures" / "lme4" / "data" / "sleepstudy.csv"
    fit = mlmcli.lmer("Reaction ~ Days + (Days | Subject)", str(sleep))
    frame = fit.augment()
    assert list(frame.columns) == ["Reaction", "Days", "Subject", ".fitted", ".resid", ".fixed"]
    assert np.allclose(frame[".fitted"] + frame[".resid"], frame["Reaction"], rtol=0, atol=1e-9)
    assert np.allclose(frame[".fitted"], fit.predict(), rtol=0, atol=0)
    # lme4's fitted value of sleepstudy's first row
    assert frame[".fitted"][0] == pytest.approx(253.6636, abs=1e-4)


# ---------------------------------------------------------------- augment: the command


def _csv(text: str) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


def test_augment_command_csv_matches_broom_mixed(tmp_path):
    """bacteria read from its CSV as mlm reads it: trt's levels sorted (drug first), which changes the
    coefficients but none of augment's columns."""
    r = mlm("augment", str(DATA / "bacteria.csv"), "y ~ trt + I(week > 2) + (1 | ID)", "--family", "binomial")
    assert r.returncode == 0, r.stderr
    header, rows = _csv(r.stdout)
    theirs = broom("bacteria_laplace")
    assert header == ["y", "trt", "I(week > 2)", "ID", ".fitted", ".resid", ".fixed", ".eta", ".wtres"]
    assert len(rows) == 220
    assert [r[:4] for r in rows] == [[_text(v) for v in r] for r in theirs[["y", "trt", "I(week > 2)", "ID"]].values]
    ours = np.array([[float(v) for v in r[4:]] for r in rows])
    for j, col in enumerate([".mu", ".resid", ".fixed", ".eta", ".wtres"]):
        assert close(ours[:, j], theirs[col]), col


def test_augment_command_json_follows_the_schema(tmp_path):
    out = tmp_path / "aug.json"
    r = mlm(
        "augment",
        str(DATA / "epil.csv"),
        "y ~ trt + lage + V4 + offset(log(base/4)) + (1 | subject)",
        "--family",
        "poisson",
        "--format",
        "json",
        "-o",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, json.loads((SCHEMAS / "augment.schema.json").read_text()))
    assert (doc["family"], doc["link"], doc["n"], doc["data_name"]) == ("poisson", "log", 236, "epil")
    theirs = broom("epil_offset_formula")
    first = doc["rows"][0]
    assert list(first) == [
        "y",
        "trt",
        "lage",
        "V4",
        "offset(log(base/4))",
        "subject",
        ".fitted",
        ".resid",
        ".fixed",
        ".eta",
        ".wtres",
    ]
    assert first["y"] == 5 and first["subject"] == 1 and first["trt"] == "placebo"
    assert close([row[".fitted"] for row in doc["rows"]], theirs[".mu"])
    assert close([row[".resid"] for row in doc["rows"]], theirs[".resid"])


def test_augment_command_cbind_response_is_two_columns_and_weights_a_column():
    r = mlm("augment", str(DATA / "cbpp.csv"), CBPP.replace("period", "factor(period)"), "--family", "binomial")
    assert r.returncode == 0, r.stderr
    header, rows = _csv(r.stdout)
    assert header[:4] == [
        "cbind(incidence, size - incidence).1",
        "cbind(incidence, size - incidence).2",
        "factor(period)",
        "herd",
    ]
    assert rows[0][:4] == ["2", "12", "1", "1"]
    theirs = broom("cbpp_laplace")
    assert close([float(r[4]) for r in rows], theirs[".mu"])
    # proportions with --weights: the "(weights)" column, as lme4's model frame has it
    r = mlm(
        "augment",
        str(DATA / "cbpp.csv"),
        "incidence/size ~ factor(period) + (1 | herd)",
        "--family",
        "binomial",
        "--weights",
        "size",
    )
    assert r.returncode == 0, r.stderr
    header, rows = _csv(r.stdout)
    assert header[:4] == ["incidence/size", "factor(period)", "herd", "(weights)"]
    assert close([float(r[4]) for r in rows], theirs[".mu"])
    assert close([float(r[5]) for r in rows], theirs[".resid"])


def test_augment_command_warns_as_lme4_and_strict_exits_3():
    args = ("augment", str(DATA / "bacteria.csv"), "y ~ trt + I(week > 2) + (week | ID)", "--family", "binomial")
    r = mlm(*args)
    assert r.returncode == 0 and "boundary (singular) fit" in r.stderr
    r = mlm(*args, "--strict")
    assert r.returncode == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--family", "poisson", "--link", "logit"), "--link logit is not offered for poisson"),
        (("--family", "binomial", "--nagq", "-1"), "--nagq must be 0 or more"),
        (("--family", "binomial", "--nagq", "5", "--format", "text"), "--format"),
        (("--family", "gaussian"), "gaussian"),
    ],
)
def test_augment_command_bad_input_is_one_line(args, message):
    r = mlm("augment", str(DATA / "bacteria.csv"), "y ~ trt + (1 | ID)", *args)
    assert r.returncode == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_augment_command_refuses_a_binomial_response_outside_0_1():
    r = mlm("augment", str(DATA / "bacteria.csv"), "week ~ trt + (1 | ID)", "--family", "binomial")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "y values must be 0 <= y <= 1" in r.stderr


# ---------------------------------------------------------------- plot


def small(tmp_path: Path, kind: str, **kw) -> PlotOptions:
    opts = dict(dpi=40, width=5.0, height=4.0)
    opts.update(kw)
    return PlotOptions(kind=kind, output=str(tmp_path / f"{kind}.png"), **opts)


@pytest.mark.parametrize("case", ["cbpp_laplace", "verbagg_laplace", "contra_slope", "grouse_laplace"])
def test_caterpillar_rows_are_lme4s_conditional_modes_and_sds(case, tmp_path):
    fit = fitted(case)
    out = draw(fit.model, fit.frame, small(tmp_path, "caterpillar", groups=0))
    ref = {(r["group"], r["level"], r["term"]): r for r in reference(case)["ranef"]["ranef"]}
    assert len(out["rows"]) == len(ref)
    for row in out["rows"]:
        r = ref[(row["group"], row["level"], row["term"])]
        assert row["value"] == pytest.approx(r["value"], abs=2e-4)
        assert row["cond_sd"] == pytest.approx(r["cond_sd"], rel=2e-4)
        assert (row["lower"], row["upper"]) == pytest.approx(
            (row["value"] - 1.96 * row["cond_sd"], row["value"] + 1.96 * row["cond_sd"]), rel=1e-12
        )
    # sorted by each factor's first term, as lme4's dotplot orders them
    for g in out["groups"]:
        values = [r["value"] for r in out["rows"] if r["group"] == g and r["term"] == "(Intercept)"]
        assert values == sorted(values)


def test_ranef_points_are_lme4s_modes_and_the_correlation_its_tau(tmp_path):
    fit = fitted("contra_slope")
    ref = reference("contra_slope")
    out = draw(fit.model, fit.frame, small(tmp_path, "ranef"))
    assert (out["x_term"], out["y_term"]) == ("urbanY", "(Intercept)")
    assert out["correlation"] == pytest.approx(ref["random_effect_correlations"][0]["correlation"], abs=1e-4)
    value = {(r["level"], r["term"]): r["value"] for r in ref["ranef"]["ranef"]}
    assert len(out["points"]) == 60
    for p in out["points"]:
        assert p["x"] == pytest.approx(value[(p["level"], "urbanY")], abs=2e-4)
        assert p["y"] == pytest.approx(value[(p["level"], "(Intercept)")], abs=2e-4)


@pytest.fixture(scope="module")
def contraception_age():
    """A quadratic in age with random intercepts: each district's curve is the model's probability."""
    import warnings

    import mlmcli

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mlmcli.MlmWarning)
        return mlmcli.glmer("use ~ age + I(age^2) + (1 | district)", str(DATA / "Contraception.csv"), family="binomial")


def test_fitted_curves_are_predicted_probabilities(contraception_age, tmp_path):
    """Each district's curve is predict(fit, type = "response") along age; the population curve is
    predict(re.form = NA) with the band the inverse link of the fixed part's 95% interval."""
    fit = contraception_age
    out = draw(fit.model, fit.frame, small(tmp_path, "fitted"))
    assert (out["x"], out["y"], out["scale"]) == ("age", "use", "response")
    lines = out["lines"][:12]
    new = pd.DataFrame(
        {"age": [x for r in lines for x in r["curve_x"]], "district": [r["level"] for r in lines for _ in r["curve_x"]]}
    )
    expect = fit.predict(new, type="response")
    assert np.allclose(np.concatenate([r["curve_y"] for r in lines]), expect, rtol=1e-10, atol=0)
    assert all(0 < y < 1 for r in out["lines"] for y in r["curve_y"])
    (pop,) = out["population"]
    new = pd.DataFrame({"age": pop["curve_x"], "district": "1"})
    assert np.allclose(pop["curve_y"], fit.predict(new, re_form="none", type="response"), rtol=1e-10, atol=0)
    eta = fit.predict(new, re_form="none")
    inv = fit.model.family.linkinv
    z = 1.959963984540054
    assert np.allclose([pop["curve_se"][0], pop["curve_se"][-1]], [pop["se0"], pop["se1"]], rtol=1e-12, atol=0)
    assert (pop["lower0"], pop["upper0"]) == pytest.approx(
        (inv(eta[0] - z * pop["se0"]), inv(eta[0] + z * pop["se0"])), rel=1e-10
    )
    assert (pop["lower1"], pop["upper1"]) == pytest.approx(
        (inv(eta[-1] - z * pop["se1"]), inv(eta[-1] + z * pop["se1"])), rel=1e-10
    )
    # the fixed part's standard error: sqrt(x' vcov x) at age x0
    x0 = np.array([1.0, pop["x0"], pop["x0"] ** 2])
    assert pop["se0"] == pytest.approx(math.sqrt(x0 @ fit.model.vcov @ x0), rel=1e-10)


def test_fitted_curves_of_counts_are_means_split_by_a_factor(tmp_path):
    fit = fitted("epil_laplace")
    out = draw(fit.model, fit.frame, small(tmp_path, "fitted", by="trt"))
    assert out["x"] == "lbase" and out["by"] == "trt"
    pops = {r["by"]: r for r in out["population"]}
    assert set(pops) == {"trt = placebo", "trt = progabide"}
    beta = dict(zip(fit.model.design.xnames, fit.model.beta, strict=True))
    for label, r in pops.items():
        prog = label.endswith("progabide")
        rows = fit.frame.columns["trt"]
        # lage and V4 held at their means within the panel, the interaction with trt included
        sel = (rows.codes == rows.levels.index("progabide")) == prog
        lage = np.mean(fit.frame.columns["lage"][sel])
        v4 = np.mean(fit.frame.columns["V4"][sel])
        for x, y in ((r["x0"], r["y0"]), (r["x1"], r["y1"])):
            eta = (
                beta["(Intercept)"]
                + beta["lbase"] * x
                + prog * (beta["trtprogabide"] + beta["lbase:trtprogabide"] * x)
                + beta["lage"] * lage
                + beta["V4"] * v4
            )
            assert y == pytest.approx(math.exp(eta), rel=1e-10)


@pytest.mark.parametrize("kind", ["caterpillar", "ranef", "fitted"])
def test_glmm_plots_keep_their_text_inside(kind, tmp_path):
    from mlmcli.render.plots import build
    from mlmcli.render.plots.textfit import outside, overlapping

    fit = fitted("contra_slope")
    for size in (dict(width=8.0, height=6.0, dpi=100), dict(width=3.5, height=3.0, dpi=300)):
        with build(fit.model, fit.frame, small(tmp_path, kind, **size)) as (fig, _, _):
            assert outside(fig) == [] and overlapping(fig) == []


@pytest.mark.parametrize("kind", ["spaghetti", "residuals", "profile"])
def test_the_library_refuses_the_kinds_a_glmm_does_not_offer(kind, tmp_path):
    fit = fitted("cbpp_laplace")
    with pytest.raises(MlmError, match=f"--kind {kind} is not offered with --family"):
        draw(fit.model, fit.frame, small(tmp_path, kind))
    assert not (tmp_path / f"{kind}.png").exists()


def test_plot_command_draws_each_kind_and_prints_its_numbers(tmp_path):
    schema = json.loads((SCHEMAS / "plot.schema.json").read_text())
    contra = str(DATA / "Contraception.csv")
    formula = "use ~ age + I(age^2) + urban + (urban | district)"
    for kind in ("caterpillar", "ranef", "fitted"):
        png = tmp_path / f"{kind}.png"
        r = mlm("plot", contra, formula, "--family", "binomial", "-k", kind, "-o", str(png), "--format", "json")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        jsonschema.validate(doc, schema)
        assert doc["kind"] == kind and doc["n_obs"] == 1934
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --by a variable of the groups, a column the formula does not name read for it
    png = tmp_path / "by.png"
    epil = str(DATA / "epil.csv")
    r = mlm("plot", epil, "y ~ lbase + lage + (1 | subject)", "--family", "poisson", "-k", "fitted", "--by", "trt",
            "-o", str(png), "--format", "json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, schema)
    assert doc["by"] == "trt" and [p["by"] for p in doc["population"]] == ["trt = placebo", "trt = progabide"]


@pytest.mark.parametrize("kind", ["spaghetti", "residuals", "profile", "check", "shrinkage"])
def test_plot_command_refuses_other_kinds_before_fitting(kind, tmp_path):
    png = tmp_path / "p.png"
    r = mlm("plot", str(DATA / "cbpp.csv"), CBPP, "--family", "binomial", "-k", kind, "-o", str(png))
    assert r.returncode == 2 and not png.exists()
    assert r.stderr == (
        f"mlm: error: --kind {kind} is not offered with --family: "
        "a GLMM's plots are caterpillar, ranef, fitted, coef and effects\n"
    )


def test_plot_command_bad_input_is_one_line(tmp_path):
    png = str(tmp_path / "p.png")
    cbpp = str(DATA / "cbpp.csv")
    for args, message in (
        (("-k", "ranef", "--y", "period2"), "--x and --y name two random-effect terms, and herd has one"),
        (("-k", "fitted"), "the fitted plot needs a numeric predictor"),
        (("-k", "fitted", "--x", "size"), "--x 'size' is not a predictor of the model"),
        (("--link", "log"), "--link log is not offered for binomial"),
    ):
        r = mlm("plot", cbpp, CBPP.replace("period", "factor(period)"), "--family", "binomial", *args, "-o", png)
        assert r.returncode == 2, args
        assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
