"""Intraclass correlation and Nakagawa's R² of a binomial or Poisson GLMM, as performance::icc() and
performance::r2_nakagawa() (performance 0.10, insight 0.19's get_variance()) compute them for a
glmerMod.

The fixed and random parts are the linear model's (effects.py), on the link scale. The residual
variance is the distribution-specific (latent) variance plus the dispersion, the variance of any
observation-level random effect (a grouping factor with one level per row):

- binomial: pi²/3 for the logit link, 1 for probit, pi²/6 for cloglog;
- poisson (log): the observation-level variance log(1 + 1/mu), where mu = exp(beta_0) of the null
  model, the model refitted with the same random effects, response, weights, offset and nAGQ and an
  intercept alone (insight::null_model). A mu below 6 earns insight's warning, and the null fit's
  own warnings come first, as performance passes them on.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from mlmcli.effects import (
    SINGULAR_WARNING,
    Effects,
    fixed_part,
    is_singular,
    moments_part,
    random_variance,
    slopes_warning,
)

if TYPE_CHECKING:
    from mlmcli.glmmodel import GlmmModel

# insight's .compute_variance_distribution for binomial links
BINOMIAL_VARIANCE = {"logit": math.pi**2 / 3.0, "probit": 1.0, "cloglog": math.pi**2 / 6.0}
SMALL_MU = 6.0  # insight warns where the null model's mean count is below this
CLUSTER_NULL_MODEL = (
    "the ICC and R² of a poisson fit need its null model refitted; not offered with --engine dask: fit in memory"
)
MU_WARNING = "mu of {mu:.1f} is too close to zero, estimate of random effect variances may be unreliable."


def glmm_variance_components(model: GlmmModel) -> Effects:
    """var.fixed, var.random and var.residual (= var.distribution + var.dispersion) as
    insight::get_variance() gives them for glmer fits, with performance's warnings."""
    moments = getattr(model, "moments", None)  # a fit on a cluster: [1 X]'[1 X], not the rows
    var_fixed, gram, names = fixed_part(model) if moments is None else moments_part(model, moments)
    warnings = slopes_warning(model)
    var_random: float | None = None
    if is_singular(model):
        warnings.insert(0, SINGULAR_WARNING)
    else:
        var_random = random_variance(model, gram, names)
    if moments is not None and model.family.name == "poisson":
        return Effects(var_fixed, var_random, None, [*warnings, CLUSTER_NULL_MODEL])
    var_distribution, notes = distribution_variance(model)
    dispersion = random_variance(model, gram, names, observation_level=True)
    return Effects(var_fixed, var_random, var_distribution + dispersion, warnings + notes)


def distribution_variance(model: GlmmModel) -> tuple[float, list[str]]:
    """The family's latent variance on the link scale, and the warnings computing it gave."""
    fam = model.family
    if fam.name == "binomial":
        return BINOMIAL_VARIANCE[fam.link], []
    mu, warnings = null_model_mean(model)
    if mu < SMALL_MU:
        warnings.append(MU_WARNING.format(mu=mu))
    # family(x)$variance(mu) / mu^2 for poisson is 1 / mu
    return math.log1p(1.0 / mu), warnings


def null_model_mean(model: GlmmModel) -> tuple[float, list[str]]:
    """exp(intercept) of the null model, and lme4's warnings of its fit.

    insight::null_model() updates the call to `response ~ (random terms)`: the same rows, response,
    prior weights and offset, the same nAGQ, and an intercept as the only fixed effect."""
    from mlmcli.engine.glmm import GlmmProblem
    from mlmcli.engine.glmm_fit import fit_glmm

    problem = model.problem
    null = GlmmProblem(problem.terms, np.ones((model.n, 1)), problem.response)
    fit = fit_glmm(null, model.nagq, polish=model.optimizer == "robust")
    return math.exp(float(fit.beta[0])), list(fit.warnings)
