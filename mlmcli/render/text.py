"""lme4 1.1-31 / lmerTest 3.1-3 printed output, reproduced byte for byte from mlm's JSON objects.

* ``fit_summary``: ``print(summary(fit))`` (lmerTest's Satterthwaite table, or lme4's own summary
  when ``fit["ddf"] == "none"``),
* ``tau_text``: ``print(Matrix::bdiag(VarCorr(fit)))``,
* ``anova_text``: ``print(anova(m1, m2, ...))`` (``compare_text`` adds the variance reduction).

R writes some lines to stderr (``message()``): the "Correlation matrix not shown" note of a model
with more than 12 fixed effects, the "refitting model(s) with ML" note of anova(), Matrix's note
on dropped column names.  The ``*_output`` functions return both streams as ``Printed``; the
three plain functions return standard output only.

Keys read besides those of the JSON schemas (all optional, defaults in brackets):

* fit: ``data_name`` [none], ``deparsed_formula`` [``[formula]``], ``ddf`` ("Satterthwaite",
  "Kenward-Roger" or "none") ["Satterthwaite"], ``df_resid`` [n_obs - npar], ``optimizer``
  ["nloptwrap"], ``conv_code`` [0], ``conv_messages`` (lme4's optinfo$conv$lme4$messages)
  [``lme4_conv_messages``], ``optimizer_message`` [none], ``optimizer_warnings``
  (optinfo$warnings) [none], ``fit_warnings`` (lme4's notes on the fixed-effects model matrix,
  printed under ``fit warnings:``) [the matching entries of ``warnings``];
* compare: ``data_name`` and, per model, ``deparsed_formula``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

from mlmcli.rcompat import rformat as rf

SUMMARY_DIGITS = 4  # print.summary.merMod: max(3, getOption("digits") - 3)
ANOVA_DIGITS = 5  # print.anova: max(getOption("digits") - 2, 3)
COR_MAX = 12  # getOption("lme4.summary.cor.max")


class Printed(NamedTuple):
    """What R writes to standard output and to standard error."""

    out: str
    err: str = ""


def _num(v: Any) -> float | None:
    """JSON number -> float; null (R's NA) -> None."""
    return None if v is None else float(v)


def _nan_if_null(v: Any) -> float:
    return math.nan if v is None else float(v)


# ---------------------------------------------------------------- header: title, call, criterion


def _method_title(method: str) -> str:
    # lme4's methTitle(); paste("maximum likelihood", NULL) leaves a trailing blank
    return "Linear mixed model fit by " + ("REML" if method == "REML" else "maximum likelihood ")


def _title(mtit: str, cls: str) -> str:
    """.prt.methTit: one line, or wrapped by strwrap() with the class in brackets."""
    if len(mtit) + 5 + len(cls) > rf.PRINT_WIDTH:
        lines = rf.strwrap(mtit, width=rf.PRINT_WIDTH - 2, exdent=2)
        return rf.cat(lines, " [", cls, "]", sep="", fill=True)
    return f"{mtit} ['{cls}']\n"


def _call_lines(fit: dict) -> str:
    out = rf.cat("Formula:", list(fit.get("deparsed_formula") or [fit["formula"]]), fill=True)
    if fit.get("data_name") is not None:
        out += rf.cat("   Data:", fit["data_name"], fill=True)
    # lmer's weights = and offset = arguments, as .prt.call prints the call's
    if fit.get("weights") is not None:
        out += rf.cat("Weights:", fit["weights"], fill=True)
    if fit.get("offset") is not None:
        out += rf.cat(" Offset:", fit["offset"], fill=True)
    return out


def _aic_table(fit: dict) -> str:
    """.prt.aictab: the REML criterion, or the AIC ... df.resid table of an ML fit."""
    if fit["method"] == "REML":
        return rf.cat("REML criterion at convergence:", rf.r_round(float(fit["criterion"]), 1), fill=True)
    df_resid = fit.get("df_resid")
    if df_resid is None:
        df_resid = fit["n_obs"] - fit["npar"]
    vals = [rf.r_round(float(fit[k]), 1) for k in ("aic", "bic", "loglik", "criterion")] + [float(df_resid)]
    t4f = rf.format_num(vals)
    t4f[-1] = rf.format_num(vals[-1:])[0]
    return rf.print_named(t4f, ["AIC", "BIC", "logLik", "deviance", "df.resid"])


def _residuals(fit: dict, digits: int) -> str:
    sr = fit["scaled_residuals"]
    q = rf.zapsmall([float(sr[k]) for k in ("min", "q1", "median", "q3", "max")], digits + 1)
    return "Scaled residuals: \n" + rf.print_named_num(q, ["Min", "1Q", "Median", "3Q", "Max"], digits) + "\n"


# ---------------------------------------------------------------- random effects (formatVC)


def _re_groups(fit: dict) -> list[tuple[str, list[str], list[float]]]:
    """(group, terms, std devs) in lme4's order, without the residual row."""
    groups: dict[str, tuple[list[str], list[float]]] = {}
    for row in fit["random_effects"]:
        if row["group"] == "Residual" and row.get("term") is None:
            continue
        terms, sds = groups.setdefault(row["group"], ([], []))
        terms.append(row["term"])
        sds.append(float(row["std_dev"]))
    return [(g, t, s) for g, (t, s) in groups.items()]


def _residual_sd(fit: dict) -> float | None:
    for row in fit["random_effects"]:
        if row["group"] == "Residual" and row.get("term") is None:
            return float(row["std_dev"])
    return None


def _corr_matrix(fit: dict, group: str, terms: list[str]) -> list[list[float]]:
    """A group's correlation matrix, from random_effect_correlations (null, R's NaN, kept)."""
    k = len(terms)
    cor = [[1.0 if i == j else math.nan for j in range(k)] for i in range(k)]
    pos = {t: i for i, t in enumerate(terms)}
    for row in fit.get("random_effect_correlations", []):
        if row["group"] == group and row["term1"] in pos and row["term2"] in pos:
            i, j = pos[row["term1"]], pos[row["term2"]]
            cor[i][j] = cor[j][i] = _nan_if_null(row["correlation"])
    return cor


def format_vc(fit: dict, digits: int = SUMMARY_DIGITS) -> str:
    """lme4's formatVC() table as .prt.VC prints it (Variance and Std.Dev. columns)."""
    groups = _re_groups(fit)
    sd_res = _residual_sd(fit)
    names, terms, sds = [], [], []
    for g, ts, ss in groups:
        names += [g] + [""] * (len(ts) - 1)
        terms += ts
        sds += ss
    if sd_res is not None:
        names.append("Residual")
        terms.append("")
        sds.append(sd_res)
    cols: list[list[str]] = [names, terms, rf.format_num([s * s for s in sds], digits), rf.format_num(sds, digits)]
    header = ["Groups", "Name", "Variance", "Std.Dev."]
    maxlen = max(len(ts) for _, ts, _ in groups) if groups else 0
    if maxlen > 1:
        dig = max(2, digits - 2)
        corr_rows: list[list[str]] = []
        for g, ts, _ in groups:
            cor = _corr_matrix(fit, g, ts)
            k = len(ts)
            flat = rf.format_num([rf.r_round(v, dig) for row in cor for v in row], nsmall=dig)
            for i in range(k):
                cells = [flat[i * k + j] if j < i else "" for j in range(k)] + [""] * (maxlen - k)
                corr_rows.append(cells[: maxlen - 1])
        corr_rows += [[""] * (maxlen - 1)] * (len(names) - len(corr_rows))
        cols += [[r[j] for r in corr_rows] for j in range(maxlen - 1)]
        header += ["Corr"] + [""] * (maxlen - 2)
    matrix = [[c[i] for c in cols] for i in range(len(names))]
    return rf.print_matrix(matrix, [""] * len(names), header, right=False)


def _groups_line(fit: dict) -> str:
    grps = "; ".join(f"{g}, {n}" for g, n in fit["groups"].items())
    return rf.cat(f"Number of obs: {fit['n_obs']}, groups: ", grps, fill=True)


# ---------------------------------------------------------------- fixed effects


def _coef_table(fit: dict, ddf: str, digits: int) -> str:
    fe = fit["fixed_effects"]
    rows = [
        [_num(f["estimate"]), _num(f["std_error"]), _num(f.get("df")), _num(f["t_value"]), _num(f.get("p_value"))]
        for f in fe
    ]
    names = [f["term"] for f in fe]
    if ddf == "none":
        rows = [[r[0], r[1], r[3]] for r in rows]
        colnames = ["Estimate", "Std. Error", "t value"]
    else:
        colnames = ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
    return rf.print_coefmat(rows, names, colnames, digits=digits)


def _fixef_correlation(fit: dict) -> str:
    fc = fit["fixed_effect_correlation"]
    rn = [f["term"] for f in fit["fixed_effects"]]
    p = len(fc["terms"])
    if p <= 1:
        return ""
    flat = rf.format_num([rf.r_round(float(v), 3) for row in fc["matrix"] for v in row], nsmall=3)
    rns = rf.abbreviate(rn, 11)
    cns = rf.abbreviate(rn, 6)
    cells = [[flat[i * p + j] if j < i else "" for j in range(p - 1)] for i in range(1, p)]
    return "\nCorrelation of Fixed Effects:\n" + rf.print_matrix(cells, rns[1:], cns[:-1], right=False)


def _cor_note(p: int, name: str) -> str:
    nam = name if len(name) < 32 else "...."
    return (
        f"\nCorrelation matrix not shown by default, as p = {p} > {COR_MAX}.\n"
        f"Use print({nam}, correlation=TRUE)  or\n"
        f"    vcov({nam})        if you need it\n\n"
    )


# the messages lme4 attaches to the fixed-effects model matrix (lme4:::.merMod.msgs)
_X_MESSAGES = ("fixed-effect model matrix is", "Some predictor variables are on very different scales")


def _fit_warnings(fit: dict) -> list[str]:
    if "fit_warnings" in fit:
        return list(fit["fit_warnings"] or [])
    return [w for w in fit.get("warnings") or [] if w.startswith(_X_MESSAGES)]


def _conv_lines(fit: dict) -> str:
    """.prt.warn(summary = FALSE): the optimizer's code and lme4's convergence messages."""
    cc = int(fit.get("conv_code") or 0)
    msgs = fit.get("conv_messages", fit.get("lme4_conv_messages")) or []
    warns = fit.get("optimizer_warnings") or []
    if not (cc > 0 or msgs or warns):
        return ""
    if cc == 0:
        m = "(OK)"
    elif fit.get("optimizer_message") is not None:
        m = f"({fit['optimizer_message']})"
    else:
        m = ""
    convmsg = f"optimizer ({fit.get('optimizer') or 'nloptwrap'}) convergence code: {cc} {m}"
    return rf.cat(convmsg, list(msgs) or None, list(warns) or None, sep="\n") + "\n"


# ---------------------------------------------------------------- public API


def fit_summary_output(fit: dict, name: str = "summary(fit)") -> Printed:
    """print(summary(fit)) on both streams; `name` is the object's name in lme4's stderr note."""
    ddf = fit.get("ddf") or "Satterthwaite"
    digits = SUMMARY_DIGITS
    mtit = _method_title(fit["method"])
    if ddf == "none":
        cls = "lmerMod"
    else:
        cls = "lmerModLmerTest"
        mtit += f". t-tests use {ddf}'s method"
    out = [
        _title(mtit, cls),
        _call_lines(fit),
        "\n",
        _aic_table(fit),
        "\n",
        _residuals(fit, digits),
        "Random effects:\n",
        format_vc(fit, digits),
        _groups_line(fit),
    ]
    return fixed_and_messages(fit, out, _coef_table(fit, ddf, digits), name)


def fixed_and_messages(fit: dict, out: list[str], coef_table: str, name: str) -> Printed:
    """summary.merMod's last part, after the random effects: the fixed effects' table and their
    correlations (or the note that they are not shown), lme4's notes on the model matrix and the
    optimizer's messages."""
    err = ""
    p = len(fit["fixed_effects"])
    if p > 0:
        out = out + ["\nFixed effects:\n", coef_table]
        if p > COR_MAX:
            err = _cor_note(p, name)
        else:
            out.append(_fixef_correlation(fit))
    fit_warnings = [m for m in _fit_warnings(fit) if m]
    if fit_warnings:
        out.append("fit warnings:\n" + "".join(m + "\n" for m in fit_warnings))
    out.append(_conv_lines(fit))
    return Printed("".join(out), err)


def fit_summary(fit: dict) -> str:
    """print(summary(fit)) under lmerTest (or lme4's own summary when fit["ddf"] is "none")."""
    return fit_summary_output(fit).out


def _sparse_cells(blocks: Sequence[tuple[list[str], list[list[float]]]]) -> list[list[str]]:
    """Matrix's formatSpMatrix() of the block-diagonal matrix: columns formatted one by one,
    structural zeros as "." padded to where the column's decimal point would be."""
    n = sum(len(t) for t, _ in blocks)
    m = [[0.0] * n for _ in range(n)]
    off = 0
    for terms, cov in blocks:
        k = len(terms)
        for i in range(k):
            for j in range(k):
                # a symmetric Matrix keeps the upper triangle
                m[off + i][off + j] = float(cov[min(i, j)][max(i, j)])
        off += k
    cols = [[m[i][j] for i in range(n)] for j in range(n)]
    cx_cols = [rf.format_num(col) for col in cols]
    nonzero = sum(1 for row in m for v in row if v != 0)
    if nonzero == 0:
        return [["."] * n for _ in range(n)]
    if nonzero < n * n:
        for j, col in enumerate(cols):
            f = rf.format_real(col)
            pad = f.d + (f.d > 0) if f.e == 0 else f.d + f.e + 4
            zero = ".".ljust(pad + 1) if pad > 0 else "."
            for i in range(n):
                if col[i] == 0:
                    cx_cols[j][i] = zero
    return [[cx_cols[j][i] for j in range(n)] for i in range(n)]


def tau_output(tau: dict) -> Printed:
    """print(Matrix::bdiag(VarCorr(fit))) on both streams."""
    blocks = [(list(g["terms"]), g["covariance"]) for g in tau["groups"]]
    n = sum(len(t) for t, _ in blocks)
    cells = _sparse_cells(blocks)
    head = f'{n} x {n} sparse Matrix of class "dsCMatrix"\n'
    err = ""
    if len(blocks) == 1:  # bdiag() of one block keeps its dimnames
        rownames: list[str] | None = blocks[0][0]
        colnames = list(blocks[0][0])
        if n >= 10:  # Matrix drops the names of 10 or more columns, saying so on stderr
            quoted = ", ".join(f"‘{c}’" for c in colnames[:3])
            err = f"  [[ suppressing {n} column names {quoted} ... ]]\n"
            colnames = [""] * n
    else:
        rownames = None
        colnames = [""] * n
    return Printed(head + rf.print_matrix(cells, rownames, colnames, right=True), err)


def tau_text(tau: dict) -> str:
    """print(Matrix::bdiag(VarCorr(fit)))."""
    return tau_output(tau).out


def deparse1(lines: Sequence[str]) -> str:
    """R's deparse1() of a formula from its deparse() lines (continuation lines are indented)."""
    return lines[0] + "".join(s.lstrip(" ") for s in lines[1:]) if lines else ""


def anova_output(cmp: dict) -> Printed:
    """print(anova(m1, m2, ...)) on both streams (the ML refit note goes to stderr)."""
    models = cmp["models"]
    heading = []
    if cmp.get("data_name") is not None:
        heading.append(f"Data: {cmp['data_name']}")
    heading.append("Models:")
    heading += [f"{m['name']}: {deparse1(m.get('deparsed_formula') or [m['formula']])}" for m in models]
    rows = [
        [
            float(m["npar"]),
            _num(m["aic"]),
            _num(m["bic"]),
            _num(m["loglik"]),
            _num(m["deviance"]),
            _num(m.get("chisq")),
            _num(m.get("df")),
            _num(m.get("p_value")),
        ]
        for m in models
    ]
    colnames = ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]
    table = rf.print_coefmat(
        rows,
        [m["name"] for m in models],
        colnames,
        digits=ANOVA_DIGITS,
        has_pvalue=True,
        p_values=True,
        cs_ind=None,
        zap_ind=range(5),
        tst_ind=[5],
        na_print="",
    )
    err = "refitting model(s) with ML (instead of REML)\n" if cmp.get("refit_ml") else ""
    return Printed(rf.cat(heading, sep="\n") + table, err)


def anova_text(cmp: dict) -> str:
    """print(anova(m1, m2, ...)) without the "refitting model(s) with ML" line (stderr)."""
    return anova_output(cmp).out


def compare_text(cmp: dict) -> str:
    """`mlm compare`: anova_text(), then the proportional reduction in variance when the report has it
    (--variance-reduction)."""
    text = anova_text(cmp)
    if cmp.get("variance_reduction") is not None:
        from mlmcli.render.csvout import variance_reduction_text

        text += variance_reduction_text(cmp["variance_reduction"])
    return text
