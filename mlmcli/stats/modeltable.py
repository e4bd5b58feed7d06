"""Several fitted models side by side, as a table for a paper lays them out (modelsummary, texreg): each
model's fixed effects with SEs (or confidence intervals) and p-values, its variance components as
standard deviations and correlations, and its fit statistics. The renderers (render/modeltable.py)
format this report; the numbers are those of `mlm fit --format json` for each model. A glmer fit's
column has Wald z tests, no residual SD, and the RMSE on the response scale that modelsummary takes
from performance::model_performance() for a glmerMod."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlmcli.render.jsonvalues import clean
from mlmcli.report import SCHEMA_VERSION, effects_report

if TYPE_CHECKING:
    from mlmcli.glmmodel import GlmmModel
    from mlmcli.model import FittedModel

# significance stars, most significant first: the thresholds journals use (texreg's default)
STARS = ((0.001, "***"), (0.01, "**"), (0.05, "*"))


def stars(p: float | None) -> str:
    """The stars a p-value earns (none for a missing p)."""
    if p is None:
        return ""
    for threshold, mark in STARS:
        if p < threshold:
            return mark
    return ""


def model_column(model: FittedModel | GlmmModel, name: str, ci_level: float | None) -> dict:
    """One model's column: what a paper's table shows of it."""
    fixed = model.coef_table()
    if ci_level is not None:
        from mlmcli.stats.confint import fixed_effect_intervals

        for row, (lo, hi) in zip(fixed, fixed_effect_intervals(model, "wald", ci_level), strict=True):
            row["conf_low"], row["conf_high"] = lo, hi
    sds = []
    cors = []
    for vc in model.varcomps():
        sd = vc.std_dev
        C = vc.correlation
        for j, term in enumerate(vc.terms):
            sds.append({"group": vc.name, "term": term, "std_dev": sd[j]})
        for a in range(len(vc.terms)):
            for b in range(a + 1, len(vc.terms)):
                cors.append({"group": vc.name, "term1": vc.terms[a], "term2": vc.terms[b], "correlation": C[b, a]})
    effects = effects_report(model)
    fam = getattr(model, "family", None)  # a glmer fit's; an lmer fit has none
    glmm = fam is not None
    column = {
        "name": name,
        "formula": model.formula.text,
        "method": model.method,
        "family": fam.name if fam is not None else "gaussian",
        "link": fam.link if fam is not None else "identity",
        "fixed_effects": [
            # a glmer fit's tests are Wald z tests: no df
            {"df": None, **{k: r[k] for k in FIXED_KEYS if k in r}}
            for r in fixed
        ],
        "random_effects": sds,
        "random_effect_correlations": cors,
        "residual_sd": None if glmm else model.sigma,
        "n_obs": model.n,
        "groups": model.groups(),
        "aic": model.aic,
        "bic": model.bic,
        "loglik": model.loglik,
        "icc": effects["icc"],
        "r2": effects["r2"],
        # modelsummary's RMSE of a glmerMod (performance::rmse): of the response residuals, y - mu
        "rmse": response_rmse(model) if glmm else None,  # type: ignore[arg-type]
        "warnings": list(dict.fromkeys(model.warnings)),
        "effects_warnings": effects["effects_warnings"],
    }
    return column


FIXED_KEYS = ("term", "estimate", "std_error", "df", "p_value", "conf_low", "conf_high")


def response_rmse(model: GlmmModel) -> float:
    """performance::performance_rmse(): sqrt(mean(residuals(fit, type = "response")^2)), the
    residuals on the response's scale (proportions for binomial counts), unweighted."""
    r = model.problem.response.y - model.fitted
    return float(np.sqrt(np.mean(r * r)))


def table_report(models: list[FittedModel | GlmmModel], names: list[str], ci_level: float | None = None) -> dict:
    """`mlm table`: the models' columns, the star thresholds and what the parentheses hold."""
    return clean(
        {
            "schema_version": SCHEMA_VERSION,
            "data_name": models[0].data_name,
            "statistic": "conf_int" if ci_level is not None else "std_error",
            "ci": {"method": "wald", "level": ci_level} if ci_level is not None else None,
            "stars": [{"symbol": mark, "p_below": threshold} for threshold, mark in STARS],
            "models": [model_column(m, n, ci_level) for m, n in zip(models, names, strict=True)],
        }
    )
