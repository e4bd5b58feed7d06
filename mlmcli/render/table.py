"""Rich tables for the terminal: the default output of `mlm` on a terminal.

Every printer takes the JSON-shaped dict the engine writes for `--format json` (see the schemas), so the
table view and the machine-readable view can never disagree about the numbers.  Numbers are formatted the
way R's `format()` / `format.pval()` do it (numbers.py), so the tables read like lme4's printed summaries;
layout.py lays out the columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from mlmcli.render.layout import Col, cell, column, print_columns
from mlmcli.render.numbers import (
    SIGNIF_LEGEND,
    abbreviate,
    format_column,
    format_corr,
    format_fixed,
    format_pvalues,
    is_num,
    no_neg_zero,
    signif_stars,
    zapsmall,
)


# ------------------------------------------------------------------------------------------------ fit
def print_fit(console: Console, fit: dict, correlation: bool = False) -> None:
    """Model summary: header panel, random effects, fixed effects, optional correlation, warnings."""
    print_fit_parts(console, fit, _fit_header(fit), _fixed_effects_cols(fit), correlation, [])


def print_fit_parts(
    console: Console,
    fit: dict,
    header: Panel,
    fixed: tuple[list[Col], list[str], bool],
    correlation: bool,
    effects_notes: list[str],
) -> None:
    """The summary's panels in order (lmer's or glmer's header and fixed-effects columns): header,
    random effects, fixed effects, optional correlation, ICC and R² with `effects_notes`, warnings."""
    console.print(header)
    console.print()
    print_columns(console, "Random effects", _random_effects_cols(fit))
    cols, styles, show_p = fixed
    print_columns(console, "Fixed effects", cols, [SIGNIF_LEGEND] if show_p else [], styles)
    if correlation:
        corr = _fixef_correlation_cols(fit)
        if corr:
            print_columns(console, "Correlation of fixed effects", corr)
    effects = _effects_cols(fit)
    if effects:
        print_columns(console, "Variance explained", effects, [*effects_notes, *fit.get("effects_warnings", [])])
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
    grid.add_row(cell("Formula"), cell(fit.get("formula")))
    if fit.get("data_name"):
        grid.add_row(cell("Data"), cell(fit["data_name"]))
    for key, label in (("weights", "Weights"), ("offset", "Offset")):
        if fit.get(key):
            grid.add_row(cell(label), cell(fit[key]))
    # as lme4: rounded to one decimal, then printed with R's default 7 significant digits
    if fit.get("method") == "REML":
        grid.add_row(cell("REML criterion"), cell(format_column([round(fit["criterion"], 1)], 7)[0]))
    else:
        df_resid = fit.get("df_resid", fit["n_obs"] - fit["npar"])
        values = [round(fit[k], 1) for k in ("aic", "bic", "loglik", "criterion")] + [df_resid]
        crit = _mini_table(
            ["AIC", "BIC", "logLik", "deviance", "df.resid"], format_column(values, 7)[:4] + [str(df_resid)]
        )
        grid.add_row(cell("Fit"), crit)
    res = fit.get("scaled_residuals")
    if res:
        vals = format_column(zapsmall([res[k] for k in ("min", "q1", "median", "q3", "max")], 5), 4)
        grid.add_row(cell("Scaled resid."), _mini_table(["Min", "1Q", "Median", "3Q", "Max"], vals))
    grid.add_row(cell("Observations"), cell(fit["n_obs"]))
    groups = ", ".join(f"{g} ({n} levels)" for g, n in fit.get("groups", {}).items())
    grid.add_row(cell("Groups"), cell(groups))
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
    has_df = any(is_num(r.get("df")) for r in fit.get("fixed_effects", []))
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
            corr_cells[j].append(format_corr(value, 2))
    cols = [
        column("Groups", groups, label=True),
        column("Name", [r["term"] or "" for r in rows], label=True),
        column("Variance", format_column([r["variance"] for r in rows], 4)),
        column("Std.Dev.", format_column([r["std_dev"] for r in rows], 4)),
    ]
    cols += [column("Corr" if j == 0 else "", cells) for j, cells in enumerate(corr_cells)]
    return cols


def _fixed_effects_cols(fit: dict) -> tuple[list[Col], list[str], bool]:
    rows = fit.get("fixed_effects", [])
    pvals = [r.get("p_value") for r in rows]
    show_p = _ddf(fit) != "none" and any(is_num(p) for p in pvals)
    show_df = _ddf(fit) != "none" and any(is_num(r.get("df")) for r in rows)
    cols = [
        column("", [r["term"] for r in rows], label=True),
        column("Estimate", format_column([r["estimate"] for r in rows], 4)),
        column("Std. Error", format_column([r["std_error"] for r in rows], 4)),
    ]
    if show_df:
        cols.append(column("df", format_column([r.get("df") for r in rows], 4)))
    if rows and "conf_low" in rows[0]:  # mlm fit --ci
        labels = (fit.get("confint") or {}).get("labels") or ["conf.low", "conf.high"]
        cols.append(column(labels[0], format_column([r.get("conf_low") for r in rows], 4)))
        cols.append(column(labels[1], format_column([r.get("conf_high") for r in rows], 4)))
    # t values are rounded to 3 decimals first, as printCoefmat does
    t_values = [round(r["t_value"], 3) if is_num(r["t_value"]) else None for r in rows]
    cols.append(column("t value", format_column(t_values, 4)))
    if show_p:
        cols.append(column("Pr(>|t|)", format_pvalues(pvals, 3)))
        cols.append(Col("", [cell(signif_stars(p)) for p in pvals], justify="left"))
    styles = ["bold" if show_p and is_num(p) and p < 0.05 else "" for p in pvals]
    return cols, styles, show_p


def _fixef_correlation_cols(fit: dict) -> list[Col]:
    fc = fit.get("fixed_effect_correlation") or {}
    terms, matrix = fc.get("terms", []), fc.get("matrix", [])
    if len(terms) < 2:
        return []
    cols = [column("", terms[1:], label=True)]
    for j, label in enumerate(abbreviate(terms[:-1])):
        cols.append(column(label, [format_corr(matrix[i][j], 3) if j < i else "" for i in range(1, len(terms))]))
    return cols


def _effects_cols(fit: dict) -> list[Col]:
    """ICC and Nakagawa's R², three decimals as performance prints them; NA where not available."""
    icc, r2 = fit.get("icc"), fit.get("r2")
    if not icc or not r2:
        return []

    def fmt(v: Any) -> str:
        return f"{v:.3f}" if is_num(v) else "NA"

    return [
        column("", ["ICC", "R²"], label=True),
        column("Adjusted / Marginal", [fmt(icc.get("adjusted")), fmt(r2.get("marginal"))]),
        column("Unadjusted / Conditional", [fmt(icc.get("unadjusted")), fmt(r2.get("conditional"))]),
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
        print_columns(console, title, _tau_cols(g, corr_only), notes)
    if not corr_only and is_num(tau.get("residual_variance")):
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
                cells[i][j] = cell(s, "bold" if i == j else "")
    for i in range(k):
        for j in range(k):
            if corr_only:
                cells[i][j] = cell(format_corr(cor[i][j], 3), "bold" if i == j else "")
            elif j > i:
                cells[i][j] = cell(format_corr(cor[i][j], 3), "italic cyan")
    return [column("", terms, label=True)] + [Col(terms[j], [cells[i][j] for i in range(k)]) for j in range(k)]


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
    """Conditional modes and conditional SDs per grouping factor, and coef(fit) when given or when the
    report has it (`mlm ranef --with-coef`)."""
    rows = ranef.get("ranef", [])
    if coef is None:
        coef = ranef.get("coef") or _coef_from_rows(rows)
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
            print_columns(console, title, _ranef_long_cols(g, shown, coef_terms, strings), notes)
            continue
        print_columns(
            console,
            title,
            _ranef_wide_cols(g, shown, strings),
            notes + ["conditional modes, each followed by its conditional SD"],
        )
        if coef_terms:
            cols = [column("Level", shown, "bold", label=True)]
            cols += [column(t, [strings.get(("coef", lv, t), "") for lv in shown]) for t in coef_terms]
            print_columns(console, f"Coefficients: {group}", cols, notes)


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
        column("Level", [lv if first else "" for lv, _, first in keys], "bold", label=True),
        column("Term", [t for _, t, _ in keys], label=True),
        column("Mode", [s.get(("mode", lv, t), "") for lv, t, _ in keys]),
        column("Cond. SD", [s.get(("sd", lv, t), "") for lv, t, _ in keys], "dim"),
    ]
    if coef_terms:
        cols.append(column("Coef", [s.get(("coef", lv, t), "") for lv, t, _ in keys]))
    return cols


def _ranef_wide_cols(g: dict, levels: list[str], s: dict) -> list[Col]:
    cols = [column("Level", levels, "bold", label=True)]
    for t in g["terms"]:
        cols.append(column(t, [s.get(("mode", lv, t), "") for lv in levels]))
        cols.append(column("SD", [s.get(("sd", lv, t), "") for lv in levels], "dim"))
    return cols


# -------------------------------------------------------------------------------------------- compare
def print_compare(console: Console, cmp: dict, variance_reduction: dict | None = None) -> None:
    """Likelihood-ratio table as lme4's anova(m1, m2, ...), and the variance reduction when given or
    when the report has it (`mlm compare --variance-reduction`)."""
    if variance_reduction is None:
        variance_reduction = cmp.get("variance_reduction")
    models = cmp.get("models", [])
    head = Table.grid(padding=(0, 1))
    head.add_column(style="bold", no_wrap=True)
    head.add_column(overflow="fold")
    if cmp.get("data_name"):
        head.add_row(cell("Data:"), cell(cmp["data_name"]))
    for m in models:
        head.add_row(cell(f"{m['name']}:"), cell(m["formula"]))
    console.print(head)
    console.print()
    pvals = [m.get("p_value") for m in models]
    notes = [SIGNIF_LEGEND] if any(is_num(p) for p in pvals) else []
    if cmp.get("refit_ml"):
        notes.insert(0, "REML fits were refitted with ML before comparing")
    # as print.anova (digits 5): criteria zapsmall()ed, Chisq rounded to 4 places, p-values with 4 digits
    cols = [column("", [m["name"] for m in models], label=True), column("npar", [m["npar"] for m in models])]
    for key, header in (("aic", "AIC"), ("bic", "BIC"), ("loglik", "logLik"), ("deviance", "deviance")):
        cols.append(column(header, format_column(zapsmall([m[key] for m in models], 5), 5)))
    chisq = [round(m["chisq"], 4) if is_num(m.get("chisq")) else None for m in models]
    cols.append(column("Chisq", format_column(chisq, 5)))
    cols.append(column("Df", ["" if m.get("df") is None else m["df"] for m in models]))
    cols.append(column("Pr(>Chisq)", format_pvalues(pvals, 4)))
    cols.append(Col("", [cell(signif_stars(p)) for p in pvals], justify="left"))
    styles = ["bold" if is_num(p) and p < 0.05 else "" for p in pvals]
    print_columns(console, "Model comparison", cols, notes, styles)
    if variance_reduction:
        _print_variance_reduction(console, variance_reduction)


def _reduction_columns(vr: dict) -> list[tuple[str, dict[str, float | None]]]:
    """(column header, {component: proportion}) for either shape of the variance-reduction dict."""
    if "models" in vr:
        # one column per compared model: {"models": [{"name", "reduction": {"Residual" | "g/term": x}}]}
        return [(m["name"], dict(m["reduction"])) for m in vr["models"]]
    shares: dict[str, float | None] = {}
    if "level1" in vr:
        shares["Residual"] = vr["level1"]
    shares.update(vr.get("level2") or {})
    return [("Proportion", shares)]


def _print_variance_reduction(console: Console, vr: dict) -> None:
    columns = _reduction_columns(vr)
    components: dict[str, None] = {}
    for _, values in columns:
        components.update(dict.fromkeys(values))
    labels = ["Level 1: Residual" if c == "Residual" else f"Level 2: {c}" for c in components]
    cols = [column("Component", labels, label=True)]
    for header, values in columns:
        cells = [values.get(c) for c in components]
        cols.append(column(header, [no_neg_zero(f"{v:.4f}") if is_num(v) else "NA" for v in cells]))
    notes = [f"relative to: {vr['base']}"] if vr.get("base") else []
    notes.append("reduction = (first model's variance - this model's) / first model's variance")
    if is_num(vr.get("icc")):
        notes.append(f"ICC of the first model: {vr['icc']:.4f}")
    print_columns(console, "Proportional reduction in variance", cols, notes)
