"""Confidence intervals for a fitted model, as lme4's confint(): Wald, likelihood profile, bootstrap.

Wald: fixed effects +- z SE; the variance parameters get NA.  Profile: the ML deviance profiled
(engine/profile.py) on the sd/cor scale, then the fixed effects; a REML fit is refitted by ML
first, as lme4's profile does.  Boot: percentile intervals of a parametric bootstrap of the fit as
it is (REML or ML), bootstrap.py.  Every method's rows carry the names of confint(fit, oldNames =
FALSE) (sd_x|g, cor_x.y|g, sigma) and the names confint(fit) prints (.sig01, ..., .sigma).

A glmer fit (binomial, poisson) has no sigma: its rows are the sd/cor then the fixed effects, as
lme4's profnames(useSc = FALSE) names them; its profile is glmm_profile.py's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING

from mlmcli.errors import MlmError

if TYPE_CHECKING:
    from mlmcli.glmmodel import GlmmModel
    from mlmcli.model import FittedModel

    Model = FittedModel | GlmmModel

METHODS = ("wald", "profile", "boot")
NSIM = 1000


def is_glmm(model: Model) -> bool:
    """A glmer fit: no residual scale (lme4's useSc is FALSE for binomial and poisson)."""
    from mlmcli.glmmodel import GlmmModel

    return isinstance(model, GlmmModel)


def varpar_names(model: Model, old: bool) -> list[str]:
    """lme4's profnames(): sd_x|g, cor_x.y|g, ..., sigma (or .sig01, ..., .sigma when `old`); no
    sigma for a glmer fit."""
    names = []
    for term in model.design.terms:
        cn = list(term.cnames)
        k = len(cn)
        for j in range(k):
            for i in range(j, k):
                names.append(f"sd_{cn[i]}|{term.group}" if i == j else f"cor_{cn[i]}.{cn[j]}|{term.group}")
    sigma = [] if is_glmm(model) else [".sigma" if old else "sigma"]
    if old:
        return [f".sig{i + 1:02d}" for i in range(len(names))] + sigma
    return names + sigma


def readable_names(model: Model) -> list[str]:
    """The variance parameters as a picture labels them, in varpar_names()'s order: sd((Intercept)) | g,
    cor(x, (Intercept)) | g, sigma."""
    names = []
    for term in model.design.terms:
        cn = list(term.cnames)
        for j in range(len(cn)):
            for i in range(j, len(cn)):
                what = f"sd({cn[i]})" if i == j else f"cor({cn[i]}, {cn[j]})"
                names.append(f"{what} | {term.group}")
    return names + ([] if is_glmm(model) else ["sigma"])


def percent_labels(level: float) -> list[str]:
    """lme4's format.perc(): "2.5 %", "97.5 %"."""
    from mlmcli.rcompat import rformat as rf

    a = (1.0 - level) / 2.0
    return [s.strip() + " %" for s in rf.format_num([100 * a, 100 * (1 - a)], digits=3)]


def check_level(level: float) -> None:
    if not (0.0 < level < 1.0) or not math.isfinite(level):
        raise MlmError(f"--level must be between 0 and 1 (exclusive), got {level}")


def select(model: Model, parm: list[str] | None, method: str) -> list[int]:
    """Indices into (variance parameters, fixed effects) that `parm` names; every one by default.
    Names of either lme4 style are accepted, and lme4's "theta_" (all variance parameters) and
    "beta_" (all fixed effects)."""
    new = varpar_names(model, old=False)
    old = varpar_names(model, old=True)
    nv = len(new)
    fixed = list(model.design.xnames)
    if not parm:
        return list(range(nv + len(fixed)))
    out: list[int] = []
    for name in parm:
        if name == "theta_":
            idx = list(range(nv))
        elif name == "beta_":
            idx = list(range(nv, nv + len(fixed)))
        elif name in new:
            idx = [new.index(name)]
        elif name in old:
            idx = [old.index(name)]
        elif name in fixed:
            idx = [nv + fixed.index(name)]
        else:
            shown = ", ".join(new + fixed)
            raise MlmError(f"--parm: no parameter {name!r}; the parameters are: {shown}")
        out += [i for i in idx if i not in out]
    return out


def wald(model: Model, level: float = 0.95) -> list[tuple[float | None, float | None]]:
    """(lower, upper) for every parameter: None for the variance parameters."""
    z = NormalDist().inv_cdf((1.0 + level) / 2.0)
    nv = len(varpar_names(model, old=True))
    se = model.std_errors
    out: list[tuple[float | None, float | None]] = [(None, None)] * nv
    out += [(float(b - z * s), float(b + z * s)) for b, s in zip(model.beta, se, strict=True)]
    return out


class _Profiler:
    """The ML deviance profiles of one fit: zeta(x), the signed root of the deviance's rise above its
    minimum with the parameter held at x, for the variance parameters then the fixed effects."""

    def __init__(self, model: FittedModel) -> None:
        from mlmcli.engine.factor import BlockedFactor
        from mlmcli.engine.profile import sdcor_from_theta, varpar_bounds
        from mlmcli.pipeline import refit

        self.model = model
        self.ml = ml = refit(model, reml=False)
        self.system = BlockedFactor(ml.system.cp)
        self.opt = sdcor_from_theta(self.system, ml.theta, ml.sigma)
        self.nv = len(self.opt)
        self.base = ml.criterion
        self.lower, self.upper = varpar_bounds(self.system)

    def estimate(self, w: int) -> float:
        return float(self.opt[w]) if w < self.nv else float(self.ml.beta[w - self.nv])

    def bounds(self, w: int) -> tuple[float, float]:
        return (float(self.lower[w]), float(self.upper[w])) if w < self.nv else (-math.inf, math.inf)

    def scale(self, w: int) -> float:
        return max(abs(self.estimate(w)), 1e-3) if w < self.nv else float(self.ml.std_errors[w - self.nv])

    def zeta(self, w: int):
        """A fresh profile of parameter w (its warm starts follow the points asked, in order)."""
        from mlmcli.engine.profile import FixedProfile, VarparProfile

        if w < self.nv:
            dev = VarparProfile(self.system, self.opt, w)
        else:
            dev = FixedProfile(self.model.design.terms, self.system, self.ml.theta, w - self.nv)
        est = self.estimate(w)

        def z(x: float) -> float:
            d = dev(x) - self.base
            return math.copysign(math.sqrt(max(d, 0.0)), x - est)

        return z

    @property
    def npar(self) -> int:
        return self.nv + self.ml.p

    def done(self) -> None:
        self.system.update(self.ml.theta)


class _GlmmProfiler:
    """The deviance profiles of a glmer fit (engine/glmm_profile.py), with _Profiler's interface:
    every parameter, the fixed effects too, held in the one deviance over (sd, cor, beta)."""

    def __init__(self, model: GlmmModel) -> None:
        from mlmcli.engine.glmm_profile import GlmmProfiles

        self.model = model
        modes = model.fit.modes
        self.profiles = GlmmProfiles(model.problem, modes.system, modes.eta, model.nagq, model.theta, model.beta)
        self.nv = len(model.theta)
        self.npar = self.nv + model.p
        self.base = self.profiles.base

    def estimate(self, w: int) -> float:
        return float(self.profiles.optimum[w])

    def bounds(self, w: int) -> tuple[float, float]:
        return float(self.profiles.lower[w]), float(self.profiles.upper[w])

    def scale(self, w: int) -> float:
        return max(abs(self.estimate(w)), 1e-3) if w < self.nv else float(self.model.std_errors[w - self.nv])

    def zeta(self, w: int):
        dev = self.profiles.held(w)
        est = self.estimate(w)

        def z(x: float) -> float:
            d = dev(x) - self.base
            return math.copysign(math.sqrt(max(d, 0.0)), x - est)

        return z

    def done(self) -> None:
        pass


def _profiler(model: Model) -> _Profiler | _GlmmProfiler:
    return _GlmmProfiler(model) if is_glmm(model) else _Profiler(model)  # type: ignore[arg-type]


def check_method(model: Model, method: str) -> None:
    """What lme4 cannot do: profile an nAGQ = 0 fit (its devfun is over theta alone; lme4's profile
    stops with "theta size mismatch")."""
    if is_glmm(model):
        check_profile_nagq(method, model.nagq)  # type: ignore[union-attr]


def check_profile_nagq(method: str, nagq: int, option: str = "--method") -> None:
    """lme4's profile stops on an nAGQ = 0 fit; `option` names the flag that chose the method."""
    if method == "profile" and nagq == 0:
        raise MlmError(
            "profile intervals are not offered for an nAGQ = 0 fit (lme4's profile fails on it): "
            f"use --nagq 1, or {option} wald or boot"
        )


def profile(model: Model, level: float = 0.95, which: list[int] | None = None) -> dict[int, tuple[float, float]]:
    """Profile intervals of the parameters `which` (indices into variance parameters then fixed
    effects) from the ML deviance."""
    from mlmcli.engine.profile import crossing

    pr = _profiler(model)
    z = NormalDist().inv_cdf((1.0 + level) / 2.0)
    if which is None:
        which = list(range(pr.npar))
    out: dict[int, tuple[float, float]] = {}
    for w in which:
        est, scale = pr.estimate(w), pr.scale(w)
        ends = []
        for direction, bound in zip((-1.0, 1.0), pr.bounds(w), strict=True):
            if direction < 0 and est <= bound:
                ends.append(bound)  # an estimate on its bound: lme4 profiles one way only
                continue
            if w < pr.nv:
                first = est + direction * max(0.01 * abs(est), 0.001)
            else:
                first = est + direction * z * scale
            ends.append(crossing(pr.zeta(w), est, first, direction * z, bound, scale))
        out[w] = (ends[0], ends[1])
    pr.done()
    return out


def profile_curves(model: Model, level: float = 0.99, points: int = 8) -> list[dict]:
    """lme4's profile(fit) for plotting: per parameter, zeta at `points` values on each side of the
    estimate, out to the ends of its `level` profile interval (lme4 profiles to alpha 0.01)."""
    import numpy as np

    names = varpar_names(model, old=False) + list(model.design.xnames)
    labels = readable_names(model) + list(model.design.xnames)
    ends = profile(model, level)
    pr = _profiler(model)
    out = []
    for w, name in enumerate(names):
        est = pr.estimate(w)
        xs, zs = [est], [0.0]
        for end in ends[w]:
            if not math.isfinite(end) or end == est:
                continue
            z = pr.zeta(w)  # outward from the estimate, each point warm-starting the next
            for t in np.linspace(0.0, 1.0, points + 1)[1:]:
                x = est + t * (end - est)
                xs.append(float(x))
                zs.append(float(z(x)))
        order = np.argsort(xs)
        out.append(
            {
                "parameter": name,
                "label": labels[w],
                "estimate": est,
                "value": [xs[i] for i in order],
                "zeta": [zs[i] for i in order],
                "lower": ends[w][0],
                "upper": ends[w][1],
            }
        )
    pr.done()
    return out


@dataclass
class Bootstrap:
    """How `--method boot` draws its replicates, and (after the run) what became of them."""

    nsim: int = NSIM
    seed: int | None = None  # None: a fresh one, reported so that the run can be repeated
    progress: Callable[[int], None] | None = None
    failed: int = 0
    singular: int = 0
    messages: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.nsim < 1:
            raise MlmError(f"--nsim must be a positive number of replicates, got {self.nsim}")
        if self.seed is None:
            import secrets

            self.seed = secrets.randbelow(2**31)
        elif self.seed < 0:
            raise MlmError(f"--seed must be a non-negative integer, got {self.seed}")


def boot(model: Model, level: float, which: list[int], spec: Bootstrap) -> dict[int, tuple[float, float]]:
    """Percentile intervals of the parameters `which` from spec.nsim parametric bootstrap refits."""
    from mlmcli.stats.bootstrap import bootstrap, bootstrap_messages, percentile_interval

    assert spec.seed is not None
    reps = bootstrap(model, spec.nsim, spec.seed, spec.progress)
    if reps.failed == spec.nsim:
        raise MlmError("*all* bootstrap runs failed!")  # lme4's error
    spec.failed, spec.singular = reps.failed, reps.singular
    spec.messages = _simulate_messages(model) + bootstrap_messages(reps, spec.nsim)
    return {w: percentile_interval(reps.values[:, w], level) for w in which}


def _simulate_messages(model: Model) -> list[str]:
    """R's poisson()$simulate draws counts without the prior weights, and says so."""
    import numpy as np

    if is_glmm(model):
        resp = model.problem.response  # type: ignore[union-attr]
        if resp.family.name == "poisson" and np.any(resp.weights != 1.0):
            return ["ignoring prior weights"]
    return []


def intervals(
    model: Model, method: str, level: float, which: list[int], spec: Bootstrap | None = None
) -> dict[int, tuple[float | None, float | None]]:
    """(lower, upper) of the parameters `which` (indices into variance parameters then fixed effects)."""
    if method == "wald":
        all_ci = wald(model, level)
        return {i: all_ci[i] for i in which}
    if method == "boot":
        return boot(model, level, which, spec or Bootstrap())  # type: ignore[return-value]
    return profile(model, level, which)  # type: ignore[return-value]


def _boot_keys(spec: Bootstrap | None) -> dict:
    if spec is None:
        return {}
    return {"nsim": spec.nsim, "seed": spec.seed, "failed": spec.failed, "singular": spec.singular}


def confint_report(
    model: Model, method: str, level: float = 0.95, parm: list[str] | None = None, spec: Bootstrap | None = None
) -> dict:
    """{"method", "level", "intervals": [{"parameter", "lower", "upper"}]} in lme4's order."""
    from mlmcli.render.jsonvalues import clean
    from mlmcli.report import SCHEMA_VERSION

    check_level(level)
    check_method(model, method)
    which = select(model, parm, method)
    fixed = list(model.design.xnames)
    # lme4's names with oldNames = FALSE for every method; its print (oldNames = TRUE) beside them
    names = varpar_names(model, old=False) + fixed
    printed = varpar_names(model, old=True) + fixed
    spec = (spec or Bootstrap()) if method == "boot" else None
    ci = intervals(model, method, level, which, spec)
    rows = [{"parameter": names[i], "printed_name": printed[i], "lower": ci[i][0], "upper": ci[i][1]} for i in which]
    return clean(
        {
            "schema_version": SCHEMA_VERSION,
            "formula": model.formula.text,
            "method": method,
            "level": level,
            **_boot_keys(spec),
            "labels": percent_labels(level),
            "intervals": rows,
        }
    )


def all_intervals(
    model: Model, method: str, level: float = 0.95, spec: Bootstrap | None = None
) -> list[tuple[float | None, float | None]]:
    """(lower, upper) of every parameter, variance parameters (None for Wald) then fixed effects."""
    nv = len(varpar_names(model, old=True))
    ci = intervals(model, method, level, list(range(nv + model.p)), spec)
    return [ci[i] for i in range(nv + model.p)]


def fixed_effect_intervals(
    model: Model, method: str, level: float = 0.95, spec: Bootstrap | None = None
) -> list[tuple[float | None, float | None]]:
    """(lower, upper) per fixed effect, for `mlm fit --ci`."""
    nv = len(varpar_names(model, old=True))
    idx = list(range(nv, nv + model.p))
    ci = intervals(model, method, level, idx, spec)
    return [ci[i] for i in idx]


def add_fixed_effect_intervals(
    report: dict,
    model: Model,
    method: str,
    level: float,
    spec: Bootstrap | None = None,
    variance_parameters: bool = False,
) -> list[tuple[float | None, float | None]]:
    """`mlm fit --ci`: conf_low and conf_high on every fixed effect of a fit report, and which
    intervals they are under "confint".  Returns the intervals of every parameter: the variance
    parameters' are None unless asked for (profile) or free (the bootstrap's replicates have them)."""
    from mlmcli.render.jsonvalues import clean

    spec = (spec or Bootstrap()) if method == "boot" else None
    nv = len(varpar_names(model, old=True))
    if method == "boot" or (method == "profile" and variance_parameters):
        ci = all_intervals(model, method, level, spec)
    else:
        ci = [(None, None)] * nv + fixed_effect_intervals(model, method, level)
    for row, (lo, hi) in zip(report["fixed_effects"], ci[nv:], strict=True):
        row["conf_low"], row["conf_high"] = clean(lo), clean(hi)
    report["confint"] = {"method": method, "level": level, **_boot_keys(spec), "labels": percent_labels(level)}
    return ci
