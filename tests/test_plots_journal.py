"""`mlm plot` for a journal: at one column (3.5 x 3 in) no text under 7 points, measured in the PDFs the
pictures are written to, and nothing clipped or overlapping there or at 8 x 6 in; caterpillars that name
their levels and mark the intervals that exclude zero; spaghetti plots with the population line and a
stated choice of groups; readable profile labels; SVG text kept as text; --xlabel, --ylabel, --font-size."""

from __future__ import annotations

import io
import json
import re
import zlib
from pathlib import Path

import numpy as np
import pytest

from mlmcli.errors import MlmError
from mlmcli.render.plots import PlotOptions, draw
from mlmcli.render.plots.style import POP
from mlmcli.render.plots.textfit import outside, overlapping
from tests.commands import mlm
from tests.plotfixtures import DATA, HECK
from tests.plotfixtures import fit as _fit
from tests.test_plots import CASES as PLOT_CASES
from tests.test_plots import _caption_of, small, with_estimates

SLEEP = str(DATA / "sleepstudy.csv")
SS = "Reaction ~ Days + (Days|Subject)"
COLUMN = dict(width=3.5, height=3.0, dpi=300)
SCREEN = dict(width=8.0, height=6.0, dpi=100)


def pdf_font_sizes(pdf: bytes) -> list[float]:
    """The size of every text a PDF sets: the operand of each Tf operator in its content streams,
    inflated where they are compressed (FlateDecode)."""
    sizes: list[float] = []
    for m in re.finditer(rb"stream\r?\n(.*?)endstream", pdf, re.S):
        body = m.group(1)
        try:  # the end-of-line before endstream is left over, not part of the data
            body = zlib.decompressobj().decompress(body)
        except zlib.error:
            pass  # stored uncompressed
        sizes += [float(x) for x in re.findall(rb"/[\w.+-]+ (\d+(?:\.\d+)?) Tf\b", body)]
    return sizes


def saved_pdf(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="pdf")
    return buf.getvalue()


def test_the_pdf_measure_reads_the_sizes_matplotlib_sets(figure, sleep, tmp_path):
    """The measure itself: a figure whose text sizes are known, read back from its PDF, compressed or not."""
    import matplotlib

    model, frame = sleep
    fig, _, _ = figure(model, frame, small(tmp_path, "ranef", **SCREEN))
    expect = {9.0, 10.0, 13.0, 9.5, 7.5, 8.0}  # ticks, axis labels, title, correlations, point labels, footer
    assert set(pdf_font_sizes(saved_pdf(fig))) == expect
    with matplotlib.rc_context({"pdf.compression": 0}):
        assert set(pdf_font_sizes(saved_pdf(fig))) == expect


# every kind test_plots draws, plus profile, a factor on effects' axis, check with a second term, and
# shrinkage with all of sleepstudy's 18 subjects and 50 of heck2011's 419 schools
CASES = [
    *PLOT_CASES,
    ("sleep", "profile", {}),
    ("heck_factor", "effects", {"terms": "public,ses"}),
    ("heck_public", "check", {}),
    ("sleep", "shrinkage", {}),
    ("heck", "shrinkage", {}),
    ("penicillin", "ranef", {}),
    ("penicillin", "check", {}),
]


@pytest.mark.parametrize("theme", ["screen", "paper"])
@pytest.mark.parametrize("size", ["column", "screen"])
@pytest.mark.parametrize("data, kind, kw", CASES)
def test_no_text_under_7_points_and_nothing_clipped_or_overlapping(
    figure, request, sleep_profiles, tmp_path, data, kind, kw, size, theme
):
    model, frame = request.getfixturevalue(data)
    if kind == "profile":
        kw = {"profiles": sleep_profiles}
    kw = with_estimates(model, kind, kw)
    opts = small(tmp_path, kind, **(COLUMN if size == "column" else SCREEN), theme=theme, **kw)
    fig, drawn, _ = figure(model, frame, opts)
    sizes = pdf_font_sizes(saved_pdf(fig))
    assert len(sizes) > 10 and min(sizes) >= 7.0, sorted(set(sizes))
    if size == "column":  # tick labels, legends, footers at 7 points; axis labels larger
        assert min(sizes) == 7.0 and max(sizes) >= 8.5
    box = fig.get_tightbbox(fig.canvas.get_renderer())
    w, h = fig.get_size_inches()
    assert box.x0 >= -0.01 and box.y0 >= -0.01 and box.x1 <= w + 0.01 and box.y1 <= h + 0.01
    assert outside(fig) == [] and overlapping(fig) == []
    assert not any("did not fit" in n for n in drawn.notes)


@pytest.mark.parametrize(
    "kind",
    ["ranef", "caterpillar", "spaghetti", "fitted", "residuals", "profile", "coef", "effects", "check", "shrinkage"],
)
def test_the_pdf_the_command_writes_at_one_column_has_no_text_under_7_points(kind, tmp_path):
    out = tmp_path / "fig.pdf"
    p = mlm("plot", SLEEP, SS, "-k", kind, "--width", "3.5", "--height", "3", "--theme", "paper", "-o", str(out))
    assert p.returncode == 0, p.stderr
    sizes = pdf_font_sizes(out.read_bytes())
    assert len(sizes) > 10 and min(sizes) == 7.0, sorted(set(sizes))


@pytest.mark.parametrize("data, kind, kw", [c for c in CASES if c[1] != "profile"])
def test_titles_take_one_line_at_one_column(figure, request, tmp_path, data, kind, kw):
    model, frame = request.getfixturevalue(data)
    fig, _, _ = figure(model, frame, small(tmp_path, kind, **COLUMN, **with_estimates(model, kind, kw)))
    titles = [fig.subfigs[0].get_suptitle()] + [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles[0] and all("\n" not in t for t in titles), titles


def test_profile_title_at_one_column(figure, sleep, sleep_profiles, tmp_path):
    model, frame = sleep
    fig, _, _ = figure(model, frame, small(tmp_path, "profile", **COLUMN, profiles=sleep_profiles))
    assert fig.subfigs[0].get_suptitle() == "Profiles of the ML deviance"


# ------------------------------------------------------------------ caterpillar


def test_caterpillar_marks_the_intervals_that_exclude_zero(figure, sleep, tmp_path):
    model, frame = sleep
    fig, drawn, _ = figure(model, frame, small(tmp_path, "caterpillar", **SCREEN, groups=0))
    rows = drawn.data["rows"]
    excludes = [r for r in rows if r["excludes_zero"]]
    assert all((r["lower"] > 0) or (r["upper"] < 0) for r in excludes)
    assert all(r["lower"] <= 0 <= r["upper"] for r in rows if not r["excludes_zero"])
    # sleepstudy: subjects whose intercept or slope differs from the population's at the 95% level
    assert 0 < len(excludes) < len(rows) and len(rows) == 36
    from matplotlib.colors import to_rgba

    for ax, term in zip(fig.axes, ["(Intercept)", "Days"], strict=True):
        mine = [r for r in rows if r["term"] == term]
        dots = [line for line in ax.lines if line.get_marker() == "o"]
        filled = next(d for d in dots if to_rgba(d.get_markerfacecolor()) != to_rgba("white"))
        open_ = next(d for d in dots if to_rgba(d.get_markerfacecolor()) == to_rgba("white"))
        assert sorted(filled.get_xdata()) == sorted(r["value"] for r in mine if r["excludes_zero"])
        assert sorted(open_.get_xdata()) == sorted(r["value"] for r in mine if not r["excludes_zero"])
    legend = fig.subfigs[0].legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["95% interval excludes 0", "includes 0"]


def test_caterpillar_names_the_levels_it_shows(figure, heck, tmp_path):
    """heck2011's 419 schools with --groups 20: all 20 named at 8 x 6 in; at one column every second or
    third, evenly, none over another."""
    model, frame = heck
    fig, drawn, _ = figure(model, frame, small(tmp_path, "caterpillar", **SCREEN, groups=20))
    shown = [r["level"] for r in drawn.data["rows"] if r["term"] == "(Intercept)"]
    assert len(shown) == 20 and drawn.data["levels"]["schcode"] == {"levels": 419, "drawn": 20}
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == shown
    assert fig.axes[0].get_ylabel() == "schcode: 20 of 419 levels, sorted"
    fig, drawn, _ = figure(model, frame, small(tmp_path, "caterpillar", **COLUMN, groups=20))
    shown = [r["level"] for r in drawn.data["rows"] if r["term"] == "(Intercept)"]
    ticks = fig.axes[0].get_yticks()
    step = int(ticks[1] - ticks[0])
    assert step >= 2 and list(ticks) == list(range(0, 20, step))
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == shown[::step]
    assert overlapping(fig) == []


# ------------------------------------------------------------------ spaghetti


def test_spaghetti_spreads_its_groups_over_their_random_slopes(figure, sleep, tmp_path):
    model, frame = sleep
    fig, drawn, _ = figure(model, frame, small(tmp_path, "spaghetti"))
    d = drawn.data
    assert (d["groups_total"], d["groups_drawn"], d["picked"], d["spread_by"], d["seed"]) == (
        18,
        6,
        "spread",
        "Days",
        None,
    )
    term = model.design.terms[0]
    slopes = model.conditional_modes()[0][:, 1]
    order = np.argsort(slopes, kind="stable")
    expect = np.sort(order[np.round(np.linspace(0, 17, 6)).astype(int)])
    assert [line["level"] for line in d["lines"]] == [str(term.levels[i]) for i in expect]
    names = [str(v) for v in term.levels]
    picked = [slopes[names.index(line["level"])] for line in d["lines"]]
    assert (min(picked), max(picked)) == (slopes.min(), slopes.max())  # both extremes
    caption = _caption_of(fig).replace("\n", " ")
    assert "6 of 18 Subject groups, evenly spread over their Days random effect (--groups 0: all)" in caption
    again = draw(model, frame, small(tmp_path, "spaghetti"))
    assert [line["level"] for line in again["lines"]] == [line["level"] for line in d["lines"]]


def test_spaghetti_draws_the_population_line_always(figure, sleep, tmp_path):
    model, frame = sleep
    b0, b1 = model.beta
    for groups in (None, 0):
        fig, drawn, _ = figure(model, frame, small(tmp_path, "spaghetti", groups=groups))
        (pop,) = drawn.data["population"]
        assert (pop["x0"], pop["x1"]) == (0.0, 9.0)
        assert (pop["y0"], pop["y1"]) == (pytest.approx(b0, rel=1e-12), pytest.approx(b0 + 9 * b1, rel=1e-12))
        (ax,) = fig.axes
        (line,) = [ln for ln in ax.lines if ln.get_color() == POP]
        np.testing.assert_allclose(line.get_ydata(), [pop["y0"], pop["y1"]], rtol=1e-12)
    # all 18 in one colour, the legend below saying what the thick line is
    assert drawn.data["groups_drawn"] == 18 and ax.get_legend() is None
    legend = fig.subfigs[0].legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["each Subject", "population"]
    assert "all 18 Subject groups; population line: the fixed effects" in _caption_of(fig)


def test_spaghetti_population_line_of_each_panel(heck_public, tmp_path):
    model, frame = heck_public
    b0, b1, b2, b3 = model.beta
    out = draw(model, frame, small(tmp_path, "spaghetti", by="public", groups=4))
    assert sorted({line["by"] for line in out["lines"]}) == ["public = 0", "public = 1"]
    for r in out["population"]:
        p = int(r["by"][-1])
        for x, y in ((r["x0"], r["y0"]), (r["x1"], r["y1"])):
            assert y == pytest.approx(b0 + b2 * p + (b1 + b3 * p) * x, rel=1e-10)


def test_spaghetti_of_a_column_the_model_does_not_use(tmp_path):
    model, frame = _fit(HECK, "math ~ ses + (1|schcode)")
    out = draw(model, frame, small(tmp_path, "spaghetti", x="female"))
    (pop,) = out["population"]
    assert pop["y0"] == pytest.approx(pop["y1"], rel=1e-12)  # the model implies no change along female


# ------------------------------------------------------------------ profile


def test_profile_labels_are_readable_and_title_and_footer_say_ml(figure, sleep, sleep_profiles, tmp_path):
    model, frame = sleep
    fig, drawn, _ = figure(model, frame, small(tmp_path, "profile", **SCREEN, profiles=sleep_profiles))
    labels = ["sd((Intercept)) | Subject", "cor(Days, (Intercept)) | Subject", "sd(Days) | Subject", "sigma"]
    labels += ["(Intercept)", "Days"]
    assert [p["label"] for p in drawn.data["parameters"]] == labels
    assert [p["parameter"] for p in drawn.data["parameters"]][:2] == [
        "sd_(Intercept)|Subject",
        "cor_Days.(Intercept)|Subject",
    ]
    assert [ax.get_xlabel().replace("\n| ", " | ") for ax in fig.axes] == labels  # a long one broken before "|"
    # lme4 profiles the ML deviance, of the REML fit refitted by ML: the title and the footer both say so
    assert "ML deviance" in fig.subfigs[0].get_suptitle()
    parts = _caption_of(fig).split("\n")[0].split("   ·   ")
    assert parts == [SS, "ML refit of the REML fit", "180 observations"]
    ml, frame_ml = _fit_ml()
    from mlmcli.stats.confint import profile_curves

    fig, _, _ = figure(ml, frame_ml, small(tmp_path, "profile", **SCREEN, profiles=profile_curves(ml)))
    assert _caption_of(fig).split("\n")[0].split("   ·   ")[1] == "ML"


def _fit_ml():
    from mlmcli.design import build_design
    from mlmcli.formula import parse_formula
    from mlmcli.io.csv import read_csv
    from mlmcli.model import fit_model

    frame = read_csv(SLEEP)
    f = parse_formula("Reaction ~ Days + (1|Subject)")
    return fit_model(f, build_design(frame, f), reml=False, data_name=frame.name), frame


# ------------------------------------------------------------------ SVG, labels, type size


def test_svg_keeps_its_text_as_text(sleep, tmp_path):
    model, frame = sleep
    draw(model, frame, small(tmp_path, "spaghetti", "p.svg", title="My title", xlabel="Days of sleep deprivation"))
    svg = (tmp_path / "p.svg").read_text()
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert "My title" in texts and "Days of sleep deprivation" in texts and "Reaction" in texts
    assert '<use xlink:href="#DejaVu' not in svg and 'id="DejaVuSans' not in svg  # no glyph outlines


def test_xlabel_and_ylabel_replace_every_panels_own(figure, heck_public, sleep, tmp_path):
    model, frame = heck_public
    fig, _, _ = figure(model, frame, small(tmp_path, "spaghetti", by="public", xlabel="SES (z)", ylabel="Math score"))
    assert [ax.get_xlabel() for ax in fig.axes] == ["SES (z)", "SES (z)"]
    assert [ax.get_ylabel() for ax in fig.axes] == ["Math score", ""]  # the panels share the y axis
    model, frame = sleep
    fig, _, _ = figure(model, frame, small(tmp_path, "caterpillar", xlabel="", ylabel="Participant"))
    assert [ax.get_xlabel() for ax in fig.axes] == ["", ""] and fig.axes[0].get_ylabel() == "Participant"
    fig, _, _ = figure(model, frame, small(tmp_path, "ranef", xlabel="Slope", ylabel="Intercept"))
    assert (fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()) == ("Slope", "Intercept")
    with pytest.raises(MlmError, match=re.escape("--xlabel is not used by the residuals plot (its panels have")):
        draw(model, frame, small(tmp_path, "residuals", xlabel="x"))
    with pytest.raises(MlmError, match=re.escape("--xlabel is not used by the profile plot (each panel's x axis")):
        draw(model, frame, small(tmp_path, "profile", xlabel="x"))


def test_font_size_sets_the_axis_labels_and_the_rest_in_proportion(figure, sleep, tmp_path):
    model, frame = sleep
    fig, _, _ = figure(model, frame, small(tmp_path, "fitted", **COLUMN, font_size=9))
    ax = fig.axes[0]
    assert ax.xaxis.label.get_fontsize() == 9.0 and ax.xaxis.get_ticklabels()[0].get_fontsize() == pytest.approx(8.1)
    assert min(pdf_font_sizes(saved_pdf(fig))) == pytest.approx(7.2)  # the footer: 8/10 of the axis labels
    fig, _, _ = figure(model, frame, small(tmp_path, "fitted", **SCREEN, font_size=6))
    sizes = pdf_font_sizes(saved_pdf(fig))
    assert fig.axes[0].xaxis.label.get_fontsize() == 6.0 and min(sizes) == 6.0  # asked for: smaller than 7
    for bad in (3.0, 30.0):
        with pytest.raises(MlmError, match=f"--font-size must be between 4 and 24 points, got {bad:g}"):
            draw(model, frame, small(tmp_path, "fitted", font_size=bad))


def test_the_journal_options_from_the_command_line(tmp_path):
    out = tmp_path / "fig.svg"
    p = mlm("plot", SLEEP, SS, "-k", "fitted", "--xlabel", "Days of deprivation", "--ylabel", "Reaction time (ms)",
            "--font-size", "8", "--width", "3.5", "--height", "3", "-o", str(out), "-f", "json")  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["kind"] == "fitted"
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", out.read_text())
    assert "Days of deprivation" in texts and "Reaction time (ms)" in texts
    assert re.search(r"font: [\d.]+px|font-size: ?8px|font: 8px", out.read_text())
    for args, message in (
        (["-k", "residuals", "--ylabel", "r"], "--ylabel is not used by the residuals plot"),
        (["-k", "fitted", "--font-size", "40"], "--font-size must be between 4 and 24 points, got 40"),
    ):
        bad = mlm("plot", SLEEP, SS, *args, "-o", str(tmp_path / "x.png"))
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and message in bad.stderr
        assert not (tmp_path / "x.png").exists()


def test_paper_png_at_one_column_is_1050_by_900(sleep, tmp_path):
    model, frame = sleep
    out = draw(model, frame, PlotOptions(kind="caterpillar", output=str(tmp_path / "p.png"), **COLUMN, theme="paper"))
    assert (out["width_px"], out["height_px"]) == (1050, 900)
    assert Path(tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_check_at_one_column_names_the_factors_whose_intercepts_its_qq_panel_shows(figure, penicillin, tmp_path):
    model, frame = penicillin
    fig, _, _ = figure(model, frame, small(tmp_path, "check", **COLUMN, **with_estimates(model, "check", {})))
    assert "ranef Q-Q: blue plate, orange sample" in _caption_of(fig).replace("\n", " ")
