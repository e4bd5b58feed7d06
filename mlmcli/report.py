"""The JSON-shaped reports of a fitted model (../schema contracts), which every renderer reads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlmcli.render.jsonvalues import clean

if TYPE_CHECKING:
    from mlmcli.glmmodel import GlmmModel
    from mlmcli.model import FittedModel

# version of the JSON contracts (mlmcli/schemas/): raised when a key changes meaning or goes away
SCHEMA_VERSION = 1


def fit_report(model: FittedModel) -> dict:
    vcs = model.varcomps()
    s2 = model.sigma**2
    random_effects, correlations = _random_effect_rows(model)
    random_effects.append({"group": "Residual", "term": None, "variance": s2, "std_dev": model.sigma})
    q = model.scaled_residual_quantiles()
    opt = model.optimum
    report = {
        "schema_version": SCHEMA_VERSION,
        "formula": model.formula.text,
        "weights": model.design.args.weights,
        "offset": model.design.args.offset,
        "method": model.method,
        "n_obs": model.n,
        "groups": model.groups(),
        "criterion": model.criterion,
        "loglik": model.loglik,
        "aic": model.aic,
        "bic": model.bic,
        "npar": model.npar,
        "sigma": model.sigma,
        "theta": model.theta,
        "fixed_effects": model.coef_table(),
        "random_effects": random_effects,
        "random_effect_correlations": correlations,
        "tau": {vc.name: {"terms": vc.terms, "covariance": vc.covariance} for vc in vcs},
        "scaled_residuals": dict(zip(("min", "q1", "median", "q3", "max"), q, strict=True)),
        "fixed_effect_correlation": {"terms": list(model.design.xnames), "matrix": model.fixed_effect_correlation()},
        "singular": model.singular,
        "converged": model.converged,
        "warnings": list(dict.fromkeys(model.warnings)),
        # beyond the schema: what the printed summary needs
        "data_name": model.data_name,
        "deparsed_formula": model.formula.deparse(),
        "ddf": model.ddf,
        "df_resid": model.df_resid,
        "optimizer": "nloptwrap",
        "optimizer_message": opt.status,
        "conv_code": opt.conv_code,
        "check_code": opt.check_code,
        "conv_messages": list(opt.messages),
        "evaluations": opt.evaluations,
        "optimizer_path": opt.path,
    }
    if model.ddf == "Satterthwaite":
        report["lmerTest_messages"] = list(model.satterthwaite().messages)
    report.update(effects_report(model))
    return clean(report)


def effects_report(model: FittedModel | GlmmModel) -> dict:
    """ICC and Nakagawa's R² (performance::icc, performance::r2_nakagawa) with their variance parts:
    for a GLMM the residual part is the family's latent variance plus any observation-level one."""
    if getattr(model, "family", None) is not None:
        from mlmcli.glmm_effects import glmm_variance_components

        e = glmm_variance_components(model)
    else:
        from mlmcli.effects import variance_components

        e = variance_components(model)
    return {
        "icc": e.icc,
        "r2": e.r2,
        "variance_parts": {"fixed": e.var_fixed, "random": e.var_random, "residual": e.var_residual},
        "effects_warnings": e.warnings,
    }


def tau_report(model: FittedModel) -> dict:
    groups = []
    for vc in model.varcomps():
        groups.append(
            {
                "group": vc.name,
                "factor": vc.factor,
                "terms": vc.terms,
                "covariance": vc.covariance,
                "correlation": vc.correlation,
            }
        )
    return clean(
        {
            "schema_version": SCHEMA_VERSION,
            "formula": model.formula.text,
            "groups": groups,
            # a GLMM (binomial, poisson) has no residual variance
            "residual_variance": None if getattr(model, "family", None) is not None else model.sigma**2,
            "data_name": model.data_name,
        }
    )


def ranef_report(model: FittedModel, with_coef: bool = False) -> dict:
    """Conditional modes per grouping factor, terms of one factor together (lme4's ranef order)."""
    modes = model.conditional_modes()
    sds = model.conditional_sd()
    by_factor: dict[str, list[int]] = {}
    for i, t in enumerate(model.design.terms):
        by_factor.setdefault(t.group, []).append(i)
    coef = coef_table(model) if with_coef else None
    rows = []
    for factor, idx in by_factor.items():
        levels = model.design.terms[idx[0]].levels
        for lev_i, level in enumerate(levels):
            for i in idx:
                term = model.design.terms[i]
                for j, name in enumerate(term.cnames):
                    row = {
                        "group": factor,
                        "level": str(level),
                        "term": name,
                        "value": modes[i][lev_i, j],
                        "cond_sd": sds[i][lev_i, j],
                    }
                    if coef is not None:
                        row["coef"] = coef[factor][str(level)][name]
                    rows.append(row)
    report = {
        "schema_version": SCHEMA_VERSION,
        "formula": model.formula.text,
        "ranef": rows,
        "data_name": model.data_name,
    }
    if coef is not None:
        report["coef"] = coef
    return clean(report)


def coef_table(model: FittedModel) -> dict[str, dict[str, dict[str, float]]]:
    """lme4's coef(fit): per factor and level, every fixed effect plus that level's random effect."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    modes = model.conditional_modes()
    for i, term in enumerate(model.design.terms):
        per_level = out.setdefault(term.group, {})
        for lev_i, level in enumerate(term.levels):
            cell = per_level.setdefault(str(level), dict(zip(model.design.xnames, map(float, model.beta), strict=True)))
            for j, name in enumerate(term.cnames):
                cell[name] = cell.get(name, 0.0) + float(modes[i][lev_i, j])
    return out


def glmer_fit_report(model: GlmmModel, effects: bool = True) -> dict:
    """The JSON of a glmer fit: the lmer fit's shape where it applies (no sigma, no residual row),
    z tests, and the family, link, nAGQ and deviance (-2 logLik) summary(glmer) prints; with
    `effects`, the ICC and R² (a Poisson fit's refits its null model: lme4's summary needs neither)."""
    random_effects, correlations = _random_effect_rows(model)
    q = model.scaled_residual_quantiles()
    opt = model.optimum
    report = {
        "schema_version": SCHEMA_VERSION,
        "formula": model.formula.text,
        "family": model.family.name,
        "link": model.family.link,
        "method": model.method,
        "nagq": model.nagq,
        "weights": model.design.args.weights,
        "offset": model.design.args.offset,
        "n_obs": model.n,
        "groups": model.groups(),
        "loglik": model.loglik,
        "aic": model.aic,
        "bic": model.bic,
        "deviance": model.deviance,
        "df_resid": model.df_resid,
        "npar": model.npar,
        "theta": model.theta,
        "fixed_effects": model.coef_table(),
        "random_effects": random_effects,
        "random_effect_correlations": correlations,
        "scaled_residuals": dict(zip(("min", "q1", "median", "q3", "max"), q, strict=True)),
        "fixed_effect_correlation": {"terms": list(model.design.xnames), "matrix": model.fixed_effect_correlation()},
        "singular": model.singular,
        "converged": model.converged,
        "warnings": list(dict.fromkeys(model.warnings)),
        "data_name": model.data_name,
        "deparsed_formula": model.formula.deparse(),
        # lme4's second stage runs Nelder-Mead, nAGQ = 0 only BOBYQA
        "optimizer": "bobyqa" if model.nagq == 0 else "Nelder_Mead",
        "conv_code": opt.conv_code,
        "check_code": opt.check_code,
        "conv_messages": list(opt.messages),
        "evaluations": opt.evaluations,
    }
    if effects:
        report.update(effects_report(model))
    return clean(report)


def _random_effect_rows(model: FittedModel | GlmmModel) -> tuple[list[dict], list[dict]]:
    """VarCorr as rows (group, term, variance, std_dev) and the correlations within each group."""
    rows, correlations = [], []
    for vc in model.varcomps():
        sd = vc.std_dev
        for j, term in enumerate(vc.terms):
            rows.append({"group": vc.name, "term": term, "variance": vc.covariance[j, j], "std_dev": sd[j]})
        C = vc.correlation
        for a in range(len(vc.terms)):
            for b in range(a + 1, len(vc.terms)):
                correlations.append(
                    {"group": vc.name, "term1": vc.terms[a], "term2": vc.terms[b], "correlation": C[b, a]}
                )
    return rows, correlations
