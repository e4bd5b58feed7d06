"""glmer() on a dask cluster: the partitions' GLM designs kept in the workers' memory, each PIRLS
iteration one tree reduction of their weighted cross-products, and lme4's two-stage optimization
(engine/glmm_fit.fit_glmm, unchanged) on the client.

ClusterGlmmProblem offers what fit_glmm asks of engine/glmm.GlmmProblem: PIRLS at given parameters,
the adaptive quadrature, the start and the factor vcov falls back to.  A linear predictor is known
by its parameters (beta and the conditional modes b, O(levels)): the workers compute the rows' eta
from them.  One pass at the candidate of a PIRLS iteration gives both the sums of its deviance
residuals and aic (the convergence test, the criterion) and the blocks of A at its working weights
(the next iteration's system), so an iteration costs one pass; the first iteration's blocks, at the
stage's start, are formed once per stage.  The client holds the sums only: O(levels), and for
crossed factors O(pairs of levels that occur together)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlmcli.design import ModelArguments, ReTerm
from mlmcli.distributed.blocks import Layout, Nesting, WeightedProducts, crossproducts, names_of, nesting, sum_products
from mlmcli.distributed.cluster import reduce, tree_sum
from mlmcli.distributed.glmm import (
    GlmSummary,
    Point,
    glm_agq,
    glm_partition,
    glm_pearson,
    glm_products,
    glm_summary,
    sum_summaries,
    with_aic_terms,
)
from mlmcli.distributed.levels import Levels, PartSpec, combine, merge_scans, scan_partition
from mlmcli.distributed.source import Source, read_partitions
from mlmcli.engine.factor import BlockedFactor
from mlmcli.engine.family import LINKS, Family, family
from mlmcli.engine.glmm import PIRLS_MAXIT, PIRLS_TOL, STEP_HALVINGS, Modes, PirlsError, gauss_hermite
from mlmcli.engine.glmm_fit import fit_glmm
from mlmcli.engine.terms import TermStructure, term_structure
from mlmcli.errors import DataError, MlmError
from mlmcli.formula import Formula
from mlmcli.glmmodel import MAX_NAGQ, GlmmModel

NAGQ_ONE_TERM = "nAGQ > 1 is only available for models with a single, scalar random-effects term"

# a linear predictor's parameters go with every task up to this many bytes in all
SEND_INLINE = 1 << 20


@dataclass
class Eta:
    """A linear predictor by its parameters, and the sums at it once a pass has formed them."""

    at: Point
    products: WeightedProducts | None = None


@dataclass
class ClusterResponse:
    """What the optimization reads of the response: its family (the rows stay on the workers)."""

    family: Family


class ClusterGlmmProblem:
    """engine/glmm.GlmmProblem's interface over partitions held by the cluster's workers."""

    def __init__(
        self,
        client: Any,
        parts: list,
        fam: Family,
        terms: list[ReTerm],
        structures: list[TermStructure],
        nest: Nesting,
        n: int,
        p: int,
    ) -> None:
        self.client, self.parts = client, parts
        self.terms, self.structures, self.nest = terms, structures, nest
        self.response = ClusterResponse(fam)
        self.n, self.p = n, p
        self.passes = 0  # passes over the rows, for the record

    # ------------------------------------------------------------------ passes
    def _pass(self, fn: Callable, arg: object, combine: Callable) -> Any:
        """fn(part, family, arg) on every partition, reduced on the cluster by `combine`; `arg` is
        sent to the workers once, not once per partition."""
        self.passes += 1
        shared = self._share(arg)
        futures = [self.client.submit(fn, part, self.response.family, shared, pure=False) for part in self.parts]
        return reduce(self.client, futures, combine)

    def _share(self, at: Point) -> Any:
        """`at` as the tasks take it: itself where it is small, else sent to the cluster once (a
        round trip, which costs more than a few hundred KB sent with the tasks)."""
        arrays = ([] if at.beta is None else [at.beta]) + list(at.b or [])
        if sum(a.nbytes for a in arrays) * len(self.parts) <= SEND_INLINE:
            return at
        [shared] = self.client.scatter([at], hash=False)
        return shared

    def products(self, eta: Eta) -> WeightedProducts:
        """The sums at the linear predictor `eta` (one pass, kept with it: a stage starts every
        PIRLS from the same one)."""
        if eta.products is None:
            eta.products = self._pass(glm_products, eta.at, sum_products)
        return eta.products

    def factor(self, products: WeightedProducts, theta: np.ndarray) -> BlockedFactor:
        """The factor of the weighted LMM (beta's columns included) at theta."""
        system = BlockedFactor(crossproducts(products, self.structures, self.nest))
        if not system.update(theta):
            raise PirlsError("the penalized weighted least squares system is not positive definite")
        return system

    # ------------------------------------------------------------------ GlmmProblem's interface
    def start_eta(self) -> Eta:
        return Eta(Point(None, None))

    def rx_system(self, modes: Modes, theta: np.ndarray) -> BlockedFactor:
        return self.factor(self.products(modes.eta), theta)

    def first_iteration(self, eta0: Eta) -> None:
        """None: here the first iteration's system comes from the start's sums, formed once (products)."""
        return None

    def pirls(
        self, theta: np.ndarray, eta0: Eta, beta: np.ndarray | None = None, own: bool = False, first: None = None
    ) -> Modes:
        """GlmmProblem.pirls step for step, each iteration's rows summed on the cluster.  With beta
        fixed (glmer's second stage) the modes solve the same system with X's columns moved to the
        right-hand side: Lambda'Z'W(z - X beta), as the in-memory system of z - X beta has it."""
        products = self.products(eta0)
        old_pdev = np.inf
        prev: tuple[list[np.ndarray], np.ndarray] | None = None
        for it in range(1, PIRLS_MAXIT + 1):
            system = self.factor(products, theta)
            beta_it = system.beta() if beta is None else beta
            u = _spherical_modes(system, beta_it)
            at = Eta(Point(beta_it, system.conditional_modes(u)))
            new = self.products(at)
            pdev = new.dev + sum(float(ui @ ui) for ui in u)
            halvings = 0
            while (not np.isfinite(pdev) or pdev > old_pdev) and prev is not None and halvings < STEP_HALVINGS:
                # lme4's step halving: half way back to the previous solution
                u = [(a + b) / 2.0 for a, b in zip(prev[0], u, strict=True)]
                beta_it = (prev[1] + beta_it) / 2.0
                at = Eta(Point(beta_it, system.conditional_modes(u)))
                new = self.products(at)
                pdev = new.dev + sum(float(ui @ ui) for ui in u)
                halvings += 1
            if not np.isfinite(pdev):
                raise PirlsError("PIRLS resulted in a non-finite deviance")
            if pdev > old_pdev * (1.0 + 1e-12) and halvings == STEP_HALVINGS:
                raise PirlsError("PIRLS step-halvings failed to reduce the deviance")
            converged = abs(old_pdev - pdev) < PIRLS_TOL * pdev
            old_pdev, prev, products = pdev, (u, beta_it), new
            if converged:
                laplace = system.ldL2 + sum(float(ui @ ui) for ui in u) + new.aic
                return Modes(u, beta_it, at, None, system, laplace, it, pdev)  # type: ignore[arg-type]
        raise PirlsError(f"PIRLS did not converge in {PIRLS_MAXIT} iterations")

    def agq(self, modes: Modes, nagq: int) -> float:
        """GlmmProblem.agq: the per-level deviance sums at every quadrature node in one pass."""
        system = modes.system
        u0 = modes.u[0]
        sd = 1.0 / system.Ldiag[0][:, 0, 0]
        z, w = gauss_hermite(nagq)
        nodes = [u0] + [u0 + zk * sd for zk in z if zk != 0.0]
        b = [system.conditional_modes([uk])[0] for uk in nodes]
        sums = self._pass(glm_agq, Point(modes.beta, b), _add)
        devc0 = u0 * u0 + sums[0]
        mult = np.zeros(len(u0))
        m = 1
        for zk, wk in zip(z, w, strict=True):
            if zk == 0.0:
                mult += wk
                continue
            uk = nodes[m]
            dev = uk * uk + sums[m]
            m += 1
            mult += wk * np.exp(-0.5 * (dev - devc0) + 0.5 * zk * zk)
        return float(devc0.sum() + system.ldL2 - 2.0 * np.log(mult).sum())

    def residual_quantiles(self, beta: np.ndarray, b: list[np.ndarray]) -> list[float]:
        """summary's scaled residuals (Pearson's, sigma 1) from residuals that stay on the workers."""
        from mlmcli.distributed.residuals import quantiles

        shared = self._share(Point(beta, b))
        fam = self.response.family
        parts = [self.client.submit(glm_pearson, part, fam, shared, pure=False) for part in self.parts]
        try:
            return quantiles(self.client, parts, self.n)
        finally:
            del parts

    def release(self) -> None:
        """Let the workers drop the partitions."""
        self.parts = []


def _add(*arrays: np.ndarray) -> np.ndarray:
    return np.sum(arrays, axis=0)


def _spherical_modes(system: BlockedFactor, beta: np.ndarray) -> list[np.ndarray]:
    """u solving L_ZZ' u = c_y - c_X beta (BlockedFactor.spherical_modes at a given beta)."""
    p = system.p
    rhs = [c[:, :, p:] - c[:, :, :p] @ beta[:, None] for c in system.LF_rows(slice(0, p + 1))]
    return [ui[:, 0] for ui in system.solve_modes(rhs)]


@dataclass
class ClusterGlmmModel(GlmmModel):
    """A glmer fit whose rows stayed on the cluster: everything computed from the estimates and the
    sums, the scaled residuals' quantiles computed there; the rows' own values are not at hand."""

    residual_quantiles: list[float] = field(default_factory=list)
    moments: np.ndarray | None = None  # [1 X]'[1 X] of the rows, for the ICC and R²

    def scaled_residual_quantiles(self) -> list[float]:
        return list(self.residual_quantiles)

    def _rows(self) -> DataError:
        return DataError("the rows of this model stayed on the dask cluster: refit it in memory for per-row values")

    @property
    def linear_predictor(self) -> np.ndarray:
        raise self._rows()

    @property
    def fitted(self) -> np.ndarray:
        raise self._rows()

    def fitted_values(self):  # noqa: ANN201 - as GlmmModel's
        raise self._rows()

    def pearson_residuals(self) -> np.ndarray:
        raise self._rows()

    def deviance_residuals(self) -> np.ndarray:
        raise self._rows()


def check_family(family_name: str, link: str | None, nagq: int) -> Family:
    """glmer's family and nAGQ as the in-memory pipeline checks them."""
    if family_name not in LINKS:
        raise MlmError(f"--family {family_name}: use binomial or poisson")
    if link is not None and link not in LINKS[family_name]:
        raise MlmError(f"--link {link} is not offered for {family_name}: use {', '.join(LINKS[family_name])}")
    if not 0 <= nagq <= MAX_NAGQ:
        raise DataError(f"nAGQ must be between 0 and {MAX_NAGQ}: {nagq}")
    return family(family_name, link)


def check_nagq_terms(formula: Formula, nagq: int) -> None:
    """nAGQ > 1 needs one random-effects term (that it is scalar is known after the first pass)."""
    if nagq > 1 and len(formula.random) != 1:
        raise DataError(NAGQ_ONE_TERM)


def glmer_on_cluster(
    client: Any,
    source: Source,
    formula_text: str,
    family_name: str,
    link: str | None = None,
    nagq: int = 1,
    optimizer: str = "robust",
    weights: str | None = None,
    offset: str | None = None,
    on_notes: Callable[[list[str]], None] | None = None,
) -> ClusterGlmmModel:
    """glmer() on the partitions of `source`: pass 1 (the levels), the partitions' GLM designs built
    and kept on the workers, then fit_glmm on the client with PIRLS's sums from the cluster."""
    import dask

    from mlmcli.distributed.fit import _no_rows, check_formula, rowless_design

    fam = check_family(family_name, link, nagq)
    formula, columns = check_formula(source, formula_text, weights, offset)
    check_nagq_terms(formula, nagq)
    leaves = read_partitions(source, columns)
    where = source.files if source.kind == "csv" else [f"partition {i + 1}" for i in range(len(leaves))]
    spec = PartSpec(
        formula_text,
        {c: source.columns[c] for c in columns},
        source.name,
        source.kind == "csv",
        weights=weights,
        offset=offset,
        family=fam.name,
    )
    scan = dask.delayed(scan_partition, pure=True)
    scans = tree_sum(client, [scan(leaf, spec) for leaf in leaves], merge_scans, "levels")
    if scans.n_rows == 0:
        raise _no_rows(source)
    levels = combine(formula, scans, where, source.name)
    if on_notes is not None:
        on_notes(levels.notes)
    _check_response(formula, levels)
    if nagq > 1 and (len(levels.order) != 1 or len(names_of(formula, levels)[1][0]) != 1):
        raise DataError(NAGQ_ONE_TERM)
    spec.kinds = levels.kinds
    layout = client.scatter(Layout(spec, levels), broadcast=True, hash=False)
    # the partitions' designs, computed on the workers and kept there (persisted) for every pass
    build = dask.delayed(glm_partition, pure=True)
    designs = client.compute([build(leaf, layout) for leaf in leaves])
    summary: GlmSummary = reduce(client, [client.submit(glm_summary, d, pure=False) for d in designs], sum_summaries)
    parts = [client.submit(with_aic_terms, d, fam, summary.many_trials, pure=False) for d in designs]
    del designs  # the parts hold the same arrays
    design = rowless_design(
        formula, levels, summary.G, summary.binary, ModelArguments(weights, offset, fam.name), True, summary.messages
    )
    structures = [term_structure(t) for t in design.terms]
    problem = ClusterGlmmProblem(
        client, parts, fam, design.terms, structures, nesting(summary.N, structures), design.n_obs, len(design.xnames)
    )
    try:
        result = fit_glmm(problem, nagq, polish=optimizer == "robust")
        b = result.modes.system.conditional_modes(result.modes.u)
        quantiles = problem.residual_quantiles(result.beta, b)
    finally:
        problem.release()
    warnings = list(design.messages) + list(result.warnings)
    return ClusterGlmmModel(
        formula, design, fam, problem, result, source.name, warnings, optimizer, quantiles, moments=summary.G
    )  # type: ignore[arg-type]


def _check_response(formula: Formula, levels: Levels) -> None:
    """A binomial factor response has two levels (the first is failure), as build_design checks."""
    response = formula.response.label
    levs = levels.factor_levels.get(response)
    if levs is not None and len(levs) > 2 and levels.kinds.get(response) != "logical":
        raise DataError(
            f"the response '{response}' is a factor with {len(levs)} levels: a binomial response has two "
            "(the first is failure)"
        )
