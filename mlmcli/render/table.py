"""Rich tables for the terminal: the default output of `mlm` on a terminal.

Every printer takes the JSON-shaped dict the engine writes for `--format json` (see the schemas), so the
table view and the machine-readable view can never disagree about the numbers.  Numbers are formatted the
way R's `format()` / `format.pval()` do it, so the tables read like lme4's printed summaries.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

# R's .Machine$double.eps: format.pval prints anything below it as "<2e-16".
DOUBLE_EPS = 2.220446049250313e-16
SIGNIF_LEGEND = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"
_BOX = box.SIMPLE_HEAD


# ---------------------------------------------------------------------------------------- number formatting
def _is_num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _sig_parts(x: float, digits: int) -> tuple[int, int]:
    """Decimal exponent of |x| rounded to `digits` significant digits, and how many of them are needed."""
    if x == 0:
        return 0, 1
    mantissa, exponent = f"{abs(x):.{digits - 1}e}".split("e")
    needed = mantissa.replace(".", "").rstrip("0")
    return int(exponent), max(1, len(needed))


def format_column(values: Sequence[float | None], digits: int = 4) -> list[str]:
    """Format numbers with a common layout as R's format(x, digits=) does.

    Each value gets at most `digits` significant digits, all share one number of decimals (enough for the
    value that needs most), and the column switches to scientific notation only when that is narrower.
    None and non-finite values become "".
    """
    finite = [float(v) for v in values if _is_num(v)]
    if not finite:
        return ["" for _ in values]
    max_left, max_right, max_sig, wide_exp = 1, 0, 1, False
    any_neg = any(v < 0 for v in finite)
    for v in finite:
        kp, nsig = _sig_parts(v, digits)
        left = (v < 0) + (kp + 1 if kp >= 0 else 1)
        max_left = max(max_left, left)
        max_right = max(max_right, nsig - kp - 1)
        max_sig = max(max_sig, nsig)
        wide_exp = wide_exp or abs(kp) >= 100
    max_right = min(max_right, 15)
    width_fixed = max_left + max_right + (max_right > 0)
    mant = max_sig - 1
    width_sci = any_neg + 1 + (mant > 0) + mant + 4 + wide_exp
    out = []
    for v in values:
        if not _is_num(v):
            out.append("")
        elif width_fixed <= width_sci:
            out.append(_no_neg_zero(f"{float(v):.{max_right}f}"))
        else:
            out.append(f"{float(v):.{mant}e}")
    return out


def format_fixed(values: Sequence[float | None], digits: int = 4) -> list[str]:
    """Fixed decimals giving the largest |value| `digits` significant digits (long columns of estimates)."""
    finite = [abs(float(v)) for v in values if _is_num(v)]
    top = max(finite, default=0.0)
    decimals = 0 if top == 0 else min(10, max(0, digits - 1 - math.floor(math.log10(top))))
    return [_no_neg_zero(f"{float(v):.{decimals}f}") if _is_num(v) else "" for v in values]


def _zapsmall(values: Sequence[float], digits: int) -> list[float]:
    """R's zapsmall(): round to `digits` significant digits of the largest abs value, as summary.merMod."""
    top = max((abs(v) for v in values if _is_num(v)), default=0.0)
    decimals = max(0, digits - math.ceil(math.log10(top))) if top > 0 else digits
    return [round(v, decimals) for v in values]


def _no_neg_zero(s: str) -> str:
    # "-0.000" says nothing more than "0.000" and misaligns the eye
    return s[1:] if s.startswith("-") and not s.strip("-0.") else s


def format_pvalues(pvalues: Sequence[float | None], digits: int = 3) -> list[str]:
    """p-values as R's format.pval(pv, digits) writes them, e.g. "0.0506", "2.59e-06", "<2e-16"."""
    out = ["" for _ in pvalues]
    tiny = [i for i, p in enumerate(pvalues) if _is_num(p) and p < DOUBLE_EPS]
    rest = [i for i, p in enumerate(pvalues) if _is_num(p) and p >= DOUBLE_EPS]
    # as format.pval: values from 1e-3 up (1e-4 up when digits > 1) are formatted together, the rest apart
    lowest = -4 if digits > 1 else -3
    fixp = [i for i in rest if math.floor(math.log10(pvalues[i])) >= lowest]
    small = [i for i in rest if i not in fixp]
    for idx in (fixp, small):
        for i, s in zip(idx, format_column([pvalues[i] for i in idx], digits), strict=True):
            out[i] = s
    if tiny:
        eps_digits = max(1, digits - 2)
        if rest:
            nc = max(len(out[i]) for i in rest)
            if eps_digits > 1 and eps_digits + 6 > nc:
                eps_digits = max(1, nc - 7)
            sep = "" if eps_digits == 1 and nc <= 6 else " "
        else:
            sep = "" if eps_digits == 1 else " "
        label = "<" + sep + format_column([DOUBLE_EPS], eps_digits)[0]
        for i in tiny:
            out[i] = label
    return out


def signif_stars(p: float | None) -> str:
    """R's significance codes: *** < 0.001 < ** < 0.01 < * < 0.05 < . < 0.1."""
    if not _is_num(p):
        return ""
    for cut, star in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return star
    return ""


def _fmt_corr(r: float | None, decimals: int) -> str:
    return _no_neg_zero(f"{r:.{decimals}f}") if _is_num(r) else ""


def abbreviate(names: Sequence[str], minlength: int = 6) -> list[str]:
    """Short column labels in the spirit of R's abbreviate(): drop lower-case vowels, then truncate.

    Falls back to the full names when two abbreviations would collide.
    """
    short = []
    for name in names:
        core = name[1:-1] if name.startswith("(") and name.endswith(")") else name
        chars = list(core)
        i = len(chars) - 1
        while len(chars) > minlength and i > 0:
            if chars[i] in "aeiou":
                del chars[i]
            i -= 1
        s = "".join(chars)[:minlength]
        short.append(f"({s[:4]})" if core != name else s)
    return short if len(set(short)) == len(short) else list(names)


# -------------------------------------------------------------------------------------------- console
def make_console(no_color: bool = False, width: int | None = None, file=None,
                 force_terminal: bool | None = None) -> Console:
    """A Console that uses colour only on a terminal and not at all under NO_COLOR or no_color=True."""
    plain = no_color or bool(os.environ.get("NO_COLOR"))
    kwargs: dict[str, Any] = {"file": file, "width": width, "highlight": False, "emoji": False}
    if force_terminal is not None:
        kwargs["force_terminal"] = force_terminal
    if plain:
        # no colour system at all: rich then writes no escape sequences, not even bold
        kwargs.update(color_system=None, no_color=True)
    return Console(**kwargs)


def _t(s: Any, style: str = "") -> Text:
    # cells are Text, never markup strings: factor levels like "[a]" must print verbatim
    return Text("" if s is None else str(s), style=style)


def _table(title: str | None = None) -> Table:
    return Table(title=title, box=_BOX, show_edge=False, title_justify="left", title_style="bold",
                 pad_edge=False, padding=(0, 1), expand=False)


def _emit(console: Console, table: Table, notes: Sequence[str] = ()) -> None:
    # title and notes are printed as plain lines: as a rich title or caption they would wrap at the
    # table's own (often narrow) width
    title, table.title = table.title, None
    if title:
        console.print(Text(str(title), style="bold"))
    console.print(table)
    for note in notes:
        console.print(Text(note, style="dim"))
    console.print()


def _num_col(table: Table, header: str) -> None:
    table.add_column(header, justify="right", no_wrap=True)


# ------------------------------------------------------------------------------------------------ fit
def print_fit(console: Console, fit: dict, correlation: bool = False) -> None:
    """Model summary: header panel, random effects, fixed effects, optional correlation, warnings."""
    console.print(_fit_header(fit))
    console.print()
    _emit(console, _random_effects_table(fit))
    fixed, show_p = _fixed_effects_table(fit)
    _emit(console, fixed, [SIGNIF_LEGEND] if show_p else [])
    if correlation:
        corr = _fixef_correlation_table(fit)
        if corr is not None:
            _emit(console, corr)
    messages = _fit_messages(fit)
    if messages:
        console.print(Panel(Text("\n".join(messages), style="yellow"), title="Warnings", title_align="left",
                            border_style="yellow", expand=False))


def _fit_header(fit: dict) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row(_t("Formula"), _t(fit.get("formula")))
    if fit.get("data_name"):
        grid.add_row(_t("Data"), _t(fit["data_name"]))
    # as lme4: rounded to one decimal, then printed with R's default 7 significant digits
    if fit.get("method") == "REML":
        grid.add_row(_t("REML criterion"), _t(format_column([round(fit["criterion"], 1)], 7)[0]))
    else:
        df_resid = fit.get("df_resid", fit["n_obs"] - fit["npar"])
        values = [round(fit[k], 1) for k in ("aic", "bic", "loglik", "criterion")] + [df_resid]
        crit = _t_grid(["AIC", "BIC", "logLik", "deviance", "df.resid"],
                       format_column(values, 7)[:4] + [str(df_resid)])
        grid.add_row(_t("Fit"), crit)
    res = fit.get("scaled_residuals")
    if res:
        vals = format_column(_zapsmall([res[k] for k in ("min", "q1", "median", "q3", "max")], 5), 4)
        grid.add_row(_t("Scaled resid."), _t_grid(["Min", "1Q", "Median", "3Q", "Max"], vals))
    grid.add_row(_t("Observations"), _t(fit["n_obs"]))
    groups = ", ".join(f"{g} ({n} levels)" for g, n in fit.get("groups", {}).items())
    grid.add_row(_t("Groups"), _t(groups))
    title = f"Linear mixed model fit by {'REML' if fit.get('method') == 'REML' else 'maximum likelihood'}"
    ddf = _ddf(fit)
    subtitle = "t-tests use Satterthwaite's method" if ddf == "Satterthwaite" else None
    return Panel(grid, title=Text(title, style="bold"), title_align="left", subtitle=subtitle,
                 subtitle_align="left", expand=False, border_style="blue")


def _t_grid(headers: Sequence[str], values: Sequence[str]) -> Table:
    small = Table(box=None, show_header=True, header_style="dim", pad_edge=False, padding=(0, 1))
    for h in headers:
        small.add_column(h, justify="right", no_wrap=True)
    small.add_row(*values)
    return small


def _ddf(fit: dict) -> str:
    if "ddf" in fit:
        return fit["ddf"]
    has_df = any(_is_num(r.get("df")) for r in fit.get("fixed_effects", []))
    return "Satterthwaite" if has_df else "none"


def _random_effects_table(fit: dict) -> Table:
    rows = fit.get("random_effects", [])
    corr = {(c["group"], c["term1"], c["term2"]): c["correlation"]
            for c in fit.get("random_effect_correlations", [])}
    terms_by_group: dict[str, list[str]] = {}
    for r in rows:
        if r["term"] is not None:
            terms_by_group.setdefault(r["group"], []).append(r["term"])
    n_corr = max((len(t) for t in terms_by_group.values()), default=1) - 1
    table = _table("Random effects")
    table.add_column("Groups", no_wrap=True)
    table.add_column("Name", overflow="fold")
    _num_col(table, "Variance")
    _num_col(table, "Std.Dev.")
    for j in range(n_corr):
        _num_col(table, "Corr" if j == 0 else "")
    variances = format_column([r["variance"] for r in rows], 4)
    sds = format_column([r["std_dev"] for r in rows], 4)
    previous = None
    for r, var, sd in zip(rows, variances, sds, strict=True):
        group, term = r["group"], r["term"]
        cells = [""] * n_corr
        if term is not None:
            before = terms_by_group[group][: terms_by_group[group].index(term)]
            for j, other in enumerate(before):
                # lme4 prints each correlation once, in the row of the later term
                cells[j] = _fmt_corr(corr.get((group, other, term), corr.get((group, term, other))), 2)
        table.add_row(_t(group if group != previous else ""), _t(term or ""), _t(var), _t(sd),
                      *(_t(c) for c in cells))
        previous = group
    return table


def _fixed_effects_table(fit: dict) -> tuple[Table, bool]:
    rows = fit.get("fixed_effects", [])
    pvals = [r.get("p_value") for r in rows]
    show_p = _ddf(fit) != "none" and any(_is_num(p) for p in pvals)
    show_df = _ddf(fit) != "none" and any(_is_num(r.get("df")) for r in rows)
    table = _table("Fixed effects")
    table.add_column("", overflow="fold")
    for h in ("Estimate", "Std. Error") + (("df",) if show_df else ()) + ("t value",):
        _num_col(table, h)
    if show_p:
        _num_col(table, "Pr(>|t|)")
        table.add_column("", no_wrap=True)
    columns = [format_column([r["estimate"] for r in rows], 4),
               format_column([r["std_error"] for r in rows], 4)]
    if show_df:
        columns.append(format_column([r.get("df") for r in rows], 4))
    # t values are rounded to 3 decimals first, as printCoefmat does
    t_values = [round(r["t_value"], 3) if _is_num(r["t_value"]) else None for r in rows]
    columns.append(format_column(t_values, 4))
    if show_p:
        columns.append(format_pvalues(pvals, 3))
        columns.append([signif_stars(p) for p in pvals])
    for i, r in enumerate(rows):
        style = "bold" if show_p and _is_num(pvals[i]) and pvals[i] < 0.05 else ""
        table.add_row(_t(r["term"]), *(_t(col[i]) for col in columns), style=style)
    return table, show_p


def _fixef_correlation_table(fit: dict) -> Table | None:
    fc = fit.get("fixed_effect_correlation") or {}
    terms, matrix = fc.get("terms", []), fc.get("matrix", [])
    if len(terms) < 2:
        return None
    table = _table("Correlation of fixed effects")
    table.add_column("", overflow="fold")
    for label in abbreviate(terms[:-1]):
        _num_col(table, label)
    for i in range(1, len(terms)):
        cells = [_fmt_corr(matrix[i][j], 3) if j < i else "" for j in range(len(terms) - 1)]
        table.add_row(_t(terms[i]), *(_t(c) for c in cells))
    return table


def _fit_messages(fit: dict) -> list[str]:
    messages: list[str] = []
    for m in list(fit.get("warnings", [])) + list(fit.get("conv_messages", [])):
        if m and m not in messages:
            messages.append(m)
    if fit.get("converged") is False and not messages:
        messages.append("the optimizer did not report convergence")
    return messages


# ------------------------------------------------------------------------------------------------ tau
def print_tau(console: Console, tau: dict, corr_only: bool = False) -> None:
    """One table per grouping factor: covariance below, variance on, correlation above the diagonal."""
    notes = [] if corr_only else ["below the diagonal: covariance; on it: variance; above it: correlation"]
    for g in tau.get("groups", []):
        _emit(console, _tau_table(g, corr_only), notes)
    if not corr_only and _is_num(tau.get("residual_variance")):
        line = Text.assemble(("Residual variance  ", "bold"), format_column([tau["residual_variance"]], 4)[0])
        console.print(line)
        console.print()


def _tau_table(g: dict, corr_only: bool) -> Table:
    terms, cov, cor = g["terms"], g["covariance"], g["correlation"]
    k = len(terms)
    if corr_only:
        table = _table(f"Correlation: {g['group']}")
    else:
        table = _table(f"Tau: {g['group']}")
    table.add_column("", overflow="fold")
    for term in terms:
        _num_col(table, term)
    lower = format_column([cov[i][j] for i in range(k) for j in range(i + 1)], 4)
    it = iter(lower)
    lower_cells = {(i, j): next(it) for i in range(k) for j in range(i + 1)}
    for i in range(k):
        cells = []
        for j in range(k):
            if corr_only:
                cells.append(_t(_fmt_corr(cor[i][j], 3), "bold" if i == j else ""))
            elif j < i:
                cells.append(_t(lower_cells[(i, j)]))
            elif j == i:
                cells.append(_t(lower_cells[(i, j)], "bold"))
            else:
                cells.append(_t(_fmt_corr(cor[i][j], 3), "italic cyan"))
        table.add_row(_t(terms[i]), *cells)
    return table


# ---------------------------------------------------------------------------------------------- ranef
def _group_ranef(rows: Iterable[dict]) -> dict[str, dict[str, Any]]:
    """group -> {"levels", "terms", "cells": {(level, term): (value, cond_sd)}}, in lme4's order."""
    groups: dict[str, dict[str, Any]] = {}
    for r in rows:
        g = groups.setdefault(r["group"], {"levels": [], "terms": [], "cells": {}, "seen": set()})
        if r["level"] not in g["seen"]:
            g["seen"].add(r["level"])
            g["levels"].append(r["level"])
        if r["term"] not in g["terms"]:
            g["terms"].append(r["term"])
        g["cells"][(r["level"], r["term"])] = (r["value"], r["cond_sd"])
    return groups


def print_ranef(console: Console, ranef: dict, head: int | None = None, wide: bool = False,
                coef: dict | None = None) -> None:
    """Conditional modes and conditional SDs per grouping factor, optionally with coef(fit)."""
    rows = ranef.get("ranef", [])
    if coef is None and any("coef" in r for r in rows):
        # the engine may carry coef(fit) per row instead of as a separate mapping
        coef = {}
        for r in rows:
            if r.get("coef") is not None:
                coef.setdefault(r["group"], {}).setdefault(r["level"], {})[r["term"]] = r["coef"]
    for group, g in _group_ranef(rows).items():
        shown = g["levels"] if head is None else g["levels"][: max(0, head)]
        hidden = len(g["levels"]) - len(shown)
        notes = [f"{hidden} of {len(g['levels'])} levels not shown"] if hidden else []
        group_coef = (coef or {}).get(group)
        coef_terms = _coef_terms(group_coef, g["terms"]) if group_coef else []
        strings = _per_term_strings(g, group_coef, coef_terms)
        title = f"Conditional modes: {group} ({len(g['levels'])} levels)"
        if not wide:
            _emit(console, _ranef_long(g, shown, coef_terms, strings, title), notes)
            continue
        _emit(console, _ranef_wide(g, shown, strings, title),
              notes + ["conditional modes, each followed by its conditional SD"])
        if coef_terms:
            _emit(console, _coef_wide(shown, coef_terms, strings, f"Coefficients: {group}"), notes)


def _coef_terms(group_coef: dict, ranef_terms: list[str]) -> list[str]:
    terms: list[str] = []
    for values in group_coef.values():
        for t in values:
            if t not in terms:
                terms.append(t)
    # random terms first, in their order, then the terms that only have a fixed effect
    return [t for t in ranef_terms if t in terms] + [t for t in terms if t not in ranef_terms]


def _per_term_strings(g: dict, group_coef: dict | None,
                      coef_terms: list[str]) -> dict[tuple[str, str, str], str]:
    """(kind, level, term) -> formatted number; each term on its own scale, over all levels of the factor."""
    levels = g["levels"]
    out: dict[tuple[str, str, str], str] = {}
    for term in g["terms"]:
        for kind, pos in (("mode", 0), ("sd", 1)):
            vals = [g["cells"].get((lv, term), (None, None))[pos] for lv in levels]
            for lv, s in zip(levels, format_fixed(vals, 4), strict=True):
                out[(kind, lv, term)] = s
    for term in coef_terms:
        vals = [(group_coef or {}).get(lv, {}).get(term) for lv in levels]
        for lv, s in zip(levels, format_fixed(vals, 4), strict=True):
            out[("coef", lv, term)] = s
    return out


def _ranef_long(g: dict, levels: list[str], coef_terms: list[str], s: dict, title: str) -> Table:
    table = _table(title)
    table.add_column("Level", no_wrap=True, style="bold")
    table.add_column("Term", overflow="fold")
    _num_col(table, "Mode")
    _num_col(table, "Cond. SD")
    if coef_terms:
        _num_col(table, "Coef")
    terms = g["terms"] + [t for t in coef_terms if t not in g["terms"]]
    for lv in levels:
        for n, term in enumerate(terms):
            cells = [_t(lv if n == 0 else ""), _t(term),
                     _t(s.get(("mode", lv, term), "")), _t(s.get(("sd", lv, term), ""), "dim")]
            if coef_terms:
                cells.append(_t(s.get(("coef", lv, term), "")))
            table.add_row(*cells)
    return table


def _ranef_wide(g: dict, levels: list[str], s: dict, title: str) -> Table:
    table = _table(title)
    table.add_column("Level", no_wrap=True, style="bold")
    for term in g["terms"]:
        _num_col(table, term)
        _num_col(table, "SD")
    for lv in levels:
        cells = [_t(lv)]
        for term in g["terms"]:
            cells += [_t(s.get(("mode", lv, term), "")), _t(s.get(("sd", lv, term), ""), "dim")]
        table.add_row(*cells)
    return table


def _coef_wide(levels: list[str], coef_terms: list[str], s: dict, title: str) -> Table:
    table = _table(title)
    table.add_column("Level", no_wrap=True, style="bold")
    for term in coef_terms:
        _num_col(table, term)
    for lv in levels:
        table.add_row(_t(lv), *(_t(s.get(("coef", lv, term), "")) for term in coef_terms))
    return table


# -------------------------------------------------------------------------------------------- compare
def print_compare(console: Console, cmp: dict, variance_reduction: dict | None = None) -> None:
    """Likelihood-ratio table as lme4's anova(m1, m2, ...), and optionally the variance reduction."""
    models = cmp.get("models", [])
    head = Table.grid(padding=(0, 1))
    head.add_column(style="bold", no_wrap=True)
    head.add_column(overflow="fold")
    if cmp.get("data_name"):
        head.add_row(_t("Data:"), _t(cmp["data_name"]))
    for m in models:
        head.add_row(_t(f"{m['name']}:"), _t(m["formula"]))
    console.print(head)
    console.print()
    notes = [SIGNIF_LEGEND] if any(_is_num(m.get("p_value")) for m in models) else []
    if cmp.get("refit_ml"):
        notes.insert(0, "REML fits were refitted with ML before comparing")
    table = _table("Model comparison")
    table.add_column("", no_wrap=True)
    for h in ("npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"):
        _num_col(table, h)
    table.add_column("", no_wrap=True)
    # print.anova: 5 significant digits, p-values with 4
    cols = [[str(m["npar"]) for m in models]]
    for key in ("aic", "bic", "loglik", "deviance", "chisq"):
        cols.append(format_column([m.get(key) for m in models], 5))
    cols.append(["" if m.get("df") is None else str(m["df"]) for m in models])
    pvals = [m.get("p_value") for m in models]
    cols.append(format_pvalues(pvals, 4))
    cols.append([signif_stars(p) for p in pvals])
    for i, m in enumerate(models):
        style = "bold" if _is_num(pvals[i]) and pvals[i] < 0.05 else ""
        table.add_row(_t(m["name"]), *(_t(c[i]) for c in cols), style=style)
    _emit(console, table, notes)
    if variance_reduction:
        _print_variance_reduction(console, variance_reduction)


def _reduction_columns(vr: dict) -> list[tuple[str, dict[str, float | None]]]:
    """(column header, {component: proportion}) for either shape of the variance-reduction dict."""
    if "models" in vr:
        # one column per compared model: {"models": [{"name", "reduction": {"Residual" | "g/term": x}}]}
        return [(m["name"], dict(m["reduction"])) for m in vr["models"]]
    column: dict[str, float | None] = {}
    if "level1" in vr:
        column["Residual"] = vr["level1"]
    column.update(vr.get("level2") or {})
    return [("Proportion", column)]


def _print_variance_reduction(console: Console, vr: dict) -> None:
    columns = _reduction_columns(vr)
    components: list[str] = []
    for _, values in columns:
        components += [c for c in values if c not in components]
    table = _table("Proportional reduction in variance")
    table.add_column("Component", overflow="fold")
    for header, _ in columns:
        _num_col(table, header)
    for comp in components:
        label = "Level 1: Residual" if comp == "Residual" else f"Level 2: {comp}"
        cells = []
        for _, values in columns:
            v = values.get(comp)
            cells.append(_t(_no_neg_zero(f"{v:.4f}") if _is_num(v) else "NA"))
        table.add_row(_t(label), *cells)
    notes = []
    if vr.get("base"):
        notes.append(f"relative to: {vr['base']}")
    notes.append("reduction = (first model's variance - this model's) / first model's variance")
    if _is_num(vr.get("icc")):
        notes.append(f"ICC of the first model: {vr['icc']:.4f}")
    _emit(console, table, notes)
