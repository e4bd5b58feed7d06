"""`mlm fit --family ... --format table`: a glmer fit as a rich table for the terminal.

The parts of the lmer fit's table (table.py) in the order lme4's summary of a glmerMod prints them:
a header with the method, the family and link, AIC/BIC/logLik/deviance/df.resid; the random effects
without a residual row; the fixed effects with Wald z tests (and with --ci their intervals, as in
the lmer fit's table); the ICC and Nakagawa's R²
(performance's, on the link scale); lme4's warnings.
"""

from __future__ import annotations

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from mlmcli.render.glmer_text import _method_title
from mlmcli.render.layout import Col, cell, column
from mlmcli.render.numbers import format_column, format_pvalues, is_num, signif_stars, zapsmall
from mlmcli.render.table import _mini_table, print_fit_parts


def print_glmer_fit(console: Console, fit: dict, correlation: bool = False) -> None:
    """Header panel, random effects, fixed effects (z tests), optional correlation, ICC and R², warnings."""
    notes = ["on the link scale, as performance::icc() and r2_nakagawa()"]
    print_fit_parts(console, fit, _header(fit), _fixed_cols(fit), correlation, notes)


def _header(fit: dict) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row(cell("Family"), cell(f"{fit['family']} ({fit['link']})"))
    grid.add_row(cell("Formula"), cell(fit.get("formula")))
    if fit.get("data_name"):
        grid.add_row(cell("Data"), cell(fit["data_name"]))
    for key, label in (("weights", "Weights"), ("offset", "Offset")):
        if fit.get(key):
            grid.add_row(cell(label), cell(fit[key]))
    # as lme4: rounded to one decimal, then printed with R's default 7 significant digits
    values = [round(fit[k], 1) for k in ("aic", "bic", "loglik", "deviance")]
    crit = _mini_table(
        ["AIC", "BIC", "logLik", "deviance", "df.resid"], format_column(values, 7) + [str(fit["df_resid"])]
    )
    grid.add_row(cell("Fit"), crit)
    res = fit["scaled_residuals"]
    vals = format_column(zapsmall([res[k] for k in ("min", "q1", "median", "q3", "max")], 5), 4)
    grid.add_row(cell("Scaled resid."), _mini_table(["Min", "1Q", "Median", "3Q", "Max"], vals))
    grid.add_row(cell("Observations"), cell(fit["n_obs"]))
    grid.add_row(cell("Groups"), cell(", ".join(f"{g} ({n} levels)" for g, n in fit["groups"].items())))
    return Panel(
        grid,
        title=Text(_method_title(fit), style="bold"),
        title_align="left",
        subtitle="Wald z tests",
        subtitle_align="left",
        expand=False,
        border_style="blue",
    )


def _fixed_cols(fit: dict) -> tuple[list[Col], list[str], bool]:
    rows = fit["fixed_effects"]
    pvals = [r["p_value"] for r in rows]
    show_p = any(is_num(p) for p in pvals)
    # z values are rounded to 3 decimals first, as printCoefmat does
    z = [round(r["z_value"], 3) if is_num(r["z_value"]) else None for r in rows]
    cols = [
        column("", [r["term"] for r in rows], label=True),
        column("Estimate", format_column([r["estimate"] for r in rows], 4)),
        column("Std. Error", format_column([r["std_error"] for r in rows], 4)),
    ]
    if rows and "conf_low" in rows[0]:  # mlm fit --family ... --ci: where the lmer fit's table has them
        labels = (fit.get("confint") or {}).get("labels") or ["conf.low", "conf.high"]
        cols.append(column(labels[0], format_column([r.get("conf_low") for r in rows], 4)))
        cols.append(column(labels[1], format_column([r.get("conf_high") for r in rows], 4)))
    cols.append(column("z value", format_column(z, 4)))
    if show_p:
        cols.append(column("Pr(>|z|)", format_pvalues(pvals, 3)))
        cols.append(Col("", [cell(signif_stars(p)) for p in pvals], justify="left"))
    styles = ["bold" if show_p and is_num(p) and p < 0.05 else "" for p in pvals]
    return cols, styles, show_p
