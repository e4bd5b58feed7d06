"""A fitted linear mixed model: theta, beta, sigma, Tau, conditional modes and what follows from them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from mlmcli.engine.crossprod import CrossProducts
from mlmcli.engine.factor import BlockedFactor
from mlmcli.engine.fit import Optimum, moment_start, optimize_theta, start_theta
from mlmcli.engine.response import GaussianResponse

if TYPE_CHECKING:
    from mlmcli.design import Design
    from mlmcli.engine.kenward_roger import KenwardRoger
    from mlmcli.engine.satterthwaite import Satterthwaite
    from mlmcli.formula import Formula

KR_REML_ONLY = "Kenward-Roger's method is only available for REML model fits"
DDF_METHODS = ("Satterthwaite", "Kenward-Roger", "none")


@dataclass
class VarComp:
    """One random-effects term's covariance matrix (a block of the Tau matrix)."""

    name: str  # VarCorr's name: the grouping factor, with ".1", ".2" for repeated factors
    factor: str  # the grouping factor
    terms: list[str]
    covariance: np.ndarray

    @property
    def std_dev(self) -> np.ndarray:
        return np.sqrt(np.diag(self.covariance))

    @property
    def correlation(self) -> np.ndarray:
        """R's cov2cor: ones on the diagonal, NaN off it where a variance is zero."""
        with np.errstate(invalid="ignore", divide="ignore"):
            inv = 1.0 / self.std_dev
            C = inv[:, None] * self.covariance * inv[None, :]
        np.fill_diagonal(C, 1.0)
        return C


class RemoteRows(Protocol):
    """The rows of a model fitted from statistics summed elsewhere."""

    def scaled_residual_quantiles(self, model: FittedModel) -> list[float]:
        """Min, quartiles and max of the scaled residuals (R's quantile type 7)."""

    def fixed_moments(self) -> np.ndarray:
        """[1 X]'[1 X] over the rows used (the column sums of X and its cross-products)."""


@dataclass
class FittedModel:
    formula: Formula
    design: Design
    response: GaussianResponse  # y, prior weights, REML or ML: the criterion (engine/response.py)
    system: BlockedFactor  # the factor L(theta) of the response's blocks (engine/factor.py)
    optimum: Optimum
    data_name: str
    warnings: list[str] = field(default_factory=list)
    ddf: str = "Satterthwaite"
    optimizer: str = "robust"
    _satterthwaite: Satterthwaite | None = None
    _kenward_roger: KenwardRoger | None = None
    # where the rows live when they are not in this process (a cluster's partitions): what the
    # output needs from them (scaled-residual quantiles, moments of X) comes from there
    remote: RemoteRows | None = None

    # ---------------------------------------------------------------- basics
    @property
    def theta(self) -> np.ndarray:
        return self.optimum.theta

    @property
    def reml(self) -> bool:
        return self.response.reml

    @property
    def n(self) -> int:
        return self.system.n

    @property
    def p(self) -> int:
        return self.system.p

    @property
    def method(self) -> str:
        return "REML" if self.reml else "ML"

    @property
    def criterion(self) -> float:
        return float(self.optimum.criterion)

    @property
    def loglik(self) -> float:
        return -self.criterion / 2.0

    @property
    def npar(self) -> int:
        return self.p + len(self.theta) + 1

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.npar

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + self.npar * math.log(self.n)

    @property
    def df_resid(self) -> int:
        return self.n - self.npar

    @property
    def singular(self) -> bool:
        return self.optimum.singular

    @property
    def converged(self) -> bool:
        return (
            self.optimum.conv_code == 0
            and self.optimum.check_code == 0
            and not [m for m in self.optimum.messages if not m.startswith("boundary (singular) fit")]
        )

    @property
    def sigma(self) -> float:
        return self._sigma

    @property
    def beta(self) -> np.ndarray:
        return self._beta

    @property
    def vcov(self) -> np.ndarray:
        return self._vcov

    @property
    def std_errors(self) -> np.ndarray:
        return np.sqrt(np.diag(self._vcov))

    def _finish(self) -> None:
        """Quantities at the optimum; the system must be factored at theta."""
        self._sigma = self.response.sigma(self.system)
        self._T = [T.copy() for T in self.system.T]
        self._beta = self.system.beta()
        self._u = self.system.spherical_modes()
        self._b = self.system.conditional_modes(self._u)
        self._vcov = self.sigma**2 * self.system.unscaled_vcov()
        self._fitted: np.ndarray | None = None

    # ---------------------------------------------------------------- random effects
    def varcomps(self) -> list[VarComp]:
        """VarCorr: sigma^2 T_i T_i' for every term, named as lme4 names them."""
        out = []
        seen: dict[str, int] = {}
        s2 = self.sigma**2
        for term, T in zip(self.design.terms, self._T, strict=True):
            k = seen.get(term.group, 0)
            seen[term.group] = k + 1
            name = term.group if k == 0 else f"{term.group}.{k}"
            out.append(VarComp(name=name, factor=term.group, terms=list(term.cnames), covariance=s2 * T @ T.T))
        return out

    def conditional_modes(self) -> list[np.ndarray]:
        """b for every term as an (levels, k) array: lme4's ranef()."""
        return self._b

    def conditional_sd(self) -> list[np.ndarray]:
        """Square roots of the diagonals of lme4's condVar ('postVar') blocks, (levels, k) per term."""
        self.system.update(self.theta)
        blocks = self.system.unscaled_condvar()
        s2 = self.sigma**2
        return [np.sqrt(np.maximum(s2 * np.diagonal(B, axis1=1, axis2=2), 0.0)) for B in blocks]

    def groups(self) -> dict[str, int]:
        """Grouping factor -> number of levels, once per factor, in term order."""
        out: dict[str, int] = {}
        for t in self.design.terms:
            out.setdefault(t.group, len(t.levels))
        return out

    # ---------------------------------------------------------------- fit
    @property
    def fitted(self) -> np.ndarray:
        if self._fitted is None:
            cp = self.system.cp
            # the system's rows are weighted (crossprod.py); fitted values are on the data's scale
            fitted = self.design.X @ self._beta
            fitted += cp.unweighted(cp.Zb(self._b))  # in place: no third array as long as the data
            self._fitted = fitted
        return self._fitted

    @property
    def residuals(self) -> np.ndarray:
        """y - fitted: lme4's residuals(fit), type "response" (offsets cancel, weights do not enter)."""
        return self.design.y - self.fitted

    @property
    def pearson_residuals(self) -> np.ndarray:
        """sqrt(w) (y - fitted): lme4's residuals(fit, "pearson"); the response residuals without weights."""
        w = self.design.weights
        return self.residuals if w is None else self.residuals * np.sqrt(w)

    def scaled_residual_quantiles(self) -> list[float]:
        if self.remote is not None:
            return self.remote.scaled_residual_quantiles(self)
        # summary.merMod's residuals(object, "pearson", scaled = TRUE), sorted in one array: the
        # same values as pearson_residuals / sigma, without their temporaries on millions of rows
        # (the system's rows are sqrt(w) times the data's: its residuals are Pearson's)
        r = self.system.cp.residuals(self._beta, self._b)
        r /= self.sigma
        r.sort()  # in place (numpy's vectorized sort beats np.partition at five order statistics)
        # R's quantile(type = 7), written out: np.quantile's first call costs more than a fit
        h = (len(r) - 1) * np.array([0.0, 0.25, 0.5, 0.75, 1.0])
        lo = np.floor(h).astype(int)
        hi = np.minimum(lo + 1, len(r) - 1)
        return [float(v) for v in r[lo] + (h - lo) * (r[hi] - r[lo])]

    def fixed_effect_correlation(self) -> np.ndarray:
        sd = self.std_errors
        return self._vcov / np.outer(sd, sd)

    # ---------------------------------------------------------------- inference
    def satterthwaite(self) -> Satterthwaite:
        if self._satterthwaite is None:
            from mlmcli.engine.satterthwaite import satterthwaite

            # (it leaves the factor at theta)
            self._satterthwaite = satterthwaite(
                self.system, self.response, self.theta, self.sigma, self._vcov, self.optimum.differences
            )
        return self._satterthwaite

    def kenward_roger(self) -> KenwardRoger:
        """pbkrtest's adjusted covariance and its pieces (REML fits only, as lmerTest)."""
        if not self.reml:
            from mlmcli.errors import MlmError

            raise MlmError(KR_REML_ONLY)
        if self._kenward_roger is None:
            from mlmcli.engine.kenward_roger import kenward_roger

            self.system.update(self.theta)
            self._kenward_roger = kenward_roger(self.system, self.sigma, self._vcov)
        return self._kenward_roger

    def coef_table(self) -> list[dict]:
        """Estimate, SE, df, t and p per fixed effect (df and p are None with ddf 'none'); with
        Kenward-Roger the SE is the adjusted one, as lmerTest's summary prints it."""
        from mlmcli.rcompat.distributions import t_two_sided

        rows = []
        se = self.std_errors
        sat = self.satterthwaite() if self.ddf == "Satterthwaite" else None
        kr = self.kenward_roger() if self.ddf == "Kenward-Roger" and self.p else None
        if kr is not None:
            se = np.sqrt(np.diag(kr.vcov_adjusted))
        for i, name in enumerate(self.design.xnames):
            t = float(self._beta[i] / se[i])
            df = p = None
            if sat is not None or kr is not None:
                c = np.zeros(self.p)
                c[i] = 1.0
                d = sat.df(c) if sat is not None else kr.ddf(c) if kr is not None else math.nan
                if math.isfinite(d):
                    df = d
                    p = t_two_sided(t, d)
            rows.append(
                {
                    "term": name,
                    "estimate": float(self._beta[i]),
                    "std_error": float(se[i]),
                    "df": df,
                    "t_value": t,
                    "p_value": p,
                }
            )
        return rows


OPTIMIZERS = ("robust", "lme4")


def fit_model(
    formula: Formula,
    design: Design,
    reml: bool = True,
    data_name: str = "",
    ddf: str = "Satterthwaite",
    optimizer: str = "robust",
) -> FittedModel:
    """Fit by REML or ML as lmer() does.  optimizer "lme4" stops where lme4's BOBYQA stops;
    "robust" (the default) polishes BOBYQA's end point into the optimum (engine/polish.py)."""
    cp = CrossProducts(design.terms, design.X, design.y, design.weights)
    return fit_crossproducts(formula, design, cp, reml, data_name, ddf, optimizer)


def fit_crossproducts(
    formula: Formula,
    design: Design,
    cp: CrossProducts,
    reml: bool = True,
    data_name: str = "",
    ddf: str = "Satterthwaite",
    optimizer: str = "robust",
    remote: RemoteRows | None = None,
    theta0: np.ndarray | None = None,
) -> FittedModel:
    """fit_model on the blocks of A already formed (for rows kept elsewhere: `remote`, and then
    lme4's start value `theta0` computed where the rows are).  The design's messages hold its
    checks' warnings (rank, checkScaleX); the optimizer's follow them."""
    system = BlockedFactor(cp)
    response = GaussianResponse.of(cp, reml)
    warnings = list(design.messages)
    factors = [t.group for t in design.terms]
    scalar_distinct = all(t.X.shape[1] == 1 and list(t.cnames) == ["(Intercept)"] for t in design.terms) and len(
        set(factors)
    ) == len(factors)
    from mlmcli.engine.newton import uses_gradient

    codes = [t.codes for t in design.terms]
    newton_start = None
    if theta0 is None or not scalar_distinct:
        theta0 = start_theta(system, codes, scalar_distinct, design.response_values)
        if scalar_distinct and uses_gradient(system):
            newton_start = moment_start(system, codes, design.response_values)
    opt = optimize_theta(system, response, theta0, polish=optimizer == "robust", newton_start=newton_start)
    warnings.extend(opt.warnings)
    model = FittedModel(
        formula=formula,
        design=design,
        response=response,
        system=system,
        optimum=opt,
        data_name=data_name,
        warnings=warnings,
        ddf=ddf,
        optimizer=optimizer,
        remote=remote,
    )
    model._finish()
    return model


def at_theta(model: FittedModel, theta: np.ndarray) -> FittedModel:
    """The model at a given theta, not optimized, with lme4's checks (checkConv) made there: what
    lme4's mkMerMod gives after lmer(start = theta, control = lmerControl(optimizer = NULL))."""
    from mlmcli.engine.fit import Objective, check_convergence, deriv12, factor_at

    system = BlockedFactor(model.system.cp)
    theta = np.array(theta, dtype=float)
    f = Objective(system, model.response)
    opt = Optimum(theta=theta, criterion=f(theta), evaluations=1, status="NLOPT_SUCCESS", checked_at=theta)
    check_convergence(opt, lambda: deriv12(f, theta, opt.criterion), system.cp.lower_bounds())
    factor_at(system, theta)
    # the design's and the scale check's messages; the optimizer's are those made at theta
    kept = [w for w in model.warnings if w not in model.optimum.warnings]
    new = FittedModel(
        formula=model.formula,
        design=model.design,
        response=model.response,
        system=system,
        optimum=opt,
        data_name=model.data_name,
        warnings=kept + opt.warnings,
        ddf=model.ddf,
        optimizer=model.optimizer,
        remote=model.remote,
    )
    new._finish()
    return new


def refit(model: FittedModel, reml: bool) -> FittedModel:
    """Refit with the other criterion from the current theta (lme4's refitML)."""
    from mlmcli.engine.fit import reoptimize_theta

    cp = model.system.cp  # the same data: only the factor and the criterion are the refit's own
    system, response = BlockedFactor(cp), GaussianResponse.of(cp, reml)
    opt = reoptimize_theta(system, response, model.theta, polish=model.optimizer == "robust")
    new = FittedModel(
        formula=model.formula,
        design=model.design,
        response=response,
        system=system,
        optimum=opt,
        data_name=model.data_name,
        warnings=list(model.design.messages) + opt.warnings,
        ddf=model.ddf,
        optimizer=model.optimizer,
        remote=model.remote,
    )
    new._finish()
    return new


@dataclass
class Prediction:
    values: np.ndarray  # one per new row; NaN where a variable the prediction needs is missing
    fixed: np.ndarray  # the fixed part plus offsets (lme4's re.form = NA)


def fitted_values(model: FittedModel) -> Prediction:
    """predict(fit) and predict(fit, re.form = NA) on the rows the fit used: offsets included."""
    design = model.design
    offset = design.offset if design.offset is not None else 0.0
    fixed = np.asarray(design.X, dtype=float) @ np.asarray(model.beta, dtype=float) + offset
    return Prediction(values=np.asarray(model.fitted, dtype=float) + offset, fixed=fixed)
