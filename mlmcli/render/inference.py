"""R's printed output of the inference reports: confint() matrices, lmerTest's anova() and ranova()
tables (print.anova: printCoefmat with 5 digits, na.print = "")."""

from __future__ import annotations

from typing import Any

from mlmcli.rcompat import rformat as rf

ANOVA_DIGITS = 5  # print.anova: max(getOption("digits") - 2, 3)


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


def confint_text(report: dict) -> str:
    """print() of confint()'s matrix: each column formatted on its own to 7 significant digits."""
    rows = report["intervals"]
    labels = report.get("labels") or ["lower", "upper"]
    cols = [rf.format_num([_num(r[key]) for r in rows]) for key in ("lower", "upper")]
    cells = [[cols[0][i], cols[1][i]] for i in range(len(rows))]
    return rf.print_matrix(cells, [r.get("printed_name", r["parameter"]) for r in rows], labels, right=True)


def anova_text(report: dict) -> str:
    """print() of lmerTest's anova table."""
    rows = report["terms"]
    colnames = ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
    if not rows:
        # a model without fixed-effect terms: R prints the header of an empty matrix, whose row
        # labels would be as wide as "[0,]"
        return report["heading"] + "\n" + " " * 4 + "".join(" " + c for c in colnames) + "\n"
    table = rf.print_coefmat(
        [[_num(r[k]) for k in ("sum_sq", "mean_sq", "num_df", "den_df", "f_value", "p_value")] for r in rows],
        [r["term"] for r in rows],
        colnames,
        digits=ANOVA_DIGITS,
        has_pvalue=True,
        p_values=True,
        cs_ind=None,
        zap_ind=range(4),
        tst_ind=[4],
        na_print="",
    )
    return report["heading"] + "\n" + table


def ranova_text(report: dict) -> str:
    """print() of lmerTest's ranova table."""
    rows = report["terms"]
    table = rf.print_coefmat(
        [[_num(r[k]) for k in ("npar", "loglik", "aic", "lrt", "df", "p_value")] for r in rows],
        [r["term"] for r in rows],
        ["npar", "logLik", "AIC", "LRT", "Df", "Pr(>Chisq)"],
        digits=ANOVA_DIGITS,
        has_pvalue=True,
        p_values=True,
        cs_ind=None,
        zap_ind=range(4),
        tst_ind=[],
        na_print="",
    )
    return f"{report['heading']}\n\nModel:\n{report['model']}\n{table}"


# ---------------------------------------------------------------- rich tables


def print_confint(console: Any, report: dict) -> None:
    from mlmcli.render.layout import column, print_columns
    from mlmcli.render.numbers import format_column

    rows = report["intervals"]
    labels = report.get("labels") or ["lower", "upper"]
    cols = [
        column("", [r["parameter"] for r in rows], label=True),
        column(labels[0], format_column([r["lower"] for r in rows], 5)),
        column(labels[1], format_column([r["upper"] for r in rows], 5)),
    ]
    method = report["method"]
    kind = {"wald": "Wald", "profile": "Profile", "boot": "Bootstrap"}.get(method, method)
    title = f"{kind} confidence intervals ({report['level']:g})"
    notes = ["Wald intervals are given for fixed effects only"] if method == "wald" else []
    if method == "boot":
        notes.append(
            f"percentiles of {report['nsim']} parametric bootstrap refits (seed {report['seed']}); "
            f"{report['singular']} singular, {report['failed']} failed"
        )
    print_columns(console, title, cols, notes)


def _test_table(
    console: Any, title: str, rows: list[dict], numeric: list[tuple[str, str, int]], p_header: str, notes: list[str]
) -> None:
    from mlmcli.render.layout import Col, cell, column, print_columns
    from mlmcli.render.numbers import SIGNIF_LEGEND, format_column, format_pvalues, is_num, signif_stars

    cols = [column("", [r["term"] for r in rows], label=True)]
    for key, header, digits in numeric:
        vals = [r[key] for r in rows]
        if all(v is None or float(v).is_integer() for v in vals):
            cols.append(column(header, ["" if v is None else int(v) for v in vals]))
        else:
            cols.append(column(header, format_column(vals, digits)))
    pvals = [r["p_value"] for r in rows]
    cols.append(column(p_header, format_pvalues(pvals, 4)))
    cols.append(Col("", [cell(signif_stars(p)) for p in pvals], justify="left"))
    styles = ["bold" if is_num(p) and p < 0.05 else "" for p in pvals]
    if any(is_num(p) for p in pvals):
        notes = notes + [SIGNIF_LEGEND]
    print_columns(console, title, cols, notes, styles)


def print_anova(console: Any, report: dict) -> None:
    _test_table(
        console,
        report["heading"],
        report["terms"],
        [
            ("sum_sq", "Sum Sq", 5),
            ("mean_sq", "Mean Sq", 5),
            ("num_df", "NumDF", 5),
            ("den_df", "DenDF", 5),
            ("f_value", "F value", 5),
        ],
        "Pr(>F)",
        [],
    )


def print_ranova(console: Any, report: dict) -> None:
    _test_table(
        console,
        report["heading"],
        report["terms"],
        [("npar", "npar", 5), ("loglik", "logLik", 5), ("aic", "AIC", 5), ("lrt", "LRT", 5), ("df", "Df", 5)],
        "Pr(>Chisq)",
        [f"Model: {report['model']}"],
    )
