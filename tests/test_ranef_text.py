"""`mlm ranef --format text` against what print(ranef(fit, condVar = TRUE)) prints in R 4.2 /
lme4 1.1-31 (tests/fixtures/ranef_text)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from mlmcli.model import at_theta
from mlmcli.pipeline import lmer
from mlmcli.rcompat.escape import escape_strings
from mlmcli.render.ranef_text import list_tag, ranef_text
from mlmcli.report import ranef_report
from tests.refcheck import lme4_theta
from tests.test_cli import mlm

FIXTURES = Path(__file__).parent / "fixtures" / "ranef_text"
DATA = Path(__file__).parent / "fixtures" / "lme4" / "data"
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[-+]\d+)?(?![\w.:])")
REL = 1e-6  # R prints 7 significant digits


def cases() -> list[dict]:
    return json.loads((FIXTURES / "cases.json").read_text())["cases"]


def layout_and_numbers(text: str) -> tuple[list[str], list[float]]:
    """Each number masked by as many '#' as it has characters, and the numbers in order."""
    numbers: list[float] = []
    lines = []
    for line in text.splitlines():

        def mask(m: re.Match) -> str:
            numbers.append(float(m.group()))
            return "#" * len(m.group())

        lines.append(NUMBER.sub(mask, line))
    return lines, numbers


def assert_prints_as_r(ours: str, theirs: str) -> None:
    if ours == theirs:
        return
    lo, no = layout_and_numbers(ours)
    lt, nt = layout_and_numbers(theirs)
    assert lo == lt
    assert ours.endswith("\n") and theirs.endswith("\n")
    bad = [(a, b) for a, b in zip(no, nt, strict=True) if not math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)]
    assert not bad, bad[:10]


THETAS = json.loads((FIXTURES / "thetas.json").read_text())


def ranef_at(case: dict, at_lme4: bool) -> str:
    """The text of ranef(), ours at lme4's theta or at our optimum."""
    path = str(DATA / case["data"])
    model, _ = lmer(path, case["formula"], reml=case["reml"], ddf="none")
    if at_lme4:
        theta = THETAS[case["id"]]["theta"] if case["id"] in THETAS else lme4_theta(path, case["formula"], True)
        model = at_theta(model, theta)
    return ranef_text(escape_strings(ranef_report(model)))


@pytest.mark.parametrize("case", cases(), ids=lambda c: c["id"])
def test_ranef_text_prints_as_r(case):
    """At lme4's theta (R stops up to ~1e-6 above the criterion's minimum, where our optimizer goes
    on; tests/refcheck.py), R's text, numbers to R's 7 digits."""
    assert case["reml"]
    assert_prints_as_r(ranef_at(case, at_lme4=True), (FIXTURES / f"{case['id']}.txt").read_text())


@pytest.mark.parametrize("case", cases(), ids=lambda c: c["id"])
def test_ranef_command_prints_the_optimums_modes(case):
    p = mlm("ranef", str(DATA / case["data"]), case["formula"], "--format", "text")
    assert p.returncode == 0, p.stderr
    assert p.stdout == ranef_at(case, at_lme4=False)


def test_sleepstudy_header_and_footer():
    p = mlm("ranef", str(DATA / "sleepstudy.csv"), "Reaction ~ Days + (Days|Subject)", "--format", "text")
    ours, theirs = p.stdout.splitlines(), (FIXTURES / "sleepstudy.txt").read_text().splitlines()
    assert ours[:2] == theirs[:2] == ["$Subject", "    (Intercept)        Days"]
    assert ours[-2:] == theirs[-2:] == ["", "with conditional variances for \u201cSubject\u201d "]


def _report(groups: dict[str, tuple[list[str], dict[str, list[float]]]]) -> dict:
    rows = []
    for g, (levels, cols) in groups.items():
        for i, lv in enumerate(levels):
            for term, vals in cols.items():
                rows.append({"group": g, "level": lv, "term": term, "value": vals[i], "cond_sd": 1.0})
    return {"ranef": rows}


def test_wide_frame_wraps_and_formats_as_r():
    """Numbers given to R and to us alike: the wrapping at 80 columns and scientific columns are
    compared byte for byte."""
    spec = json.loads((FIXTURES / "wide.json").read_text())
    levels, cols = spec["levels"], spec["columns"]
    report = _report(
        {"district:school": (levels, cols), "district": (levels[:3], {"(Intercept)": cols["(Intercept)"][:3]})}
    )
    assert ranef_text(report) == (FIXTURES / "wide.txt").read_text()


def test_head_shows_the_first_levels():
    report = _report({"g": (["a", "b", "c"], {"(Intercept)": [1.5, -0.25, 2.0]})})
    assert ranef_text(report, head=2) == (
        "$g\n  (Intercept)\na        1.50\nb       -0.25\n... 1 more levels\n\n"
        "with conditional variances for \u201cg\u201d \n"
    )


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        ("Subject", "$Subject"),
        ("cask:batch", "$`cask:batch`"),
        ("school.id", "$school.id"),
        (".x", "$.x"),
        (".2a", "$`.2a`"),
        ("2g", "$`2g`"),
        ("if", "$`if`"),
        ("my g", "$`my g`"),
        ("g_1", "$g_1"),
        ("_g", "$`_g`"),
    ],
)
def test_list_tag_as_r(name, tag):
    assert list_tag(name) == tag
