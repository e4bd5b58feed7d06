"""Parametric bootstrap intervals (`mlm confint --method boot`) against lme4's confint(method = "boot")
at nsim = 2000 (tests/fixtures/inference/boot, written by make_boot_refs.R there).

Our replicates are not R's draws, so the intervals can only agree within Monte-Carlo error.  Each
bound is a sample quantile q_p of the bootstrap distribution (p = 0.025, 0.975); from n replicates
its standard error is sqrt(p (1 - p) / n) / f(q_p), f the density there (the asymptotic variance
of a sample quantile).  1 / f is estimated from R's replicates by the spread of two neighbouring
quantiles, (q_{p+h} - q_{p-h}) / 2h (Siddiqui's estimate).  R's bound and ours are independent
estimates, so their difference has sqrt(2) times that standard error (with fewer replicates of
ours, sqrt(1 + 2000 / n)); the test allows Z of those (Z = 4: 40 bounds are compared, and a false
alarm over all of them has probability below 3e-3).
The draws are seeded, so the test itself is deterministic.  A bound on a point mass (a correlation
of -1 in many singular refits) has no spread: both sides must then give the point itself.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from mlmcli.engine.crossprod import CrossProducts
from mlmcli.pipeline import lmer
from mlmcli.stats.bootstrap import bootstrap, percentile_interval
from mlmcli.stats.confint import Bootstrap, confint_report
from tests.commands import mlm
from tests.test_cli_exit import undeclared

ROOT = Path(__file__).resolve().parent.parent
REFS = ROOT / "tests" / "fixtures" / "inference" / "boot"
CASES = ["heck_seed1", "sleep"]
Z = 4.0
SEED = 20261201
_fits: dict[str, object] = {}


def ref(case: str) -> dict:
    return json.loads((REFS / f"{case}.json").read_text())


def replicates(case: str) -> dict[str, np.ndarray]:
    with open(REFS / f"{case}.replicates.csv") as fh:
        rows = list(csv.reader(fh))
    cols = np.array([[float(v) if v != "NA" else np.nan for v in r] for r in rows[1:]])
    return {name: cols[:, j] for j, name in enumerate(rows[0])}


def fitted(case: str):
    if case not in _fits:
        c = ref(case)["case"]
        _fits[case], _ = lmer(str(ROOT / c["data"]), c["formula"], reml=c["reml"])
    return _fits[case]


def quantile_se(t: np.ndarray, p: float) -> float:
    """Standard error of the sample p-quantile of n draws like t (see the module's docstring)."""
    t = np.sort(t[np.isfinite(t)])
    n = len(t)
    h = min(0.02, p / 2, (1 - p) / 2)
    sparsity = (np.quantile(t, p + h) - np.quantile(t, p - h)) / (2 * h)
    return math.sqrt(p * (1 - p) / n) * sparsity


def test_percentiles_are_boots_norm_inter():
    """On R's own replicates our percentile rule gives R's intervals to the last digit."""
    for case in CASES + ["penicillin", "pastes"]:
        r = ref(case)
        reps = replicates(case)
        for key, level in (("confint", 0.95), ("confint_90", 0.9)):
            for row in r[key]["intervals"]:
                lo, hi = percentile_interval(reps[row["parameter"]], level)
                assert lo == pytest.approx(row["lower"], rel=1e-7, abs=1e-12), (case, row["parameter"])
                assert hi == pytest.approx(row["upper"], rel=1e-7, abs=1e-12), (case, row["parameter"])


def test_percentile_ends_use_extreme_order_statistics():
    t = np.array([3.0, 1.0, 2.0, np.nan])
    assert percentile_interval(t, 0.95) == (1.0, 3.0)  # (R + 1) alpha below 1: the extremes
    t = np.arange(1.0, 40.0)  # R = 39: (R + 1) alpha = 1 and 39
    assert percentile_interval(t, 0.95) == pytest.approx((1.0, 39.0), abs=1e-12)


@pytest.mark.parametrize("case, nsim", [("heck_seed1", 2000), ("sleep", 2000), ("pastes", 300), ("penicillin", 100)])
def test_bootstrap_intervals_agree_with_lme4_within_monte_carlo_error(case, nsim):
    """At lme4's nsim = 2000 on the seed model and sleepstudy; the nested (Pastes) and crossed
    (Penicillin) designs with fewer replicates of ours, to keep the test's time down."""
    r = ref(case)
    model = fitted(case)
    got = confint_report(model, "boot", 0.95, spec=Bootstrap(nsim=nsim, seed=SEED))
    assert got["nsim"] == nsim and got["seed"] == SEED and got["failed"] == 0
    assert [g["parameter"] for g in got["intervals"]] == [w["parameter"] for w in r["confint"]["intervals"]]
    reps = replicates(case)
    # the standard error of a quantile of n draws scales as 1 / sqrt(n): quantile_se is R's, for
    # r["nsim"] draws, and the difference's variance is the sum of R's and ours
    both = math.sqrt(1 + r["nsim"] / nsim)
    for g, w in zip(got["intervals"], r["confint"]["intervals"], strict=True):
        t = reps[w["parameter"]]
        for key, p in (("lower", 0.025), ("upper", 0.975)):
            tol = Z * both * quantile_se(t, p) + 1e-9 * max(1.0, abs(w[key]))
            assert abs(g[key] - w[key]) <= tol, (w["parameter"], key, g[key], w[key], tol)
    # singular refits: lme4 counts its messages; ours are the same kind of event at a similar rate
    n_sing = sum(r["messages"].get("factory-message", {}).values()) if r["messages"].get("factory-message") else 0
    rate = n_sing / r["nsim"]
    se = math.sqrt(max(rate * (1 - rate), 1.0 / nsim) * (1 / nsim + 1 / r["nsim"]))
    assert abs(got["singular"] / nsim - rate) <= Z * se


@pytest.mark.parametrize("case", ["sleep", "heck_seed1"])  # two processes; two threads
def test_replicates_depend_on_the_seed_alone(case):
    """The same seed gives the same replicates with one worker or two (200: enough chunks for the
    worker processes); another seed others."""
    model = fitted(case)
    one = bootstrap(model, 200, seed=7, workers=1)
    two = bootstrap(model, 200, seed=7, workers=2)
    np.testing.assert_array_equal(one.values, two.values)
    other = bootstrap(model, 50, seed=8, workers=1)
    assert not np.array_equal(one.values[:50], other.values)


@pytest.mark.parametrize("case", ["heck_seed1", "sleep"])
def test_lockstep_refits_equal_one_at_a_time(case):
    """Refits in lockstep (one batched criterion for many responses) end where refits one after
    another do: the same optimizer on the same criterion, up to rounding along its path."""
    from mlmcli.engine.bootstrap import replicate
    from mlmcli.pipeline import bootstrap_refits

    bm = bootstrap_refits(fitted(case), seed=11)
    batched, single = replicate(bm, range(30)), replicate(bm, range(30), lockstep=False)
    assert batched.singular == single.singular and batched.failed == single.failed == 0
    scale = np.nanstd(single.values, axis=0)
    # both polished into the optimum (engine/polish.py); at a singular refit (a correlation of -1)
    # the criterion is flat along the boundary: the same to 1e-4 of a bootstrap standard deviation
    np.testing.assert_allclose(batched.values, single.values, rtol=0, atol=1e-4 * float(scale.min()))


@pytest.mark.parametrize(
    "data, formula",
    [
        ("tests/fixtures/lme4/data/Penicillin.csv", "diameter ~ 1 + (1|plate) + (1|sample)"),  # crossed
        ("tests/fixtures/lme4/data/Pastes.csv", "strength ~ 1 + (1|batch/cask)"),  # nested
        ("tests/fixtures/lme4/data/subjitem.csv", "y ~ x + (1|item) + (1|subject/session)"),  # both
    ],
)
def test_response_swap_equals_fresh_cross_products(data, formula):
    """A refit's blocks (only the response's rows and columns of A recomputed) are those built from
    scratch for the new response."""
    model, _ = lmer(str(ROOT / data), formula)
    cp = model.system.cp
    y = np.random.default_rng(1).standard_normal(cp.n) * 3 + 1
    swapped, fresh = cp.with_response(y), CrossProducts(model.design.terms, cp.X, y)
    np.testing.assert_allclose(swapped.A_FF, fresh.A_FF, rtol=1e-12)
    for a, b in zip(swapped.A_F, fresh.A_F, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    if cp.q_tail:
        np.testing.assert_allclose(swapped.A_Ft, fresh.A_Ft, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(cp.y, model.design.y)  # the fit's own blocks are untouched


def schema(name: str) -> dict:
    return json.loads((ROOT / "mlmcli" / "schemas" / f"{name}.schema.json").read_text())


SLEEP = ("tests/fixtures/lme4/data/sleepstudy.csv", "Reaction ~ Days + (Days|Subject)")


def test_cli_confint_boot_table():
    p = mlm("confint", *SLEEP, "--method", "boot", "--nsim", "20", "--seed", "3", "-f", "table")
    assert p.returncode == 0, p.stderr
    assert "Bootstrap confidence intervals (0.95)" in p.stdout
    assert "percentiles of 20 parametric bootstrap refits (seed 3)" in p.stdout


def test_cli_confint_boot_json_and_text():
    p = mlm("confint", *SLEEP, "--method", "boot", "--nsim", "40", "--seed", "3", "-f", "json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    jsonschema.validate(out, schema("confint"))
    assert undeclared(out, schema("confint")) == []
    assert (out["method"], out["nsim"], out["seed"]) == ("boot", 40, 3)
    assert [r["parameter"] for r in out["intervals"]] == [
        "sd_(Intercept)|Subject",
        "cor_Days.(Intercept)|Subject",
        "sd_Days|Subject",
        "sigma",
        "(Intercept)",
        "Days",
    ]
    assert "Computing bootstrap confidence intervals ..." in p.stderr
    assert "\x1b[" not in p.stderr  # no progress bar when stderr is not a terminal
    text = mlm("confint", *SLEEP, "--method", "boot", "--nsim", "40", "--seed", "3", "--parm", "sigma,Days")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["2.5", "%", "97.5", "%"] and [ln.split()[0] for ln in lines[1:]] == [".sigma", "Days"]
    sigma = next(r for r in out["intervals"] if r["parameter"] == "sigma")
    assert float(lines[1].split()[1]) == pytest.approx(sigma["lower"], rel=1e-6)


def test_cli_fit_ci_boot_in_json_and_csv():
    p = mlm("fit", *SLEEP, "--ci", "boot", "--nsim", "30", "--seed", "5", "-f", "json")
    assert p.returncode == 0, p.stderr
    fit = json.loads(p.stdout)
    jsonschema.validate(fit, schema("fit"))
    assert undeclared(fit, schema("fit")) == []
    assert fit["confint"]["method"] == "boot" and fit["confint"]["nsim"] == 30
    c = mlm("fit", *SLEEP, "--ci", "boot", "--nsim", "30", "--seed", "5", "-f", "csv")
    assert c.returncode == 0, c.stderr
    rows = list(csv.DictReader(c.stdout.splitlines()))
    for row, fe in zip(rows, fit["fixed_effects"], strict=False):
        assert float(row["conf.low"]) == pytest.approx(fe["conf_low"], rel=1e-12)
    # the bootstrap gives the variance parameters' intervals too
    assert all(r["conf.low"] != "NA" for r in rows if r["effect"] == "ran_pars")


@pytest.mark.parametrize(
    "args, message",
    [
        (("--nsim", "0"), "--nsim"),
        (("--seed", "-4"), "--seed"),
    ],
)
def test_cli_bad_bootstrap_options_exit_2(args, message):
    p = mlm("confint", *SLEEP, "--method", "boot", *args)
    assert p.returncode == 2
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("mlm: error:") and message in last
    assert "Traceback" not in p.stderr
