"""lme4 1.1-31's print(summary(glmer_fit)), byte for byte from mlm's GLMM fit JSON.

The layout is summary.merMod's for a glmerMod: methTitle's heading (Laplace or adaptive
Gauss-Hermite quadrature), the family line, the AIC table, the scaled (Pearson) residuals, the
random effects without a residual row, and the fixed effects with Wald z tests.
"""

from __future__ import annotations

from mlmcli.rcompat import rformat as rf
from mlmcli.render.text import (
    SUMMARY_DIGITS,
    Printed,
    _aic_table,
    _call_lines,
    _groups_line,
    _num,
    _residuals,
    _title,
    fixed_and_messages,
    format_vc,
)


def _method_title(fit: dict) -> str:
    """lme4's methTitle() for a GLMM."""
    if int(fit["nagq"]) == 1:
        how = "Laplace Approximation"
    else:
        how = f"Adaptive Gauss-Hermite Quadrature, nAGQ = {int(fit['nagq'])}"
    return f"Generalized linear mixed model fit by maximum likelihood ({how})"


def _family_line(fit: dict) -> str:
    """.prt.family."""
    return rf.cat(" Family:", fit["family"], f" ( {fit['link']} )", fill=True)


def _coef_table(fit: dict, digits: int) -> str:
    fe = fit["fixed_effects"]
    rows = [[_num(f["estimate"]), _num(f["std_error"]), _num(f["z_value"]), _num(f["p_value"])] for f in fe]
    names = [f["term"] for f in fe]
    return rf.print_coefmat(rows, names, ["Estimate", "Std. Error", "z value", "Pr(>|z|)"], digits=digits)


def glmer_summary_output(fit: dict, name: str = "summary(fit)") -> Printed:
    """print(summary(fit)) of a glmer fit, on both streams."""
    digits = SUMMARY_DIGITS
    shown = dict(fit, method="ML", criterion=fit["deviance"])
    out = [
        _title(_method_title(fit), "glmerMod"),
        _family_line(fit),
        _call_lines(fit),
        "\n",
        _aic_table(shown),
        "\n",
        _residuals(fit, digits),
        "Random effects:\n",
        format_vc(fit, digits),
        _groups_line(fit),
    ]
    return fixed_and_messages(fit, out, _coef_table(fit, digits), name)
