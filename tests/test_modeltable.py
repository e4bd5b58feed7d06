"""`mlm table`: models side by side for a paper. Every number is the one `mlm fit --format json` gives for the
same model (whose agreement with lme4, lmerTest and performance the other tests check); each output format
is checked for its structure: a pipe table, a booktabs tabular, a well-formed HTML page, CSV."""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest

from mlmcli.render.modeltable import csv_table, html_table, latex, markdown, rows
from mlmcli.stats.modeltable import stars
from tests.commands import mlm
from tests.test_cli_exit import undeclared

ROOT = Path(__file__).resolve().parent.parent
SLEEP = str(ROOT / "tests" / "fixtures" / "lme4" / "data" / "sleepstudy.csv")
HECK = str(ROOT / "sample_data" / "heck2011.csv")
M1 = "Reaction ~ Days + (1|Subject)"
M2 = "Reaction ~ Days + I(Days^2) + (Days|Subject)"
SCHEMA = json.loads((ROOT / "mlmcli" / "schemas" / "table.schema.json").read_text())


def run_json(*args: str) -> dict:
    p = mlm(*args, "-f", "json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.fixture(scope="module")
def report() -> dict:
    return run_json("table", SLEEP, M1, M2, "--names", "Intercepts_only,Slopes & 100%")


@pytest.fixture(scope="module")
def fits() -> list[dict]:
    return [run_json("fit", SLEEP, m) for m in (M1, M2)]


# ------------------------------------------------------------------ the numbers are mlm fit's


def test_json_follows_the_schema_and_has_fit_s_numbers(report, fits):
    jsonschema.validate(report, SCHEMA)
    assert undeclared(report, SCHEMA) == []
    assert [m["name"] for m in report["models"]] == ["Intercepts_only", "Slopes & 100%"]
    assert report["statistic"] == "std_error" and report["ci"] is None
    for col, fit in zip(report["models"], fits, strict=True):
        assert col["formula"] == fit["formula"] and col["method"] == "REML"
        for got, ref in zip(col["fixed_effects"], fit["fixed_effects"], strict=True):
            for key in ("term", "estimate", "std_error", "df", "p_value"):
                assert got[key] == ref[key]
        sds = [(r["group"], r["term"], r["std_dev"]) for r in fit["random_effects"] if r["group"] != "Residual"]
        assert [(r["group"], r["term"], r["std_dev"]) for r in col["random_effects"]] == sds
        assert col["random_effect_correlations"] == fit["random_effect_correlations"]
        assert col["residual_sd"] == fit["sigma"]
        for key in ("n_obs", "groups", "aic", "bic", "loglik", "icc", "r2"):
            assert col[key] == fit[key], key
    # sleepstudy's random-slope model: lme4's REML criterion 1732.4 (the fit tests check it to 1e-6)
    assert report["models"][1]["loglik"] == pytest.approx(-fits[1]["criterion"] / 2)


def test_stars_thresholds():
    assert [stars(p) for p in (0.0009, 0.001, 0.0099, 0.01, 0.049, 0.05, 0.5, None)] == [
        "***",
        "**",
        "**",
        "*",
        "*",
        "",
        "",
        "",
    ]


def test_cells_are_the_rounded_numbers(report):
    grid = rows(report, 3)
    estimates = [r for r in grid if r.statistic == "estimate"]
    assert [r.label for r in estimates] == ["(Intercept)", "Days", "I(Days^2)"]
    for r in estimates:
        for cell, col in zip(r.cells, report["models"], strict=True):
            fe = {f["term"]: f for f in col["fixed_effects"]}.get(r.label)
            if fe is None:
                assert cell.text == "" and cell.stars == ""
            else:
                assert cell.text == f"{fe['estimate']:.3f}" and cell.stars == stars(fe["p_value"])
    labels = [r.label for r in grid if r.part == "random"]
    assert labels == [
        "SD (Intercept Subject)",
        "SD (Days Subject)",
        "Cor (Intercept~Days Subject)",
        "SD (Observations)",
    ]
    gof = {r.label: [c.text for c in r.cells] for r in grid if r.part == "gof"}
    assert gof["Num.Obs."] == ["180", "180"] and gof["N (Subject)"] == ["18", "18"]
    assert gof["AIC"] == [f"{m['aic']:.1f}" for m in report["models"]]
    assert gof["R2 Cond."] == [f"{m['r2']['conditional']:.3f}" for m in report["models"]]


# ------------------------------------------------------------------ formats


def test_markdown_is_a_pipe_table(report):
    text = markdown(report)
    table, note = text.split("\n\n")
    lines = table.splitlines()
    assert all(line.startswith("| ") and line.endswith(" |") for line in lines[:1] + lines[2:])
    assert re.fullmatch(r"\|:-+\|(:-+:\|){2}", lines[1])
    assert {len(re.findall(r"(?<!\\)\|", line)) for line in lines} == {4}
    cells = [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]
    assert cells[0] == ["", "Intercepts_only", "Slopes & 100%"]
    days = report["models"][0]["fixed_effects"][1]
    row = cells[[c[0] for c in cells].index("Days")]
    assert row[1] == f"{days['estimate']:.3f}***"
    assert cells[cells.index(row) + 1][1] == f"({days['std_error']:.3f})"
    assert note.startswith("Note: * p < 0.05, ** p < 0.01, *** p < 0.001")


def _cells(line: str) -> list[str]:
    assert line.endswith(" \\\\")
    return re.split(r"(?<!\\)&", line[:-3])


def test_latex_is_a_booktabs_tabular_with_escapes(report):
    text = latex(report)
    lines = text.splitlines()
    assert lines[:4] == ["\\begin{table}", "\\centering", "\\begin{tabular}{lcc}", "\\toprule"]
    end = lines.index("\\end{tabular}")
    assert lines[end - 1] == "\\bottomrule" and lines[-1] == "\\end{table}"
    assert lines.count("\\toprule") == lines.count("\\bottomrule") == 1 and lines.count("\\midrule") == 3
    body = lines[4 : lines.index("\\bottomrule")]
    for line in body:
        if line != "\\midrule":
            assert len(_cells(line)) == 3, line
            assert line.count("$") % 2 == 0 and line.count("{") - line.count("\\{") == line.count("}") - line.count(
                "\\}"
            ), line
    assert body[0] == " & Intercepts\\_only & Slopes \\& 100\\% \\\\"
    assert "I(Days\\textasciicircum{}2) & " in text and "Cor (Intercept$\\sim$Days Subject)" in text
    days = report["models"][0]["fixed_effects"][1]
    assert f"Days & ${days['estimate']:.3f}^{{***}}$ & " in text
    # the notes in small type under the tabular (a cell spanning it would widen its last column)
    assert lines[end + 1 : end + 3] == ["\\par\\smallskip", "{\\footnotesize"]
    notes = lines[end + 3 : -1]
    assert len(notes) == 3 and all(n.endswith(" \\\\") for n in notes[:-1]) and notes[-1].endswith("\\par}")
    assert notes[0].startswith("$^{*}$p \\textless{} 0.05, $^{**}$p \\textless{} 0.01, $^{***}$p \\textless{} 0.001")


class _Tags(HTMLParser):
    VOID = {"meta", "br"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None
        self.caption = ""

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag, tag
        if tag in ("td", "th"):
            self.rows[-1].append("".join(self.cell or []))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)
        elif self.stack and self.stack[-1] == "caption":
            self.caption += data


def test_html_is_a_well_formed_page(report):
    text = html_table(report)
    assert text.startswith('<!DOCTYPE html>\n<html lang="en">')
    p = _Tags()
    p.feed(text)
    p.close()
    assert p.stack == []
    assert p.rows[0] == ["", "Intercepts_only", "Slopes & 100%"]  # escaped in the page, read back
    assert "Slopes &amp; 100%" in text
    n_rows = len(rows(report))
    assert len(p.rows) == 1 + n_rows and all(len(r) == 3 for r in p.rows)
    assert text.count("<tbody") == 3
    assert p.caption.startswith("* p < 0.05, ** p < 0.01, *** p < 0.001")


def test_csv_has_one_line_per_row(report):
    got = list(csv.reader(io.StringIO(csv_table(report))))
    assert got[0] == ["part", "term", "statistic", "Intercepts_only", "Slopes & 100%"]
    assert len(got) == 1 + len(rows(report))
    se = next(r for r in got if r[1] == "Days" and r[2] == "std_error")
    assert se[3] == f"({report['models'][0]['fixed_effects'][1]['std_error']:.3f})"
    assert ["gof", "N (Subject)", "groups", "18", "18"] in got


# ------------------------------------------------------------------ the command line


def test_ci_shows_wald_intervals():
    rep = run_json("table", HECK, "math ~ ses + (1|schcode)", "--ci", "--level", "0.9")
    fe = rep["models"][0]["fixed_effects"][1]
    z = 1.6448536269514722
    assert fe["conf_low"] == pytest.approx(fe["estimate"] - z * fe["std_error"], rel=1e-12)
    assert fe["conf_high"] == pytest.approx(fe["estimate"] + z * fe["std_error"], rel=1e-12)
    assert rep["ci"] == {"method": "wald", "level": 0.9}
    row = rows(rep)[3]
    assert row.cells[0].text == f"[{fe['conf_low']:.3f}, {fe['conf_high']:.3f}]"
    assert "90% Wald confidence intervals in brackets" in markdown(rep)


def test_piped_output_is_markdown_and_a_file_suffix_picks_the_format(tmp_path):
    p = mlm("table", SLEEP, M1)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("|                        |  Model 1   |\n|:-")
    out = tmp_path / "t.tex"
    p = mlm("table", SLEEP, M1, "-o", str(out))
    assert p.returncode == 0 and p.stdout == ""
    assert out.read_text().startswith("\\begin{table}")


def test_bad_names_are_one_line():
    p = mlm("table", SLEEP, M1, M2, "--names", "a")
    assert p.returncode == 2
    assert p.stderr.strip() == "mlm: error: --names needs 2 distinct names, got 'a'"
