"""`mlm plot`: the plotted numbers are the model's (recomputed here independently or taken from lme4's
reference fits), the files are real images of the requested size, and mistakes are one-line errors."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from mlmcli.errors import DataError, MlmError
from mlmcli.io.csv import read_csv
from mlmcli.io.frame import Factor, Frame
from mlmcli.render.plots import (
    DEFAULT_GROUPS,
    PALETTE,
    PlotOptions,
    draw,
    image_format,
    normal_quantiles,
    qq_line,
    table_csv,
)
from mlmcli.render.plots.textfit import outside, overlapping
from mlmcli.where import parse_where, where_mask
from tests.commands import MLM, environment, python
from tests.plotfixtures import DATA, HECK, REFS, ROOT
from tests.plotfixtures import fit as _fit


def small(tmp_path: Path, kind: str, name: str = "p.png", **kw) -> PlotOptions:
    """Small images keep the suite fast; sizes are checked separately."""
    opts = dict(dpi=40, width=5.0, height=4.0)
    opts.update(kw)
    return PlotOptions(kind=kind, output=str(tmp_path / name), **opts)


def png_size(path: str) -> tuple[int, int]:
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def reference(case: str) -> dict:
    return json.loads((REFS / f"{case}.json").read_text())


def blups(model, group_codes: np.ndarray, n_levels: int, Zcols: np.ndarray):
    """Conditional modes and SDs of a one-factor model from the textbook formulas:
    b_j = Tau Z_j' V_j^-1 (y_j - X_j beta), Var(b_j | y) = Tau - Tau Z_j' V_j^-1 Z_j Tau, V_j = Z_j Tau Z_j' + s2 I."""
    Tau = model.varcomps()[0].covariance
    s2 = model.sigma**2
    r = model.design.y - model.design.X @ model.beta
    b = np.zeros((n_levels, Tau.shape[0]))
    sd = np.zeros_like(b)
    for j in range(n_levels):
        rows = group_codes == j
        Z = Zcols[rows]
        V = Z @ Tau @ Z.T + s2 * np.eye(rows.sum())
        W = Tau @ Z.T @ np.linalg.inv(V)
        b[j] = W @ r[rows]
        sd[j] = np.sqrt(np.maximum(np.diag(Tau - W @ Z @ Tau), 0.0))
    return b, sd


# ------------------------------------------------------------------ ranef


def test_ranef_points_are_the_blups_and_tau_correlation(heck, tmp_path):
    model, frame = heck
    out = draw(model, frame, small(tmp_path, "ranef"))
    term = model.design.terms[0]
    b, _ = blups(model, term.codes, len(term.levels), term.X)
    assert out["group"] == "schcode"
    assert (out["x_term"], out["y_term"]) == ("ses", "(Intercept)")
    assert len(out["points"]) == 419
    x = np.array([p["x"] for p in out["points"]])
    y = np.array([p["y"] for p in out["points"]])
    assert [p["level"] for p in out["points"]] == [str(v) for v in term.levels]
    np.testing.assert_allclose(x, b[:, 1], atol=1e-6)
    np.testing.assert_allclose(y, b[:, 0], atol=1e-6)
    Tau = model.varcomps()[0].covariance
    assert out["correlation"] == pytest.approx(Tau[0, 1] / math.sqrt(Tau[0, 0] * Tau[1, 1]), abs=1e-12)
    # lme4 finds this fit singular too: correlation -1
    assert out["correlation"] == pytest.approx(
        reference("heck_seed1_reml")["tau"]["groups"][0]["correlation"][0][1], abs=1e-3
    )
    assert out["correlation_of_estimates"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)


def test_ranef_matches_lme4_on_sleepstudy(sleep, tmp_path):
    model, frame = sleep
    out = draw(model, frame, small(tmp_path, "ranef", x="Days", y="(Intercept)"))
    ref = reference("ss_slope_reml")
    value = {(r["level"], r["term"]): r["value"] for r in ref["ranef"]["ranef"]}
    sd = {r["term"]: r["std_dev"] for r in ref["fit"]["random_effects"] if r["group"] == "Subject"}
    assert len(out["points"]) == 18
    for p in out["points"]:
        assert p["x"] == pytest.approx(value[(p["level"], "Days")], abs=1e-3 * sd["Days"])
        assert p["y"] == pytest.approx(value[(p["level"], "(Intercept)")], abs=1e-3 * sd["(Intercept)"])
    assert out["correlation"] == pytest.approx(ref["tau"]["groups"][0]["correlation"][0][1], abs=1e-3)


def test_ranef_axes_can_be_swapped_and_where_keeps_levels(heck, tmp_path):
    model, frame = heck
    out = draw(model, frame, small(tmp_path, "ranef", x="(Intercept)", where="schcode <= 10"))
    assert (out["x_term"], out["y_term"]) == ("(Intercept)", "ses")
    assert [p["level"] for p in out["points"]] == [str(i) for i in range(1, 11)]
    modes = model.conditional_modes()[0]
    np.testing.assert_allclose([p["x"] for p in out["points"]], modes[:10, 0], rtol=0, atol=0)


def test_ranef_of_independent_terms_has_zero_correlation(tmp_path):
    model, frame = _fit(DATA / "sleepstudy.csv", "Reaction ~ Days + (Days||Subject)")
    out = draw(model, frame, small(tmp_path, "ranef"))
    assert out["correlation"] == 0.0
    ref = reference("ss_uncorr_reml")
    value = {(r["level"], r["term"]): r["value"] for r in ref["ranef"]["ranef"]}
    for p in out["points"]:
        assert p["x"] == pytest.approx(value[(p["level"], "Days")], abs=0.01)
        assert p["y"] == pytest.approx(value[(p["level"], "(Intercept)")], abs=0.05)


def test_ranef_of_one_random_effect_is_lme4s_normal_qq_plot(penicillin, tmp_path):
    """plot(ranef(fit)) draws qqmath for a one-column factor: each factor's sorted modes against qnorm(ppoints(n))."""
    model, frame = penicillin
    out = draw(model, frame, small(tmp_path, "ranef"))
    assert (out["group"], out["x_term"], out["y_term"], out["correlation"]) == (
        "plate, sample",
        None,
        "(Intercept)",
        None,
    )
    for i, (g, n) in enumerate((("plate", 24), ("sample", 6))):
        mine = [p for p in out["points"] if p["panel"] == g]
        modes = np.sort(model.conditional_modes()[i][:, 0])
        np.testing.assert_array_equal([p["y"] for p in mine], modes)
        a = 3 / 8 if n <= 10 else 0.5  # R's ppoints(n)
        ppoints = (np.arange(1, n + 1) - a) / (n + 1 - 2 * a)
        np.testing.assert_allclose([p["x"] for p in mine], stats.norm.ppf(ppoints), rtol=1e-12)
    one = draw(model, frame, small(tmp_path, "ranef", group="sample"))
    assert {p["panel"] for p in one["points"]} == {"sample"} and len(one["points"]) == 6
    with pytest.raises(MlmError, match=r"--x and --y name two random-effect terms, and plate has one") as e:
        draw(model, frame, small(tmp_path, "ranef", x="(Intercept)"))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"x": "female"}, "--x 'female' is not a random-effect term of schcode"),
        ({"x": "ses", "y": "ses"}, "the same term"),
        ({"group": "school"}, "--group 'school' is not a grouping factor"),
        ({"by": "public"}, "--by is not used by the ranef plot"),
    ],
)
def test_ranef_option_errors(heck, tmp_path, kw, message):
    model, frame = heck
    with pytest.raises(MlmError, match=message) as e:
        draw(model, frame, small(tmp_path, "ranef", **kw))
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------ caterpillar


def test_caterpillar_rows_are_modes_with_intervals_sorted_by_intercept(heck, tmp_path):
    model, frame = heck
    data_out = tmp_path / "cat.csv"
    out = draw(model, frame, small(tmp_path, "caterpillar", data_out=str(data_out), groups=0))
    assert out["levels"] == {"schcode": {"levels": 419, "drawn": 419}}
    term = model.design.terms[0]
    b, sd = blups(model, term.codes, len(term.levels), term.X)
    rows = out["rows"]
    assert len(rows) == 2 * 419
    assert {r["term"] for r in rows} == {"(Intercept)", "ses"}
    for k, name in enumerate(["(Intercept)", "ses"]):
        panel = [r for r in rows if r["term"] == name]
        idx = np.array([term.levels.index(r["level"]) for r in panel])
        value = np.array([r["value"] for r in panel])
        cond_sd = np.array([r["cond_sd"] for r in panel])
        np.testing.assert_allclose(value, b[idx, k], atol=1e-6)
        np.testing.assert_allclose(cond_sd, sd[idx, k], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose([r["lower"] for r in panel], value - 1.96 * cond_sd, rtol=1e-12)
        np.testing.assert_allclose([r["upper"] for r in panel], value + 1.96 * cond_sd, rtol=1e-12)
        # both panels in the order of the intercepts, as lme4's dotplot
        np.testing.assert_array_equal(idx, np.argsort(b[:, 0], kind="stable"))
    with open(data_out, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == len(rows)
    assert float(table[5]["upper"]) == rows[5]["upper"]


def test_caterpillar_crossed_factors_match_lme4(penicillin, tmp_path):
    model, frame = penicillin
    out = draw(model, frame, small(tmp_path, "caterpillar", groups=0))
    ref = reference("pen_crossed_reml")["ranef"]["ranef"]
    expect = {(r["group"], r["level"]): r for r in ref}
    assert out["groups"] == ["plate", "sample"]
    assert len(out["rows"]) == 24 + 6 == len(ref)
    for r in out["rows"]:
        e = expect[(r["group"], r["level"])]
        assert r["value"] == pytest.approx(e["value"], abs=1e-3)
        assert r["cond_sd"] == pytest.approx(e["cond_sd"], rel=1e-2)
    sample = [r["value"] for r in out["rows"] if r["group"] == "sample"]
    assert sample == sorted(sample)
    one = draw(model, frame, small(tmp_path, "caterpillar", group="sample"))
    assert one["groups"] == ["sample"] and len(one["rows"]) == 6


def test_caterpillar_thins_many_levels_evenly_in_sorted_order_and_names_each(figure, heck, tmp_path):
    model, frame = heck
    fig, drawn, _ = figure(model, frame, small(tmp_path, "caterpillar", width=3.5, height=3.0, dpi=300))
    counts = drawn.data["levels"]["schcode"]
    k = counts["drawn"]
    assert counts["levels"] == 419 and 10 <= k <= 20  # as many as 7-point names fit in the height
    modes = model.conditional_modes()[0][:, 0]
    order = np.argsort(modes, kind="stable")
    expect = order[np.unique(np.round(np.linspace(0, 418, k)).astype(int))]
    levels = [str(v) for v in model.design.terms[0].levels]
    panel = [r for r in drawn.data["rows"] if r["term"] == "(Intercept)"]
    assert [r["level"] for r in panel] == [levels[i] for i in expect]
    assert (panel[0]["value"], panel[-1]["value"]) == (modes.min(), modes.max())  # both ends kept
    first, second = fig.axes[:2]
    # every level drawn is named, in the sorted order, on the factor's first panel
    assert [t.get_text() for t in first.get_yticklabels()] == [levels[i] for i in expect]
    assert first.get_ylabel() == f"schcode: {k} of 419 levels, sorted"
    for ax in (first, second):
        bars = [c for c in ax.collections]
        assert sum(len(c.get_segments()) for c in bars) == k
        lo, hi = ax.get_ylim()
        assert lo < -0.5 and hi > k - 0.5  # the first and last dots clear of the frame
    tall = draw(model, frame, small(tmp_path, "caterpillar", height=9.0))
    assert tall["levels"]["schcode"]["drawn"] > k
    five = draw(model, frame, small(tmp_path, "caterpillar", groups=5))
    assert [r["level"] for r in five["rows"][:5]] == [levels[i] for i in order[[0, 104, 209, 314, 418]]]


# ------------------------------------------------------------------ spaghetti


def test_spaghetti_lines_are_each_groups_least_squares_fit(heck, tmp_path):
    model, frame = heck
    out = draw(model, frame, small(tmp_path, "spaghetti", where="schcode <= 10", groups=0))
    assert out["x"] == "ses" and out["y"] == "math" and out["group"] == "schcode"
    sch = frame.columns["schcode"]
    ses, math_ = frame.columns["ses"], frame.columns["math"]
    keep = sch <= 10
    assert len(out["points"]) == keep.sum() == out["n_obs"]
    assert (out["groups_total"], out["groups_drawn"], out["seed"]) == (10, 10, None)
    assert [line["level"] for line in out["lines"]] == [str(i) for i in range(1, 11)]
    for line in out["lines"]:
        rows = sch == int(line["level"])
        slope, intercept = np.polyfit(ses[rows], math_[rows], 1)
        assert line["n"] == rows.sum()
        assert line["slope"] == pytest.approx(slope, rel=1e-9)
        assert line["intercept"] == pytest.approx(intercept, rel=1e-9)
        lo, hi = ses[rows].min(), ses[rows].max()
        assert (line["x0"], line["x1"]) == (lo, hi)  # over the group's own x range
        assert line["y1"] == pytest.approx(intercept + slope * hi, rel=1e-9)


def test_spaghetti_by_panels_and_explicit_x(heck_public, tmp_path):
    model, frame = heck_public
    out = draw(model, frame, small(tmp_path, "spaghetti", x="ses", by="public", where="schcode <= 30", groups=0))
    pub = {int(s): p for s, p in zip(frame.columns["schcode"], frame.columns["public"], strict=True) if s <= 30}
    assert {line["by"] for line in out["lines"]} == {"public = 0", "public = 1"}
    for line in out["lines"]:
        assert line["by"] == f"public = {int(pub[int(line['level'])])}"


def test_spaghetti_errors(penicillin, heck, tmp_path):
    model, frame = penicillin
    with pytest.raises(MlmError, match="needs a numeric x"):
        draw(model, frame, small(tmp_path, "spaghetti"))
    with pytest.raises(DataError, match="holds text"):
        draw(model, frame, small(tmp_path, "spaghetti", x="plate"))
    model, frame = heck
    with pytest.raises(DataError, match="'nope' is not a column"):
        draw(model, frame, small(tmp_path, "spaghetti", x="nope"))
    with pytest.raises(MlmError, match="not used by the spaghetti plot"):
        draw(model, frame, small(tmp_path, "spaghetti", y="math"))


def test_spaghetti_draws_a_reproducible_sample_of_groups_each_line_over_its_own_range(figure, heck, tmp_path):
    model, frame = heck
    fig, drawn, _ = figure(model, frame, small(tmp_path, "spaghetti", seed=1))
    d = drawn.data
    assert (d["groups_total"], d["groups_drawn"], d["seed"], d["picked"]) == (419, DEFAULT_GROUPS, 1, "random")
    levels = [line["level"] for line in d["lines"]]
    assert len(levels) == len(set(levels)) == DEFAULT_GROUPS
    sch, ses = frame.columns["schcode"], frame.columns["ses"]
    mine = np.isin(sch, [int(v) for v in levels])
    assert len(d["points"]) == mine.sum()
    (ax,) = fig.axes  # no colour bar: group ids have no order to show
    segments = ax.collections[1].get_segments()
    assert len(segments) == DEFAULT_GROUPS
    for seg, line in zip(segments, d["lines"], strict=True):
        rows = sch == int(line["level"])
        assert (seg[0][0], seg[-1][0]) == (ses[rows].min(), ses[rows].max())  # clipped to the group's range
    # a colour of the colour-blind-safe palette for each group, named in the legend, black left to the population
    from matplotlib.colors import to_rgba

    np.testing.assert_allclose(
        ax.collections[1].get_colors()[:, :3], [to_rgba(c)[:3] for c in PALETTE[:DEFAULT_GROUPS]]
    )
    assert "#000000" not in PALETTE[:DEFAULT_GROUPS]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [*levels, "population"]
    assert "drawn at random (--seed 1)" in _caption_of(fig)
    # the same seed draws the same groups; another seed others; a larger sample keeps the smaller one's
    again = draw(model, frame, small(tmp_path, "spaghetti", seed=1))
    assert [line["level"] for line in again["lines"]] == levels
    other = draw(model, frame, small(tmp_path, "spaghetti", seed=2))
    assert [line["level"] for line in other["lines"]] != levels
    more = draw(model, frame, small(tmp_path, "spaghetti", groups=12, seed=1))
    assert len(more["lines"]) == 12 and set(levels) <= {line["level"] for line in more["lines"]}


def test_spaghetti_of_all_groups_uses_one_colour(figure, heck, tmp_path):
    model, frame = heck
    fig, drawn, _ = figure(model, frame, small(tmp_path, "spaghetti", groups=0))
    assert drawn.data["groups_drawn"] == 419 == len(drawn.data["lines"]) and drawn.data["seed"] is None
    (ax,) = fig.axes
    lines = ax.collections[1]
    assert len(lines.get_segments()) == 419
    assert len(np.unique(lines.get_colors()[:, :3], axis=0)) == 1
    assert ax.get_legend() is None


def test_spaghetti_sample_leaves_no_panel_empty(heck_public, tmp_path):
    model, frame = heck_public
    out = draw(model, frame, small(tmp_path, "spaghetti", by="public", groups=2, seed=3))
    assert sorted(line["by"] for line in out["lines"]) == ["public = 0", "public = 1"]


# ------------------------------------------------------------------ fitted


def test_fitted_lines_are_fixed_plus_random_with_public_at_its_school_value(heck_public, tmp_path):
    model, frame = heck_public
    data_out = tmp_path / "fitted.csv"
    out = draw(model, frame, small(tmp_path, "fitted", by="public", data_out=str(data_out)))
    b0, b1, b2, b3 = model.beta
    assert model.design.xnames == ["(Intercept)", "ses", "public", "ses:public"]
    term = model.design.terms[0]
    u = model.conditional_modes()[0]
    sch, ses, pub = frame.columns["schcode"], frame.columns["ses"], frame.columns["public"]
    assert len(out["lines"]) == 419
    assert out["notes"] and "418, 419" in out["notes"][0]  # two schools report both values of public
    for line in out["lines"]:
        j = term.levels.index(line["level"])
        rows = sch == int(line["level"])
        p = pub[rows].mean()  # constant within all but two schools: then its mean
        if np.all(pub[rows] == pub[rows][0]):
            assert line["by"] == f"public = {int(p)}"
        x0, x1 = ses[rows].min(), ses[rows].max()
        assert (line["x0"], line["x1"]) == (x0, x1)
        for x, y in ((x0, line["y0"]), (x1, line["y1"])):
            expect = (b0 + u[j, 0]) + b2 * p + (b1 + u[j, 1] + b3 * p) * x
            assert y == pytest.approx(expect, rel=1e-10)
    pops = {r["by"]: r for r in out["population"]}
    for p in (0, 1):
        r = pops[f"public = {p}"]
        for x, y in ((r["x0"], r["y0"]), (r["x1"], r["y1"])):
            assert y == pytest.approx(b0 + b2 * p + (b1 + b3 * p) * x, rel=1e-10)
    with open(data_out, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 419 + 2 and table[-1]["level"] == "(population)"


def test_fitted_line_passes_through_the_models_fitted_values(sleep, tmp_path):
    model, frame = sleep
    out = draw(model, frame, small(tmp_path, "fitted"))
    assert out["x"] == "Days"
    days = frame.columns["Days"]
    subj = frame.columns["Subject"]
    for line in out["lines"]:
        rows = np.flatnonzero(subj == float(line["level"]))
        slope = (line["y1"] - line["y0"]) / (line["x1"] - line["x0"])
        np.testing.assert_allclose(line["y0"] + slope * (days[rows] - line["x0"]), model.fitted[rows], rtol=1e-10)
    # and against lme4: coef(fit) = fixed + random
    ref = reference("ss_slope_reml")
    beta = {r["term"]: r["estimate"] for r in ref["fit"]["fixed_effects"]}
    value = {(r["level"], r["term"]): r["value"] for r in ref["ranef"]["ranef"]}
    for line in out["lines"]:
        a = beta["(Intercept)"] + value[(line["level"], "(Intercept)")]
        assert line["y0"] == pytest.approx(a, abs=0.05)


def test_fitted_curve_when_x_enters_squared(tmp_path):
    model, frame = _fit(DATA / "sleepstudy.csv", "Reaction ~ Days + I(Days^2) + (Days|Subject)")
    out = draw(model, frame, small(tmp_path, "fitted", where="Subject in (308, 309)"))
    b = model.beta
    u = model.conditional_modes()[0]
    levels = [str(v) for v in model.design.terms[0].levels]
    assert [line["level"] for line in out["lines"]] == ["308", "309"]
    for line in out["lines"]:
        j = levels.index(line["level"])
        x = np.array(line["curve_x"])
        assert len(x) > 10
        expect = b[0] + u[j, 0] + (b[1] + u[j, 1]) * x + b[2] * x**2
        np.testing.assert_allclose(line["curve_y"], expect, rtol=1e-10)


def test_fitted_population_band_legend_colours_and_what_other_predictors_are_held_at(figure, heck_public, tmp_path):
    model, frame = heck_public
    fig, drawn, _ = figure(model, frame, small(tmp_path, "fitted", by="public"))
    V = model.vcov
    for r in drawn.data["population"]:
        p = 0.0 if r["by"] == "public = 0" else 1.0
        for x, se in ((r["x0"], r["se0"]), (r["x1"], r["se1"])):
            row = np.array([1.0, x, p, x * p])  # the panel's mean row of X: public is its value there
            assert se == pytest.approx(math.sqrt(row @ V @ row), rel=1e-10)
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.lines import Line2D

    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 2
    for ax, r in zip(panels, drawn.data["population"], strict=True):
        (band,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
        ys = band.get_paths()[0].vertices[:, 1]
        assert ys.max() == pytest.approx(max(r["y0"] + 1.959964 * r["se0"], r["y1"] + 1.959964 * r["se1"]), rel=1e-6)
    # the legend shows each panel's colour of group lines (not one grey sample line)
    (legend,) = [leg for f in fig.subfigs for leg in f.legends]
    from matplotlib.colors import to_rgb

    legend_colours = {tuple(np.round(to_rgb(line.get_color()), 6)) for line in legend.findobj(Line2D)}
    for ax in panels:
        (groups,) = [c for c in ax.collections if isinstance(c, LineCollection)]
        assert tuple(np.round(groups.get_colors()[0][:3], 6)) in legend_colours
    assert not drawn.data["held_at_mean"]

    model2, frame2 = _fit(HECK, "math ~ ses + female + (ses|schcode)")
    fig, drawn, _ = figure(model2, frame2, small(tmp_path, "fitted"))
    assert drawn.data["held_at_mean"] == ["female"]
    assert "female held at its mean within each schcode" in _caption_of(fig)


def _caption_of(fig) -> str:
    return next(t.get_text() for f in fig.subfigs for t in f.texts if t.get_gid() == "caption")


def test_fitted_errors(heck, penicillin, tmp_path):
    model, frame = heck
    with pytest.raises(MlmError, match="--by 'female' is not constant within schcode") as e:
        draw(model, frame, small(tmp_path, "fitted", by="female"))
    assert "\n" not in str(e.value)
    with pytest.raises(MlmError, match="distinct values"):
        draw(model, frame, small(tmp_path, "fitted", by="ses_mean"))
    with pytest.raises(MlmError, match="--x 'female' is not a predictor of the model"):
        draw(model, frame, small(tmp_path, "fitted", x="female"))
    model, frame = penicillin
    with pytest.raises(MlmError, match="needs a numeric x"):
        draw(model, frame, small(tmp_path, "fitted"))


# ------------------------------------------------------------------ residuals


def test_residual_panels(penicillin, tmp_path):
    model, frame = penicillin
    out = draw(model, frame, small(tmp_path, "residuals"))
    assert out["panels"] == [
        "residuals_vs_fitted",
        "qq_residuals",
        "qq_ranef:plate:(Intercept)",
        "qq_ranef:sample:(Intercept)",
    ]
    pts = out["points"]
    rvf = [p for p in pts if p["panel"] == "residuals_vs_fitted"]
    y = frame.columns["diameter"]
    fitted = np.array([p["x"] for p in rvf])
    scaled = np.array([p["y"] for p in rvf])
    np.testing.assert_allclose(scaled, (y - fitted) / model.sigma, rtol=1e-9, atol=1e-12)
    # lme4's summary quantiles of the scaled residuals
    ref = reference("pen_crossed_reml")["fit"]["scaled_residuals"]
    q = np.quantile(scaled, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(q, [ref[k] for k in ("min", "q1", "median", "q3", "max")], atol=1e-2)
    qq = [p for p in pts if p["panel"] == "qq_residuals"]
    n = len(qq)
    theo = stats.norm.ppf((np.arange(1, n + 1) - 0.5) / n)  # R's ppoints for n > 10
    np.testing.assert_allclose([p["x"] for p in qq], theo, rtol=1e-9)
    np.testing.assert_allclose([p["y"] for p in qq], np.sort(scaled), rtol=1e-12)
    sample = [p for p in pts if p["panel"] == "qq_ranef:sample:(Intercept)"]
    modes = np.sort(model.conditional_modes()[1][:, 0])
    np.testing.assert_allclose([p["y"] for p in sample], modes)
    a = 3 / 8  # ppoints for n <= 10
    np.testing.assert_allclose([p["x"] for p in sample], stats.norm.ppf((np.arange(1, 7) - a) / (6 + 1 - 2 * a)))


def test_quantile_helpers_follow_r():
    np.testing.assert_allclose(normal_quantiles(5), stats.norm.ppf((np.arange(1, 6) - 3 / 8) / (5 + 1 - 3 / 4)))
    rng = np.random.default_rng(1)
    s = rng.normal(size=50)
    a, b = qq_line(s)
    q1, q3 = np.quantile(s, [0.25, 0.75])
    z1, z3 = stats.norm.ppf([0.25, 0.75])
    assert a + b * z1 == pytest.approx(q1) and a + b * z3 == pytest.approx(q3)


def test_residuals_where_keeps_rows(sleep, tmp_path):
    model, frame = sleep
    out = draw(model, frame, small(tmp_path, "residuals", where="Days >= 5"))
    rvf = [p for p in out["points"] if p["panel"] == "residuals_vs_fitted"]
    assert len(rvf) == 90 == out["n_obs"]
    assert {int(p["row"]) - 1 for p in rvf} == set(np.flatnonzero(frame.columns["Days"] >= 5))


# ------------------------------------------------------------------ sizes, themes, captions

JOURNAL = dict(width=3.5, height=3.0, dpi=300)
SCREEN = dict(width=8.0, height=6.0, dpi=100)


def assert_all_text_inside(fig, drawn) -> None:
    """matplotlib's tight bounding box of the whole figure inside the canvas, and no two labels overlapping."""
    renderer = fig.canvas.get_renderer()
    box = fig.get_tightbbox(renderer)
    w, h = fig.get_size_inches()
    tol = 1.0 / fig.dpi
    assert box.x0 >= -tol and box.y0 >= -tol and box.x1 <= w + tol and box.y1 <= h + tol, (box, w, h)
    assert outside(fig) == []
    assert overlapping(fig) == []
    assert not any("did not fit" in n for n in drawn.notes)  # nothing had to be left out


CASES = [
    ("heck", "ranef", {}),
    ("heck", "caterpillar", {}),
    ("heck", "spaghetti", {}),
    ("heck", "fitted", {}),
    ("heck", "residuals", {}),
    ("heck_public", "fitted", {"by": "public"}),
    ("heck_public", "spaghetti", {"by": "public"}),
    ("sleep", "ranef", {}),
    ("sleep", "caterpillar", {}),
    ("sleep", "spaghetti", {"groups": 0}),
    ("sleep", "fitted", {}),
    ("sleep", "residuals", {}),
    ("penicillin", "caterpillar", {}),
    ("penicillin", "residuals", {}),
    ("heck_public", "coef", {}),
    ("heck_public", "effects", {"terms": "ses,public"}),
    ("sleep", "coef", {"intercept": True}),
    ("sleep", "effects", {"terms": "Days"}),
    ("heck", "check", {}),
    ("sleep", "check", {}),
]


def with_estimates(model, kind: str, kw: dict) -> dict:
    """coef and effects draw the statistics layer's numbers, computed before drawing as the command does."""
    from mlmcli.stats.estimates import coef_report, effects_report

    if kind == "coef":
        return {**kw, "estimates": coef_report(model, intercept=bool(kw.get("intercept")))}
    if kind == "effects":
        return {**kw, "estimates": effects_report(model, kw["terms"].split(","))}
    if kind == "check":
        from mlmcli.stats.diagnostics import check_report

        return {**kw, "estimates": check_report(model)}
    if kind == "shrinkage":
        from mlmcli.stats.shrinkage import shrinkage_report

        return {**kw, "estimates": shrinkage_report(model, kw.get("x"))}
    return kw


@pytest.mark.parametrize("size", ["screen", "journal", "journal-paper"])
@pytest.mark.parametrize("data, kind, kw", CASES)
def test_every_text_inside_the_canvas(figure, request, tmp_path, data, kind, kw, size):
    model, frame = request.getfixturevalue(data)
    opts = dict(SCREEN if size == "screen" else JOURNAL, theme="paper" if size == "journal-paper" else "screen")
    fig, drawn, _ = figure(model, frame, small(tmp_path, kind, **opts, **with_estimates(model, kind, kw)))
    assert_all_text_inside(fig, drawn)


@pytest.mark.filterwarnings("ignore:constrained_layout not applied")
@pytest.mark.parametrize(
    "kind", ["ranef", "caterpillar", "spaghetti", "fitted", "residuals", "coef", "effects", "check", "shrinkage"]
)
def test_a_tiny_figure_still_keeps_its_text_inside(figure, sleep, tmp_path, kind):
    model, frame = sleep
    kw = with_estimates(model, kind, {"terms": "Days"} if kind == "effects" else {})
    fig, drawn, _ = figure(model, frame, small(tmp_path, kind, width=1.0, height=1.0, dpi=100, **kw))
    assert outside(fig) == []
    box = fig.get_tightbbox(fig.canvas.get_renderer())
    assert box.x0 >= -0.01 and box.y0 >= -0.01 and box.x1 <= 1.01 and box.y1 <= 1.01


def test_type_and_lines_scale_with_the_figure_and_paper_is_thinner(figure, sleep, tmp_path):
    model, frame = sleep

    def measures(**kw):
        fig, _, _ = figure(model, frame, small(tmp_path, "ranef", **kw))
        ax = fig.axes[0]
        return ax.xaxis.get_ticklabels()[0].get_fontsize(), ax.spines["left"].get_linewidth(), fig

    big, big_lw, _ = measures(**SCREEN)
    small_, small_lw, _ = measures(**JOURNAL)
    scale = math.sqrt(min(3.5 / 8, 3.0 / 6))
    # lines scale with the figure; type down to 7 points, the smallest journals print (9 at 8 x 6 in)
    assert small_lw == pytest.approx(big_lw * scale)
    assert big == 9.0 and small_ == 7.0 > big * scale
    paper_size, paper_lw, fig = measures(**JOURNAL, theme="paper")
    assert paper_size == pytest.approx(small_) and paper_lw < small_lw
    assert not fig.axes[0].xaxis.get_gridlines()[0].get_visible()  # no grid on paper
    family = fig.axes[0].xaxis.label.get_fontfamily()
    assert family == ["sans-serif"]


def test_paper_png_defaults_to_300_dpi(sleep, tmp_path):
    model, frame = sleep
    out = draw(
        model,
        frame,
        PlotOptions(kind="caterpillar", output=str(tmp_path / "p.png"), width=3.5, height=3.0, theme="paper"),
    )
    assert png_size(str(tmp_path / "p.png")) == (1050, 900) == (out["width_px"], out["height_px"])
    assert out["theme"] == "paper"


def test_caption_and_title_can_be_removed_or_replaced(figure, sleep, tmp_path):
    model, frame = sleep
    fig, _, _ = figure(model, frame, small(tmp_path, "ranef", caption="", title=""))
    assert not fig.subfigs and fig.get_suptitle() == ""
    assert not [t for t in fig.texts if t.get_text()]
    fig, _, _ = figure(model, frame, small(tmp_path, "ranef", caption="Figure 2", title="Subjects"))
    assert _caption_of(fig) == "Figure 2" and fig.subfigs[0].get_suptitle() == "Subjects"
    fig, _, _ = figure(model, frame, small(tmp_path, "ranef"))
    assert _caption_of(fig).startswith("Reaction ~ Days + (Days|Subject)   ·   REML   ·   180 observations")


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"kind": "spaghetti", "groups": -1}, "--groups must be 0 (all) or a positive count"),
        ({"kind": "ranef", "groups": 5}, "--groups is not used by the ranef plot"),
        ({"kind": "fitted", "seed": 5}, "--seed is not used by the fitted plot"),
        ({"kind": "spaghetti", "seed": -2}, "--seed must be 0 or more, got -2"),
        ({"kind": "ranef", "theme": "print"}, "unknown --theme 'print'"),
    ],
)
def test_new_option_errors(sleep, tmp_path, kw, message):
    model, frame = sleep
    kind = kw.pop("kind")
    with pytest.raises(MlmError, match=re.escape(message)):
        draw(model, frame, small(tmp_path, kind, **kw))


# ------------------------------------------------------------------ files


def test_png_has_the_requested_pixel_size(sleep, tmp_path):
    model, frame = sleep
    draw(model, frame, PlotOptions(kind="ranef", output=str(tmp_path / "a.png")))
    assert png_size(str(tmp_path / "a.png")) == (800, 600)
    out = draw(model, frame, small(tmp_path, "caterpillar", "b.png", width=3.5, height=2.5, dpi=60))
    assert png_size(str(tmp_path / "b.png")) == (210, 150) == (out["width_px"], out["height_px"])


@pytest.mark.parametrize("kind", ["ranef", "caterpillar", "spaghetti", "fitted", "residuals"])
def test_svg_and_pdf(sleep, tmp_path, kind):
    model, frame = sleep
    out = draw(model, frame, small(tmp_path, kind, "p.svg", width=6.0, height=4.5, title="My title"))
    svg = (tmp_path / "p.svg").read_text()
    assert out["format"] == "svg"
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and 'width="432pt"' in svg
    assert 'height="324pt"' in svg and "My title" in svg
    draw(model, frame, small(tmp_path, kind, "p.pdf"))
    pdf = (tmp_path / "p.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and b"/MediaBox [ 0 0 360 288 ]" in pdf
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".mlm-")]  # no temporary files left


def test_output_format_errors(sleep, tmp_path):
    model, frame = sleep
    assert image_format("x.PNG") == "png" and image_format("a/b.svg") == "svg"
    with pytest.raises(MlmError, match=r"name it \.png, \.svg or \.pdf"):
        draw(model, frame, small(tmp_path, "ranef", "p.jpg"))
    with pytest.raises(MlmError, match="does not exist"):
        draw(model, frame, PlotOptions(kind="ranef", output=str(tmp_path / "no" / "p.png")))
    with pytest.raises(MlmError, match="unknown plot kind"):
        draw(model, frame, small(tmp_path, "violin"))
    with pytest.raises(MlmError, match="different file"):
        draw(model, frame, small(tmp_path, "ranef", data_out=str(tmp_path / "p.png")))


def test_table_csv():
    text = table_csv([{"a": 1.5, "b": None}, {"a": float("nan"), "c": "x,y", "b": True}])
    assert text == 'a,b,c\n1.5,NA,NA\nNA,TRUE,"x,y"\n'


def test_where_that_keeps_nothing(sleep, tmp_path):
    model, frame = sleep
    with pytest.raises(DataError, match="keeps none of the 180 observations"):
        draw(model, frame, small(tmp_path, "ranef", where="Days > 100"))


# ------------------------------------------------------------------ --where


@pytest.fixture(scope="module")
def toy() -> Frame:
    cols = {
        "x": np.array([1.0, 2.0, 3.0, np.nan, 5.0, -1.0]),
        "g": Factor(np.array([0, 1, 2, 0, -1, 1]), ["a", "b", "c d"]),
        "n": Factor(np.array([0, 1, 0, 1, 0, 1]), ["308", "309"]),
        "flag": Factor(np.array([1, 0, 1, 0, 1, -1]), ["FALSE", "TRUE"], logical=True),
        "y": np.array([1.0, 1.0, 4.0, 4.0, 5.0, 0.0]),
    }
    return Frame(name="toy", columns=cols, n_rows=6)


@pytest.mark.parametrize(
    "expr, rows",
    [
        ("x <= 2", [0, 1, 5]),
        ("x<=2", [0, 1, 5]),
        ("2 >= x", [0, 1, 5]),
        ("x > -1", [0, 1, 2, 4]),
        ("x != 2", [0, 2, 4, 5]),  # missing x is dropped, not kept
        ("x = 3", [2]),
        ("g == 'c d'", [2]),
        ('g != "a"', [1, 2, 5]),  # missing g is dropped
        ("g in ('a', 'b')", [0, 1, 3, 5]),
        ("g not in ('a')", [1, 2, 5]),
        ("x in (1, 5, 7)", [0, 4]),
        ("n == 309", [1, 3, 5]),  # text labels that are numbers compare as numbers
        ("flag == TRUE", [0, 2, 4]),
        ("x > 1 and g == 'b' or y == 5", [1, 4]),
        ("x > 1 and (g == 'b' or y == 5)", [1, 4]),
        ("not x > 2", [0, 1, 5]),  # not of unknown stays unknown
        ("!(x > 2) & y < 4 | x == 5", [0, 1, 4, 5]),
        ("x == y", [0, 4]),
        ("x > 1 or x <= 1", [0, 1, 2, 4, 5]),
        ("x > 1 AND y >= 4", [2, 4]),
        ("x <= 1e1 and x >= .5", [0, 1, 2, 4]),
    ],
)
def test_where_rows(toy, expr, rows):
    assert np.flatnonzero(where_mask(toy, expr)).tolist() == rows


@pytest.mark.parametrize(
    "expr, message, position",
    [
        ("x <=", "expected a column name or a value, found end of expression", 5),
        ("x << 3", "expected a column name or a value, found '<'", 4),
        ("(x > 1", "expected ')'", 7),
        ("x > 1)", "unexpected ')'", 6),
        ("x 3", "expected a comparison", 3),
        ("x > 1 and", "expected a column name or a value", 10),
        ("x $ 1", "unexpected character '$'", 3),
        ("", "empty expression", 1),
        ("1 < 2", "needs a column on one side", 1),
        ("z > 1", "unknown column 'z'", 1),
        ("g < 'b'", "'<' is not meaningful for text column 'g'", 3),
        ("x == 'a'", "column 'x' is numeric", 6),
        ("g == 1", "column 'g' is text", 6),
        ("x in 1, 2", "expected '('", 6),
        ("x in (1, y)", "expected a number or a quoted string", 10),
    ],
)
def test_where_errors_point_at_the_position(toy, expr, message, position):
    with pytest.raises(DataError) as e:
        where_mask(toy, expr)
    text = str(e.value)
    assert "\n" not in text
    assert message in text
    assert f"at position {position}:" in text
    assert text.endswith(f"{expr[: position - 1]}>>>{expr[position - 1 :]}")


def test_where_parses_to_a_tree():
    node = parse_where("a < 1 or b == 'x' and not c in (1, 2)")
    assert node[0] == "or" and node[2][0] == "and" and node[2][2][0] == "not"


def test_where_agrees_with_numpy_on_heck():
    frame = read_csv(str(HECK))
    c = frame.columns
    expr = "(ses > -0.5 and public == 1) or (female == 0 and math >= 60) or schcode in (1, 2, 3)"
    expect = (
        ((c["ses"] > -0.5) & (c["public"] == 1))
        | ((c["female"] == 0) & (c["math"] >= 60))
        | np.isin(c["schcode"], [1, 2, 3])
    )
    np.testing.assert_array_equal(where_mask(frame, expr), expect)


# ------------------------------------------------------------------ command line


def test_command_line_prints_the_numbers_and_one_line_errors(tmp_path):
    out = tmp_path / "s.png"
    cmd = [
        MLM,
        "plot",
        str(DATA / "sleepstudy.csv"),
        "Reaction ~ Days + (Days|Subject)",
        "-k",
        "ranef",
        "-o",
        str(out),
        "--dpi",
        "30",
        "--format",
        "json",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=environment())
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["kind"] == "ranef" and len(data["points"]) == 18
    assert png_size(str(out)) == (240, 180)
    bad = subprocess.run(cmd[:-2] + ["--where", "Days >"], capture_output=True, text=True, cwd=ROOT, env=environment())
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("mlm: error: --where:")


def test_command_line_journal_options(tmp_path):
    out = tmp_path / "s.png"
    cmd = [
        MLM,
        "plot",
        str(HECK),
        "math ~ ses + (ses|schcode)",
        "-k",
        "spaghetti",
        "-o",
        str(out),
        "--theme",
        "paper",
        "--width",
        "3.5",
        "--height",
        "3",
        "--groups",
        "3",
        "--seed",
        "5",
        "--caption",
        "",
        "--format",
        "json",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=environment())
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert (data["groups_drawn"], data["seed"], data["theme"]) == (3, 5, "paper")
    assert png_size(str(out)) == (1050, 900)
    bad = subprocess.run(cmd[:-2] + ["--groups", "-1"], capture_output=True, text=True, cwd=ROOT, env=environment())
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--groups" in bad.stderr


def test_plots_module_imports_no_matplotlib():
    code = "import sys, mlmcli.render.plots, mlmcli.where; print('matplotlib' in sys.modules, 'pandas' in sys.modules)"
    run = python("-c", code, capture_output=True, text=True)
    assert run.stdout.split() == ["False", "False"]


def test_json_ready(heck, tmp_path):
    model, frame = heck
    for kind in ("caterpillar", "residuals"):
        out = draw(model, frame, small(tmp_path, kind, where="schcode <= 5"))
        json.dumps(out, allow_nan=False)
    buf = io.StringIO()
    json.dump(draw(model, frame, small(tmp_path, "fitted", where="schcode <= 5")), buf, allow_nan=False)


# ------------------------------------------------------------------ profile


def test_profile_curves_cross_the_confint_bounds(sleep, sleep_profiles):
    """zeta is 0 at the estimate and crosses +-1.96 where `mlm confint` puts the 95% profile bounds."""
    from mlmcli.stats.confint import confint_report

    intervals = {r["parameter"]: r for r in confint_report(sleep[0], "profile")["intervals"]}
    assert [c["parameter"] for c in sleep_profiles] == list(intervals)
    for c in sleep_profiles:
        x, z = np.array(c["value"]), np.array(c["zeta"])
        assert np.all(np.diff(x) > 0) and np.all(np.diff(z) > 0)  # monotone, as a profile is
        assert np.interp(c["estimate"], x, z) == pytest.approx(0.0, abs=1e-6)
        for bound, level in (("lower", -1.959963984540054), ("upper", 1.959963984540054)):
            width = intervals[c["parameter"]]["upper"] - intervals[c["parameter"]]["lower"]
            assert np.interp(level, z, x) == pytest.approx(intervals[c["parameter"]][bound], abs=0.02 * width)


@pytest.mark.parametrize("size", ["screen", "journal", "journal-paper"])
def test_profile_panels_keep_their_text_inside(figure, sleep, sleep_profiles, tmp_path, size):
    model, frame = sleep
    opts = dict(SCREEN if size == "screen" else JOURNAL, theme="paper" if size == "journal-paper" else "screen")
    fig, drawn, _ = figure(model, frame, small(tmp_path, "profile", profiles=sleep_profiles, **opts))
    assert_all_text_inside(fig, drawn)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 6 == len(drawn.data["parameters"])
    assert {r["parameter"] for r in drawn.table} == {c["parameter"] for c in sleep_profiles}


def test_profile_kind_from_the_command_line(tmp_path):
    import subprocess

    out, csv_ = tmp_path / "prof.png", tmp_path / "prof.csv"
    p = subprocess.run(
        [
            MLM,
            "plot",
            str(DATA / "sleepstudy.csv"),
            "Reaction ~ Days + (Days|Subject)",
            "--kind",
            "profile",
            "-o",
            str(out),
            "--data-out",
            str(csv_),
        ],
        capture_output=True,
        text=True,
        env=environment(),
    )
    assert p.returncode == 0, p.stderr
    assert png_size(str(out)) == (800, 600)
    assert csv_.read_text().splitlines()[0] == "parameter,value,zeta"
