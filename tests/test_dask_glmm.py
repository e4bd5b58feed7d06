"""--engine dask with --family against the in-memory glmer on the same rows: a LocalCluster of two
worker processes for the module, the glmer fixtures' data split into Parquet and CSV partitions
(cbind binomial, with adaptive quadrature too, a 0/1 factor response, crossed factors, Poisson with
offsets); the report, ranef and tau from the cluster's fit; `mlm` with --engine dask; bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlmcli.distributed.glmm_fit import glmer_on_cluster
from mlmcli.distributed.source import open_source
from mlmcli.errors import DataError
from mlmcli.pipeline import glmer
from mlmcli.report import glmer_fit_report, ranef_report, tau_report
from tests.commands import mlm

DATA = Path(__file__).resolve().parent / "fixtures" / "glmer" / "data"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
BACTERIA = "y ~ I(week > 2) + (1 | ID)"
EPIL = "y ~ V4 + offset(log(base/4)) + (1 | subject)"
VERBAGG = "r2 ~ btype + (1 | id) + (1 | item)"
DEV_REL = 1e-6  # the deviance, relative, and beta in its standard errors: the agreement
BETA_SE = 1e-4


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, memory_limit="1GiB", dashboard_address=None
    )
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def _write(df: pd.DataFrame, folder: Path, parts: int, csv: bool = False) -> str:
    folder.mkdir(parents=True)
    for i, idx in enumerate(np.array_split(np.arange(len(df)), parts)):
        if csv:
            df.iloc[idx].to_csv(folder / f"part{i}.csv", index=False)
        else:
            df.iloc[idx].to_parquet(folder / f"part{i}.parquet")
    return str(folder / "part*.csv") if csv else str(folder)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, tuple[str, str]]:
    """Each data set as partitions and as one CSV file (the in-memory engine's)."""
    root = tmp_path_factory.mktemp("glmm_parts")
    out = {}
    for name, parts, csv in (("cbpp", 3, False), ("bacteria", 4, True), ("epil", 3, False)):
        df = pd.read_csv(DATA / f"{name}.csv")
        if name == "epil":
            df["lbase4"] = np.log(df["base"] / 4)
        whole = root / f"{name}.csv"
        df.to_csv(whole, index=False)
        out[name] = (_write(df, root / name, parts, csv), str(whole))
    df = pd.read_csv(DATA / "VerbAgg.csv")
    df = df[df["id"].isin(sorted(df["id"].unique())[:30])]  # crossed: 30 people x 24 items
    df.to_csv(root / "verbagg.csv", index=False)
    out["verbagg"] = (_write(df, root / "verbagg", 3), str(root / "verbagg.csv"))
    return out


def both(client, data, name: str, formula: str, family: str, **options):
    parts, whole = data[name]
    ours = glmer_on_cluster(client, open_source(parts), formula, family, **options)
    theirs, _ = glmer(whole, formula, family=family, **options)
    return ours, theirs


def assert_same_fit(ours, theirs) -> None:
    assert ours.n == theirs.n
    assert ours.design.xnames == theirs.design.xnames
    assert ours.deviance == pytest.approx(theirs.deviance, rel=DEV_REL)
    se = theirs.std_errors
    assert np.all(np.abs(ours.beta - theirs.beta) <= BETA_SE * se)
    np.testing.assert_allclose(ours.std_errors, se, rtol=1e-4)
    np.testing.assert_allclose(ours.theta, theirs.theta, atol=1e-4)
    np.testing.assert_allclose(ours.scaled_residual_quantiles(), theirs.scaled_residual_quantiles(), atol=1e-5)
    assert ours.warnings == theirs.warnings
    assert (ours.converged, ours.singular) == (theirs.converged, theirs.singular)


def assert_same_numbers(a, b, path: str = "") -> None:
    """Two reports alike: the same keys and strings, numbers to 1e-5 (relative, or absolute near 0)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            if k != "evaluations":  # the optimizer's count may differ in the last evaluations
                assert_same_numbers(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_numbers(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool):
        assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6), (path, a, b)
    else:
        assert a == b, path


def test_cbind_binomial_and_its_report_ranef_and_tau(client, data):
    ours, theirs = both(client, data, "cbpp", CBPP, "binomial")
    assert_same_fit(ours, theirs)
    assert_same_numbers(glmer_fit_report(ours), glmer_fit_report(theirs))
    assert_same_numbers(ranef_report(ours, with_coef=True), ranef_report(theirs, with_coef=True))
    assert_same_numbers(tau_report(ours), tau_report(theirs))
    # the client holds sums by level: the reduced products are as big as the levels, not the rows
    products = ours.fit.modes.eta.products
    assert products.n == 56 and products.D[0].shape == (15, 1, 1) and products.F[0].shape == (15, 3, 1)
    with pytest.raises(DataError, match="stayed on the dask cluster"):
        ours.pearson_residuals()


def test_binary_factor_response(client, data):
    ours, theirs = both(client, data, "bacteria", BACTERIA, "binomial")
    assert_same_fit(ours, theirs)
    assert ours.design.xnames == ["(Intercept)", "I(week > 2)TRUE"]


def test_adaptive_quadrature(client, data):
    ours, theirs = both(client, data, "cbpp", CBPP, "binomial", nagq=7)
    assert ours.method == "AGQ" and ours.nagq == 7
    assert_same_fit(ours, theirs)


def test_crossed_binary_at_nagq0(client, data):
    ours, theirs = both(client, data, "verbagg", VERBAGG, "binomial", nagq=0)
    assert_same_fit(ours, theirs)
    assert_same_numbers(ranef_report(ours), ranef_report(theirs))


def test_poisson_with_an_offset(client, data):
    ours, theirs = both(client, data, "epil", EPIL, "poisson")
    assert_same_fit(ours, theirs)


@pytest.mark.parametrize(
    ("name", "formula", "family", "options", "message"),
    [
        ("epil", "I(y - 10) ~ trt + (1 | subject)", "poisson", {}, "negative values not allowed for the 'Poisson'"),
        ("epil", "I(y / 2) ~ trt + (1 | subject)", "binomial", {}, "y values must be 0 <= y <= 1"),
        ("epil", "trt ~ V4 + (1 | subject)", "poisson", {}, "the response 'trt' is not numeric"),
        ("epil", "y ~ trt + (1 | subject) + (1 | period)", "poisson", {"nagq": 5}, "nAGQ > 1 is only available"),
        ("epil", "y ~ trt + (V4 | subject)", "poisson", {"nagq": 5}, "nAGQ > 1 is only available"),
        ("cbpp", "cbind(incidence, size) ~ period + (1 | herd)", "poisson", {}, "must be one column"),
    ],
)
def test_bad_input_is_refused_as_in_memory(client, data, name, formula, family, options, message):
    parts, whole = data[name]
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        glmer_on_cluster(client, open_source(parts), formula, family, **options)
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        glmer(whole, formula, family=family, **options)


def test_the_command_with_engine_dask(data):
    """`mlm fit --family --engine dask` (a local cluster of its own) prints the in-memory fit's JSON,
    here with the offset as a column (--offset); bad input is one line and exit status 2."""
    parts, whole = data["epil"]
    args = [EPIL.replace(" + offset(log(base/4))", ""), "--family", "poisson", "--offset", "lbase4", "-f", "json"]
    ours = mlm("fit", parts, *args, "--engine", "dask")
    theirs = mlm("fit", whole, *args)
    assert ours.returncode == 0 and theirs.returncode == 0, ours.stderr
    a, b = json.loads(ours.stdout), json.loads(theirs.stdout)
    assert a["data_name"] == "epil" and a["offset"] == "lbase4"
    a["data_name"] = b["data_name"]
    # a poisson fit's ICC and R² need its null model refitted, which the cluster does not offer:
    # the fixed and random parts are there (from [1 X]'[1 X]), the residual part and the ratios null
    assert a["icc"] == {"adjusted": None, "unadjusted": None} and a["r2"] == {"marginal": None, "conditional": None}
    assert a["variance_parts"]["residual"] is None and b["variance_parts"]["residual"] > 0
    assert math.isclose(a["variance_parts"]["fixed"], b["variance_parts"]["fixed"], rel_tol=1e-9)
    assert math.isclose(a["variance_parts"]["random"], b["variance_parts"]["random"], rel_tol=1e-5)
    assert any("not offered with --engine dask" in w for w in a["effects_warnings"])
    assert "not offered with --engine dask" in ours.stderr
    for key in ("icc", "r2", "variance_parts", "effects_warnings"):
        a[key] = b[key]
    assert_same_numbers(a, b)
    for args, message in (
        (["y ~ trt + (1 | subject) + (1 | period)", "--family", "poisson", "--nagq", "3"], "nAGQ > 1 is only"),
        (["y ~ trt + (1 | subject)", "--family", "binomial", "--link", "log"], "--link log is not offered"),
        (["y ~ nothere + (1 | subject)", "--family", "poisson"], "unknown column 'nothere'"),
    ):
        p = mlm("fit", parts, *args, "--engine", "dask")
        assert p.returncode == 2 and p.stdout == ""
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], p.stderr


def test_ranef_command_with_engine_dask(data):
    parts, whole = data["cbpp"]
    ours = mlm("ranef", parts, CBPP, "--family", "binomial", "--engine", "dask", "-f", "json")
    theirs = mlm("ranef", whole, CBPP, "--family", "binomial", "-f", "json")
    assert ours.returncode == 0, ours.stderr
    a, b = json.loads(ours.stdout), json.loads(theirs.stdout)
    a["data_name"] = b["data_name"]
    assert_same_numbers(a, b)


def test_aic_terms_follow_the_whole_data_where_a_partition_alone_would_not():
    """binomial()$aic counts out of the trials when any row of the data has more than one: a partition
    whose rows all have one trial counts as the whole data does."""
    from mlmcli.distributed.glmm import GlmPart, with_aic_terms
    from mlmcli.engine.family import family

    fam = family("binomial")
    y = np.array([0.0, 1.0, 0.5, 0.25])
    trials = np.array([1.0, 1.0, 2.0, 4.0])
    # prior weights times trials: the two ways of counting differ where a weight rounds to 0 trials
    wt = trials * np.array([0.4, 3.4, 1.0, 1.0])
    mu = np.array([0.3, 0.6, 0.4, 0.2])
    whole = fam.aic(fam.aic_terms(y, trials, wt), mu)

    def part(rows: slice) -> GlmPart:
        n = len(y[rows])
        return GlmPart(np.ones((n, 1)), [], [], [], y[rows], trials[rows], wt[rows], None, [])

    first, second = (with_aic_terms(part(r), fam, True) for r in (slice(0, 2), slice(2, 4)))
    assert fam.aic(first.aic_terms, mu[:2]) + fam.aic(second.aic_terms, mu[2:]) == pytest.approx(whole, rel=1e-14)
    alone = with_aic_terms(part(slice(0, 2)), fam, False)  # as if no row had more than one trial
    assert fam.aic(alone.aic_terms, mu[:2]) != pytest.approx(fam.aic(first.aic_terms, mu[:2]))
