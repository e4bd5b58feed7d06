"""R's GLM families for glmer: binomial (logit, probit, cloglog) and poisson (log).

Each family is what R's `binomial(link)` / `poisson(link)` objects provide and lme4's glmFamily.cpp
evaluates: the link and its inverse, d mu / d eta, the variance function, the deviance residuals
and the `aic` term (-2 times the conditional log-likelihood, with R's rounding of counts), with R's
clamps where the inverse link would reach 0 or 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = float(np.finfo(float).eps)
THRESH = 30.0  # logit: R's make.link("logit") clamps exp(eta) outside [-30, 30]
LINKS = {"binomial": ("logit", "probit", "cloglog"), "poisson": ("log",)}


def _y_log_y(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """y log(y / mu), 0 where y is 0 (R's binomial.c y_log_y)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(y != 0.0, y * np.log(np.where(y != 0.0, y, 1.0) / mu), 0.0)


def _within(eta: np.ndarray, bound: float) -> bool:
    """Every eta in [-bound, bound] (False for NaN or an empty array): a clamp there changes nothing."""
    return bool(eta.size) and -bound <= float(eta.min()) and float(eta.max()) <= bound


@dataclass(frozen=True)
class AicTerms:
    """family$aic's parts that do not depend on mu: each row's weight in the sum, the counts of
    successes and failures (poisson: the counts and zeros), and the log-factorial constant."""

    scale: np.ndarray
    successes: np.ndarray
    failures: np.ndarray
    const: np.ndarray


def _lgamma(x: np.ndarray) -> np.ndarray:
    """log Gamma of counts, once per distinct value (math.lgamma: no scipy import for it)."""
    import math

    values, inverse = np.unique(x, return_inverse=True)
    return np.array([math.lgamma(v) if v > 0 else math.inf for v in values.tolist()])[inverse.ravel()]


@dataclass(frozen=True)
class Family:
    """A GLM family with one of its links."""

    name: str  # "binomial" or "poisson"
    link: str

    def __post_init__(self) -> None:
        if self.link not in LINKS.get(self.name, ()):
            raise ValueError(f"link {self.link!r} is not offered for family {self.name!r}")

    # ------------------------------------------------------------------ link
    def linkfun(self, mu: np.ndarray) -> np.ndarray:
        mu = np.asarray(mu, dtype=float)
        if self.link == "logit":
            return np.log(mu / (1.0 - mu))
        if self.link == "probit":
            from scipy.special import ndtri

            return ndtri(mu)
        if self.link == "cloglog":
            return np.log(-np.log1p(-mu))
        return np.log(mu)

    def linkinv(self, eta: np.ndarray) -> np.ndarray:
        eta = np.asarray(eta, dtype=float)
        if self.link == "logit":
            if _within(eta, THRESH):  # no clamp applies: the same values without the three passes
                e = np.exp(eta)
                return e / (1.0 + e)
            e = np.exp(np.clip(eta, -THRESH, THRESH))
            e = np.where(eta < -THRESH, EPS, np.where(eta > THRESH, 1.0 / EPS, e))
            return e / (1.0 + e)
        if self.link == "probit":
            from scipy.special import ndtr, ndtri

            thresh = -float(ndtri(EPS))
            return ndtr(np.clip(eta, -thresh, thresh))
        if self.link == "cloglog":
            return np.clip(-np.expm1(-np.exp(np.minimum(eta, 700.0))), EPS, 1.0 - EPS)
        return np.maximum(np.exp(eta), EPS)

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        """d mu / d eta."""
        eta = np.asarray(eta, dtype=float)
        if self.link == "logit":
            if _within(eta, THRESH):
                e = np.exp(eta)
                return e / ((1.0 + e) * (1.0 + e))
            e = np.exp(np.clip(eta, -THRESH, THRESH))
            out = e / ((1.0 + e) * (1.0 + e))
            return np.where(np.abs(eta) > THRESH, EPS, out)
        if self.link == "probit":
            return np.maximum(np.exp(-0.5 * eta * eta) / np.sqrt(2.0 * np.pi), EPS)
        if self.link == "cloglog":
            e = np.minimum(eta, 700.0)
            return np.maximum(np.exp(e) * np.exp(-np.exp(e)), EPS)
        return np.maximum(np.exp(eta), EPS)

    # ------------------------------------------------------------------ distribution
    def variance(self, mu: np.ndarray) -> np.ndarray:
        return mu * (1.0 - mu) if self.name == "binomial" else mu

    def dev_resids(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """Each observation's contribution to the deviance (R's family$dev.resids)."""
        if self.name == "binomial":
            return 2.0 * wt * (_y_log_y(y, mu) + _y_log_y(1.0 - y, 1.0 - mu))
        return 2.0 * wt * (_y_log_y(y, mu) - (y - mu))

    def aic_terms(self, y: np.ndarray, n: np.ndarray, wt: np.ndarray) -> AicTerms:
        """What R's family$aic needs besides mu, computed once per response (the counts rounded as
        R rounds them, and the log-factorial constants)."""
        if self.name == "binomial":
            m = n if np.any(n > 1) else wt
            k = np.round(m * y)
            m = np.round(m)
            const = _lgamma(m + 1.0) - _lgamma(k + 1.0) - _lgamma(m - k + 1.0)
            scale = np.where(m > 0, wt / np.where(m > 0, m, 1.0), 0.0)
            return AicTerms(scale, k, m - k, const)
        return AicTerms(wt, y, np.zeros_like(y), -_lgamma(y + 1.0))

    def aic(self, terms: AicTerms, mu: np.ndarray) -> float:
        """-2 times the log-likelihood as R's family$aic computes it."""
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.name == "binomial":
                logp = (
                    terms.const
                    + np.where(terms.successes > 0, terms.successes * np.log(mu), 0.0)
                    + np.where(terms.failures > 0, terms.failures * np.log1p(-mu), 0.0)
                )
            else:
                logp = terms.const + np.where(terms.successes > 0, terms.successes * np.log(mu), 0.0) - mu
            return float(-2.0 * np.sum(terms.scale * logp))

    def start_mu(self, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """R's family$initialize: mustart."""
        if self.name == "binomial":
            return (wt * y + 0.5) / (wt + 1.0)
        return y + 0.1


def family(name: str, link: str | None = None) -> Family:
    """`binomial()` / `poisson()` with R's default link."""
    if name not in LINKS:
        raise ValueError(f"family {name!r} is not offered: use binomial or poisson")
    return Family(name, link or LINKS[name][0])
