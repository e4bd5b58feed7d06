"""Tests of the benchmark's own parts (bench/): data generators, process measurement, output parsing."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import cases  # noqa: E402
import make_data  # noqa: E402
import procs  # noqa: E402
import run  # noqa: E402


def read(path: Path) -> dict[str, np.ndarray]:
    with open(path) as f:
        rows = list(csv.reader(f))
    return {k: np.array([float(r[j]) for r in rows[1:]]) for j, k in enumerate(rows[0])}


def test_nested_shape_labels_and_metadata(tmp_path: Path) -> None:
    path, made = make_data.write("nested200k", tmp_path, scale=0.01)
    assert made and path.name == "nested200k_s0.01.csv"
    d = read(path)
    assert len(d["y"]) == 2000
    assert set(d["class"]) == {1, 2, 3, 4, 5}  # labels repeat within schools
    assert len(np.unique(d["school"])) == 40
    assert len({(s, c) for s, c in zip(d["school"], d["class"], strict=True)}) == 200
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["rows"] == 2000 and meta["groups"] == {"school": 40, "class": 5}
    assert meta["formula"] == "y ~ x + (1|school/class)"


def test_generation_is_deterministic_and_skips_existing(tmp_path: Path) -> None:
    a, _ = make_data.write("crossed500k", tmp_path / "a", scale=0.01)
    b, _ = make_data.write("crossed500k", tmp_path / "b", scale=0.01)
    assert a.read_bytes() == b.read_bytes()
    a.write_text("kept")
    again, made = make_data.write("crossed500k", tmp_path / "a", scale=0.01)
    assert not made and again.read_text() == "kept"


def test_crossed_uses_every_subject_and_item(tmp_path: Path) -> None:
    d = read(make_data.write("crossed500k", tmp_path, scale=0.01)[0])
    assert len(d["y"]) == 5000
    assert set(d["subject"]) == set(range(1, 201)) and set(d["item"]) == set(range(1, 31))


def test_slope_data_recovers_the_fixed_effects(tmp_path: Path) -> None:
    # Ordinary least squares is unbiased for the fixed effects of a random-slope model.
    d = read(make_data.write("slope1m", tmp_path, scale=0.01)[0])
    X = np.column_stack([np.ones_like(d["x"]), d["x"]])
    b0, b1 = np.linalg.lstsq(X, d["y"], rcond=None)[0]
    assert abs(b0 - make_data.SLOPE["b0"]) < 0.5 and abs(b1 - make_data.SLOPE["b1"]) < 0.25
    assert len(np.unique(d["g"])) == 200 and min(np.bincount(d["g"].astype(int))[1:]) >= 2


def test_csv_writer_matches_pandas(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    cols = {"g": np.array([1, 2, 30]), "x": np.array([-0.1234567891, 1e-7, 123456.7]), "y": np.array([1.0, -2.5, 3])}
    make_data.write_csv(tmp_path / "a.csv", cols, chunk=2)
    pd.DataFrame(cols).to_csv(tmp_path / "b.csv", index=False, float_format="%.6g")
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


def test_make_data_rejects_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert make_data.main(["--only", "nope"]) == 2
    assert "unknown data set nope" in capsys.readouterr().err


def test_process_measurement() -> None:
    r = procs.run([sys.executable, "-c", "x = bytearray(150_000_000); print('done')"])
    assert r.ok and r.stdout == "done\n" and r.rss_mb > 140
    r = procs.run([sys.executable, "-c", "import sys; sys.stderr.write('bad'); sys.exit(3)"])
    assert r.code == 3 and not r.ok and r.stderr == "bad"
    r = procs.run([sys.executable, "-c", "import time; time.sleep(3600)"], timeout=0.5)
    assert r.timed_out and not r.ok and r.code != 0


def test_criterion_parsing_and_agreement() -> None:
    out = "REML criterion at convergence: 48190.1\n...\nREML criterion at convergence: 48190.1299\n"
    t = run.Tally("lme4", ["x"], runs=[procs.Run(1.0, 1.0, 0, False, out, "")])
    assert t.criterion() == "48190.1299" and t.median() == 1.0 and t.status() == "ok"
    assert run.agree("48190.1", "48190.1299")
    assert run.agree("5148230", "5148230.4321")  # lme4 prints 7 significant digits
    assert run.agree("48190.1", "48190.4") is False
    assert run.agree(None, "1.0") is None


def test_failed_and_timed_out_runs_are_reported() -> None:
    t = run.Tally("mlm", ["x"], runs=[procs.Run(2.0, 1.0, 2, False, "", "mlm: no such column\n")])
    assert t.median() is None and t.criterion() is None
    assert t.status() == "failed (exit 2: mlm: no such column)"
    t = run.Tally("lme4", ["x"], runs=[procs.Run(60.0, 1.0, -9, True, "", "")])
    assert t.status() == "timed out after 60 s"


def test_commands_per_tool(tmp_path: Path) -> None:
    nested, slope = cases.CASES["nested200k"], cases.CASES["slope1m"]
    kw = {
        "mlm": ["mlm"],
        "rscript": "Rscript",
        "r_file": tmp_path / "f.R",
        "peers_python": "py",
        "peers": {"lme-python", "mixedlm-rs"},
    }
    data = tmp_path / "d.csv"
    assert cases.command("mlm", nested, data, **kw) == ["mlm", "fit", str(data), "y ~ x + (1|school/class)"]
    assert cases.command("mixedlm-rs", nested, data, **kw).startswith("n/a")
    assert cases.command("mixedlm-rs", slope, data, **kw)[-3:] == ["y ~ x", "g", "~x"]
    assert cases.command("lme4", slope, data, **(kw | {"rscript": None})) == "no Rscript with lme4 + lmerTest"


def test_mlm_python_from_command(tmp_path: Path) -> None:
    assert run.mlm_python(["env", "A=1", "/py", "-m", "mlmcli"]) == ["env", "A=1", "/py"]
    script = tmp_path / "mlm"
    script.write_text("#!/opt/venv/bin/python3\nimport sys\n")
    assert run.mlm_python([str(script)]) == ["/opt/venv/bin/python3"]
    assert run.mlm_python(["/no/such/mlm"]) is None


def test_runner_rejects_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--cases", "nope"]) == 2
    assert run.main(["--tools", "spss"]) == 2
    assert run.main(["--scale", "2"]) == 2
    err = capsys.readouterr().err
    assert "unknown case nope" in err and "unknown tool spss" in err and "--scale" in err


def test_interrupted_runner_takes_its_child_down(tmp_path: Path) -> None:
    import os
    import select
    import signal
    import subprocess

    # the child says it runs, and holds the FIFO open until it ends: end of file there is its end
    fifo = tmp_path / "child"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    child = f"import time; f = open({str(fifo)!r}, 'w'); f.write('started\\n'); f.flush(); time.sleep(3600)"
    bench = str(Path(__file__).resolve().parent.parent / "bench")
    code = (
        f"import sys; sys.path.insert(0, {bench!r}); import signal, procs, run\n"
        "signal.signal(signal.SIGTERM, run.interrupted)\n"
        f"procs.run([sys.executable, '-c', {child!r}], timeout=3600)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code])

    def read() -> bytes:
        assert select.select([reader], [], [], 120)[0], "hang guard"
        return os.read(reader, 100)

    try:
        assert read() == b"started\n"
        p.send_signal(signal.SIGTERM)
        assert read() == b""  # the child is gone: the runner did not wait for it or the timer
        assert p.wait(timeout=120) != 0
    finally:
        os.close(reader)
        if p.poll() is None:
            p.kill()


def test_agreement_message(capsys: pytest.CaptureFixture[str]) -> None:
    out = "REML criterion at convergence: {}\n"
    tallies = [
        run.Tally("mlm", ["m"], runs=[procs.Run(1, 1, 0, False, out.format("100.0"), "")]),
        run.Tally("lme4", ["r"], runs=[procs.Run(1, 1, 0, False, out.format("100.0213"), "")]),
        run.Tally("lme-python", ["p"], runs=[procs.Run(1, 1, 0, False, out.format("100.9"), "")]),
        run.Tally("mixedlm-rs", ["q"], runs=[procs.Run(300, 1, -9, True, "", "")]),
    ]
    run.check_agreement(cases.CASES["slope1m"], tallies)
    err = capsys.readouterr().err
    assert "DISAGREE with lme4: lme-python" in err and "no criterion from mixedlm-rs" in err


def test_dask_bench_data_parts_and_csv_hold_the_same_rows(tmp_path: Path) -> None:
    import dask_bench
    import pandas as pd

    folder = dask_bench.write(2000, tmp_path, parts=4, csv=True)
    parts = sorted(folder.glob("*.parquet"))
    assert [p.name for p in parts] == [f"part{i:04d}.parquet" for i in range(4)]
    df = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    assert len(df) == 2000 and df["g"].nunique() == 40  # 50 rows a group below 5M rows
    pd.testing.assert_frame_equal(df, pd.read_csv(tmp_path / "slope_2000.csv"), check_dtype=False)
    again = dask_bench.write(2000, tmp_path / "again", parts=4, csv=False)
    pd.testing.assert_frame_equal(
        df, pd.concat([pd.read_parquet(p) for p in sorted(again.glob("*.parquet"))], ignore_index=True)
    )
