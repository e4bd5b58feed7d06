"""Several fitted models side by side, as a table for a paper lays them out (modelsummary, texreg): each
model's fixed effects with SEs (or confidence intervals) and p-values, its variance components as
standard deviations and correlations (or variances and covariances), and its fit statistics, with a
likelihood-ratio test against the model before it (lme4's anova(previous, this), as `mlm compare`).
The renderers (render/modeltable.py) format this report; the numbers are those of
`mlm fit --format json` for each model. A glmer fit's column has Wald z tests, no residual SD, and
the RMSE on the response scale that modelsummary takes
from performance::model_performance() for a glmerMod."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlmcli.errors import MlmError
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
            sds.append({"group": vc.name, "term": term, "std_dev": sd[j], "variance": vc.covariance[j, j]})
        for a in range(len(vc.terms)):
            for b in range(a + 1, len(vc.terms)):
                cors.append(
                    {
                        "group": vc.name,
                        "term1": vc.terms[a],
                        "term2": vc.terms[b],
                        "correlation": C[b, a],
                        "covariance": vc.covariance[b, a],
                    }
                )
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
        "residual_variance": None if glmm else model.sigma**2,
        "n_obs": model.n,
        "groups": model.groups(),
        "aic": model.aic,
        "bic": model.bic,
        "loglik": model.loglik,
        "icc": effects["icc"],
        "r2": effects["r2"],
        # modelsummary's RMSE of a glmerMod (performance::rmse): of the response residuals, y - mu
        "rmse": response_rmse(model) if glmm else None,  # type: ignore[arg-type]
        "lr_test": None,
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


# --gof's keys: the goodness-of-fit rows, named as the CSV's statistic column names them
GOF_KEYS = ("n_obs", "groups", "aic", "bic", "loglik", "icc", "r2_marginal", "r2_conditional", "rmse")
LR_KEYS = ("lr_chisq", "lr_df", "lr_p")
# and the names modelsummary's gof_map gives them
GOF_ALIASES = {"nobs": "n_obs", "logLik": "loglik", "r2.marginal": "r2_marginal", "r2.conditional": "r2_conditional"}


def gof_keys(given: str | None, lr: bool) -> list[str] | None:
    """--gof: the rows asked for, in their order (None: the default rows); `none` for no rows. The
    likelihood-ratio rows (--lr) go last unless --gof places them. modelsummary's names (nobs, logLik,
    r2.marginal, r2.conditional) are taken for ours."""
    if given is None:
        return None
    keys = [GOF_ALIASES.get(k.strip(), k.strip()) for k in given.split(",") if k.strip()]
    if keys == ["none"]:
        keys = []
    known = GOF_KEYS + LR_KEYS
    bad = [k for k in keys if k not in known]
    if bad or not keys and given.strip() != "none":
        raise MlmError(f"--gof {bad[0] if bad else given!r}: use none or keys of {', '.join(known)} (comma-separated)")
    if len(set(keys)) != len(keys):
        raise MlmError(f"--gof names a row twice: {given}")
    lr_named = [k for k in keys if k in LR_KEYS]
    if lr_named and not lr:
        raise MlmError(f"--gof {lr_named[0]}: the likelihood-ratio rows need --lr")
    if lr and not lr_named:
        keys += list(LR_KEYS)
    return keys


def parse_renames(pairs: list[str] | None, known: set[str]) -> dict[str, str]:
    """--rename OLD=NEW, each given once: a term (or grouping factor) and its new name. A term may
    hold "=" (I(x == 1)TRUE): the pair splits at the "=" whose left side is a known name."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        cuts = [i for i, c in enumerate(pair) if c == "="]
        if not cuts:
            raise MlmError(f"--rename {pair!r}: write OLD=NEW")
        cut = next((i for i in cuts if pair[:i] in known), cuts[0])
        old, new = pair[:cut], pair[cut + 1 :]
        if old not in known:
            raise MlmError(f"--rename {old!r}: no model has such a term or grouping factor")
        if not new.strip():
            raise MlmError(f"--rename {pair!r}: the new name is empty")
        if old in out:
            raise MlmError(f"--rename {old!r} is given twice")
        out[old] = new
    return out


def _names_of(column: dict) -> set[str]:
    terms = {r["term"] for r in column["fixed_effects"]} | {r["term"] for r in column["random_effects"]}
    return terms | {r["group"] for r in column["random_effects"]} | set(column["groups"])


def _rename(column: dict, names: dict[str, str]) -> None:
    """The column's terms and grouping factors renamed (modelsummary's coef_rename), in place."""

    def new(x: str) -> str:
        return names.get(x, x)

    for r in column["fixed_effects"]:
        r["term"] = new(r["term"])
    for r in column["random_effects"]:
        r["term"], r["group"] = new(r["term"]), new(r["group"])
    for r in column["random_effect_correlations"]:
        r["term1"], r["term2"], r["group"] = new(r["term1"]), new(r["term2"]), new(r["group"])
    column["groups"] = {new(g): n for g, n in column["groups"].items()}
    for what, labels in (
        ("terms", [r["term"] for r in column["fixed_effects"]]),
        ("grouping factors", list(column["groups"])),
    ):
        twice = [x for x in dict.fromkeys(labels) if labels.count(x) > 1]
        if twice:
            raise MlmError(f"--rename gives two {what} of {column['name']} the name {twice[0]!r}")


def lr_tests(models: list[FittedModel | GlmmModel], names: list[str]) -> list[dict | None]:
    """Each model after the first against the one before it: the chi-square, df and p of
    anova(previous, this) as `mlm compare` computes them (REML fits refitted by ML, as lme4's
    anova refits them)."""
    from mlmcli.stats.compare import compare, compare_report

    out: list[dict | None] = [None]
    for i in range(1, len(models)):
        before, this = models[i - 1], models[i]
        fam_b, fam_t = (getattr(m, "family", None) for m in (before, this))
        kinds = [(f.name, f.link) if f is not None else ("gaussian", "identity") for f in (fam_b, fam_t)]
        if kinds[0] != kinds[1]:
            raise MlmError(
                f"--lr: {names[i]} ({'/'.join(kinds[1])}) and {names[i - 1]} ({'/'.join(kinds[0])}) "
                "are not of one family and link: a likelihood-ratio test needs nested models"
            )
        report = compare_report(compare([before, this], [names[i - 1], names[i]]))  # type: ignore[list-item]
        row = next(r for r in report["models"] if r["chisq"] is not None)
        out.append(
            {
                "against": names[i - 1],
                "chisq": row["chisq"],
                "df": row["df"],
                "p_value": row["p_value"],
                "refit_ml": report["refit_ml"],
            }
        )
    return out


def table_report(
    models: list[FittedModel | GlmmModel],
    names: list[str],
    ci_level: float | None = None,
    *,
    rename: list[str] | None = None,
    gof: str | None = None,
    variance: bool = False,
    lr: bool = False,
) -> dict:
    """`mlm table`: the models' columns, the star thresholds and what the parentheses hold; --rename's
    new names, --gof's rows, --variance's scale of the random effects, --lr's tests."""
    gof_rows = gof_keys(gof, lr)
    columns = [model_column(m, n, ci_level) for m, n in zip(models, names, strict=True)]
    renames = parse_renames(rename, set().union(*(_names_of(c) for c in columns)))
    for c in columns:
        _rename(c, renames)
    if lr:
        if len(models) < 2:
            raise MlmError("--lr needs two models or more: each is tested against the one before it")
        for c, test in zip(columns, lr_tests(models, names), strict=True):
            c["lr_test"] = test
    return clean(
        {
            "schema_version": SCHEMA_VERSION,
            "data_name": models[0].data_name,
            "statistic": "conf_int" if ci_level is not None else "std_error",
            "ci": {"method": "wald", "level": ci_level} if ci_level is not None else None,
            "stars": [{"symbol": mark, "p_below": threshold} for threshold, mark in STARS],
            "random_scale": "variance" if variance else "std_dev",
            "gof": gof_rows,
            "rename": renames,
            "models": columns,
        }
    )
