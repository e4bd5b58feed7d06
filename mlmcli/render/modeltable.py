"""`mlm table`: models side by side as Markdown, LaTeX (booktabs), HTML, CSV or a terminal table.

The layout is modelsummary's: one column per model; each fixed effect's estimate with its stars, and
under it the standard error in parentheses (or the confidence interval in brackets); then the
variance components as standard deviations (`SD (ses schcode)`) and correlations
(`Cor (Intercept~ses schcode)`), the residual SD (`SD (Observations)`) -- or, --variance, as variances
and covariances (`Var (ses schcode)`, `Cov (Intercept~ses schcode)`, `Var (Observations)`, broom.mixed's
scales = "vcov"); then the number of observations and of groups, AIC, BIC, log-likelihood, ICC and
Nakagawa's R² (or the rows --gof names, in its order), and --lr's likelihood-ratio test of each model
against the one before it (LR Chisq, LR df, LR p). A glmer fit's column has what
modelsummary shows of a glmerMod: no residual SD and no Log.Lik., and the RMSE after the R². A note
says what the stars mean.
Formatting only: every number comes from the report (modeltable.table_report).
"""

from __future__ import annotations

import csv
import html
import io
import re
from dataclasses import dataclass
from typing import Any

from mlmcli.effects import SINGULAR_WARNING

PARTS = ("estimates", "random", "gof")


@dataclass
class Cell:
    text: str = ""
    stars: str = ""


@dataclass
class Row:
    part: str  # estimates, random or gof
    label: str
    statistic: str  # estimate, std_error, conf_int, std_dev, correlation, or the statistic's name
    cells: list[Cell]


def _num(x: float | None, digits: int) -> str:
    if x is None:
        return ""
    s = f"{x:.{digits}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s  # no "-0.000"


def _bare(term: str) -> str:
    """(Intercept) as modelsummary writes it inside its own parentheses: Intercept."""
    return "Intercept" if term == "(Intercept)" else term


def _union(lists: list[list[str]]) -> list[str]:
    return list(dict.fromkeys(k for keys in lists for k in keys))


def rows(report: dict, digits: int = 3) -> list[Row]:
    """The table's rows, cells formatted, in modelsummary's order."""
    models = report["models"]
    k = len(models)
    out: list[Row] = []
    ci = report["statistic"] == "conf_int"
    fixed = [{r["term"]: r for r in m["fixed_effects"]} for m in models]
    for term in _union([list(f) for f in fixed]):
        est, stat = [], []
        for f in fixed:
            r = f.get(term)
            if r is None:
                est.append(Cell())
                stat.append(Cell())
                continue
            est.append(Cell(_num(r["estimate"], digits), _stars(r["p_value"], report["stars"])))
            if ci:
                stat.append(Cell(f"[{_num(r['conf_low'], digits)}, {_num(r['conf_high'], digits)}]"))
            else:
                stat.append(Cell(f"({_num(r['std_error'], digits)})"))
        out.append(Row("estimates", term, "estimate", est))
        out.append(Row("estimates", "", "conf_int" if ci else "std_error", stat))

    def keyed(label_of: Any, key: str, items: str, statistic: str) -> None:
        per_model = [{label_of(r): r[key] for r in m[items]} for m in models]
        for label in _union([list(p) for p in per_model]):
            out.append(Row("random", label, statistic, [Cell(_num(p.get(label), digits)) for p in per_model]))

    variance = report.get("random_scale") == "variance"
    sd, cor = ("Var", "Cov") if variance else ("SD", "Cor")
    keyed(
        lambda r: f"{sd} ({_bare(r['term'])} {r['group']})",
        sd_key := "variance" if variance else "std_dev",
        "random_effects",
        sd_key,
    )
    keyed(
        lambda r: f"{cor} ({_bare(r['term1'])}~{_bare(r['term2'])} {r['group']})",
        cor_key := "covariance" if variance else "correlation",
        "random_effect_correlations",
        cor_key,
    )
    glmm = [_is_glmm(m) for m in models]
    if not all(glmm):  # a glmer fit has no residual SD
        key = "residual_variance" if variance else "residual_sd"
        out.append(Row("random", f"{sd} (Observations)", sd_key, [Cell(_num(m.get(key), digits)) for m in models]))

    def gof(label: str, statistic: str, values: list[Any], d: int) -> None:
        cells = [Cell(v if isinstance(v, str) else str(v) if isinstance(v, int) else _num(v, d)) for v in values]
        out.append(Row("gof", label, statistic, cells))

    def lr(key: str) -> list[Any]:
        return [None if m.get("lr_test") is None else m["lr_test"][key] for m in models]

    chosen = report.get("gof")
    if chosen is None:  # the default rows: modelsummary's of a merMod (and of a glmerMod)
        chosen = [k for k in GOF_KEYS if (k != "loglik" or not all(glmm)) and (k != "rmse" or any(glmm))]
        if any(m.get("lr_test") is not None for m in models):
            chosen += ["lr_chisq", "lr_df", "lr_p"]
        default = True
    else:
        default = False
    for key in chosen:
        if key == "n_obs":
            gof("Num.Obs.", "n_obs", [m["n_obs"] for m in models], 0)
        elif key == "groups":
            for g in _union([list(m["groups"]) for m in models]):
                gof(f"N ({g})", "groups", [m["groups"].get(g) for m in models], 0)
        elif key in ("aic", "bic"):
            gof(key.upper(), key, [m[key] for m in models], 1)
        elif key == "loglik":
            # modelsummary shows no Log.Lik. of a glmerMod (performance's "common" metrics); asked for, it is there
            values = [None if g and default else m["loglik"] for m, g in zip(models, glmm, strict=True)]
            gof("Log.Lik.", "loglik", values, 1)
        elif key == "icc":
            gof("ICC", "icc", [m["icc"]["adjusted"] for m in models], digits)
        elif key in ("r2_marginal", "r2_conditional"):
            part = key.removeprefix("r2_")
            gof(f"R2 {part[:4].capitalize()}.", key, [m["r2"][part] for m in models], digits)
        elif key == "rmse":  # of a glmerMod's response residuals
            gof("RMSE", "rmse", [m.get("rmse") for m in models], digits)
        elif key == "lr_chisq":
            gof("LR Chisq", key, lr("chisq"), digits)
        elif key == "lr_df":
            gof("LR df", key, lr("df"), 0)
        elif key == "lr_p":
            gof("LR p", key, [_p(p, digits) for p in lr("p_value")], digits)
    assert all(len(r.cells) == k for r in out)
    return out


GOF_KEYS = ("n_obs", "groups", "aic", "bic", "loglik", "icc", "r2_marginal", "r2_conditional", "rmse")


def _p(p: float | None, digits: int) -> str | None:
    """A p-value as modelsummary prints one: below the smallest it can write, "<0.001"."""
    if p is None:
        return None
    d = max(digits, 1)  # --digits 0 would write every p below 1 as "<1"
    floor = 10.0**-d
    return f"<{floor:.{d}f}" if p < floor else _num(p, d)


def _is_glmm(model: dict) -> bool:
    return model.get("family", "gaussian") != "gaussian"


def _stars(p: float | None, thresholds: list[dict]) -> str:
    if p is None:
        return ""
    for t in thresholds:
        if p < t["p_below"]:
            return t["symbol"]
    return ""


def notes(report: dict) -> list[str]:
    """The notes under the table: the stars, what the second line of an estimate is, REML's criteria."""
    marks = ", ".join(f"{t['symbol']} p < {t['p_below']:g}" for t in reversed(report["stars"]))
    glmm = [_is_glmm(m) for m in report["models"]]
    if all(glmm):
        tests = "Wald z-tests"
    elif any(glmm):
        tests = "t-tests with Satterthwaite's df; Wald z-tests for binomial and Poisson models"
    else:
        tests = "t-tests with Satterthwaite's df"
    out = [f"{marks} ({tests})"]
    if report["statistic"] == "conf_int":
        out.append(f"{report['ci']['level'] * 100:g}% Wald confidence intervals in brackets")
    else:
        out.append("Standard errors in parentheses")
    shown = {r.statistic for r in rows(report) if r.part == "gof"}
    criteria = [name for key, name in (("aic", "AIC"), ("bic", "BIC"), ("loglik", "Log.Lik.")) if key in shown]
    if criteria and any(m["method"] == "REML" for m in report["models"]):
        out.append(f"{_listed(criteria)} of REML fits come from the REML criterion")
    if any(glmm):
        out.append("ICC and R2 of binomial and Poisson models on the link scale; RMSE on the response scale")
    tests = [m["lr_test"] for m in report["models"] if m.get("lr_test") is not None]
    if tests:
        out.append("LR: likelihood-ratio test against the model to the left, as lme4's anova()")
        if any(t["refit_ml"] for t in tests):  # anova's refit = TRUE: the Log.Lik. row is not what it compares
            out.append("LR of REML fits: both refitted by ML first (anova's default), not from the Log.Lik. row")
    singular = [m["name"] for m in report["models"] if SINGULAR_WARNING in m.get("effects_warnings", [])]
    if singular:  # performance leaves them out and says why only in a warning
        out.append(f"{_listed(singular)}: no ICC and no R2 Cond.: a variance component is zero (singular fit)")
    return out


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _names(report: dict) -> list[str]:
    return [m["name"] for m in report["models"]]


# ------------------------------------------------------------------------------------------ markdown
def _md_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("|", "\\|")


def markdown(report: dict, digits: int = 3, caption: str | None = None) -> str:
    """A pipe table (GitHub, pandoc, Quarto), the notes below it; a caption as pandoc reads one
    (`Table: ...` after the table)."""
    grid = [["", *_names(report)]]
    grid += [[r.label, *(c.text + c.stars for c in r.cells)] for r in rows(report, digits)]
    grid = [[_md_escape(s) for s in line] for line in grid]
    widths = [max(len(line[j]) for line in grid) for j in range(len(grid[0]))]
    widths = [max(w, 3) for w in widths]

    def line(cells: list[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.ljust(w) if j == 0 else c.center(w) for j, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    rule = "|" + "|".join(":" + "-" * (w + 1) if j == 0 else ":" + "-" * w + ":" for j, w in enumerate(widths)) + "|"
    text = [line(grid[0]), rule, *(line(g) for g in grid[1:])]
    if caption is not None:
        text += ["", f"Table: {caption}"]
    return (
        "\n".join(text)
        + "\n\n"
        + "\n".join(f"Note: {n}" if i == 0 else f"      {n}" for i, n in enumerate(notes(report)))
        + "\n"
    )


# ------------------------------------------------------------------------------------------ LaTeX
_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"$\sim$",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}


def latex_escape(s: str) -> str:
    return "".join(_LATEX.get(c, c) for c in s)


def _latex_cell(c: Cell) -> str:
    """A cell of an siunitx S column, which sets it in math mode aligned on its decimal point (minus signs
    are minus signs); an interval, two numbers, is text (braced), centred, and so is a p-value "<0.001"."""
    if not c.text:
        return ""
    if c.text.startswith("["):
        return f"{{${latex_escape(c.text)}$}}"
    if c.text.startswith("<"):  # a p-value below the smallest written, set as text like an interval
        return f"{{${c.text}$}}"
    star = f"^{{{c.stars}}}" if c.stars else ""
    return f"{latex_escape(c.text)}{star}"


def _s_format(cells: list[Cell]) -> str:
    """siunitx's table-format of a column: a sign if any number is negative, then the most characters
    before and after the decimal point (a parenthesis counts as a digit, and so does a superscript star,
    a little narrower); intervals, set as text, are left out."""
    sign, before, after = "", 1, 0
    for c in cells:
        if not c.text or c.text.startswith(("[", "<")):
            continue
        body = c.text.removeprefix("-")
        sign = sign or ("-" if body != c.text else "")
        whole, _, frac = body.partition(".")
        before = max(before, len(whole))
        after = max(after, len(frac) + len(c.stars))
    return f"{sign}{before}.{after}" if after else f"{sign}{before}"


def _latex_label(label: str) -> str:
    """A row's label: R2 as $R^2$."""
    text = latex_escape(label)
    return "$R^2$" + text[2:] if label.startswith("R2 ") else text


def latex(report: dict, digits: int = 3, caption: str | None = None, label: str | None = None) -> str:
    """A booktabs table (\\usepackage{booktabs,siunitx}): the numbers in siunitx S columns, aligned on
    their decimal points; \\toprule, \\midrule between the parts, \\bottomrule; the notes in small type
    under the tabular, left-aligned and as wide as it; \\caption and \\label above it when given."""
    names = _names(report)
    k = len(names)
    out = ["\\begin{table}", "\\centering"]
    if caption is not None:
        out.append(f"\\caption{{{latex_escape(caption)}}}")
    if label is not None:
        out.append(f"\\label{{{label}}}")
    grid = rows(report, digits)
    # parse-numbers = false: each cell is set as written, split at its decimal point (an S column's
    # alignment without siunitx reformatting the numbers), in the room table-format reserves
    columns = "".join(f"S[table-format = {_s_format([r.cells[j] for r in grid])}]" for j in range(k))
    out += [
        "\\sisetup{parse-numbers = false}",
        "% the tabular in box 0, so that the notes below can be as wide as it",
        "\\sbox0{%",
        f"\\begin{{tabular}}{{l{columns}}}",
        "\\toprule",
        " & ".join(["", *(f"{{{latex_escape(n)}}}" for n in names)]) + " \\\\",
        "\\midrule",
    ]
    part = "estimates"
    for r in grid:
        if r.part != part:
            out.append("\\midrule")
            part = r.part
        out.append(" & ".join([_latex_label(r.label), *(_latex_cell(c) for c in r.cells)]) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}}%"]
    # the notes below the tabular, not in a cell spanning it: a long note would widen the table
    texts = []
    for n in notes(report):
        text = re.sub(r"\bR2\b", "$R^2$", latex_escape(n))
        for t in report["stars"]:  # the stars as they appear in the cells
            text = text.replace(f"{t['symbol']} p", f"$^{{{t['symbol']}}}$p", 1)
        texts.append(text)
    out += [
        "\\begin{minipage}{\\wd0}",
        "\\usebox0",
        "\\par\\smallskip",
        "\\raggedright\\footnotesize",
        " \\\\\n".join(texts) + "\\par",
        "\\end{minipage}",
        "\\end{table}",
    ]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------ HTML
_CSS = """table.mlm { border-collapse: collapse; font-family: sans-serif; font-variant-numeric: tabular-nums; }
table.mlm th, table.mlm td { padding: 2px 12px; }
table.mlm td:first-child, table.mlm th:first-child { text-align: left; }
table.mlm td, table.mlm th { text-align: center; }
table.mlm thead tr { border-top: 2px solid black; border-bottom: 1px solid black; }
table.mlm tbody.part { border-top: 1px solid black; }
table.mlm tbody:last-of-type { border-bottom: 2px solid black; }
table.mlm caption { caption-side: top; text-align: left; padding-bottom: 4px; }
table.mlm td.notes { text-align: left; font-size: 85%; padding-top: 4px; }
"""


def _minus(text: str) -> str:
    """A number's minus sign as the minus sign (U+2212), not a hyphen."""
    return text.replace("-", "\u2212")


def html_table(report: dict, digits: int = 3, caption: str | None = None) -> str:
    """A whole HTML page holding the table (class "mlm"): the caption above it, thead, one tbody per part,
    the notes in its foot."""
    names = _names(report)
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{e(report['data_name'])}: {e(', '.join(names))}</title>",
        f"<style>\n{_CSS}</style>",
        "</head>",
        "<body>",
        '<table class="mlm">',
        *([f"<caption>{e(caption)}</caption>"] if caption is not None else []),
        "<thead>",
        "<tr>" + "".join(f"<th>{e(n)}</th>" for n in ["", *names]) + "</tr>",
        "</thead>",
    ]
    part = None
    for r in rows(report, digits):
        if r.part != part:
            if part is not None:
                out.append("</tbody>")
            out.append('<tbody class="part">' if part is not None else "<tbody>")
            part = r.part
        label = "R\u00b2" + r.label[2:] if r.label.startswith("R2 ") else r.label
        cells = "".join(f"<td>{e(_minus(c.text) + c.stars)}</td>" for c in r.cells)
        out.append(f"<tr><td>{e(label)}</td>{cells}</tr>")
    out.append("</tbody>")
    # the notes in the table's foot, one cell spanning it: they wrap to its width instead of widening it
    foot = "<br>".join(e(re.sub(r"\bR2\b", "R\u00b2", n)) for n in notes(report))
    out += ["<tfoot>", f'<tr><td class="notes" colspan="{len(names) + 1}">{foot}</td></tr>', "</tfoot>"]
    out += ["</table>", "</body>", "</html>"]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------ CSV
def csv_table(report: dict, digits: int = 3) -> str:
    """modelsummary's data-frame layout: part, term, statistic, then one column per model (formatted cells)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["part", "term", "statistic", *_names(report)])
    term = ""
    for r in rows(report, digits):
        term = r.label or term  # the SE row belongs to the estimate above it
        w.writerow([r.part, term, r.statistic, *(c.text + c.stars for c in r.cells)])
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ terminal
def print_table(console: Any, report: dict, digits: int = 3) -> None:
    """A rich table for the terminal, a rule between the parts."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    t.add_column("")
    for n in _names(report):
        t.add_column(Text(n), justify="center")
    grid = rows(report, digits)
    for i, r in enumerate(grid):
        last = i + 1 < len(grid) and grid[i + 1].part != r.part
        t.add_row(Text(r.label), *(Text(c.text + c.stars) for c in r.cells), end_section=last)
    console.print(t)
    for n in notes(report):
        console.print(Text(n, style="dim"))
