"""Rich tables for the terminal: the default output of `mlm` on a terminal.

Every printer takes the JSON-shaped dict the engine writes for `--format json` (see the schemas), so the
table view and the machine-readable view can never disagree about the numbers.  Numbers are formatted the
way R's `format()` / `format.pval()` do it, so the tables read like lme4's printed summaries.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
    """Fixed decimals giving the largest |value| `digits` significant digits (long columns of estimates).

    Columns of tiny or huge numbers (a variance component at zero, badly scaled data) fall back to R's
    format(), which switches to scientific notation.
    """
    finite = [abs(float(v)) for v in values if _is_num(v)]
    top = max(finite, default=0.0)
    if top and not 1e-3 <= top < 1e7:
        return format_column(values, digits)
    decimals = 0 if top == 0 else max(0, digits - 1 - math.floor(math.log10(top)))
    return [_no_neg_zero(f"{float(v):.{decimals}f}") if _is_num(v) else "" for v in values]


def _zapsmall(values: Sequence[float | None], digits: int) -> list[float | None]:
    """R's zapsmall(): round to `digits` significant digits of the largest abs value, as summary.merMod."""
    top = max((abs(v) for v in values if _is_num(v)), default=0.0)
    # R 4.2 rounds to digits - log10(max) places, that count itself rounded to a whole number
    decimals = max(0, math.floor(digits - math.log10(top) + 0.5)) if top > 0 else digits
    return [round(v, decimals) if _is_num(v) else None for v in values]


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
class FittingConsole(Console):
    """A Console that notes whether a table or panel printed on it needed more than its width (rich then
    wraps or squeezes it)."""

    too_narrow = False

    def print(self, *objects: Any, **kwargs: Any) -> None:
        from rich.measure import Measurement

        unbounded = self.options.update_width(10**6)  # the width it would take, not what it is given
        for obj in objects:
            if isinstance(obj, Table | Panel) and Measurement.get(self, unbounded, obj).maximum > self.width:
                self.too_narrow = True
        super().print(*objects, **kwargs)


def make_console(
    no_color: bool = False, width: int | None = None, file=None, force_terminal: bool | None = None
) -> FittingConsole:
    """A Console that uses colour only on a terminal and not at all under NO_COLOR or no_color=True."""
    plain = no_color or bool(os.environ.get("NO_COLOR"))
    kwargs: dict[str, Any] = {"file": file, "width": width, "highlight": False, "emoji": False}
    if force_terminal is not None:
        kwargs["force_terminal"] = force_terminal
    if plain:
        # no colour system at all: rich then writes no escape sequences, not even bold
        kwargs.update(color_system=None, no_color=True)
    return FittingConsole(**kwargs)


# ------------------------------------------------------------------------------------------- layout
def _t(s: Any, style: str = "") -> Text:
    # cells are Text, never markup strings: factor levels like "[a]" must print verbatim
    return Text("" if s is None else str(s), style=style)


@dataclass
class Col:
    """One table column: header and cells; label columns (left-aligned) repeat in every chunk."""

    header: str
    cells: list[Text]
    label: bool = False
    justify: str = "right"

    @property
    def width(self) -> int:
        return max([len(self.header)] + [c.cell_len for c in self.cells])


_GAP = 2  # one space of padding plus the box's blank column rule: as compact as R's print-out


def _chunks(cols: list[Col], width: int) -> list[list[Col]]:
    """Split the value columns over several tables when they do not fit, as R splits a wide matrix."""
    labels = [c for c in cols if c.label]
    values = [c for c in cols if not c.label]
    room = width - sum(c.width + _GAP for c in labels)
    out: list[list[Col]] = []
    current: list[Col] = []
    used = 0
    for c in values:
        if current and used + c.width + _GAP > room:
            out.append(current)
            current, used = [], 0
        current.append(c)
        used += c.width + _GAP
    out.append(current)
    return [labels + chunk for chunk in out]


def _emit(
    console: Console, title: str, cols: list[Col], notes: Sequence[str] = (), row_styles: Sequence[str] | None = None
) -> None:
    """Print a titled table (in column chunks if too wide), then its notes and a blank line.

    Title and notes are plain lines: as a rich title or caption they would wrap at the table's own width.
    """
    console.print(Text(title, style="bold"))
    n_rows = len(cols[0].cells) if cols else 0
    chunks = _chunks(cols, console.width)
    for i, chunk in enumerate(chunks):
        if i:
            console.print()
        values = [c for c in chunk if not c.label]
        # in a split matrix, rows with nothing in this chunk (upper triangle) are left out
        rows = [r for r in range(n_rows) if len(chunks) == 1 or any(c.cells[r].plain.strip() for c in values)]
        table = Table(box=_BOX, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), expand=False)
        for c in chunk:
            if c.label:
                table.add_column(c.header, overflow="fold")
            else:
                table.add_column(c.header, justify=c.justify, no_wrap=True)
        for r in rows:
            table.add_row(*(c.cells[r] for c in chunk), style=row_styles[r] if row_styles else None)
        console.print(table)
    for note in notes:
        console.print(Text(note, style="dim"))
    console.print()


def _col(header: str, values: Iterable[Any], style: str = "", label: bool = False) -> Col:
    return Col(header, [_t(v, style) for v in values], label)


# ------------------------------------------------------------------------------------------------ fit
def print_fit(console: Console, fit: dict, correlation: bool = False) -> None:
    """Model summary: header panel, random effects, fixed effects, optional correlation, warnings."""
    console.print(_fit_header(fit))
    console.print()
    _emit(console, "Random effects", _random_effects_cols(fit))
    cols, styles, show_p = _fixed_effects_cols(fit)
    _emit(console, "Fixed effects", cols, [SIGNIF_LEGEND] if show_p else [], styles)
    if correlation:
        corr = _fixef_correlation_cols(fit)
        if corr:
            _emit(console, "Correlation of fixed effects", corr)
    effects = _effects_cols(fit)
    if effects:
        _emit(console, "Variance explained", effects, list(fit.get("effects_warnings", [])))
    messages = _fit_messages(fit)
    if messages:
        console.print(
            Panel(
                Text("\n".join(messages), style="yellow"),
                title="Warnings",
                title_align="left",
                border_style="yellow",
                expand=False,
            )
        )


def _fit_header(fit: dict) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row(_t("Formula"), _t(fit.get("formula")))
    if fit.get("data_name"):
        grid.add_row(_t("Data"), _t(fit["data_name"]))
    for key, label in (("weights", "Weights"), ("offset", "Offset")):
        if fit.get(key):
            grid.add_row(_t(label), _t(fit[key]))
    # as lme4: rounded to one decimal, then printed with R's default 7 significant digits
    if fit.get("method") == "REML":
        grid.add_row(_t("REML criterion"), _t(format_column([round(fit["criterion"], 1)], 7)[0]))
    else:
        df_resid = fit.get("df_resid", fit["n_obs"] - fit["npar"])
        values = [round(fit[k], 1) for k in ("aic", "bic", "loglik", "criterion")] + [df_resid]
        crit = _mini_table(
            ["AIC", "BIC", "logLik", "deviance", "df.resid"], format_column(values, 7)[:4] + [str(df_resid)]
        )
        grid.add_row(_t("Fit"), crit)
    res = fit.get("scaled_residuals")
    if res:
        vals = format_column(_zapsmall([res[k] for k in ("min", "q1", "median", "q3", "max")], 5), 4)
        grid.add_row(_t("Scaled resid."), _mini_table(["Min", "1Q", "Median", "3Q", "Max"], vals))
    grid.add_row(_t("Observations"), _t(fit["n_obs"]))
    groups = ", ".join(f"{g} ({n} levels)" for g, n in fit.get("groups", {}).items())
    grid.add_row(_t("Groups"), _t(groups))
    title = f"Linear mixed model fit by {'REML' if fit.get('method') == 'REML' else 'maximum likelihood'}"
    subtitle = f"t-tests use {_ddf(fit)}'s method" if _ddf(fit) != "none" else None
    return Panel(
        grid,
        title=Text(title, style="bold"),
        title_align="left",
        subtitle=subtitle,
        subtitle_align="left",
        expand=False,
        border_style="blue",
    )


def _mini_table(headers: Sequence[str], values: Sequence[str]) -> Table:
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


def _random_effects_cols(fit: dict) -> list[Col]:
    rows = fit.get("random_effects", [])
    corr = {(c["group"], c["term1"], c["term2"]): c["correlation"] for c in fit.get("random_effect_correlations", [])}
    terms_by_group: dict[str, list[str]] = {}
    for r in rows:
        if r["term"] is not None:
            terms_by_group.setdefault(r["group"], []).append(r["term"])
    n_corr = max((len(t) for t in terms_by_group.values()), default=1) - 1
    corr_cells: list[list[str]] = [[] for _ in range(n_corr)]
    groups = []
    previous = None
    for r in rows:
        group, term = r["group"], r["term"]
        groups.append(group if group != previous else "")
        previous = group
        before = terms_by_group[group][: terms_by_group[group].index(term)] if term is not None else []
        for j in range(n_corr):
            # lme4 prints each correlation once, in the row of the later term
            value = None
            if j < len(before):
                value = corr.get((group, before[j], term), corr.get((group, term, before[j])))
            corr_cells[j].append(_fmt_corr(value, 2))
    cols = [
        _col("Groups", groups, label=True),
        _col("Name", [r["term"] or "" for r in rows], label=True),
        _col("Variance", format_column([r["variance"] for r in rows], 4)),
        _col("Std.Dev.", format_column([r["std_dev"] for r in rows], 4)),
    ]
    cols += [_col("Corr" if j == 0 else "", cells) for j, cells in enumerate(corr_cells)]
    return cols


def _fixed_effects_cols(fit: dict) -> tuple[list[Col], list[str], bool]:
    rows = fit.get("fixed_effects", [])
    pvals = [r.get("p_value") for r in rows]
    show_p = _ddf(fit) != "none" and any(_is_num(p) for p in pvals)
    show_df = _ddf(fit) != "none" and any(_is_num(r.get("df")) for r in rows)
    cols = [
        _col("", [r["term"] for r in rows], label=True),
        _col("Estimate", format_column([r["estimate"] for r in rows], 4)),
        _col("Std. Error", format_column([r["std_error"] for r in rows], 4)),
    ]
    if show_df:
        cols.append(_col("df", format_column([r.get("df") for r in rows], 4)))
    if rows and "conf_low" in rows[0]:  # mlm fit --ci
        labels = (fit.get("confint") or {}).get("labels") or ["conf.low", "conf.high"]
        cols.append(_col(labels[0], format_column([r.get("conf_low") for r in rows], 4)))
        cols.append(_col(labels[1], format_column([r.get("conf_high") for r in rows], 4)))
    # t values are rounded to 3 decimals first, as printCoefmat does
    t_values = [round(r["t_value"], 3) if _is_num(r["t_value"]) else None for r in rows]
    cols.append(_col("t value", format_column(t_values, 4)))
    if show_p:
        cols.append(_col("Pr(>|t|)", format_pvalues(pvals, 3)))
        cols.append(Col("", [_t(signif_stars(p)) for p in pvals], justify="left"))
    styles = ["bold" if show_p and _is_num(p) and p < 0.05 else "" for p in pvals]
    return cols, styles, show_p


def _fixef_correlation_cols(fit: dict) -> list[Col]:
    fc = fit.get("fixed_effect_correlation") or {}
    terms, matrix = fc.get("terms", []), fc.get("matrix", [])
    if len(terms) < 2:
        return []
    cols = [_col("", terms[1:], label=True)]
    for j, label in enumerate(abbreviate(terms[:-1])):
        cols.append(_col(label, [_fmt_corr(matrix[i][j], 3) if j < i else "" for i in range(1, len(terms))]))
    return cols


def _effects_cols(fit: dict) -> list[Col]:
    """ICC and Nakagawa's R², three decimals as performance prints them; NA where not available."""
    icc, r2 = fit.get("icc"), fit.get("r2")
    if not icc or not r2:
        return []

    def fmt(v: Any) -> str:
        return f"{v:.3f}" if _is_num(v) else "NA"

    return [
        _col("", ["ICC", "R²"], label=True),
        _col("Adjusted / Marginal", [fmt(icc.get("adjusted")), fmt(r2.get("marginal"))]),
        _col("Unadjusted / Conditional", [fmt(icc.get("unadjusted")), fmt(r2.get("conditional"))]),
    ]


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
        title = f"{'Correlation' if corr_only else 'Tau'}: {g['group']}"
        _emit(console, title, _tau_cols(g, corr_only), notes)
    if not corr_only and _is_num(tau.get("residual_variance")):
        line = Text.assemble(("Residual variance  ", "bold"), format_column([tau["residual_variance"]], 4)[0])
        console.print(line)
        console.print()


def _tau_cols(g: dict, corr_only: bool) -> list[Col]:
    terms, cov, cor = g["terms"], g["covariance"], g["correlation"]
    k = len(terms)
    lower = iter(format_column([cov[i][j] for i in range(k) for j in range(i + 1)], 4))
    cells = [[Text("")] * k for _ in range(k)]
    for i in range(k):
        for j in range(i + 1):
            s = next(lower)
            if not corr_only:
                cells[i][j] = _t(s, "bold" if i == j else "")
    for i in range(k):
        for j in range(k):
            if corr_only:
                cells[i][j] = _t(_fmt_corr(cor[i][j], 3), "bold" if i == j else "")
            elif j > i:
                cells[i][j] = _t(_fmt_corr(cor[i][j], 3), "italic cyan")
    return [_col("", terms, label=True)] + [Col(terms[j], [cells[i][j] for i in range(k)]) for j in range(k)]


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


def _coef_from_rows(rows: Iterable[dict]) -> dict | None:
    # the engine may carry coef(fit) per row instead of as a separate mapping
    coef: dict = {}
    for r in rows:
        if r.get("coef") is not None:
            coef.setdefault(r["group"], {}).setdefault(r["level"], {})[r["term"]] = r["coef"]
    return coef or None


def print_ranef(
    console: Console, ranef: dict, head: int | None = None, wide: bool = False, coef: dict | None = None
) -> None:
    """Conditional modes and conditional SDs per grouping factor, optionally with coef(fit)."""
    rows = ranef.get("ranef", [])
    if coef is None:
        coef = _coef_from_rows(rows)
    for group, g in _group_ranef(rows).items():
        shown = g["levels"] if head is None else g["levels"][: max(0, head)]
        hidden = len(g["levels"]) - len(shown)
        notes = [f"{hidden} of {len(g['levels'])} levels not shown"] if hidden else []
        group_coef = (coef or {}).get(group)
        coef_terms = _coef_terms(group_coef, g["terms"]) if group_coef else []
        strings = _per_term_strings(g, group_coef, coef_terms)
        title = f"Conditional modes: {group} ({len(g['levels'])} levels)"
        if not wide:
            if any(t not in g["terms"] for t in coef_terms):
                notes = notes + ["terms without a random effect are left out: their coef is the fixed effect"]
            _emit(console, title, _ranef_long_cols(g, shown, coef_terms, strings), notes)
            continue
        _emit(
            console,
            title,
            _ranef_wide_cols(g, shown, strings),
            notes + ["conditional modes, each followed by its conditional SD"],
        )
        if coef_terms:
            cols = [_col("Level", shown, "bold", label=True)]
            cols += [_col(t, [strings.get(("coef", lv, t), "") for lv in shown]) for t in coef_terms]
            _emit(console, f"Coefficients: {group}", cols, notes)


def _coef_terms(group_coef: dict, ranef_terms: list[str]) -> list[str]:
    terms: dict[str, None] = {}
    for values in group_coef.values():
        terms.update(dict.fromkeys(values))
    # random terms first, in their order, then the terms that only have a fixed effect
    return [t for t in ranef_terms if t in terms] + [t for t in terms if t not in ranef_terms]


def _per_term_strings(g: dict, group_coef: dict | None, coef_terms: list[str]) -> dict[tuple[str, str, str], str]:
    """(kind, level, term) -> formatted number; each term on its own scale, over all levels of the factor."""
    levels = g["levels"]
    out: dict[tuple[str, str, str], str] = {}
    for term in g["terms"]:
        for kind, pos in (("mode", 0), ("sd", 1)):
            vals = [g["cells"].get((lv, term), (None, None))[pos] for lv in levels]
            out.update(((kind, lv, term), s) for lv, s in zip(levels, format_fixed(vals, 4), strict=True))
    for term in coef_terms:
        vals = [(group_coef or {}).get(lv, {}).get(term) for lv in levels]
        out.update((("coef", lv, term), s) for lv, s in zip(levels, format_fixed(vals, 4), strict=True))
    return out


def _ranef_long_cols(g: dict, levels: list[str], coef_terms: list[str], s: dict) -> list[Col]:
    terms = g["terms"]
    keys = [(lv, t, n == 0) for lv in levels for n, t in enumerate(terms)]
    cols = [
        _col("Level", [lv if first else "" for lv, _, first in keys], "bold", label=True),
        _col("Term", [t for _, t, _ in keys], label=True),
        _col("Mode", [s.get(("mode", lv, t), "") for lv, t, _ in keys]),
        _col("Cond. SD", [s.get(("sd", lv, t), "") for lv, t, _ in keys], "dim"),
    ]
    if coef_terms:
        cols.append(_col("Coef", [s.get(("coef", lv, t), "") for lv, t, _ in keys]))
    return cols


def _ranef_wide_cols(g: dict, levels: list[str], s: dict) -> list[Col]:
    cols = [_col("Level", levels, "bold", label=True)]
    for t in g["terms"]:
        cols.append(_col(t, [s.get(("mode", lv, t), "") for lv in levels]))
        cols.append(_col("SD", [s.get(("sd", lv, t), "") for lv in levels], "dim"))
    return cols


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
    pvals = [m.get("p_value") for m in models]
    notes = [SIGNIF_LEGEND] if any(_is_num(p) for p in pvals) else []
    if cmp.get("refit_ml"):
        notes.insert(0, "REML fits were refitted with ML before comparing")
    # as print.anova (digits 5): criteria zapsmall()ed, Chisq rounded to 4 places, p-values with 4 digits
    cols = [_col("", [m["name"] for m in models], label=True), _col("npar", [m["npar"] for m in models])]
    for key, header in (("aic", "AIC"), ("bic", "BIC"), ("loglik", "logLik"), ("deviance", "deviance")):
        cols.append(_col(header, format_column(_zapsmall([m[key] for m in models], 5), 5)))
    chisq = [round(m["chisq"], 4) if _is_num(m.get("chisq")) else None for m in models]
    cols.append(_col("Chisq", format_column(chisq, 5)))
    cols.append(_col("Df", ["" if m.get("df") is None else m["df"] for m in models]))
    cols.append(_col("Pr(>Chisq)", format_pvalues(pvals, 4)))
    cols.append(Col("", [_t(signif_stars(p)) for p in pvals], justify="left"))
    styles = ["bold" if _is_num(p) and p < 0.05 else "" for p in pvals]
    _emit(console, "Model comparison", cols, notes, styles)
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
    components: dict[str, None] = {}
    for _, values in columns:
        components.update(dict.fromkeys(values))
    labels = ["Level 1: Residual" if c == "Residual" else f"Level 2: {c}" for c in components]
    cols = [_col("Component", labels, label=True)]
    for header, values in columns:
        cells = [values.get(c) for c in components]
        cols.append(_col(header, [_no_neg_zero(f"{v:.4f}") if _is_num(v) else "NA" for v in cells]))
    notes = [f"relative to: {vr['base']}"] if vr.get("base") else []
    notes.append("reduction = (first model's variance - this model's) / first model's variance")
    if _is_num(vr.get("icc")):
        notes.append(f"ICC of the first model: {vr['icc']:.4f}")
    _emit(console, "Proportional reduction in variance", cols, notes)
