"""The one lmer pipeline every fit goes through (mlmcli/pipeline.py): its refits (lme4's update()
and refitML) against fits of their own, and --optimizer on every command that fits, each command's
output with `--optimizer lme4` against the library's fit with optimizer "lme4"."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest

from mlmcli.pipeline import lmer, refit
from mlmcli.report import fit_report
from tests.commands import mlm

ROOT = Path(__file__).resolve().parent.parent
ILLCOND = ROOT / "tests" / "fixtures" / "illcond"
# Sitka REML: BOBYQA on lme4's settings stops well short of the optimum here, where lme4 1.1-31
# stops (its criterion 181.64 against the optimum's 130.12; tests/test_optimum.py)
SITKA = str(ILLCOND / "data" / "Sitka.csv")
FORMULA = "size ~ Time * treat + (Time|tree)"
REDUCED = "size ~ Time * treat + (1 | tree)"  # ranova's reduction of (Time|tree)
SLEEP = str(ROOT / "tests" / "fixtures" / "lme4" / "data" / "sleepstudy.csv")
SS = "Reaction ~ Days + (Days|Subject)"
REL = 1e-7  # a command and the library on the same machine: the same fit, printed to 17 digits


@cache
def library_fit(formula: str, optimizer: str, data: str = SITKA):
    return lmer(data, formula, optimizer=optimizer)


def test_refit_with_a_formula_is_the_fit_of_that_formula():
    """update(fit, formula): the reduced model on the same rows, with the fit's criterion and optimizer."""
    model, frame = library_fit(FORMULA, "lme4")
    reduced = refit(model, formula=REDUCED, frame=frame)
    direct, _ = library_fit(REDUCED, "lme4")
    assert reduced.optimizer == "lme4" and reduced.reml
    assert fit_report(reduced) == fit_report(direct)
    ml = refit(model, formula=REDUCED, frame=frame, reml=False)
    assert not ml.reml and ml.loglik == pytest.approx(lmer(SITKA, REDUCED, reml=False, optimizer="lme4")[0].loglik)


def test_refit_by_the_other_criterion_is_refit_ml():
    """refitML from the fitted theta ends at the ML optimum a fit by ML reaches; the same criterion
    is the fit itself."""
    model, _ = library_fit(SS, "robust", SLEEP)
    assert refit(model) is model and refit(model, reml=True) is model
    ml = refit(model, reml=False)
    direct, _ = lmer(SLEEP, SS, reml=False)
    assert not ml.reml
    assert ml.criterion == pytest.approx(direct.criterion, rel=1e-10)
    np.testing.assert_allclose(ml.beta, direct.beta, rtol=1e-6)


def run_json(*args: str) -> tuple[dict, str]:
    p = mlm(*args)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout), p.stderr


def _fixed_intervals(report: dict) -> list[tuple[float, float]]:
    return [(r["lower"], r["upper"]) for r in report["intervals"] if r["lower"] is not None]


def _wald(model) -> list[tuple[float, float]]:
    z = NormalDist().inv_cdf(0.975)
    return [(b - z * s, b + z * s) for b, s in zip(model.beta, model.std_errors, strict=True)]


def _interaction_f(report: dict) -> float:
    return next(t["f_value"] for t in report["terms"] if t["term"] == "Time:treat")


def _t_squared(model) -> float:
    """A one-degree-of-freedom term's F in the type III table: the square of its t value."""
    row = next(r for r in model.coef_table() if r["term"] == "Time:treatozone")
    return row["t_value"] ** 2


def _loglik(report: dict) -> list[float]:
    return [t["loglik"] for t in report["terms"]]


def _fitted(report: dict) -> list[float]:
    return [r[".fitted"] for r in report["rows"]]


def _modes(report: dict) -> list[tuple[float, float]]:
    return [(p["x"], p["y"]) for p in report["points"]]


def _ranef(model) -> list[tuple[float, float]]:
    b = model.conditional_modes()[0]  # (Intercept), Time per tree
    return [(float(x), float(y)) for y, x in b]


# command, its arguments after DATA FORMULA, what its json shows, that from the library's fit
COMMANDS = {
    "confint": (["--method", "wald"], _fixed_intervals, lambda m: _wald(m)),
    "anova": ([], _interaction_f, _t_squared),
    "ranova": (
        [],
        _loglik,
        lambda m: [m.loglik, library_fit(REDUCED, m.optimizer)[0].loglik],
    ),
    "predict": ([], _fitted, lambda m: list(m.fitted)),
    "augment": ([], _fitted, lambda m: list(m.fitted)),
    "plot": (["--kind", "ranef"], _modes, _ranef),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_that_fits_takes_the_optimizer(command, tmp_path):
    """`--optimizer lme4` reaches the command's fit: its numbers are those of the library's fit with
    optimizer "lme4", which stops short of the default's optimum on this model (and says so)."""
    extra, shown, expected = COMMANDS[command]
    args = [command, SITKA, FORMULA, *extra, "--format", "json"]
    if command == "plot":
        args += ["-o", str(tmp_path / "ranef.png")]
    ours, said = run_json(*args, "--optimizer", "lme4")
    default, said_default = run_json(*args)
    lme4_fit, robust_fit = library_fit(FORMULA, "lme4")[0], library_fit(FORMULA, "robust")[0]
    lme4 = json.loads((ILLCOND / "sitka_reml.json").read_text())
    assert lme4["case"]["formula"] == FORMULA
    assert lme4_fit.criterion == pytest.approx(lme4["criterion"], rel=1e-8)
    assert np.asarray(shown(ours), dtype=float) == pytest.approx(np.asarray(expected(lme4_fit), dtype=float), rel=REL)
    assert np.asarray(shown(default), dtype=float) == pytest.approx(
        np.asarray(expected(robust_fit), dtype=float), rel=REL
    )
    assert not np.allclose(np.asarray(shown(ours), dtype=float), np.asarray(shown(default), dtype=float), rtol=1e-4)
    # where lme4's BOBYQA stops, lme4's gradient check fails; at the optimum it passes
    assert "Model failed to converge" in said
    assert "Model failed to converge" not in said_default
