"""What the command says when it is used wrongly, and grouping factors written as lme4 allows them.

Each test runs the command in a subprocess, as a shell would, and checks the exit status and the
one line on standard error (or, for the grouping factors, the numbers against lme4's).
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.commands import mlm

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "fixtures" / "lme4" / "data"
SLEEP = str(DATA / "sleepstudy.csv")
PASTES = str(DATA / "Pastes.csv")


def one_error_line(p: subprocess.CompletedProcess) -> str:
    """The run failed with exit 2 and said why in exactly one line, without a traceback."""
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlm: error: "), p.stderr
    return lines[0]


# ------------------------------------------------------- empty random-effects terms


@pytest.mark.parametrize(
    ("term", "label", "bar"),
    [
        ("(0|Subject)", "0 | Subject", "|"),
        ("(-1|Subject)", "-1 | Subject", "|"),
        ("(0 + Days - Days|Subject)", "0 + Days - Days | Subject", "|"),
        ("(1 - 1 + 0|Subject)", "1 - 1 + 0 | Subject", "|"),
        ("(0||Subject)", "0 || Subject", "||"),
    ],
)
def test_an_empty_random_effects_term_is_a_user_error(term, label, bar):
    """lme4 stops at such a term ("length(theta) > 0L is not TRUE"); so does mlm, in plain words."""
    line = one_error_line(mlm("fit", SLEEP, f"Reaction ~ Days + {term}"))
    assert line.startswith(
        f"mlm: error: the random-effects term ({label}) has no columns: put 1 or a "
        f"variable on the left of '{bar}' at position 20: Reaction ~ Days + (>>>"
    )


def test_an_empty_term_beside_others_is_refused_too():
    """lme4 fits (0|Subject) + (1|Subject) and then cannot print it: refused at once instead."""
    line = one_error_line(mlm("ranova", SLEEP, "Reaction ~ Days + (1|Subject) + (0|Subject)"))
    assert "the random-effects term (0 | Subject) has no columns" in line


# ------------------------------------------------------- grouping factors as expressions

# lme4 evaluates a grouping factor's expression where it finds the variables: with the data attached,
# lmer(..., data) fits these formulas (the values below are R 4's, lme4 1.1-31, options(digits = 15)).
GROUPING_REFERENCES = [
    # attach(ss); m <- lmer(Reaction ~ Days + (1|factor(Subject)), ss)
    (
        SLEEP,
        "Reaction ~ Days + (1|factor(Subject))",
        {"factor(Subject)": 18},
        [1.19788153282896],
        30.9912338986441,
        1786.46508539492,
        [251.405104848484, 10.467285959596],
        [" factor(Subject) (Intercept) 1378.2   37.12   "],
    ),
    # attach(P); m2 <- lmer(strength ~ 1 + (1|interaction(batch, cask)) + (1|batch), P)
    (
        PASTES,
        "strength ~ 1 + (1|interaction(batch, cask)) + (1|batch)",
        {"interaction(batch, cask)": 30, "batch": 10},
        [3.52690178773174, 1.56346140209686],
        0.823407523446778,
        246.990745853487,
        [60.0533333333354],
        [
            " interaction(batch, cask) (Intercept) 8.434    2.9041  ",
            " batch                    (Intercept) 1.657    1.2874  ",
        ],
    ),
    # m3 <- lmer(strength ~ 1 + (1|factor(batch):cask) + (1|batch), P)
    (
        PASTES,
        "strength ~ 1 + (1|factor(batch):cask) + (1|batch)",
        {"factor(batch):cask": 30, "batch": 10},
        [3.52690220896523, 1.56346001183544],
        0.823407522595863,
        246.990745853486,
        [60.053333333334],
        [" factor(batch):cask (Intercept) 8.434    2.9041  ", " batch              (Intercept) 1.657    1.2874  "],
    ),
]


@pytest.mark.parametrize(
    ("data", "formula", "groups", "theta", "sigma", "reml", "beta", "lines"),
    GROUPING_REFERENCES,
    ids=[r[1] for r in GROUPING_REFERENCES],
)
def test_grouping_factor_expressions_fit_as_lme4_fits_them(data, formula, groups, theta, sigma, reml, beta, lines):
    p = mlm("fit", data, formula, "-f", "json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["groups"] == groups
    np.testing.assert_allclose(doc["theta"], theta, rtol=1e-5)
    np.testing.assert_allclose(doc["sigma"], sigma, rtol=1e-6)
    np.testing.assert_allclose(doc["criterion"], reml, rtol=1e-9)
    np.testing.assert_allclose([r["estimate"] for r in doc["fixed_effects"]], beta, rtol=1e-9)
    assert [r["group"] for r in doc["random_effects"]] == [*groups, "Residual"]
    text = mlm("fit", data, formula)
    assert text.returncode == 0, text.stderr
    out = text.stdout.splitlines()
    start = out.index("Random effects:")
    assert out[start + 2 : start + 2 + len(lines)] == lines
    groups_line = ", groups:  " + "; ".join(f"{g}, {k}" for g, k in groups.items())
    assert any(line.endswith(groups_line) for line in out), out


def test_a_grouping_expression_of_several_columns_is_refused():
    line = one_error_line(mlm("fit", SLEEP, "Reaction ~ Days + (1|poly(Days, 2))"))
    assert line == "mlm: error: the grouping factor poly(Days, 2) has several columns; it must be one"


def test_interaction_levels_are_rs():
    """R's interaction() levels: the first factor varies fastest, joined by '.'.

    head(ranef(m2)[[1]], 4) of the second reference fit above:
    A.a 1.774686285371947, B.a 0.883655895342906, C.a -2.572209328732687, D.a -3.052808698711910
    """
    p = mlm("ranef", PASTES, "strength ~ 1 + (1|interaction(batch, cask)) + (1|batch)", "-f", "csv")
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(io.StringIO(p.stdout)))[:4]
    assert [(r["group"], r["level"]) for r in rows] == [
        ("interaction(batch, cask)", lev) for lev in ("A.a", "B.a", "C.a", "D.a")
    ]
    np.testing.assert_allclose(
        [float(r["value"]) for r in rows],
        [1.774686285371947, 0.883655895342906, -2.572209328732687, -3.052808698711910],
        rtol=1e-5,
    )


def test_predictions_find_levels_of_grouping_expressions(tmp_path):
    """New data are grouped by the same expression: a known combination gets its random effect,
    a new one is an error naming the level as the fit labels it."""
    new = tmp_path / "new.csv"
    new.write_text('"strength","batch","cask","sample"\n0,"A","a","A:a"\n0,"K","a","x"\n')
    formula = "strength ~ 1 + (1|interaction(batch, cask)) + (1|batch)"
    fit = json.loads(mlm("ranef", PASTES, formula, "-f", "json").stdout)
    p = mlm("predict", PASTES, formula, "--newdata", str(new), "--allow-new-levels", "-f", "csv")
    assert p.returncode == 0, p.stderr
    fitted = [float(r[".fitted"]) for r in csv.DictReader(io.StringIO(p.stdout))]
    doc = json.loads(mlm("fit", PASTES, formula, "-f", "json").stdout)
    intercept = doc["fixed_effects"][0]["estimate"]
    effects = {(r["group"], r["level"]): r["value"] for r in fit["ranef"]}
    np.testing.assert_allclose(
        fitted,
        [intercept + effects[("interaction(batch, cask)", "A.a")] + effects[("batch", "A")], intercept],
        rtol=1e-9,
    )
    line = one_error_line(mlm("predict", PASTES, formula, "--newdata", str(new)))
    assert line == (
        "mlm: error: new levels detected in newdata: K.a (give --allow-new-levels to predict them "
        "without their random effects)"
    )


# ------------------------------------------------------- columns missing in every row


def _sleep_with(tmp_path: Path, response_missing: bool) -> str:
    """sleepstudy with an empty column x (and the response emptied too when asked)."""
    lines = Path(SLEEP).read_text().splitlines()
    out = ['"Reaction","Days","Subject","x"']
    for line in lines[1:]:
        reaction, days, subject = line.split(",")
        out.append(f"{'NA' if response_missing else reaction},{days},{subject},NA")
    path = tmp_path / "empty.csv"
    path.write_text("\n".join(out) + "\n")
    return str(path)


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("Reaction ~ Days + (1|Subject)", "the response column 'Reaction' is missing in every row"),
        (
            "log(Reaction) ~ Days + (1|Subject)",
            "the response 'log(Reaction)' is missing in every row, as its column 'Reaction' is",
        ),
    ],
)
def test_an_empty_response_column_is_named_as_missing(tmp_path, formula, message):
    """A column of NA alone reads as logical (as in R); the error says it is empty, not TRUE/FALSE."""
    data = _sleep_with(tmp_path, response_missing=True)
    for command in ("fit", "anova"):
        assert one_error_line(mlm(command, data, formula)) == f"mlm: error: {message}"


@pytest.mark.parametrize(
    ("formula", "options", "message"),
    [
        ("Reaction ~ Days + x + (1|Subject)", (), "column 'x' is missing in every row; no rows are left"),
        ("Reaction ~ Days + (1|x)", (), "column 'x' is missing in every row; no rows are left"),
        (
            "Reaction ~ Days + log(x) + (1|Subject)",
            (),
            "'log(x)' is missing in every row, as its column 'x' is; no rows are left",
        ),
        (
            "Reaction ~ log(-Days - 1) + (1|Subject)",
            (),
            "'log(-Days - 1)' is missing (NA or NaN) in every row; no rows are left",
        ),
        ("Reaction ~ Days + (1|Subject)", ("--weights", "x"), "--weights x: the column is missing in every row"),
    ],
)
def test_an_empty_predictor_column_is_named(tmp_path, formula, options, message):
    data = _sleep_with(tmp_path, response_missing=False)
    assert one_error_line(mlm("fit", data, formula, *options)) == f"mlm: error: {message}"


# ------------------------------------------------------- --where too deep


@pytest.mark.parametrize(
    "where",
    [
        "(" * 5000 + "Days > 1" + ")" * 5000,
        "not " * 5000 + "Days > 1",
        " and ".join(["Days > 1"] * 5000),
    ],
)
def test_a_where_nested_too_deeply_names_where(tmp_path, where):
    out = tmp_path / "p.png"
    p = mlm("plot", SLEEP, "Reaction ~ Days + (1|Subject)", "--kind", "caterpillar", "-o", str(out), "--where", where)
    assert one_error_line(p) == (
        "mlm: error: --where: the expression is nested too deeply or has too many terms "
        f"to process ({len(where)} characters)"
    )
    assert not out.exists()


def test_a_where_nested_within_reason_is_read(tmp_path):
    out = tmp_path / "p.png"
    where = "(" * 200 + "Days > 1" + ")" * 200 + " and " + " and ".join(["Subject != 308"] * 100)
    p = mlm("plot", SLEEP, "Reaction ~ Days + (1|Subject)", "--kind", "caterpillar", "-o", str(out), "--where", where)
    assert p.returncode == 0, p.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------- predictions for groups the fit never saw


def test_a_missing_group_in_new_data_names_the_option(tmp_path):
    new = tmp_path / "new.csv"
    new.write_text("Days,Subject\n1,\n")
    line = one_error_line(mlm("predict", SLEEP, "Reaction ~ Days + (Days|Subject)", "--newdata", str(new)))
    assert line == (
        "mlm: error: NAs are not allowed in prediction data for grouping variables unless "
        "allow.new.levels is TRUE (give --allow-new-levels to predict those rows without their random "
        "effects)"
    )
    p = mlm("predict", SLEEP, "Reaction ~ Days + (Days|Subject)", "--newdata", str(new), "--allow-new-levels")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == "Days,Subject,.fitted"


# ------------------------------------------------------- DATA and FORMULA swapped

SS = "Reaction ~ Days + (1|Subject)"


@pytest.mark.parametrize(
    ("command", "formulas"),
    [
        ("fit", [SS]),
        ("tau", [SS]),
        ("ranef", [SS]),
        ("predict", [SS]),
        ("augment", [SS]),
        ("confint", [SS]),
        ("anova", [SS]),
        ("ranova", [SS]),
        ("plot", [SS]),
        ("table", [SS]),
        ("compare", [SS, "Reaction ~ (1|Subject)"]),
    ],
)
def test_swapped_data_and_formula_are_named_with_the_usage(command, formulas):
    line = one_error_line(mlm(command, formulas[0], SLEEP, *formulas[1:]))
    usage = "DATA FORMULA..." if command in ("table", "compare") else "DATA FORMULA"
    assert line == f"mlm: error: DATA and FORMULA look swapped: usage: mlm {command} [OPTIONS] {usage}"


@pytest.mark.parametrize(
    "args",
    [
        ["-f", "json", SS, "no-such-file.parquet"],  # by the suffix, even when the file is not there
        [SS, "-f", "json", "tests/fixtures/lme4/data/PASTES.CSV"],
    ],
)
def test_swapped_arguments_are_found_among_options(args):
    line = one_error_line(mlm("fit", *args))
    assert line == "mlm: error: DATA and FORMULA look swapped: usage: mlm fit [OPTIONS] DATA FORMULA"


def test_a_formula_in_place_of_data_alone_is_not_called_swapped():
    """Two formulas are not a swap: the first is reported as a file that is not there."""
    line = one_error_line(mlm("fit", "Reaction ~ Days", SS))
    assert "swapped" not in line
