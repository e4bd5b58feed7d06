"""broom.mixed's tidy() of a fit as R's write.csv(tidy(fit), row.names = FALSE) writes it.

One row per parameter: the fixed effects (effect "fixed", group NA), then per random-effects term
its standard deviations and correlations (effect "ran_pars": sd__x, then cor__x.y for the later
terms y, term by term, as broom.mixed orders them), and the residual SD (group "Residual", term
sd__Observation; a glmer fit has none, and Wald z statistics with their p-values). Strings are
quoted, missing values are a bare NA, numbers have R's 15 significant digits.
"""

from __future__ import annotations

from collections.abc import Sequence

COLUMNS = ["effect", "group", "term", "estimate", "std.error", "statistic", "df", "p.value"]
CI_COLUMNS = ["conf.low", "conf.high"]

Interval = tuple[float | None, float | None]


def _num(x: float | None) -> str:
    """as.character() of a double in write.csv: up to 15 significant digits, NA for missing."""
    import math

    from mlmcli.rcompat import rformat as rf

    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "NA"
    return rf.format_num([float(x)], digits=15)[0].strip()


def _str(s: str | None) -> str:
    return "NA" if s is None else '"' + s.replace('"', '""') + '"'


def ran_pars(report: dict) -> list[tuple[str, str, float | None]]:
    """(group, term, estimate) of the variance parameters in broom.mixed's order, which is also
    lme4's order of the variance parameters in confint() (sd/cor per term, then sigma)."""
    cors = {(c["group"], c["term1"], c["term2"]): c["correlation"] for c in report["random_effect_correlations"]}
    groups: dict[str, list[dict]] = {}
    for r in report["random_effects"]:
        if r["group"] != "Residual":
            groups.setdefault(r["group"], []).append(r)
    out: list[tuple[str, str, float | None]] = []
    for group, rows in groups.items():
        terms = [r["term"] for r in rows]
        for j, r in enumerate(rows):
            out.append((group, f"sd__{r['term']}", r["std_dev"]))
            for other in terms[j + 1 :]:
                out.append((group, f"cor__{r['term']}.{other}", cors.get((group, r["term"], other))))
    if "family" not in report:  # a GLMM (binomial, poisson) has no residual SD
        out.append(("Residual", "sd__Observation", report["sigma"]))
    return out


def tidy_csv(report: dict, varpar_ci: Sequence[Interval] | None = None) -> str:
    """The CSV; conf.low and conf.high when the report's fixed effects carry intervals (--ci), with
    the variance parameters' from `varpar_ci` (NA where the method gives none, as for Wald)."""
    fixed = report["fixed_effects"]
    with_ci = "confint" in report
    with_df = report.get("ddf") != "none"
    columns = COLUMNS if with_df else COLUMNS[:6]  # broom.mixed on a plain lmerMod: no df, p.value
    lines = [",".join(_str(c) for c in columns + (CI_COLUMNS if with_ci else []))]
    for r in fixed:
        cells = [_str("fixed"), "NA", _str(r["term"]), _num(r["estimate"]), _num(r["std_error"]), _num(r["t_value"])]
        if with_df:
            cells += [_num(r.get("df")), _num(r.get("p_value"))]
        if with_ci:
            cells += [_num(r.get("conf_low")), _num(r.get("conf_high"))]
        lines.append(",".join(cells))
    pars = ran_pars(report)
    cis: Sequence[Interval] = varpar_ci if varpar_ci is not None else [(None, None)] * len(pars)
    for (group, term, est), (lo, hi) in zip(pars, cis, strict=True):
        cells = [_str("ran_pars"), _str(group), _str(term), _num(est), "NA", "NA"]
        if with_df:
            cells += ["NA", "NA"]
        if with_ci:
            cells += [_num(lo), _num(hi)]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def glmer_tidy_csv(report: dict, varpar_ci: Sequence[Interval] | None = None) -> str:
    """broom.mixed's tidy() of a glmerMod: the fixed effects with Wald z statistics and their
    p-values (no df column), then the random effects' SDs and correlations, no residual row; with
    --ci, tidy(conf.int = TRUE)'s conf.low and conf.high, the variance parameters' from `varpar_ci`
    (NA where the method gives none, as for Wald)."""
    with_ci = "confint" in report
    columns = COLUMNS[:6] + ["p.value"] + (CI_COLUMNS if with_ci else [])
    lines = [",".join(_str(c) for c in columns)]
    for r in report["fixed_effects"]:
        cells = [_str("fixed"), "NA", _str(r["term"]), _num(r["estimate"]), _num(r["std_error"]), _num(r["z_value"])]
        cells.append(_num(r["p_value"]))
        if with_ci:
            cells += [_num(r.get("conf_low")), _num(r.get("conf_high"))]
        lines.append(",".join(cells))
    pars = ran_pars(report)
    cis: Sequence[Interval] = varpar_ci if varpar_ci is not None else [(None, None)] * len(pars)
    for (group, term, est), (lo, hi) in zip(pars, cis, strict=True):
        cells = [_str("ran_pars"), _str(group), _str(term), _num(est), "NA", "NA", "NA"]
        if with_ci:
            cells += [_num(lo), _num(hi)]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"
