"""Comparison of our reports with lme4 reference reports, with the project's tolerances."""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

SUITE = Path(__file__).parent / "fixtures" / "lme4"

# lme4 stops where BOBYQA's trust region has shrunk, up to ~1e-6 above the criterion's minimum; we
# go on to the minimum (engine/polish.py).  Numbers are checked twice: ours at lme4's theta, with
# tight tolerances (our arithmetic against lme4's at the same point), and ours at our optimum,
# with the tolerances below, which cover what lme4's early stop moves (theta up to 1e-4 over
# this suite, a 4th-5th digit of a variance on a flat optimum).
CRIT_NOT_WORSE_REL = 1e-12  # ours may exceed lme4's criterion by the criterion's rounding only
CRIT_SAME_REL = 1e-8  # where lme4 converged, its criterion is this close to ours
AT_THETA_REL = 1e-6  # at lme4's theta: estimates, SEs, variances, df relative to lme4's
BETA_SE_FRAC = 1e-3
SE_REL = 1e-3
VAR_REL = 1e-3
CORR_ABS = 1e-3
DF_REL = 2e-2
P_ABS, P_REL = 1e-4, 2e-2
LL_ABS = 1e-3
RANEF_SD_FRAC = 1e-3
COND_SD_REL = 1e-3  # the issue asks lme4 agreement to 1e-3 relative
SCALED_RESID_ABS = 1e-2
CMP_ABS = 1e-2
CMP_P_ABS = 1e-3


@lru_cache
def cases() -> list[dict]:
    return json.loads((SUITE / "cases.json").read_text())["cases"]


def fit_cases(big: bool = False) -> list[dict]:
    return [c for c in cases() if c["kind"] == "fit" and bool(c.get("big")) == big]


def compare_cases() -> list[dict]:
    return [c for c in cases() if c["kind"] == "compare"]


# Cases where lmerTest's Satterthwaite df are a numerical artefact (README: numDeriv's absolute
# step 1e-4 against a sigma of 2e-7), mapped to the same data on another scale, whose df and
# p-values are the exact ones: both are free of the response's scale.
DF_ARTEFACTS = {"scaled_tiny_reml": "scaled_huge_reml"}


# Suite fits on which lme4 1.1-31 stops short of the optimum without a convergence warning, with
# the optimum R reaches there: lmer(..., control = lmerControl(optimizer = "Nelder_Mead")) and
# lmer(..., start = list(theta = ours)) both end at it.  twogroups_sing_reml: lme4 ends at the
# boundary (theta_g2 = 2.7e-5, "singular") at 1616.9154; the optimum is interior at 1616.7608.
LME4_STOPS_SHORT = {"twogroups_sing_reml": 1616.7608}


def check_optimum(case_id: str, ours: float, ref: dict) -> Mismatches:
    """Our criterion is never above lme4's; where lme4 converged, it is lme4's optimum."""
    m = Mismatches()
    theirs = ref["criterion"]
    if ours - theirs > max(1e-9, CRIT_NOT_WORSE_REL * abs(theirs)):
        m.append(f"criterion: ours={ours!r} is above lme4's {theirs!r}")
    best = LME4_STOPS_SHORT.get(case_id)
    if best is not None:
        m.close("criterion (the optimum lme4 misses)", ours, best, 1e-4)
    elif theirs - ours > CRIT_SAME_REL * abs(theirs):
        m.append(f"criterion: lme4's {theirs!r} is above ours {ours!r} although lme4 converged")
    return m


def _formula_key(data: str, formula: str, reml: bool) -> tuple:
    """The model, however its formula is written (ses*public or 1 + ses + public + ses:public)."""
    from mlmcli.formula import parse_formula

    f = parse_formula(formula)
    return (
        Path(data).name,
        bool(reml),
        f.response,
        f.fixed,
        f.offsets,
        tuple((t.lhs, t.group_vars, t.group) for t in f.random),
    )


@lru_cache
def _lme4_thetas() -> dict[tuple, list[float]]:
    """lme4's theta of every unweighted fit some fixture set records, by (data file, formula, REML)."""
    out: dict[tuple, list[float]] = {}
    for c in fit_cases() + fit_cases(big=True):
        out[_formula_key(c["data"], c["formula"], c["reml"])] = reference(c["id"])["fit"]["theta"]
    fixtures = SUITE.parent
    for folder in ("kenward_roger", "inference"):
        for path in sorted((fixtures / folder).glob("*.json")):
            ref = json.loads(path.read_text())
            case = ref.get("case") or {}
            if "theta" in ref and "formula" in case:
                out.setdefault(_formula_key(case["data"], case["formula"], case["reml"]), ref["theta"])
    return out


def lme4_theta(data: str, formula: str, reml: bool) -> list[float]:
    """lme4's theta for this fit, from whichever fixture set recorded it: the R scripts of the
    other sets ran on the same machine as the suite's, so the same fit ended at the same theta."""
    theta = _lme4_thetas().get(_formula_key(data, formula, reml))
    if theta is None:
        raise KeyError(f"no fixture records lme4's theta for {formula} on {Path(data).name}")
    return theta


def at_lme4(model, ref: dict):
    """Our fit evaluated at lme4's theta for a fixture `ref` ({"case": {data, formula, reml}, and
    "theta" where the fixture recorded it}): R stops up to ~1e-6 above the criterion's minimum,
    where our optimizer goes on, so R's numbers are ours there, to rounding."""
    from mlmcli.model import at_theta

    case = ref["case"]
    theta = ref.get("theta") or lme4_theta(case["data"], case["formula"], case["reml"])
    return at_theta(model, theta)


def reference(case_id: str) -> dict:
    return json.loads((SUITE / f"{case_id}.json").read_text())


def reference_exact_df(case_id: str) -> dict:
    """The reference, with exact df and p-values where lmerTest's are an artefact."""
    ref = reference(case_id)
    twin = DF_ARTEFACTS.get(case_id)
    if twin:
        for row, good in zip(ref["fit"]["fixed_effects"], reference(twin)["fit"]["fixed_effects"], strict=True):
            row["df"], row["p_value"] = good["df"], good["p_value"]
    return ref


class Mismatches(list):
    def close(self, what: str, ours, ref, tol: float) -> None:
        if ref is None:
            if ours is not None:
                self.append(f"{what}: ours={ours!r} ref=None")
            return
        if ours is None or not math.isfinite(ours) or abs(ours - ref) > tol:
            self.append(f"{what}: ours={ours!r} ref={ref!r} tol={tol:g}")

    def rel(self, what: str, ours, ref, rel: float, floor: float = 0.0) -> None:
        self.close(what, ours, ref, max(rel * abs(ref), floor) if ref is not None else 0.0)

    def equal(self, what: str, ours, ref) -> None:
        if ours != ref:
            self.append(f"{what}: ours={ours!r} ref={ref!r}")

    def pvalue(self, what: str, ours, ref) -> None:
        if ref is None or ours is None:
            if ours is not ref:
                self.append(f"{what}: ours={ours!r} ref={ref!r}")
            return
        d = abs(ours - ref)
        if not (d <= P_ABS or d <= P_REL * abs(ref)):
            self.append(f"{what}: ours={ours!r} ref={ref!r}")


def check_fit(ours: dict, ref: dict, at_theta: bool = False) -> Mismatches:
    """`at_theta`: ours is evaluated at lme4's theta, so every number is lme4's to rounding, at
    singular fits too; else ours is at our optimum, checked with the suite's tolerances."""
    if at_theta:
        return _check_fit_at_theta(ours, ref)
    m = Mismatches()
    m.equal("method", ours["method"], ref["method"])
    m.equal("n_obs", ours["n_obs"], ref["n_obs"])
    m.equal("groups", ours["groups"], ref["groups"])
    m.equal("npar", ours["npar"], ref["npar"])
    m.equal("len(theta)", len(ours["theta"]), len(ref["theta"]))
    m.equal("singular", ours["singular"], ref["singular"])
    _fixed_effects(m, ours, ref, BETA_SE_FRAC, SE_REL)
    m.rel("sigma", ours["sigma"], ref["sigma"], VAR_REL)
    for k in ("loglik", "aic", "bic"):
        m.close(k, ours[k], ref[k], LL_ABS)
    floor = 1e-8 * ref["sigma"] ** 2
    re_ref = {(r["group"], r["term"]): r for r in ref["random_effects"]}
    re_ours = {(r["group"], r["term"]): r for r in ours["random_effects"]}
    m.equal("random effect rows", list(re_ours), list(re_ref))
    for k, r in re_ref.items():
        o = re_ours.get(k)
        if o is not None:
            m.rel(f"{k}.variance", o["variance"], r["variance"], VAR_REL, floor)
    rc_ours = {(r["group"], r["term1"], r["term2"]): r["correlation"] for r in ours["random_effect_correlations"]}
    for r in ref["random_effect_correlations"]:
        k = (r["group"], r["term1"], r["term2"])
        m.close(f"corr{k}", rc_ours.get(k), r["correlation"], CORR_ABS)
    for q in ("min", "q1", "median", "q3", "max"):
        m.close(f"scaled_residuals.{q}", ours["scaled_residuals"][q], ref["scaled_residuals"][q], SCALED_RESID_ABS)
    fc_o, fc_r = ours["fixed_effect_correlation"], ref["fixed_effect_correlation"]
    m.equal("fixed_effect_correlation.terms", fc_o["terms"], fc_r["terms"])
    for i, row in enumerate(fc_r["matrix"]):
        for j, v in enumerate(row):
            m.close(f"fecorr[{i},{j}]", fc_o["matrix"][i][j], v, CORR_ABS)
    return m


def _fixed_effects(m: Mismatches, ours: dict, ref: dict, se_frac: float, se_rel: float) -> None:
    """Estimates to `se_frac` of their SE, SEs to `se_rel`; df and p-values to lmerTest's own
    rounding (numDeriv's Hessian of the deviance)."""
    fe_ref = {r["term"]: r for r in ref["fixed_effects"]}
    fe_ours = {r["term"]: r for r in ours["fixed_effects"]}
    m.equal("fixed effect terms", list(fe_ours), list(fe_ref))
    for term, r in fe_ref.items():
        o = fe_ours.get(term)
        if o is None:
            continue
        m.close(f"{term}.estimate", o["estimate"], r["estimate"], se_frac * r["std_error"])
        m.rel(f"{term}.std_error", o["std_error"], r["std_error"], se_rel)
        m.rel(f"{term}.df", o["df"], r["df"], DF_REL)
        m.pvalue(f"{term}.p_value", o["p_value"], r["p_value"])


def _check_fit_at_theta(ours: dict, ref: dict) -> Mismatches:
    """Every number of summary() at lme4's own theta, singular fits included."""
    m = Mismatches()
    rel = AT_THETA_REL
    for k in ("method", "n_obs", "groups", "npar", "singular", "df_resid"):
        m.equal(k, ours[k], ref[k])
    for k in ("criterion", "loglik", "aic", "bic", "sigma"):
        m.rel(k, ours[k], ref[k], 1e-9 if k != "sigma" else rel)
    _fixed_effects(m, ours, ref, rel, rel)
    floor = 1e-10 * ref["sigma"] ** 2
    re_ref = {(r["group"], r["term"]): r for r in ref["random_effects"]}
    re_ours = {(r["group"], r["term"]): r for r in ours["random_effects"]}
    m.equal("random effect rows", list(re_ours), list(re_ref))
    for k, r in re_ref.items():
        if k in re_ours:
            m.rel(f"{k}.variance", re_ours[k]["variance"], r["variance"], rel, floor)
    rc_ours = {(r["group"], r["term1"], r["term2"]): r["correlation"] for r in ours["random_effect_correlations"]}
    for r in ref["random_effect_correlations"]:
        k = (r["group"], r["term1"], r["term2"])
        o, want = rc_ours.get(k), r["correlation"]
        if want is None or o is None:
            m.equal(f"corr{k}", o is None, want is None)
        else:
            m.close(f"corr{k}", o, want, 1e-6)
    for q in ("min", "q1", "median", "q3", "max"):
        m.close(f"scaled_residuals.{q}", ours["scaled_residuals"][q], ref["scaled_residuals"][q], 1e-6)
    for i, row in enumerate(ref["fixed_effect_correlation"]["matrix"]):
        for j, v in enumerate(row):
            m.close(f"fecorr[{i},{j}]", ours["fixed_effect_correlation"]["matrix"][i][j], v, 1e-6)
    return m


def check_ranef(ours: dict, ref: dict, ref_fit: dict, at_theta: bool = False) -> Mismatches:
    m = Mismatches()
    sd = {}
    for r in ref_fit["random_effects"]:
        sd[(r["group"].split(".")[0] if r["group"] not in ref_fit["groups"] else r["group"], r["term"])] = r["std_dev"]
    rows = {(r["group"], r["level"], r["term"]): r for r in ours["ranef"]}
    m.equal("ranef rows", len(rows), len(ref["ranef"]))
    for r in ref["ranef"]:
        k = (r["group"], r["level"], r["term"])
        o = rows.get(k)
        if o is None:
            m.append(f"ranef{k}: missing")
            continue
        s = sd.get((r["group"], r["term"]), 1.0)
        frac, rel = (1e-6, 1e-6) if at_theta else (RANEF_SD_FRAC, COND_SD_REL)
        m.close(f"ranef{k}.value", o["value"], r["value"], frac * (s + 1e-8) + 1e-12)
        m.rel(f"ranef{k}.cond_sd", o["cond_sd"], r["cond_sd"], rel, 1e-12)
    return m


def check_compare(ours: dict, ref: dict) -> Mismatches:
    m = Mismatches()
    m.equal("refit_ml", ours["refit_ml"], ref["refit_ml"])
    m.equal("names", [r["name"] for r in ours["models"]], [r["name"] for r in ref["models"]])
    for o, r in zip(ours["models"], ref["models"], strict=True):
        m.equal(f"{r['name']}.npar", o["npar"], r["npar"])
        m.equal(f"{r['name']}.df", o["df"], r["df"])
        for k in ("aic", "bic", "loglik", "deviance", "chisq"):
            m.close(f"{r['name']}.{k}", o[k], r[k], CMP_ABS)
        m.close(f"{r['name']}.p_value", o["p_value"], r["p_value"], CMP_P_ABS)
    return m
