"""PIRLS on the blocked factor against a dense PIRLS on small random designs (binomial and Poisson;
scalar, vector and crossed terms; beta fixed, as glmer's second stage, or estimated with the modes,
as nAGQ = 0): the conditional modes, beta, the penalized deviance and the Laplace deviance must be
those of the same iterations done with dense Z, Lambda and a dense solve."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmcli.design import ReTerm
from mlmcli.engine.family import family
from mlmcli.engine.glmm import PIRLS_TOL, GlmmProblem, GlmResponse
from mlmcli.engine.terms import term_structure


def _term(codes: np.ndarray, k: int, x: np.ndarray, name: str) -> ReTerm:
    ell = int(codes.max()) + 1
    X = np.column_stack([x**a for a in range(k)])
    return ReTerm(group=name, levels=[str(i) for i in range(ell)], codes=codes, X=X, cnames=[f"c{a}" for a in range(k)])


def _design(rng: np.random.Generator, kind: str):
    """Terms in lme4's order (decreasing numbers of levels), X, and a linear predictor to simulate from."""
    n = int(rng.integers(50, 120))
    x = rng.normal(size=n)
    g = rng.integers(0, int(rng.integers(6, 12)), size=n)
    h = rng.integers(0, int(rng.integers(2, 5)), size=n)
    g, h = (np.unique(c, return_inverse=True)[1] for c in (g, h))
    if kind == "scalar":
        terms = [_term(g, 1, x, "g")]
    elif kind == "vector":
        terms = [_term(g, 2, x, "g")]
    else:  # crossed: g with h, both scalar
        terms = [_term(g, 1, x, "g"), _term(h, 1, x, "h")]
    terms.sort(key=lambda t: -len(t.levels))
    X = np.column_stack([np.ones(n), x, rng.normal(size=n)])
    eta = X @ np.array([0.2, 0.5, -0.3])
    for t in terms:
        b = rng.normal(scale=0.7, size=(len(t.levels), t.X.shape[1]))
        eta = eta + np.einsum("ik,ik->i", t.X, b[t.codes])
    return terms, X, eta


def _dense_lambda(terms: list[ReTerm], theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense Z and Lambda (theta in lme4's order: each term's lower triangle, column by column)."""
    n = len(terms[0].codes)
    Zs, blocks, pos = [], [], 0
    for t in terms:
        s = term_structure(t)
        ell, k = len(t.levels), t.X.shape[1]
        Z = np.zeros((n, ell * k))
        for a in range(k):
            Z[np.arange(n), t.codes * k + a] = t.X[:, a]
        T = np.zeros((k, k))
        T[s.tri_rows, s.tri_cols] = theta[pos : pos + s.ntheta]
        pos += s.ntheta
        Zs.append(Z)
        blocks.append(np.kron(np.eye(ell), T))
    q = sum(b.shape[0] for b in blocks)
    Lam = np.zeros((q, q))
    o = 0
    for b in blocks:
        Lam[o : o + b.shape[0], o : o + b.shape[0]] = b
        o += b.shape[0]
    return np.hstack(Zs), Lam


def _dense_pirls(resp: GlmResponse, X, Z, Lam, eta0, beta):
    """glmer's PIRLS with dense matrices: from eta0, solve the weighted penalized least squares at
    the working weights of the current eta until the penalized deviance changes by less than
    PIRLS_TOL relatively (with lme4's step halving); the Laplace deviance read with the weights of
    the last iteration.  beta None: beta estimated with u (nAGQ = 0)."""
    fam = resp.family
    ZL = Z @ Lam
    q = ZL.shape[1]
    eta, old, prev = eta0, np.inf, None
    for _ in range(100):
        mu = fam.linkinv(eta)
        d = fam.mu_eta(eta)
        w = resp.weights * d * d / fam.variance(mu)
        z = eta - resp.offset + (resp.y - mu) / d
        M = ZL.T @ (w[:, None] * ZL) + np.eye(q)
        if beta is None:
            A = np.hstack([ZL, X])
            S = A.T @ (w[:, None] * A)
            S[:q, :q] += np.eye(q)
            sol = np.linalg.solve(S, A.T @ (w * z))
            u, b = sol[:q], sol[q:]
        else:
            u = np.linalg.solve(M, ZL.T @ (w * (z - X @ beta)))
            b = beta
        new = resp.offset + X @ b + ZL @ u
        pdev = resp.dev_resids(resp.mu(new)).sum() + u @ u
        halvings = 0
        while pdev > old and prev is not None and halvings < 20:
            u, b = (prev[0] + u) / 2, (prev[1] + b) / 2
            new = resp.offset + X @ b + ZL @ u
            pdev = resp.dev_resids(resp.mu(new)).sum() + u @ u
            halvings += 1
        done = abs(old - pdev) < PIRLS_TOL * pdev
        eta, old, prev = new, pdev, (u, b)
        if done:
            ldL2 = np.linalg.slogdet(M)[1]
            return u, b, pdev, ldL2 + u @ u + resp.aic(resp.mu(eta))
    raise AssertionError("the dense PIRLS did not converge")


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(["scalar", "vector", "crossed"]),
    fam=st.sampled_from([("binomial", "logit"), ("binomial", "probit"), ("binomial", "cloglog"), ("poisson", "log")]),
    joint=st.booleans(),
)
def test_pirls_equals_a_dense_pirls(seed, kind, fam, joint):
    rng = np.random.default_rng(seed)
    terms, X, eta_true = _design(rng, kind)
    f = family(*fam)
    n = len(eta_true)
    mu_true = f.linkinv(eta_true)
    if fam[0] == "binomial":
        trials = rng.integers(1, 4, size=n).astype(float)  # cbind(successes, failures): proportions
        y = rng.binomial(trials.astype(int), mu_true) / trials
        resp = GlmResponse(f, y, trials, trials.copy(), np.zeros(n))
    else:
        offset = rng.normal(scale=0.2, size=n)  # an offset, as log(exposure)
        y = rng.poisson(mu_true * np.exp(offset)).astype(float)
        resp = GlmResponse(f, y, np.ones(n), np.ones(n), offset)
    problem = GlmmProblem(terms, X, resp)
    theta = []
    for t in terms:
        s = term_structure(t)
        diag = s.tri_rows == s.tri_cols
        theta.append(np.where(diag, rng.uniform(0.3, 1.3, size=s.ntheta), rng.uniform(-0.4, 0.4, size=s.ntheta)))
    theta = np.concatenate(theta)
    eta0 = f.linkfun(f.start_mu(resp.y, resp.weights))
    beta = None if joint else np.array([0.1, 0.4, -0.2])
    modes = problem.pirls(theta, eta0, beta)
    Z, Lam = _dense_lambda(terms, theta)
    u, b, pdev, laplace = _dense_pirls(resp, X, Z, Lam, eta0, beta)
    # the same iterations: equal to the rounding of the two solves
    np.testing.assert_allclose(np.concatenate(modes.u), u, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(modes.beta, b, rtol=1e-7, atol=1e-9)
    assert abs(modes.pdev - pdev) <= 1e-9 * pdev
    assert abs(modes.laplace - laplace) <= 1e-9 * abs(laplace)
    np.testing.assert_allclose(modes.eta, resp.offset + X @ b + Z @ Lam @ u, rtol=1e-7, atol=1e-9)
