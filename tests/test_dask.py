"""--engine dask against the in-memory engine on the same data, and against lme4's references: a
dask.distributed LocalCluster of two worker processes for the module, data split into Parquet and
CSV partitions; a worker killed mid-pass; the `dask scheduler` / `dask worker` programs; errors."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlmcli.design import build_design
from mlmcli.distributed.fit import fit_on_cluster
from mlmcli.distributed.source import open_source
from mlmcli.errors import DataError
from mlmcli.formula import parse_formula
from mlmcli.io.csv import read_csv
from mlmcli.model import fit_model
from mlmcli.report import fit_report, ranef_report, tau_report
from mlmcli.stats.compare import compare, compare_report
from tests.commands import environment, run
from tests.refcheck import SUITE, check_compare, check_fit, check_ranef, reference

ROOT = Path(__file__).resolve().parent.parent
DATA = SUITE / "data"
REL = 1e-8  # criterion and estimates: the agreement with the in-memory engine


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


def _split(df: pd.DataFrame, parts: int) -> list[pd.DataFrame]:
    return [df.iloc[idx] for idx in np.array_split(np.arange(len(df)), parts)]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, str]:
    """The reference data sets as folders of Parquet parts (and heck2011 as CSV parts, some gzipped)."""
    root = tmp_path_factory.mktemp("parts")
    out = {}
    for name, parts in (
        ("heck2011", 12),
        ("nested", 5),
        ("Penicillin", 3),
        ("crossed3", 4),
        ("sites", 3),
        ("transforms", 3),
    ):
        folder = root / name
        folder.mkdir()
        df = pd.read_csv(DATA / f"{name}.csv")
        for i, part in enumerate(_split(df, parts)):
            part.to_parquet(folder / f"part{i:02d}.parquet")
        out[name] = str(folder)
    for name, parts in (("heck_w", 5), ("pastes_w", 3), ("penicillin_w", 3)):
        folder = root / name
        folder.mkdir()
        for i, part in enumerate(_split(pd.read_csv(SUITE.parent / "weights" / f"{name}.csv"), parts)):
            part.to_parquet(folder / f"part{i}.parquet")
        out[name] = str(folder)
    folder = root / "csv" / "missing"
    folder.mkdir(parents=True)
    text = (DATA / "missing.csv").read_text().splitlines(keepends=True)
    header, rows = text[0], text[1:]
    for i, idx in enumerate(np.array_split(np.arange(len(rows)), 3)):
        body = header + "".join(rows[j] for j in idx)
        if i == 1:
            (folder / f"part{i}.csv.gz").write_bytes(gzip.compress(body.encode()))
        else:
            (folder / f"part{i}.csv").write_text(body)
    out["missing"] = str(folder / "part*.csv*")
    folder = root / "csv" / "heck2011"
    folder.mkdir(parents=True)
    df = pd.read_csv(ROOT / "sample_data" / "heck2011.csv")
    for i, part in enumerate(_split(df, 3)):
        part.to_csv(folder / f"heck{i}.csv", index=False)
    out["heck_csv"] = str(folder / "heck*.csv")
    return out


def in_memory(csv: Path, formula: str, reml: bool = True):
    frame = read_csv(str(csv))
    parsed = parse_formula(formula)
    return fit_model(parsed, build_design(frame, parsed), reml=reml, data_name=frame.name)


def assert_same_fit(ours, theirs) -> None:
    """The dask fit against the in-memory fit of the same rows.

    The criterion agrees to REL.  Given theta, everything computed from the statistics (criterion,
    beta, their covariance, conditional variances) agrees to REL too; the optimum itself to 1e-6
    (both are polished into it, engine/polish.py, to a step of 1e-7 in the scaled theta)."""
    assert ours.n == theirs.n
    assert ours.criterion == pytest.approx(theirs.criterion, rel=REL)
    a, b = ours.system, theirs.system
    for s in (a, b):
        s.update(theirs.theta)
    assert ours.response.criterion(a) == pytest.approx(theirs.response.criterion(b), rel=REL)
    assert a.pwrss == pytest.approx(b.pwrss, rel=REL)
    se = np.sqrt(np.diag(b.unscaled_vcov()))
    assert np.all(np.abs(a.beta() - b.beta()) <= REL * np.maximum(np.abs(b.beta()), se))
    np.testing.assert_allclose(a.unscaled_vcov(), b.unscaled_vcov(), rtol=REL, atol=REL * np.outer(se, se).max())
    for x, y in zip(a.unscaled_condvar(), b.unscaled_condvar(), strict=True):
        np.testing.assert_allclose(x, y, rtol=REL, atol=REL * np.abs(y).max())
    a.update(ours.theta)
    b.update(theirs.theta)
    end = 1e-6
    assert np.all(np.abs(ours.beta - theirs.beta) <= end * np.maximum(np.abs(theirs.beta), theirs.std_errors))
    np.testing.assert_allclose(ours.std_errors, theirs.std_errors, rtol=end)
    assert ours.sigma == pytest.approx(theirs.sigma, rel=end)
    np.testing.assert_allclose(ours.theta, theirs.theta, rtol=end, atol=end)
    mine, yours = fit_report(ours), fit_report(theirs)
    for key in (
        "formula",
        "method",
        "groups",
        "npar",
        "singular",
        "converged",
        "warnings",
        "data_name",
        "weights",
        "offset",
    ):
        assert mine[key] == yours[key], key
    for x, y in zip(mine["fixed_effects"], yours["fixed_effects"], strict=True):
        assert x["term"] == y["term"]
        assert x["df"] == pytest.approx(y["df"], rel=1e-4)
    for q, v in yours["scaled_residuals"].items():
        assert mine["scaled_residuals"][q] == pytest.approx(v, rel=end, abs=end)
    for part in ("fixed", "random", "residual"):
        x, y = mine["variance_parts"][part], yours["variance_parts"][part]
        assert (x is None and y is None) or x == pytest.approx(y, rel=end)
    ra, rb = ranef_report(ours)["ranef"], ranef_report(theirs)["ranef"]
    assert [(r["group"], r["level"], r["term"]) for r in ra] == [(r["group"], r["level"], r["term"]) for r in rb]
    # a level's mode moves with theta on the scale of the largest mode (not of its own, which may be
    # near zero): the absolute tolerance is end on that scale, as the conditional variances' above
    values = np.array([r["value"] for r in rb])
    np.testing.assert_allclose([r["value"] for r in ra], values, rtol=end, atol=end * np.abs(values).max())
    np.testing.assert_allclose([r["cond_sd"] for r in ra], [r["cond_sd"] for r in rb], rtol=end)


CASES = [  # (lme4 reference case, data set in the parts)
    ("heck_seed2_reml", "heck2011"),
    ("nested_sc_reml", "nested"),
    ("nested_slope_class_ml", "nested"),
    ("pen_crossed_reml", "Penicillin"),
    ("crossed3_reml", "crossed3"),
    ("sites_logical_reml", "sites"),
    ("missing_reml", "missing"),
    ("transforms_reml", "transforms"),  # scale() from moments merged over the partitions
]


@pytest.fixture
def from_sums(monkeypatch):
    """Every fit from the summed blocks of A, as on data of more than 50,000 rows: the in-memory
    engine then also evaluates the criterion from A alone."""
    import mlmcli.distributed.fit as dfit
    import mlmcli.engine.factor as factor
    from mlmcli.engine.response import GaussianResponse

    monkeypatch.setattr(dfit, "ROWS_TO_CLIENT", 0)
    monkeypatch.setattr(factor, "SMALL_DATA_ROWS", 0)
    monkeypatch.setattr(GaussianResponse, "direct_rows", 0)


@pytest.mark.parametrize(("case_id", "name"), CASES, ids=[c[0] for c in CASES])
def test_same_fit_as_in_memory_and_lme4(client, data, from_sums, case_id, name):
    ref = reference(case_id)
    case = ref["case"]
    model = fit_on_cluster(client, open_source(data[name]), case["formula"], reml=case["reml"])
    assert model.remote is not None  # no rows on the client
    assert_same_fit(model, in_memory(DATA / case["data"], case["formula"], case["reml"]))
    report = fit_report(model)
    problems = check_fit(report, ref["fit"]) + check_ranef(ranef_report(model), ref["ranef"], ref["fit"])
    assert not problems, "\n".join(problems)
    assert report["warnings"] == ref["fit"]["warnings"]


WEIGHTED = ["heck_w", "heck_w_slope", "pastes_w", "penicillin_w"]


@pytest.mark.parametrize("name", WEIGHTED)
def test_weights_and_offsets(client, data, from_sums, name):
    """--weights and --offset: rows of [Z X y] scaled by sqrt(w) per partition, Pearson residuals."""
    from mlmcli.design import ModelArguments

    ref = next(f for f in json.loads((SUITE.parent / "weights" / "refs.json").read_text())["fits"] if f["name"] == name)
    model = fit_on_cluster(
        client,
        open_source(data[ref["data"][:-4]]),
        ref["formula"],
        reml=ref["reml"],
        weights=ref["weights"],
        offset=ref["offset"],
    )
    frame = read_csv(str(SUITE.parent / "weights" / ref["data"]))
    parsed = parse_formula(ref["formula"])
    design = build_design(frame, parsed, ModelArguments(ref["weights"], ref["offset"]))
    theirs = fit_model(parsed, design, reml=ref["reml"], data_name=frame.name)
    assert_same_fit(model, theirs)
    assert model.criterion == pytest.approx(ref["criterion"], abs=1e-3)
    np.testing.assert_allclose(model.beta, ref["fixef"], rtol=1e-4)
    assert model.sigma == pytest.approx(ref["sigma"], rel=1e-4)


def test_kenward_roger_from_the_sums(client, data, from_sums):
    formula = "math ~ ses*public + (ses|schcode)"
    model = fit_on_cluster(client, open_source(data["heck2011"]), formula, ddf="Kenward-Roger")
    theirs = in_memory(ROOT / "sample_data" / "heck2011.csv", formula)
    theirs.ddf = "Kenward-Roger"
    for a, b in zip(model.coef_table(), theirs.coef_table(), strict=True):
        assert a["df"] == pytest.approx(b["df"], rel=1e-4)
        assert a["std_error"] == pytest.approx(b["std_error"], rel=1e-4)


def test_csv_parts_give_the_same_fit(client, data, from_sums):
    formula = "math ~ ses + (ses|schcode)"
    model = fit_on_cluster(client, open_source(data["heck_csv"]), formula)
    assert_same_fit(model, in_memory(ROOT / "sample_data" / "heck2011.csv", formula))
    # lme4's value; a singular fit (correlation -1) is flat along the boundary, where lme4's end
    # point and the optimum agree in the criterion to 1e-14 and in this covariance to 1e-5
    assert tau_report(model)["groups"][0]["covariance"][1][0] == pytest.approx(-1.5802590, rel=1e-5)


@pytest.mark.parametrize(("case_id", "name"), [("heck_seed2_reml", "heck2011"), ("nested_sc_reml", "nested")])
def test_small_data_take_the_in_memory_path(client, data, case_id, name):
    """Up to 50,000 rows the design's rows come to the client: the in-memory engine's numbers exactly."""
    case = reference(case_id)["case"]
    model = fit_on_cluster(client, open_source(data[name]), case["formula"], reml=case["reml"])
    theirs = in_memory(DATA / case["data"], case["formula"], case["reml"])
    assert model.remote is None
    assert model.criterion == theirs.criterion
    np.testing.assert_array_equal(model.beta, theirs.beta)
    assert fit_report(model) == fit_report(theirs)


def test_compare_matches_lme4(client, data, from_sums):
    ref = reference("cmp_pen_crossed")
    source = open_source(data["Penicillin"])
    fits = [fit_on_cluster(client, source, f, residuals=False) for f in ref["case"]["formulas"]]
    report = compare_report(compare(fits, ["m1", "m2"]))
    problems = check_compare(report, ref)
    assert not problems, "\n".join(problems)


def test_a_worker_killed_mid_pass_changes_nothing(client, data, from_sums):
    formula = "math ~ ses*public + (ses|schcode)"
    pids = client.run(os.getpid)
    killed = []

    def kill_one(label: str, done: int) -> None:
        if label == "cross-products" and not killed:
            addr, pid = sorted(pids.items())[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(addr)

    model = fit_on_cluster(client, open_source(data["heck2011"]), formula, on_done=kill_one)
    assert killed
    assert_same_fit(model, in_memory(ROOT / "sample_data" / "heck2011.csv", formula))
    client.wait_for_workers(2, timeout=60)


def test_partitions_that_disagree_in_columns(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    pd.DataFrame({"y": [1.0, 2.0], "g": [1, 2]}).to_parquet(folder / "a.parquet")
    pd.DataFrame({"y": [1.0, 2.0], "h": [1, 2]}).to_parquet(folder / "b.parquet")
    with pytest.raises(
        DataError,
        match=r"^partitions disagree in their columns: .*a.parquet has y, g; "
        r".*b.parquet has y, h$",
    ):
        open_source(str(folder))
    pd.DataFrame({"y": [1.0, 2.0], "g": ["1", "2"]}).to_parquet(folder / "b.parquet")
    with pytest.raises(
        DataError,
        match="partitions disagree in the type of column 'g': int64 in .*a.parquet, (large_)?string in .*b.parquet",
    ):
        open_source(str(folder))


def test_partitions_that_disagree_in_types(client, tmp_path):
    (tmp_path / "a.csv").write_text("y,x,g\n1,2,a\n3,4,b\n5,6,a\n")
    (tmp_path / "b.csv").write_text("y,x,g\n1,two,a\n3,4,b\n5,6,b\n")
    with pytest.raises(
        DataError,
        match="partitions disagree in the type of column 'x': numbers in .*a.csv, text in .*b.csv "
        r'\(values that are not numbers: "two"\)$',
    ):
        fit_on_cluster(client, open_source(str(tmp_path / "*.csv")), "y ~ x + (1|g)")


def mlm(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run(*args, capture_output=True, text=True, env=env, timeout=300)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler(data):
    port = _free_port()
    p = mlm(
        "fit",
        data["heck2011"],
        "math ~ ses + (1|schcode)",
        "--engine",
        "dask",
        "--scheduler",
        f"tcp://127.0.0.1:{port}",
        "--timeout",
        "2",
    )
    assert p.returncode == 2
    assert p.stdout == ""
    assert p.stderr.count("\n") == 1
    assert p.stderr.startswith(f"mlm: error: cannot reach the dask scheduler at tcp://127.0.0.1:{port}")


@pytest.fixture
def scheduler():
    """`dask scheduler` and one `dask worker` on 127.0.0.1, as a user starts them."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-P",
                "-m",
                "dask",
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-dashboard",
            ],
            cwd=ROOT,
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-P",
                    "-m",
                    "dask",
                    "worker",
                    address,
                    "--nworkers",
                    "1",
                    "--nthreads",
                    "1",
                    "--memory-limit",
                    "1GiB",
                    "--no-dashboard",
                ],
                cwd=ROOT,
                env=environment(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        from distributed import Client

        # the client retries the connection until the scheduler listens; both timeouts are hang guards
        with Client(address, timeout=120) as c:
            c.wait_for_workers(1, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_cli_on_a_running_scheduler(data, scheduler):
    """The command line against `dask scheduler` + `dask worker`: lme4's summary, as the in-memory engine
    prints it for the same data."""
    from typer.testing import CliRunner

    from mlmcli.cli import app

    formula = "math ~ ses + (ses|schcode)"
    p = mlm("fit", data["heck2011"], formula, "--engine", "dask", "--scheduler", scheduler, "--format", "text")
    assert p.returncode == 0, p.stderr
    q = CliRunner().invoke(app, ["fit", str(ROOT / "sample_data" / "heck2011.csv"), formula, "--format", "text"])
    assert p.stdout == q.stdout
    assert p.stderr == "boundary (singular) fit: see help('isSingular')\n"


def test_cli_compare_and_ranef(client, data):
    """DASK_SCHEDULER_ADDRESS instead of --scheduler; compare and ranef as the in-memory engine gives them."""
    from typer.testing import CliRunner

    from mlmcli.cli import app

    heck = str(ROOT / "sample_data" / "heck2011.csv")
    env = {"DASK_SCHEDULER_ADDRESS": client.scheduler.address}
    formulas = ["math ~ ses + (1|schcode)", "math ~ ses*public + (1|schcode)"]
    run = CliRunner().invoke
    ours = run(app, ["compare", data["heck2011"], *formulas, "--engine", "dask", "--format", "json"], env=env)
    assert ours.exit_code == 0, ours.output
    theirs = run(app, ["compare", heck, *formulas, "--format", "json"])
    assert json.loads(ours.stdout) == json.loads(theirs.stdout)
    ours = run(app, ["ranef", data["heck2011"], formulas[0], "--engine", "dask", "--format", "csv"], env=env)
    assert ours.exit_code == 0, ours.output
    assert ours.stdout == run(app, ["ranef", heck, formulas[0], "--format", "csv"]).stdout


def test_order_statistics_narrow_brackets_exactly(client, monkeypatch):
    """The quantile search on data larger than what it may send whole: brackets narrowed by samples
    and counts, ties included, give the exact order statistics."""
    import mlmcli.distributed.residuals as res

    monkeypatch.setattr(res, "LIMIT", 40)
    monkeypatch.setattr(res, "SAMPLE", 6)
    rng = np.random.default_rng(7)
    parts = [np.sort(np.round(rng.normal(size=m), 2)) for m in (500, 1, 0, 733, 250)]
    futures = client.scatter(parts)
    values = np.sort(np.concatenate(parts))
    ranks = [0, 3, 370, 371, 742, 1113, len(values) - 1]
    found = res.order_statistics(client, futures, len(values), ranks)
    assert found == {k: float(values[k]) for k in ranks}
    # a value tied more often than LIMIT
    parts = [np.sort(np.concatenate([np.zeros(300), rng.normal(size=100)])) for _ in range(3)]
    values = np.sort(np.concatenate(parts))
    ranks = [0, 450, 600, len(values) - 1]
    found = res.order_statistics(client, client.scatter(parts), len(values), ranks)
    assert found == {k: float(values[k]) for k in ranks}


def test_what_dask_refuses_or_rejects(client, tmp_path):
    (tmp_path / "a.csv").write_text("y,x,g\n1,2,a\n3,4,b\n5,6,a\n2,1,b\n")
    (tmp_path / "b.csv").write_text("y,x,g\n1,0,a\n3,4,b\n5,6,b\n4,3,a\n")
    source = open_source(str(tmp_path / "*.csv"))
    with pytest.raises(DataError, match=r"^poly\(\) is not supported with --engine dask .*: poly\(x, 2\); "):
        fit_on_cluster(client, source, "y ~ poly(x, 2) + (1|g)")
    with pytest.raises(DataError, match=r"^cwc/cmean\(\) is not supported with --engine dask"):
        fit_on_cluster(client, source, "y ~ cwc(x, g) + (1|g)")
    with pytest.raises(DataError, match="column 'log\\(x\\)' has infinite values"):
        fit_on_cluster(client, source, "y ~ log(x) + (1|g)")
    with pytest.raises(DataError, match="^unknown column 'z' in formula; the columns are: y, x, g$"):
        fit_on_cluster(client, source, "y ~ z + (1|g)")


def test_weights_on_small_data_take_the_in_memory_path(client, data):
    from mlmcli.design import ModelArguments

    formula, args = "math ~ ses + (ses | schcode)", ModelArguments("w", "off")
    model = fit_on_cluster(client, open_source(data["heck_w"]), formula, weights="w", offset="off")
    frame = read_csv(str(SUITE.parent / "weights" / "heck_w.csv"))
    theirs = fit_model(parse_formula(formula), build_design(frame, parse_formula(formula), args))
    assert model.remote is None
    assert fit_report(model) | {"data_name": ""} == fit_report(theirs) | {"data_name": ""}


def _parts(folder: Path, good: str, bad: bytes | None, bad_name: str = "b.csv") -> str:
    """A folder of two CSV partitions: `good` text, and `bad` bytes (None: none); the glob of both."""
    folder.mkdir()
    (folder / "a.csv").write_text(good)
    if bad is not None:
        (folder / bad_name).write_bytes(bad)
    return str(folder / "*")


def _small(rows: int = 40, seed: int = 3) -> list[str]:
    """Rows y,x,g of y = u_g + x / 2 + e, u_g and e standard normal: eight groups."""
    rng = np.random.default_rng(seed)
    u, x = rng.normal(size=8), rng.integers(1, 5, rows)
    return [f"{u[i % 8] + x[i] / 2 + rng.normal():.4f},{x[i]},g{i % 8}" for i in range(rows)]


def test_csv_partitions_get_the_in_memory_readers_checks(client, tmp_path):
    """Each file of --engine dask's CSV data is read by the in-memory reader, on the workers: a file
    it refuses is refused with its words (one line, exit 2), and what it notes is noted."""
    env = {"DASK_SCHEDULER_ADDRESS": client.scheduler.address}
    header = "y,x,g\n"
    good = header + "\n".join(_small()) + "\n"
    rows = _small(seed=4)
    damaged = gzip.compress(good.encode())[:40]
    cases = {
        "ragged": header + "\n".join(rows[:5] + [rows[5] + ",7"] + rows[6:]) + "\n",
        "short": header + "\n".join(rows[:3] + ["1.5,2"] + rows[4:]) + "\n",
        "binary": b"y,x,g\n\x00\x01\x02\x03\x04" * 50,
        "empty": "",
        "no_response": header + "\n".join(rows[:7] + ["oops,2,g1"] + rows[8:]) + "\n",
    }
    for name, bad in cases.items():
        glob_ = _parts(tmp_path / name, good, bad.encode() if isinstance(bad, str) else bad)
        theirs = mlm("fit", str(tmp_path / name / "b.csv"), "y ~ x + (1|g)")
        ours = mlm("fit", glob_, "y ~ x + (1|g)", "--engine", "dask", env=env)
        assert (ours.returncode, ours.stdout) == (2, ""), (name, ours.stderr)
        # the in-memory reader's error, the same line (its notes before it aside)
        assert ours.stderr == theirs.stderr.splitlines(keepends=True)[-1], name
        assert theirs.stderr.splitlines()[-1].startswith("mlm: error: '" + str(tmp_path / name / "b.csv")) or (
            name == "no_response"
        )
    glob_ = _parts(tmp_path / "gz", good, damaged, "b.csv.gz")
    ours = mlm("fit", glob_, "y ~ x + (1|g)", "--engine", "dask", env=env)
    assert (ours.returncode, ours.stdout) == (2, "")
    assert ours.stderr == mlm("fit", str(tmp_path / "gz" / "b.csv.gz"), "y ~ x + (1|g)").stderr
    assert ours.stderr.startswith(f"mlm: error: cannot read '{tmp_path / 'gz' / 'b.csv.gz'}': damaged gzip data")
    # a header line alone is an empty partition; no rows in any file is the reader's error
    glob_ = _parts(tmp_path / "headers", header, None)
    only = str(tmp_path / "headers" / "a.csv")
    ours = mlm("fit", glob_, "y ~ x + (1|g)", "--engine", "dask", env=env)
    assert (ours.returncode, ours.stderr) == (2, f"mlm: error: '{only}': no data rows, only a header line\n")
    assert ours.stderr == mlm("fit", only, "y ~ x + (1|g)").stderr
    (tmp_path / "headers" / "b.csv").write_text(good)
    ours = mlm("fit", glob_, "y ~ x + (1|g)", "--engine", "dask", "-f", "json", env=env)
    assert ours.returncode == 0, ours.stderr
    theirs = mlm("fit", str(tmp_path / "headers" / "b.csv"), "y ~ x + (1|g)", "-f", "json")
    assert json.loads(ours.stdout) | {"data_name": ""} == json.loads(theirs.stdout) | {"data_name": ""}


def test_csv_partitions_read_as_the_in_memory_reader_reads(client, tmp_path):
    """Blank lines before a header are skipped, as read.csv skips them, and a column of numbers with
    text among them is a factor with the reader's note, on either engine."""
    env = {"DASK_SCHEDULER_ADDRESS": client.scheduler.address}
    rows = _small()
    rows[3] = rows[3].split(",")[0] + ",n/a," + rows[3].split(",")[2]
    text = "y,x,g\n" + "\n".join(rows) + "\n"
    glob_ = _parts(tmp_path / "blank", "\n\n" + text, None)
    single = str(tmp_path / "blank" / "a.csv")
    ours = mlm("fit", glob_, "y ~ x + (1|g)", "--engine", "dask", "-f", "json", env=env)
    theirs = mlm("fit", single, "y ~ x + (1|g)", "-f", "json")
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    note = "mlm: note: column 'x' is read as text (a factor): values that are not numbers: \"n/a\"\n"
    assert ours.stderr == theirs.stderr == note
    mine = json.loads(ours.stdout)
    assert [c["term"] for c in mine["fixed_effects"]] == ["(Intercept)", "x2", "x3", "x4", "xn/a"]
    assert mine | {"data_name": ""} == json.loads(theirs.stdout) | {"data_name": ""}
    # --sep as read.csv's sep =; without it, the in-memory reader's hint at a one-column header
    glob_ = _parts(tmp_path / "semi", text.replace(",", ";"), None)
    semi = str(tmp_path / "semi" / "a.csv")
    ours = mlm("fit", glob_, "y ~ x + (1|g)", "--engine", "dask", "--sep", ";", "-f", "json", env=env)
    assert ours.returncode == 0, ours.stderr
    assert json.loads(ours.stdout) | {"data_name": ""} == mine | {"data_name": ""}
    ours = mlm("fit", glob_, "y ~ x + (1|g)", "--engine", "dask", env=env)
    assert (ours.returncode, ours.stderr) == (2, mlm("fit", semi, "y ~ x + (1|g)").stderr)
    assert "give --sep ';'" in ours.stderr


def test_a_workers_error_is_one_line(tmp_path):
    """A partition's error raised on a worker of the local cluster reaches the user as one line: no
    worker log of the failed task, no traceback."""
    rows = _small()
    rows[7] = "oops,2,g1"
    glob_ = _parts(
        tmp_path / "parts", "y,x,g\n" + "\n".join(_small(seed=5)) + "\n", ("y,x,g\n" + "\n".join(rows)).encode()
    )
    p = mlm("fit", glob_, "y ~ x + (1|g)", "--engine", "dask", env={"DASK_SCHEDULER_ADDRESS": ""})
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr == "mlm: error: the response 'y' is not numeric: its column holds text\n"
