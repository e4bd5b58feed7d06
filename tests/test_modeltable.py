"""`mlm table`: models side by side for a paper. Every number is the one `mlm fit --format json` gives for the
same model (whose agreement with lme4, lmerTest and performance the other tests check); each output format
is checked for its structure: a pipe table, a booktabs tabular, a well-formed HTML page, CSV."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
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
        sds = [(r["group"], r["term"], r["variance"]) for r in fit["random_effects"] if r["group"] != "Residual"]
        assert [(r["group"], r["term"], r["variance"]) for r in col["random_effects"]] == sds
        cors = [
            {k: r[k] for k in ("group", "term1", "term2", "correlation")} for r in col["random_effect_correlations"]
        ]
        assert cors == fit["random_effect_correlations"]
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


def test_latex_is_a_booktabs_tabular_with_siunitx_columns_and_escapes(report):
    text = latex(report)
    lines = text.splitlines()
    assert lines[:5] == [
        "\\begin{table}",
        "\\centering",
        "\\sisetup{parse-numbers = false}",
        "% the tabular in box 0, so that the notes below can be as wide as it",
        "\\sbox0{%",
    ]
    # one siunitx S column per model, its room reserved by table-format: the sign, the most characters
    # before the decimal point (a parenthesis counts), after it (a star counts)
    assert lines[5] == "\\begin{tabular}{lS[table-format = -4.6]S[table-format = -4.6]}" and lines[6] == "\\toprule"
    end = lines.index("\\end{tabular}}%")
    assert lines[end - 1] == "\\bottomrule" and lines[-1] == "\\end{table}"
    assert lines.count("\\toprule") == lines.count("\\bottomrule") == 1 and lines.count("\\midrule") == 3
    body = lines[7 : lines.index("\\bottomrule")]
    for line in body:
        if line != "\\midrule":
            assert len(_cells(line)) == 3, line
            assert line.count("$") % 2 == 0 and line.count("{") - line.count("\\{") == line.count("}") - line.count(
                "\\}"
            ), line
    # the header is text in the S columns: braced
    assert body[0] == " & {Intercepts\\_only} & {Slopes \\& 100\\%} \\\\"
    assert "I(Days\\textasciicircum{}2) & " in text and "Cor (Intercept$\\sim$Days Subject)" in text
    days = report["models"][0]["fixed_effects"][1]
    # a number as it is written, the S column setting it in math mode: the stars a superscript
    assert f"Days & {days['estimate']:.3f}^{{***}} & " in text
    loglik = [line for line in body if line.startswith("Log.Lik. & ")][0]
    assert _cells(loglik)[1].strip() == f"{report['models'][0]['loglik']:.1f}" and "-" in loglik
    r2 = [line for line in body if "Marg." in line or "Cond." in line]
    assert [line.split(" & ")[0] for line in r2] == ["$R^2$ Marg.", "$R^2$ Cond."]
    # the notes under the tabular, as wide as it and left-aligned, in small type
    assert lines[end + 1 : end + 5] == [
        "\\begin{minipage}{\\wd0}",
        "\\usebox0",
        "\\par\\smallskip",
        "\\raggedright\\footnotesize",
    ]
    notes = lines[end + 5 : -2]
    assert lines[-2] == "\\end{minipage}"
    assert len(notes) == 3 and all(n.endswith(" \\\\") for n in notes[:-1]) and notes[-1].endswith("\\par")
    assert notes[0].startswith("$^{*}$p \\textless{} 0.05, $^{**}$p \\textless{} 0.01, $^{***}$p \\textless{} 0.001")
    assert "\\caption" not in text and "\\label" not in text


def test_latex_caption_label_intervals_and_singular_note():
    rep = run_json("table", HECK, "math ~ ses + (1|schcode)", "math ~ ses*public + (ses|schcode)", "--ci")
    text = latex(rep, caption="Math & SES: 100%", label="tab:math")
    lines = text.splitlines()
    assert lines[:4] == ["\\begin{table}", "\\centering", "\\caption{Math \\& SES: 100\\%}", "\\label{tab:math}"]
    # an interval is text, braced, in math mode for its minus signs
    public = rep["models"][1]["fixed_effects"][2]
    assert f" & {{$[{public['conf_low']:.3f}, {public['conf_high']:.3f}]$}} \\\\" in text
    assert public["conf_low"] < 0
    # the singular model's missing ICC and conditional R2 are explained in a note
    assert lines[-3] == "Model 2: no ICC and no $R^2$ Cond.: a variance component is zero (singular fit)\\par"
    assert "95\\% Wald confidence intervals in brackets \\\\" in lines


def _document(*tables: str) -> str:
    return "\n".join(
        [
            "\\documentclass{article}",
            "\\usepackage{booktabs,siunitx}",
            "\\begin{document}",
            "Table~\\ref{tab:se} has standard errors, Table~\\ref{tab:ci} intervals.",
            *tables,
            "\\end{document}",
            "",
        ]
    )


def test_latex_compiles_with_pdflatex_where_there_is_one(tmp_path):
    """The document the manual page describes (\\usepackage{booktabs,siunitx}) compiles cleanly with the
    tables: no error, no overfull or underfull box, every reference resolved. Where pdflatex is not
    installed, the structure checks above are what is tested."""
    se = mlm("table", SLEEP, M1, M2, "-f", "latex", "--caption", "Errors", "--label", "tab:se", "--variance", "--lr",
             "--rename", "Days=Days_{t}")  # fmt: skip
    ci = mlm("table", HECK, "math ~ ses + (1|schcode)", "math ~ ses*public + (ses|schcode)", "--ci", "-f", "latex",
             "--caption", "Intervals", "--label", "tab:ci")  # fmt: skip
    assert se.returncode == 0 and ci.returncode == 0, se.stderr + ci.stderr
    doc = _document(se.stdout, ci.stdout)
    # the structure pdflatex needs: balanced environments and braces, one tabular per table
    for name in ("table", "tabular", "minipage"):
        assert doc.count(f"\\begin{{{name}}}") == doc.count(f"\\end{{{name}}}") == 2
    assert doc.count("{") - doc.count("\\{") == doc.count("}") - doc.count("\\}")
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        return
    (tmp_path / "doc.tex").write_text(doc)
    for _ in range(2):  # the second run resolves the references
        run = subprocess.run(
            [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-3000:]
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert "Overfull" not in log and "Underfull" not in log and "undefined" not in log, log[-3000:]
    assert (tmp_path / "doc.pdf").read_bytes().startswith(b"%PDF-")


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
    # the header, the rows, and the notes in the foot, one cell spanning the table
    assert len(p.rows) == 1 + n_rows + 1 and all(len(r) == 3 for r in p.rows[:-1])
    assert text.count("<tbody") == 3 and "<caption>" not in text
    assert p.rows[-1][0].startswith("* p < 0.05, ** p < 0.01, *** p < 0.001")
    assert '<td class="notes" colspan="3">' in text
    # R² and the minus sign (U+2212), not a hyphen
    assert [r[0] for r in p.rows if "Marg." in r[0] or "Cond." in r[0]] == ["R\u00b2 Marg.", "R\u00b2 Cond."]
    loglik = next(r for r in p.rows if r[0] == "Log.Lik.")
    assert loglik[1] == f"\u2212{-report['models'][0]['loglik']:.1f}" and "-" not in "".join(loglik[1:])


def test_html_caption_and_the_note_on_a_singular_model():
    rep = run_json("table", HECK, "math ~ ses + (1|schcode)", "math ~ ses*public + (ses|schcode)")
    assert rep["models"][1]["icc"]["adjusted"] is None and rep["models"][1]["r2"]["conditional"] is None
    text = html_table(rep, caption="Table 2. Math <achievement>")
    p = _Tags()
    p.feed(text)
    p.close()
    assert p.caption == "Table 2. Math <achievement>" and "<caption>Table 2. Math &lt;achievement&gt;</caption>" in text
    icc = next(r for r in p.rows if r[0] == "ICC")
    assert icc[1] == f"{rep['models'][0]['icc']['adjusted']:.3f}" and icc[2] == ""
    assert "Model 2: no ICC and no R\u00b2 Cond.: a variance component is zero (singular fit)" in p.rows[-1][0]
    public = next(r for r in p.rows if r[0] == "public")
    assert public[2] == f"\u2212{-rep['models'][1]['fixed_effects'][2]['estimate']:.3f}"
    # the note is in every format's notes, the markdown one too, and the reason stays on stderr as before
    assert "Model 2: no ICC and no R2 Cond.: a variance component is zero (singular fit)" in markdown(rep)


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


def test_caption_and_label_from_the_command_line(tmp_path):
    out = tmp_path / "t.tex"
    p = mlm("table", SLEEP, M1, "-o", str(out), "--caption", "Reaction times", "--label", "tab:sleep")
    assert p.returncode == 0, p.stderr
    assert out.read_text().splitlines()[2:4] == ["\\caption{Reaction times}", "\\label{tab:sleep}"]
    md = mlm("table", SLEEP, M1, "-f", "markdown", "--caption", "Reaction times")
    assert md.returncode == 0 and "|\n\nTable: Reaction times\n\nNote: " in md.stdout
    page = mlm("table", SLEEP, M1, "-f", "html", "--caption", "Reaction times")
    assert page.returncode == 0 and "<caption>Reaction times</caption>" in page.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["-f", "csv", "--caption", "x"], "--caption is for --format latex, html or markdown, not csv"),
        (["-f", "json", "--caption", "x"], "--caption is for --format latex, html or markdown, not json"),
        (["-f", "markdown", "--caption", "x", "--label", "t"], "--label is for --format latex, not markdown"),
        (["-f", "latex", "--label", "tab:x"], "--label needs --caption"),
        (["-f", "latex", "--caption", "x", "--label", "tab x}"], "--label 'tab x}': use letters, digits"),
    ],
)
def test_caption_and_label_mistakes_are_one_line(args, message):
    p = mlm("table", SLEEP, M1, *args)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and p.stderr.startswith(f"mlm: error: {message}")
