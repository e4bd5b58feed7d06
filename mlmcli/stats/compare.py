"""Likelihood-ratio comparison of nested models, as lme4's anova(m1, m2, ...)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mlmcli.errors import DataError
from mlmcli.rcompat.distributions import chisq_upper
from mlmcli.render.jsonvalues import clean

if TYPE_CHECKING:
    from mlmcli.model import FittedModel

REFIT_MESSAGE = "refitting model(s) with ML (instead of REML)"


@dataclass
class Comparison:
    models: list[FittedModel]  # as compared (ML), ordered by npar
    names: list[str]
    refit_ml: bool


def check_comparable(models: list[FittedModel]) -> None:
    """lme4 refuses models fitted to different rows; a different response makes no comparison either."""
    n = {m.n for m in models}
    if len(n) > 1:
        raise DataError(
            "models were not all fitted to the same size of dataset "
            f"(n_obs: {', '.join(str(m.n) for m in models)}); remove rows with missing values first"
        )
    rows = models[0].design.rows
    for m in models[1:]:
        if not np.array_equal(m.design.rows, rows):
            raise DataError("models were not all fitted to the same rows of the data")
    resp = {m.design.response for m in models}
    if len(resp) > 1:
        raise DataError(f"models have different responses ({', '.join(sorted(resp))}); they cannot be compared")


def compare(models: list[FittedModel], names: list[str]) -> Comparison:
    from mlmcli.pipeline import refit

    check_comparable(models)
    refit_ml = any(m.reml for m in models)
    ml = [refit(m, reml=False) if m.reml else m for m in models]  # refitML for the REML fits
    order = sorted(range(len(ml)), key=lambda i: ml[i].npar)  # stable, as R's order()
    return Comparison(models=[ml[i] for i in order], names=[names[i] for i in order], refit_ml=refit_ml)


def compare_report(cmp: Comparison) -> dict:
    rows = []
    prev = None
    for name, m in zip(cmp.names, cmp.models, strict=True):
        chisq = df = p = None
        if prev is not None:
            chisq = 2.0 * max(0.0, m.loglik - prev.loglik)
            df = m.npar - prev.npar
            p = None if df == 0 else chisq_upper(chisq, df)
        rows.append(
            {
                "name": name,
                "formula": m.formula.text,
                "deparsed_formula": m.formula.deparse(),
                "npar": m.npar,
                "aic": m.aic,
                "bic": m.bic,
                "loglik": m.loglik,
                "deviance": -2.0 * m.loglik,
                "chisq": chisq,
                "df": df,
                "p_value": p,
            }
        )
        prev = m
    first = cmp.models[0]
    return clean(
        {
            "refit_ml": cmp.refit_ml,
            "n_obs": first.n,
            "models": rows,
            "data_name": first.data_name,
            "messages": [REFIT_MESSAGE] if cmp.refit_ml else [],
        }
    )


def variance_reduction(base: FittedModel, others: list[tuple[str, FittedModel]]) -> dict:
    """Proportional reduction of each variance component from the base model (Raudenbush & Bryk)."""

    def components(m: FittedModel) -> dict[str, float]:
        out = {"Residual": m.sigma**2}
        for vc in m.varcomps():
            for j, t in enumerate(vc.terms):
                out[f"{vc.name}/{t}"] = float(vc.covariance[j, j])
        return out

    base_c = components(base)
    result: dict = {"base": base.formula.text, "models": []}
    for name, m in others:
        c = components(m)
        red = {k: (base_c[k] - c[k]) / base_c[k] if k in c and base_c[k] > 0 else None for k in base_c}
        result["models"].append({"name": name, "formula": m.formula.text, "reduction": red})
    # the intraclass correlation of an intercept-only model: tau_00 / (tau_00 + sigma^2)
    icc = None
    vcs = base.varcomps()
    if len(vcs) == 1 and vcs[0].terms == ["(Intercept)"] and base.design.xnames == ["(Intercept)"]:
        t00 = float(vcs[0].covariance[0, 0])
        icc = t00 / (t00 + base.sigma**2)
    result["icc"] = icc if icc is None or math.isfinite(icc) else None
    return clean(result)
