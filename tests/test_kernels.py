"""The same optimum under every OpenBLAS kernel.  numpy's OpenBLAS picks its kernels by CPU
(OPENBLAS_CORETYPE overrides it) and their last-bit rounding differs; BOBYQA's path moves with it,
the optimum does not.  .ci/run runs this file under every kernel the CPU executes; each run must
reach the best known criterion of every hard fit (tests/fixtures/optima, all kernels and lme4)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest

from tests.refcheck import SUITE, fit_cases, reference
from tests.test_optimum import ILLCOND, criterion, illcond_cases

_OPTIMA = Path(__file__).parent / "fixtures" / "optima" / "optima.json"
# (absent only while make_optima.py imports this file to write it; test_optima_cover_... fails then)
OPTIMA = json.loads(_OPTIMA.read_text()) if _OPTIMA.exists() else {"fits": {}}
SAME_REL = 1e-8  # the issue asks 1e-7 between kernels; they agree to ~1e-15 here


@cache
def hard_fits() -> dict[str, tuple[float, Callable[[], float]]]:
    """id -> (lme4's criterion, our fit's criterion): the ill-conditioned fixtures and the suite."""
    out: dict[str, tuple[float, Callable[[], float]]] = {}
    for c in illcond_cases():
        out[f"illcond/{c['id']}"] = (
            c["criterion"],
            lambda c=c: criterion(ILLCOND / "data" / c["data"], c["formula"], c["reml"]),
        )
    for c in fit_cases():
        out[f"lme4/{c['id']}"] = (
            reference(c["id"])["fit"]["criterion"],
            lambda c=c: criterion(SUITE / "data" / c["data"], c["formula"], c["reml"]),
        )
    return out


def test_the_kernel_is_the_one_asked_for():
    """Under OPENBLAS_CORETYPE the run uses that kernel (Zen's are Haswell's), so the matrix in
    .ci/run tests what it names."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numpy  # noqa: F401  (loads OpenBLAS)

    asked = os.environ.get("OPENBLAS_CORETYPE")
    archs = {i.get("architecture") for i in threadpoolctl.threadpool_info() if i["internal_api"] == "openblas"}
    assert archs, "numpy runs no OpenBLAS"
    if asked:
        assert archs == {"Haswell" if asked == "Zen" else asked}


def test_optima_cover_every_hard_fit():
    assert set(OPTIMA["fits"]) == set(hard_fits())
    for fit in OPTIMA["fits"].values():
        # every kernel there reached the best known
        for value in fit["kernels"].values():
            assert value == pytest.approx(fit["best"], rel=SAME_REL)


@pytest.mark.parametrize("case_id", sorted(OPTIMA["fits"]))
def test_every_kernel_reaches_the_best_known_optimum(case_id):
    fit = OPTIMA["fits"][case_id]
    ours = hard_fits()[case_id][1]()
    assert ours == pytest.approx(fit["best"], rel=SAME_REL, abs=1e-9)
