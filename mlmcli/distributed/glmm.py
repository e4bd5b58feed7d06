"""--engine dask for glmer, on the workers: each partition's GLM design, built once and kept in the
workers' memory, and what one PIRLS iteration asks of it.

Given a linear predictor (beta and the conditional modes b, O(levels)), a partition computes its
rows' mu, deviance residuals and family$aic terms, and the blocks of A re-formed with the GLM's
working weights and working response there (lme4's glmResp::sqrtWrkWt and wrkResp, engine/glmm.py's
GlmResponse.working).  Every one of them is a sum over rows, so the partitions' add up to the whole
data's; the client's PIRLS (distributed/glmm_fit.py) factors the sums."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlmcli.design import check_finite
from mlmcli.design.glm import glm_response
from mlmcli.distributed.blocks import (
    Layout,
    WeightedProducts,
    check_random_finite,
    level_pairs,
    level_products,
    partition_rows,
)
from mlmcli.engine.family import AicTerms, Family
from mlmcli.io.frame import Factor


@dataclass
class GlmPart:
    """One partition's rows of a GLMM: the model matrices and the response as glmer's family
    initialize() leaves it."""

    X: np.ndarray
    codes: list[np.ndarray]
    Z: list[np.ndarray]
    ells: list[int]
    y: np.ndarray  # proportions (binomial) or counts (poisson)
    trials: np.ndarray  # R's n
    weights: np.ndarray  # prior weights times trials
    offset: np.ndarray | None
    messages: list[str]
    aic_terms: AicTerms | None = None  # once the whole data's kind of binomial counts is known
    # a 0/1 response with unit weights and one trial a row: which rows are 1s.  Each deviance
    # residual is then -2 log of the fitted probability of the observed outcome, and family$aic
    # their sum (engine/glmm.py's GlmResponse): one logarithm a row instead of four
    ones: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.y)


@dataclass
class GlmSummary:
    """What the client learns of the rows once: their number, [1 X]'[1 X] and which columns of X
    are 0/1 (lme4's checks of X), the rows per pair of levels (the nesting), whether any row has more
    than one trial (family$aic's counts), and the response's warnings."""

    n: int
    G: np.ndarray
    binary: np.ndarray
    N: dict[tuple[int, int], object]
    many_trials: bool
    messages: list[str] = field(default_factory=list)

    def __add__(self, other: GlmSummary) -> GlmSummary:
        return GlmSummary(
            self.n + other.n,
            self.G + other.G,
            self.binary & other.binary,
            {key: (self.N[key] + other.N[key]).tocsr() for key in self.N},
            self.many_trials or other.many_trials,
            list(dict.fromkeys(self.messages + other.messages)),
        )


def sum_summaries(*parts: GlmSummary) -> GlmSummary:
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def glm_partition(pdf, layout: Layout) -> GlmPart:
    """A partition's GLM design (runs on a worker; the result stays there)."""
    from mlmcli.formula import parse_formula

    spec = layout.spec
    assert spec.family is not None
    d = partition_rows(pdf, layout)
    ells = [len(layout.levels.term_levels[i]) for i in layout.levels.order]
    formula = parse_formula(spec.formula)
    response = formula.response.label
    if d.n == 0:
        empty = np.empty(0)
        return GlmPart(d.X, d.codes, d.Z, ells, empty, empty, empty, None, [])
    col = d.values[response]
    check_finite(col if not isinstance(col, Factor) else np.zeros(1), d.X, d.xnames, [], response)
    check_random_finite(d, [formula.random[i].label for i in layout.levels.order])
    g = glm_response(spec.family, col, d.weights, np.arange(d.n), response)
    return GlmPart(d.X, d.codes, d.Z, ells, g.y, g.trials, g.weights, d.offset, g.messages)


def glm_summary(part: GlmPart) -> GlmSummary:
    W = np.column_stack([np.ones(part.n), part.X])
    with np.errstate(over="ignore", invalid="ignore"):
        G = W.T @ W
    binary = np.all((part.X == 0) | (part.X == 1), axis=0)
    many = bool(np.any(part.trials > 1))
    return GlmSummary(part.n, G, binary, level_pairs(part.codes, part.ells), many, part.messages)


def with_aic_terms(part: GlmPart, family: Family, many_trials: bool) -> GlmPart:
    """The partition with family$aic's terms.  binomial()$aic counts successes out of the trials
    when any row of the whole data has more than one, else out of the prior weights: where this
    partition alone would decide otherwise, a row of two trials decides it and is dropped again."""
    y, trials, wt = part.y, part.trials, part.weights
    pad = family.name == "binomial" and many_trials and not np.any(trials > 1)
    if pad:
        y, trials, wt = np.append(y, 0.0), np.append(trials, 2.0), np.append(wt, 1.0)
    terms = family.aic_terms(y, trials, wt)
    if pad:
        terms = AicTerms(terms.scale[:-1], terms.successes[:-1], terms.failures[:-1], terms.const[:-1])
    binary = (
        family.name == "binomial"
        and bool(np.all((part.y == 0) | (part.y == 1)))
        and bool(np.all(part.weights == 1))
        and not bool(np.any(part.trials > 1))
    )
    return GlmPart(
        part.X,
        part.codes,
        part.Z,
        part.ells,
        part.y,
        part.trials,
        part.weights,
        part.offset,
        part.messages,
        terms,
        (part.y == 1) if binary else None,
    )


def linear_predictor(part: GlmPart, beta: np.ndarray, b: list[np.ndarray]) -> np.ndarray:
    """offset + X beta + sum_i Z_i b_i on the partition's rows."""
    zb = np.zeros(part.n)
    for codes, Z, bi in zip(part.codes, part.Z, b, strict=True):
        for a in range(Z.shape[1]):
            zb += Z[:, a] * bi[:, a][codes]
    fixed = part.X @ beta
    return (fixed if part.offset is None else part.offset + fixed) + zb


@dataclass
class Point:
    """Where a pass evaluates: beta and the conditional modes b per term; beta None is the start
    (family$initialize's mustart on the link scale)."""

    beta: np.ndarray | None
    b: list[np.ndarray] | None


def glm_products(part: GlmPart, family: Family, at: Point) -> WeightedProducts:
    """One PIRLS iteration's share of this partition: at the linear predictor `at`, the sums of the
    deviance residuals and of family$aic, and the blocks of A with the working weights and response
    there (runs on a worker)."""
    assert part.aic_terms is not None
    with np.errstate(all="ignore"):
        if at.beta is None:
            eta = family.linkfun(family.start_mu(part.y, part.weights))
        else:
            assert at.b is not None
            eta = linear_predictor(part, at.beta, at.b)
        mu = family.linkinv(eta)
        if part.ones is not None:
            dev = aic = float(-2.0 * np.log(np.where(part.ones, mu, 1.0 - mu)).sum())
        else:
            dev = float(family.dev_resids(part.y, mu, part.weights).sum())
            aic = family.aic(part.aic_terms, mu) if part.n else 0.0
        d = family.mu_eta(eta)
        w = part.weights * d * d / family.variance(mu)
        z = (eta if part.offset is None else eta - part.offset) + (part.y - mu) / d
        sw = np.sqrt(w)
        XY = np.column_stack([part.X, z]) * sw[:, None]
        Z = [Zt * sw[:, None] for Zt in part.Z]
        A_FF = XY.T @ XY
        D, F, C = level_products(XY, Z, part.codes, part.ells)
    return WeightedProducts(part.n, A_FF, D, F, C, dev, aic)


def glm_agq(part: GlmPart, family: Family, at: Point) -> np.ndarray:
    """glmerAGQ's sums for one scalar term: at beta and per quadrature node (at.b[m], the term's
    modes moved to that node), the deviance residuals summed per level, a (nodes, levels) array."""
    assert at.beta is not None and at.b is not None
    beta, b = at.beta, at.b
    codes, Z, ell = part.codes[0], part.Z[0][:, 0], part.ells[0]
    out = np.zeros((len(b), ell))
    if part.n == 0:
        return out
    with np.errstate(all="ignore"):
        fixed = part.X @ beta
        if part.offset is not None:
            fixed = fixed + part.offset
        for m, bm in enumerate(b):
            mu = family.linkinv(fixed + Z * bm[:, 0][codes])
            out[m] = np.bincount(codes, weights=family.dev_resids(part.y, mu, part.weights), minlength=ell)
    return out


def glm_pearson(part: GlmPart, family: Family, at: Point) -> np.ndarray:
    """The partition's Pearson residuals at the fit, sorted (summary.merMod's scaled residuals)."""
    assert at.beta is not None and at.b is not None
    with np.errstate(all="ignore"):
        mu = family.linkinv(linear_predictor(part, at.beta, at.b))
        r = (part.y - mu) * np.sqrt(part.weights) / np.sqrt(family.variance(mu))
    return np.sort(r)
