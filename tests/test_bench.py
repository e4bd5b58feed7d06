"""Tests of the benchmark's own parts (bench/): data generators, process measurement, output parsing,
the start-up budget."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import agreement  # noqa: E402
import cases  # noqa: E402
import make_data  # noqa: E402
import procs  # noqa: E402
import run  # noqa: E402
import startup  # noqa: E402


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
    assert agreement.agree("48190.1", "48190.1299")
    assert agreement.agree("5148230", "5148230.4321")  # lme4 prints 7 significant digits
    assert agreement.agree("48190.1", "48190.4") is False
    assert agreement.agree(None, "1.0") is None


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
        "r_dir": tmp_path,
        "peers_python": "py",
        "peers": {"lme-python", "mixedlm-rs"},
    }
    data = tmp_path / "d.csv"
    assert cases.command("mlm", nested, data, **kw) == ["mlm", "fit", str(data), "y ~ x + (1|school/class)"]
    assert cases.command("mixedlm-rs", nested, data, **kw).startswith("n/a")
    assert cases.command("mixedlm-rs", slope, data, **kw)[-3:] == ["y ~ x", "g", "~x"]
    assert cases.command("lme4", slope, data, **(kw | {"rscript": None})) == "no Rscript with lme4 + lmerTest"
    assert cases.command("lme4", slope, data, **kw) == ["Rscript", str(tmp_path / "fit.R"), str(data), "y ~ x + (x|g)"]


def test_glmm_commands_per_tool(tmp_path: Path) -> None:
    laplace, nagq0 = cases.CASES["verbagg"], cases.CASES["verbagg_nagq0"]
    kw = {
        "mlm": ["mlm"],
        "rscript": "Rscript",
        "r_dir": tmp_path,
        "peers_python": "py",
        "peers": {"lme-python", "mixedlm-rs"},
    }
    data = tmp_path / "VerbAgg.csv"
    f = "r2 ~ Anger + Gender + btype + situ + (1|id) + (1|item)"
    assert cases.command("mlm", laplace, data, **kw) == ["mlm", "fit", str(data), f, "--family", "binomial"]
    assert cases.command("mlm", nagq0, data, **kw)[-4:] == ["--family", "binomial", "--nagq", "0"]
    assert cases.command("lme4", laplace, data, **kw) == [
        "Rscript",
        str(tmp_path / "glmer.R"),
        str(data),
        f,
        "binomial",
        "1",
    ]
    assert cases.command("lme4", nagq0, data, **kw)[-2:] == ["binomial", "0"]
    peer = cases.command("lme-python", nagq0, data, **kw)
    assert peer[1].endswith("fit_lme_python_glmer.py") and peer[2:] == [str(data), f, "binomial", "0"]
    assert cases.command("mixedlm-rs", laplace, data, **kw) == "n/a (no GLMM)"
    assert set(cases.R_SCRIPTS) == {"fit.R", "glmer.R"} and "glmer(" in cases.R_SCRIPTS["glmer.R"]


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


# lme4's table lines end in a space
GLMM_SUMMARY = "     AIC      BIC   logLik deviance df.resid \n  8167.4   8222.9  -4075.7   8151.4     7576 \n"


def test_deviance_parsing() -> None:
    assert agreement.criterion(GLMM_SUMMARY, glmm=True) == "8151.4"
    full = GLMM_SUMMARY + "deviance (-2 logLik) at convergence: 8151.400490\n"
    assert agreement.criterion(full, glmm=True) == "8151.400490"  # the full line wins over the table
    assert agreement.criterion(full, glmm=False) is None
    big = "     AIC      BIC   logLik deviance df.resid \n 215510.2 215591.9 -107747.1 215494.2   199992 \n"
    assert agreement.criterion(big, glmm=True) == "215494.2"


def glmm_tallies(devs: dict[str, str]) -> list[run.Tally]:
    out = "deviance (-2 logLik) at convergence: {}\n"
    return [
        run.Tally(k, [k], runs=[procs.Run(1, 1, 0, False, out.format(v), "", cpu=0.5)], glmm=True)
        for k, v in devs.items()
    ]


def test_glmm_agreement_flags_a_deviance_above_the_best(capsys: pytest.CaptureFixture[str]) -> None:
    laplace = cases.CASES["verbagg"]
    tallies = glmm_tallies({"mlm": "8151.400490", "lme4": "8151.400900", "lme-python": "8151.583341"})
    marks = agreement.remarks(laplace, run.criteria(tallies))
    assert marks == {"mlm": "", "lme4": "", "lme-python": "+0.1829 above mlm"}  # 4e-4 is within 1e-3
    run.check_agreement(laplace, tallies)
    assert "DISAGREE: lme-python (+0.1829 above mlm)" in capsys.readouterr().err
    # a value printed to 0.1 (mlm's text without its JSON run) is judged within its rounding
    assert agreement.remarks(laplace, {"mlm": "8151.4", "lme4": "8151.400490"}) == {"mlm": "", "lme4": ""}
    assert agreement.remarks(laplace, {"mlm": "8151.5", "lme4": "8151.400490"})["mlm"] == "+0.0995 above lme4"


def test_glmm_agreement_under_nagq0_is_two_sided_against_lme4() -> None:
    nagq0 = cases.CASES["verbagg_nagq0"]
    crit = {"mlm": "8151.589935", "lme4": "8151.589935", "lme-python": "8151.583341"}
    # lower than lme4's, yet flagged: nAGQ = 0 is not a minimum of the deviance
    assert agreement.remarks(nagq0, crit) == {"mlm": "", "lme4": "", "lme-python": "-0.0066 from lme4"}


def test_mlm_deviance_in_full_from_its_json(tmp_path: Path) -> None:
    fake = tmp_path / "mlm"
    fake.write_text(
        "import sys\n"
        "if '--format' in sys.argv: print('{\"deviance\": 8151.400490225923}')\n"
        f"else: sys.stdout.write({GLMM_SUMMARY!r})\n"
    )
    t = run.Tally("mlm", [sys.executable, str(fake)], glmm=True)
    t.runs.append(procs.run(t.argv))
    assert t.criterion() == "8151.4"
    run.exact_deviance(cases.CASES["verbagg"], [t], timeout=60)
    assert t.criterion() == "8151.400490"


def test_targets_verdicts() -> None:
    faster, as_fast = cases.Target("lme4", speedup=10), cases.Target("lme-python", speedup=1)
    optimum = cases.Target("lme4", optimum=True)
    assert faster.describe() == "10x faster than lme4" and as_fast.describe() == "at least as fast as lme-python"
    assert agreement.verdict(faster, {"mlm": 2.0, "lme4": 25.0}, {}, {"mlm": 1.5, "lme4": 24.0}) == (
        "2.000 s vs lme4 25.0 s (12.50x; CPU 16.00x)",
        "yes",
    )
    assert agreement.verdict(faster, {"mlm": 3.0, "lme4": 25.0}, {})[1] == "no"
    assert agreement.verdict(as_fast, {"mlm": 1.0, "lme-python": None}, {}) == ("no time from lme-python", "-")
    assert agreement.verdict(optimum, {}, {"mlm": "8151.400490", "lme4": "8151.400490"})[1] == "yes"
    assert agreement.verdict(optimum, {}, {"mlm": "8151.402000", "lme4": "8151.400490"}) == (
        "deviance 8151.402000 vs lme4 8151.400490 (+0.001510)",
        "no",
    )


def test_targets_table_lists_each_target_of_the_cases_run() -> None:
    tallies = glmm_tallies({"mlm": "8151.400490", "lme4": "8151.400490"})
    lines = run.targets_table([(cases.CASES["verbagg"], tallies), (cases.CASES["heck2011"], [])])
    rows = [x for x in lines if x.startswith("| verbagg")]
    assert rows == [
        "| verbagg | 5x faster than lme4 | 1.000 s vs lme4 1.000 s (1.00x; CPU 1.00x) | no |",
        "| verbagg | at lme4's optimum (deviance within 1e-3) | deviance 8151.400490 vs lme4 "
        "8151.400490 (+0.000000) | yes |",
    ]
    assert run.targets_table([(cases.CASES["heck2011"], [])]) == []


def test_binary_data_shape_and_metadata(tmp_path: Path) -> None:
    path, made = make_data.write("binary200k", tmp_path, scale=0.01)
    d = read(path)
    assert made and len(d["y"]) == 2000 and set(d["y"]) == {0.0, 1.0}
    assert len(np.unique(d["district"])) == 2 and len(np.unique(d["school"])) == 40
    # school codes are unique across districts, each school in one district, z constant within a school
    pairs = {(s, g) for s, g in zip(d["school"], d["district"], strict=True)}
    assert len(pairs) == 40 and all(g == (s - 1) // 20 + 1 for s, g in pairs)
    assert all(len(np.unique(d["z"][d["school"] == s])) == 1 for s in np.unique(d["school"]))
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["groups"] == {"district": 2, "school": 40} and meta["true_parameters"] == make_data.BINARY


def test_binary_data_recovers_the_slope_sign_and_rate(tmp_path: Path) -> None:
    d = read(make_data.write("binary200k", tmp_path, scale=0.05)[0])
    # the share of successes is near logistic(b0) and higher where x is high (b1 = 0.8 > 0)
    assert 0.3 < d["y"].mean() < 0.5
    assert d["y"][d["x"] > 1].mean() - d["y"][d["x"] < -1].mean() > 0.2


def test_insteval_binary_from_the_csv_or_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "InstEval.csv"
    source.write_text(
        '"s","d","studage","lectage","service","dept","y"\n1,1002,2,2,0,2,5\n1,1050,2,1,1,6,2\n2,7,4,1,0,3,4\n'
    )
    monkeypatch.setattr(make_data, "insteval_source", lambda: source)
    path, _ = make_data.write("insteval_binary", tmp_path / "a", scale=0.01)  # scale ignored: derived
    assert path.name == "insteval_binary.csv"
    assert path.read_text() == "s,d,service,y4\n1,1002,0,1\n1,1050,1,0\n2,7,0,1\n"
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["rows"] == 3 and meta["source"].endswith("y4 = (y >= 4)") and "true_parameters" not in meta
    monkeypatch.setattr(make_data, "insteval_source", lambda: None)
    d = read(make_data.write("insteval_binary", tmp_path / "b")[0])
    assert len(d["y4"]) == 73_421 and len(np.unique(d["s"])) == 2972 and len(np.unique(d["d"])) == 1128
    assert set(d["service"]) == {0.0, 1.0} and 0.35 < d["y4"].mean() < 0.55


def test_verbagg_is_copied_from_the_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fixture = tmp_path / "fixture.csv"
    fixture.write_text(
        '"id","item","Anger","Gender","btype","situ","r2"\n"1","S1WantCurse",20,"M","curse","other","N"\n'
    )
    monkeypatch.setattr(make_data, "verbagg_fixture", lambda: fixture)
    path, made = make_data.write("VerbAgg", tmp_path / "data")
    assert made and path.name == "VerbAgg.csv" and path.read_bytes() == fixture.read_bytes()
    assert json.loads(path.with_suffix(".json").read_text())["source"] == str(fixture)


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


def test_dask_bench_binary_data_written_piece_by_piece(tmp_path: Path) -> None:
    import dask_bench
    import pandas as pd

    folder = dask_bench.write_binary(5000, tmp_path, parts=4, csv=True)
    parts = sorted(folder.glob("*.parquet"))
    assert [p.name for p in parts] == [f"part{i:04d}.parquet" for i in range(4)]
    df = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    assert len(df) == 5000 and set(df["y"]) == {0, 1}
    assert df["g"].is_monotonic_increasing and df["g"].max() <= 5000 // dask_bench.ROWS_PER_GROUP
    pd.testing.assert_frame_equal(df, pd.read_csv(tmp_path / "binary_5000.csv"), check_dtype=False)
    again = dask_bench.write_binary(5000, tmp_path / "again", parts=4, csv=False)
    pd.testing.assert_frame_equal(
        df, pd.concat([pd.read_parquet(p) for p in sorted(again.glob("*.parquet"))], ignore_index=True)
    )


# what `python -X importtime` prints: a module after those it imported, its name indented by depth
IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       300 |        300 |   _io
import time:      1000 |       1300 | site
import time:       200 |        200 |       pickle
import time:      5000 |       5200 |     numpy._core
import time:       400 |       5600 |   numpy
import time:       100 |        100 |     inspect
import time:       700 |        800 |   click.core
import time:       250 |       6650 | mlmcli.report
import time:      3000 |       3000 | scipy.special
"""


def test_startup_budget_sums_modules_by_origin() -> None:
    b = startup.Budget("fit")
    b.add_importtime(IMPORTTIME)
    # a second, slower run: each module keeps its least self time
    b.add_importtime(IMPORTTIME.replace("|      5000 |", "|      9000 |").replace("700 |", "650 |"))
    assert b.self_us["numpy._core"] == 5000 and b.self_us["click.core"] == 650
    assert b.importer["pickle"] == "numpy._core" and b.importer["mlmcli.report"] is None
    g = b.groups()
    # pickle counts for numpy, which imported it; inspect for click; _io and site for python
    assert g["numpy"] == pytest.approx(5.6) and g["typer+click"] == pytest.approx(0.75)
    assert g["python"] == pytest.approx(1.3) and g["mlm"] == pytest.approx(0.25) and g["scipy"] == 3.0
    assert b.heavy() == ["scipy"]


def test_startup_table_and_slowest_modules() -> None:
    b = startup.Budget("fit", walls=[0.12, 0.10, 0.30])
    b.add_importtime(IMPORTTIME)
    quiet = startup.Budget("--version", walls=[0.05])
    quiet.add_importtime("import time:      1000 |       1000 | site\n")
    lines = startup.table([b, quiet, startup.Budget("man", failed="exit 2: mlm: error: x")])
    assert lines[0] == (
        "| command | wall ms | imports ms | modules | python | numpy | typer+click | nlopt | mlm | scipy | other"
        " | heavy |"
    )
    assert lines[2] == "| fit | 120 | 11 | 9 | 1.3 | 5.6 | 0.8 | 0.0 | 0.2 | 3.0 | 0.0 | scipy |"
    assert lines[3] == "| --version | 50 | 1 | 1 | 1.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | - |"
    assert lines[4] == "| man | failed: exit 2: mlm: error: x |"
    assert startup.slowest(b, 2) == ["     5.00 ms  numpy._core", "     3.00 ms  scipy.special"]


def test_startup_runs_a_command_and_rejects_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert startup.main(["--only=--version", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| --version |"))
    assert row.endswith("| - |")  # no heavy package
    assert int(row.split("|")[4]) > 50  # modules imported: python's, typer's and click's
    assert startup.main(["--only", "fit,nope"]) == 2
    assert "unknown command nope" in capsys.readouterr().err
    assert startup.main(["--runs", "0"]) == 2
