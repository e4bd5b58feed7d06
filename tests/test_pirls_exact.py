"""PIRLS to exact modes (GlmmProblem.pirls(exact=True)) on grouseticks' null model
TICKS ~ (1 | BROOD) + (1 | INDEX) + (1 | LOCATION), Poisson, whose observation-level term (403
levels) makes lme4's criterion depend on where PIRLS starts: the exact criterion is the same from
every start, equals a dense Newton solution's Laplace deviance, and lme4's devfun with
tolPwrss = 1e-12 at lme4's end points (tests/fixtures/glmer/exact_modes.json, make_exact_modes.R)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlmcli.design import ReTerm
from mlmcli.engine.family import family
from mlmcli.engine.glmm import GlmmProblem, GlmResponse

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "glmer"
NULL = json.loads((FIXTURES / "exact_modes.json").read_text())["grouse_null"]
# lme4's default glmer, bobyqa alone, and the default with tolPwrss = 1e-12 (the exact minimum)
POINTS = {(f["optimizer"], f["tol_pwrss"]): f for f in NULL["fits"] if f["optimizer"] in ("default", "bobyqa")}


@lru_cache
def problem() -> GlmmProblem:
    df = pd.read_csv(FIXTURES / NULL["data"])
    terms = []
    for name in ("INDEX", "BROOD", "LOCATION"):  # lme4's order: decreasing numbers of levels
        levels, codes = np.unique(df[name].to_numpy(), return_inverse=True)
        terms.append(
            ReTerm(
                group=name,
                levels=[str(v) for v in levels],
                codes=codes,
                X=np.ones((len(df), 1)),
                cnames=["(Intercept)"],
            )
        )
    n = len(df)
    y = df["TICKS"].to_numpy(dtype=float)
    return GlmmProblem(
        terms, np.ones((n, 1)), GlmResponse(family("poisson", "log"), y, np.ones(n), np.ones(n), np.zeros(n))
    )


def starts(p: GlmmProblem) -> dict[str, np.ndarray]:
    """Linear predictors PIRLS may start from: the modes at lme4's start (theta = 1) and at the two
    end points, and log(y)."""
    resp = p.response
    mustart = resp.family.linkfun(resp.family.start_mu(resp.y, resp.weights))
    out = {"theta = 1": p.pirls(np.ones(3), mustart).eta, "log y": np.log(np.maximum(resp.y, 0.5))}
    for key in (("default", 1e-7), ("bobyqa", 1e-7)):
        f = POINTS[key]
        out[key[0]] = p.pirls(np.array(f["theta"]), mustart, np.array(f["beta"]), exact=True).eta
    return out


def dense_laplace(p: GlmmProblem, theta: np.ndarray, beta: np.ndarray) -> float:
    """The Laplace deviance at modes found by damped Newton to machine precision on dense Z Lambda."""
    resp = p.response
    ZL = np.hstack([np.eye(len(t.levels))[t.codes] * th for t, th in zip(p.terms, theta, strict=True)])
    fixed = p.X @ beta

    def pdev(v: np.ndarray) -> float:
        eta = fixed + ZL @ v
        return float(np.sum(np.exp(eta) - resp.y * eta) + 0.5 * v @ v)

    u = np.zeros(ZL.shape[1])
    for _ in range(100):
        mu = np.exp(fixed + ZL @ u)
        step = np.linalg.solve(ZL.T @ (ZL * mu[:, None]) + np.eye(len(u)), ZL.T @ (mu - resp.y) + u)
        t = 1.0
        while pdev(u - t * step) > pdev(u) and t > 1e-8:
            t /= 2.0
        u = u - t * step
        if np.max(np.abs(step)) < 1e-13:
            break
    mu = np.exp(fixed + ZL @ u)
    ld = np.linalg.slogdet(ZL.T @ (ZL * mu[:, None]) + np.eye(len(u)))[1]
    return float(ld + u @ u + resp.aic(mu))


@pytest.mark.parametrize("key", [("default", 1e-7), ("bobyqa", 1e-7), ("default", 1e-12)])
def test_exact_criterion_is_the_same_from_every_start(key):
    p = problem()
    f = POINTS[key]
    theta, beta = np.array(f["theta"]), np.array(f["beta"])
    values = {name: p.pirls(theta, eta0, beta, exact=True).laplace for name, eta0 in starts(p).items()}
    ref = dense_laplace(p, theta, beta)
    for value in values.values():
        assert abs(value - ref) <= 1e-10 * ref
    # lme4's devfun with tolPwrss = 1e-12 (the weights it reads are still ~1e-5 behind the modes)
    assert abs(ref - f["devfun_tol_1e12"]) <= 1e-8 * ref


def test_lme4s_criterion_depends_on_the_start_and_its_end_point_is_not_the_minimum():
    p = problem()
    ends = starts(p)
    bobyqa, default, exact = POINTS["bobyqa", 1e-7], POINTS["default", 1e-7], POINTS["default", 1e-12]
    theta, beta = np.array(bobyqa["theta"]), np.array(bobyqa["beta"])
    lagged = [p.pirls(theta, eta0, beta).laplace for eta0 in ends.values()]
    assert max(lagged) - min(lagged) > 1e-3
    exact_at = {k: dense_laplace(p, np.array(v["theta"]), np.array(v["beta"])) for k, v in POINTS.items()}
    # bobyqa's end (lme4's criterion 1874.2575) is 1874.2408 at exact modes; lme4's default end
    # (1874.2485) is that at exact modes too; the exact minimum is 1874.2395, below both
    assert abs(exact_at["bobyqa", 1e-7] - 1874.24077) < 1e-5
    assert abs(exact_at["default", 1e-7] - default["deviance"]) < 2e-5
    assert abs(exact_at["default", 1e-12] - 1874.23947) < 1e-5
    assert exact_at["default", 1e-12] < default["deviance"] - 8e-3
    assert bobyqa["deviance"] - exact["deviance"] > 1.5e-2
