"""Small pieces of the engine: distribution tails, optimizer codes, the blocked factor."""

from __future__ import annotations

import numpy as np
import pytest

from mlmcli.engine.blocks import batched_cholesky as _batched_cholesky
from mlmcli.engine.fit import Optimum
from mlmcli.rcompat.distributions import chisq_upper, t_two_sided


# values from R: 2 * pt(-abs(t), df), pchisq(x, df, lower.tail = FALSE)
@pytest.mark.parametrize(
    ("t", "df", "p"),
    [
        (0.1, 5, 0.92423014115466),
        (2.0, 10, 0.0733880347707404),
        (-1.957, 1368.5, 0.0505505346235708),
        (6.712, 18.156, 2.59239422010994e-06),
        (28.12, 1450.77, 3.10302373448439e-139),
    ],
)
def test_t_two_sided(t, df, p):
    assert t_two_sided(t, df) == pytest.approx(p, rel=1e-12)


@pytest.mark.parametrize(
    ("x", "df", "p"),
    [
        (4.1829, 2, 0.123507919433798),
        (0.5, 1, 0.479500122186953),
        (200, 5, 2.84062289864153e-41),
        (10, 10, 0.440493285065212),
    ],
)
def test_chisq_upper(x, df, p):
    assert chisq_upper(x, df) == pytest.approx(p, rel=1e-12)


def test_convergence_code_is_the_optimizers():
    # a failed gradient check leaves nloptwrap's code at 0, as lme4 prints "convergence code: 0 (OK)"
    assert (
        Optimum(theta=np.zeros(1), criterion=0.0, evaluations=1, status="NLOPT_XTOL_REACHED", check_code=-1).conv_code
        == 0
    )
    assert Optimum(theta=np.zeros(1), criterion=0.0, evaluations=1, status="NLOPT_MAXEVAL_REACHED").conv_code == 5
    assert Optimum(theta=np.zeros(1), criterion=0.0, evaluations=1, status="NLOPT_ROUNDOFF_LIMITED").conv_code == -4


@pytest.mark.parametrize("k", [1, 2, 3])
def test_batched_cholesky_and_inverse(k):
    rng = np.random.default_rng(k)
    B = rng.normal(size=(50, k, k))
    M = B @ B.transpose(0, 2, 1) + np.eye(k)
    L, Linv = _batched_cholesky(M)
    assert np.allclose(L @ L.transpose(0, 2, 1), M)
    assert np.allclose(np.triu(L, 1), 0)
    assert np.allclose(L @ Linv, np.eye(k))
    with pytest.raises(np.linalg.LinAlgError):
        _batched_cholesky(-M)
