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
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlmcli.compare import compare, compare_report
from mlmcli.design import build_design
from mlmcli.distributed.fit import fit_on_cluster
from mlmcli.distributed.source import open_source
from mlmcli.errors import DataError
from mlmcli.formula import parse_formula
from mlmcli.frame import read_csv
from mlmcli.model import fit_model
from mlmcli.report import fit_report, ranef_report, tau_report
from tests.refcheck import SUITE, check_compare, check_fit, check_ranef, reference

ROOT = Path(__file__).resolve().parent.parent
DATA = SUITE / "data"
REL = 1e-8          # criterion and estimates: the agreement with the in-memory engine


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="1GiB",
                           dashboard_address=None)
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
    for name, parts in (("heck2011", 12), ("nested", 5), ("Penicillin", 3), ("crossed3", 4), ("sites", 3)):
        folder = root / name
        folder.mkdir()
        df = pd.read_csv(DATA / f"{name}.csv")
        for i, part in enumerate(_split(df, parts)):
            part.to_parquet(folder / f"part{i:02d}.parquet")
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
    """The dask fit against the in-memory fit of the same rows."""
    assert ours.n == theirs.n
    assert ours.criterion == pytest.approx(theirs.criterion, rel=REL)
    # relative to the estimate, or to its standard error for an estimate near zero
    assert np.all(np.abs(ours.beta - theirs.beta) <= REL * np.maximum(np.abs(theirs.beta), theirs.std_errors))
    np.testing.assert_allclose(ours.std_errors, theirs.std_errors, rtol=REL)
    assert ours.sigma == pytest.approx(theirs.sigma, rel=REL)
    np.testing.assert_allclose(ours.theta, theirs.theta, rtol=1e-7, atol=1e-7)
    mine, yours = fit_report(ours), fit_report(theirs)
    for key in ("formula", "method", "groups", "npar", "singular", "converged", "warnings", "data_name"):
        assert mine[key] == yours[key], key
    for a, b in zip(mine["fixed_effects"], yours["fixed_effects"], strict=True):
        assert a["term"] == b["term"]
        assert a["df"] == pytest.approx(b["df"], rel=1e-6)
    for q, v in yours["scaled_residuals"].items():
        assert mine["scaled_residuals"][q] == pytest.approx(v, rel=1e-7, abs=1e-9)
    for part in ("fixed", "random", "residual"):
        a, b = mine["variance_parts"][part], yours["variance_parts"][part]
        assert (a is None and b is None) or a == pytest.approx(b, rel=1e-7)
    ra, rb = ranef_report(ours)["ranef"], ranef_report(theirs)["ranef"]
    assert [(r["group"], r["level"], r["term"]) for r in ra] == [(r["group"], r["level"], r["term"]) for r in rb]
    np.testing.assert_allclose([r["value"] for r in ra], [r["value"] for r in rb], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose([r["cond_sd"] for r in ra], [r["cond_sd"] for r in rb], rtol=1e-7)


CASES = [  # (lme4 reference case, data set in the parts)
    ("heck_seed2_reml", "heck2011"),
    ("heck_uncorr_reml", "heck2011"),
    ("nested_sc_reml", "nested"),
    ("nested_slope_class_ml", "nested"),
    ("nested4_reml", "nested"),
    ("pen_crossed_reml", "Penicillin"),
    ("crossed3_reml", "crossed3"),
    ("sites_logical_reml", "sites"),
    ("missing_reml", "missing"),
]


@pytest.mark.parametrize(("case_id", "name"), CASES, ids=[c[0] for c in CASES])
def test_same_fit_as_in_memory_and_lme4(client, data, case_id, name):
    ref = reference(case_id)
    case = ref["case"]
    model = fit_on_cluster(client, open_source(data[name]), case["formula"], reml=case["reml"])
    assert_same_fit(model, in_memory(DATA / case["data"], case["formula"], case["reml"]))
    report = fit_report(model)
    problems = check_fit(report, ref["fit"]) + check_ranef(ranef_report(model), ref["ranef"], ref["fit"])
    assert not problems, "\n".join(problems)
    assert report["warnings"] == ref["fit"]["warnings"]


def test_csv_parts_give_the_same_fit(client, data):
    formula = "math ~ ses + (ses|schcode)"
    model = fit_on_cluster(client, open_source(data["heck_csv"]), formula)
    assert_same_fit(model, in_memory(ROOT / "sample_data" / "heck2011.csv", formula))
    assert tau_report(model)["groups"][0]["covariance"][1][0] == pytest.approx(-1.5802590, rel=1e-6)


def test_compare_matches_lme4(client, data):
    ref = reference("cmp_pen_crossed")
    source = open_source(data["Penicillin"])
    fits = [fit_on_cluster(client, source, f, residuals=False) for f in ref["case"]["formulas"]]
    report = compare_report(compare(fits, ["m1", "m2"]))
    problems = check_compare(report, ref["compare"])
    assert not problems, "\n".join(problems)


def test_a_worker_killed_mid_pass_changes_nothing(client, data):
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
    p = mlm("fit", str(folder), "y ~ 1 + (1|g)", "--engine", "dask")
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "partitions disagree in their columns" in p.stderr


def test_partitions_that_disagree_in_types(client, tmp_path):
    (tmp_path / "a.csv").write_text("y,x,g\n1,2,a\n3,4,b\n5,6,a\n")
    (tmp_path / "b.csv").write_text("y,x,g\n1,two,a\n3,4,b\n5,6,b\n")
    with pytest.raises(DataError, match="partitions disagree in the type of column 'x': numbers in .*a.csv, "
                                        "text in .*b.csv"):
        fit_on_cluster(client, open_source(str(tmp_path / "*.csv")), "y ~ x + (1|g)")


def mlm(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlmcli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=ROOT, timeout=300)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler(data):
    port = _free_port()
    p = mlm("fit", data["heck2011"], "math ~ ses + (1|schcode)", "--engine", "dask", "--scheduler",
            f"tcp://127.0.0.1:{port}", env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})
    assert p.returncode == 2
    assert p.stdout == ""
    assert p.stderr.count("\n") == 1
    assert p.stderr.startswith(f"mlm: error: cannot reach the dask scheduler at tcp://127.0.0.1:{port}")


@pytest.fixture
def scheduler():
    """`dask scheduler` and one `dask worker` on 127.0.0.1, as a user starts them."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "dask", "worker", address, "--nworkers", "1",
                                       "--nthreads", "1", "--memory-limit", "1GiB", "--no-dashboard"],
                                      cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        deadline = time.monotonic() + 120
        while True:
            try:
                with Client(address, timeout=5) as c:
                    c.wait_for_workers(1, timeout=120)
                break
            except (OSError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
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
    formula = "math ~ ses + (ses|schcode)"
    p = mlm("fit", data["heck2011"], formula, "--engine", "dask", "--scheduler", scheduler, "--format", "text")
    assert p.returncode == 0, p.stderr
    q = mlm("fit", str(ROOT / "sample_data" / "heck2011.csv"), formula, "--format", "text")
    assert p.stdout == q.stdout
    assert p.stderr == q.stderr
    p = mlm("compare", data["heck2011"], formula, "math ~ ses*public + (ses|schcode)", "--engine", "dask",
            "--format", "json", env={"DASK_SCHEDULER_ADDRESS": scheduler})
    assert p.returncode == 0, p.stderr
    q = mlm("compare", str(ROOT / "sample_data" / "heck2011.csv"), formula, "math ~ ses*public + (ses|schcode)",
            "--format", "json")
    ours, theirs = json.loads(p.stdout), json.loads(q.stdout)
    for a, b in zip(ours["models"], theirs["models"], strict=True):
        assert a["deviance"] == pytest.approx(b["deviance"], rel=REL)
