"""The command in pipelines and CI: exit codes, interrupts, output files, and input it cannot use.

Each test drives the command in a subprocess, as a shell would, and checks the exit status, the
standard error and the files left behind.
"""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
from pathlib import Path

import jsonschema
import pytest

from tests.commands import MLM, environment, mlm, popen, python

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "fixtures" / "lme4" / "data"
SLEEP = str(DATA / "sleepstudy.csv")
HECK = str(ROOT / "sample_data" / "heck2011.csv")
SS = "Reaction ~ Days + (Days|Subject)"
SCHEMAS = ROOT / "mlmcli" / "schemas"


def one_error_line(p: subprocess.CompletedProcess, code: int = 2) -> str:
    """The run failed with `code` and said why in exactly one line, without a traceback."""
    assert p.returncode == code, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlm: error: "), p.stderr
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    return sorted(f.name for f in folder.iterdir() if f.name.startswith(".mlm-"))


def small_csv(path: Path, rows: list[tuple], header: str = "y,x,g") -> Path:
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def noisy_rows(n: int, groups: int, x=lambda i, rnd: rnd.gauss(0, 1), seed: int = 1) -> list[tuple]:
    rnd = random.Random(seed)
    return [(rnd.gauss(0, 1) + (i % groups) * 0.5, x(i, rnd), i % groups) for i in range(n)]


# ------------------------------------------------------------ interrupts


INSTEVAL_COMPARE = [
    "compare",
    str(DATA / "InstEval.csv"),
    "y ~ 1 + (1|s) + (1|d)",
    "y ~ 1 + service + (1|s) + (1|d)",
    "-f",
    "json",
]


def fitting(args: list[str]) -> subprocess.Popen:
    """`mlm ARGS`, returned once it has begun to fit: it writes "started" to the pipe that
    MLM_TEST_STARTED_FIFO names when it first evaluates the criterion."""
    read, write = os.pipe()
    p = popen(
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        pass_fds=(write,),
        env={"MLM_TEST_STARTED_FIFO": f"/dev/fd/{write}"},
    )
    os.close(write)
    with os.fdopen(read) as started:
        said = started.readline()  # "" if the command ended without fitting
    assert said == "started\n", p.communicate()
    return p


@pytest.mark.parametrize(
    ("signum", "code", "message"),
    [
        (signal.SIGINT, 130, "mlm: interrupted\n"),
        # a cancelled CI job gets SIGTERM: status 143 (128 + 15)
        (signal.SIGTERM, 143, "mlm: terminated\n"),
    ],
)
def test_signal_during_a_fit_exits_with_one_line_and_no_output(tmp_path, signum, code, message):
    out = tmp_path / "cmp.json"
    p = fitting([*INSTEVAL_COMPARE, "-o", str(out)])
    p.send_signal(signum)
    stdout, stderr = p.communicate(timeout=300)
    assert (p.returncode, stderr, stdout) == (code, message, "")
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_while_modules_load_exits_130_without_traceback():
    # the handler the entry point installs before importing anything heavy
    code = (
        "from mlmcli.interrupt import exit_during_startup\n"
        "exit_during_startup()\n"
        "import os, signal, time\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "time.sleep(30)\n"
    )
    p = python("-c", code, capture_output=True, text=True)
    assert p.returncode == 130 and p.stderr == "mlm: interrupted\n"


def test_interrupted_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    from mlmcli import outfile

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(outfile.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        outfile.write_output(str(tmp_path / "fit.json"), b"{}")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ output files


def test_output_onto_a_character_device_writes_it_in_place():
    p = mlm("fit", SLEEP, SS, "-f", "json", "-o", "/dev/null")
    assert p.returncode == 0 and p.stdout == ""
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_output_onto_a_symlink_writes_its_target(tmp_path):
    target = tmp_path / "target.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target.name)
    p = mlm("fit", SLEEP, SS, "-f", "json", "-o", str(link))
    assert p.returncode == 0, p.stderr
    assert link.is_symlink() and os.readlink(link) == target.name
    assert json.loads(target.read_text())["n_obs"] == 180
    assert leftovers(tmp_path) == []


def test_output_keeps_the_existing_files_mode(tmp_path):
    out = tmp_path / "private.json"
    out.write_text("old")
    out.chmod(0o600)
    p = mlm("fit", SLEEP, SS, "-f", "json", "-o", str(out))
    assert p.returncode == 0, p.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and json.loads(out.read_text())["n_obs"] == 180


def test_output_into_a_fifo_is_written_in_place(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE, text=True)
    p = mlm("fit", SLEEP, SS, "-f", "json", "-o", str(fifo))
    received = reader.communicate()[0]
    assert p.returncode == 0, p.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode) and json.loads(received)["n_obs"] == 180


@pytest.mark.parametrize("how", ["same", "relative", "symlink"])
def test_output_naming_the_input_is_refused(tmp_path, how):
    data = tmp_path / "d.csv"
    data.write_bytes(Path(SLEEP).read_bytes())
    out = {"same": str(data), "relative": "./d.csv", "symlink": str(tmp_path / "link.csv")}[how]
    if how == "symlink":
        (tmp_path / "link.csv").symlink_to(data)
    p = mlm("fit", str(data), SS, "-o", out, cwd=tmp_path)
    assert "is the input file" in one_error_line(p)
    assert data.read_bytes() == Path(SLEEP).read_bytes()


def test_read_only_output_folder_is_a_plain_error(tmp_path):
    if os.geteuid() == 0:
        folder = Path("/sys")  # refuses new files even to root
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
    p = mlm("fit", SLEEP, SS, "-o", str(folder / "fit.txt"))
    line = one_error_line(p)
    assert "cannot write" in line and ("permission denied" in line or "not writable" in line)


def test_standard_output_on_a_full_disk_is_a_plain_error():
    with open("/dev/full", "w") as full:
        p = mlm("fit", SLEEP, SS, "-f", "json", stdout=full)
    assert "no space left on device" in one_error_line(p)


def test_table_goes_to_the_output_file(tmp_path):
    out = tmp_path / "fit.txt"
    p = mlm("fit", SLEEP, SS, "-f", "table", "-o", str(out), env={"COLUMNS": "100"})
    assert p.returncode == 0 and p.stdout == ""
    text = out.read_text()
    assert "Fixed effects" in text and "251.41" in text and "\x1b[" not in text


def test_table_into_a_closed_pipe_exits_0():
    # as `mlm ranef ... -f table | head -1` under pipefail: the reader is gone before the table is written
    p = popen("ranef", SLEEP, SS, "-f", "table", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdout.close()
    stderr = p.stderr.read()
    assert p.wait() == 0, stderr
    assert stderr == ""


# ------------------------------------------------------------ models and data the engine cannot use


def test_non_finite_estimates_are_an_error_in_json_and_text(tmp_path):
    data = small_csv(tmp_path / "huge.csv", noisy_rows(60, 6, x=lambda i, rnd: rnd.gauss(0, 1) * 1e200))
    for fmt in ("json", "text"):
        p = mlm("fit", str(data), "y ~ x + (1|g)", "-f", fmt)
        assert "non-finite" in one_error_line(p) and p.stdout == ""


def test_as_many_fixed_effects_as_rows_is_an_error(tmp_path):
    data = small_csv(
        tmp_path / "ids.csv", [(y, i, g) for i, (y, _, g) in enumerate(noisy_rows(12, 3))], header="y,id,g"
    )
    line = one_error_line(mlm("fit", str(data), "y ~ factor(id) + (1|g)"))
    assert "12 fixed-effect coefficients for 12 observations" in line


def test_ill_conditioned_fixed_effects_are_an_error(tmp_path):
    data = small_csv(tmp_path / "powers.csv", noisy_rows(60, 6, x=lambda i, rnd: 1 + i / 60))
    powers = " + ".join(f"I(x^{k})" for k in range(1, 25))
    assert "ill-conditioned" in one_error_line(mlm("fit", str(data), f"y ~ {powers} + (1|g)"))


@pytest.mark.parametrize(
    "formula",
    [
        "y ~ " + " + ".join(f"x{k}" for k in range(1000)) + " + (1|g)",
        "y ~ " + "(" * 3000 + "x" + ")" * 3000 + " + (1|g)",
    ],
)
def test_huge_formulas_are_an_error(tmp_path, formula):
    data = small_csv(tmp_path / "d.csv", noisy_rows(30, 3))
    assert "too deeply or has too many terms" in one_error_line(mlm("fit", str(data), formula))


def test_too_large_a_picture_is_refused_before_fitting(tmp_path):
    out = tmp_path / "p.png"
    p = mlm("plot", SLEEP, SS, "--dpi", "1200", "--width", "100", "-o", str(out))
    assert "pixels" in one_error_line(p)
    assert list(tmp_path.iterdir()) == []


def test_plot_checks_its_options_before_fitting(tmp_path):
    out = tmp_path / "p.png"
    p = mlm("plot", SLEEP, SS, "--format", "yaml", "-o", str(out))
    assert "yaml" in one_error_line(p)
    p = mlm("plot", SLEEP, SS, "-o", str(out), "--data-out", str(tmp_path / "no" / "such" / "d.csv"))
    assert "does not exist" in one_error_line(p)
    p = mlm("plot", SLEEP, SS, "-o", str(out), "--where", "Days >")
    one_error_line(p)
    assert list(tmp_path.iterdir()) == []


def test_rows_lost_to_nan_are_reported(tmp_path):
    rows = noisy_rows(60, 6)
    data = small_csv(tmp_path / "neg.csv", rows)
    negative = sum(1 for _, x, _ in rows if x < 0)
    p = mlm("fit", str(data), "y ~ log(x) + (1|g)", "-f", "json")
    assert p.returncode == 0, p.stderr
    message = f"NaNs produced by log(x): {negative} rows dropped"
    assert message in p.stderr.splitlines()
    fit = json.loads(p.stdout)
    assert fit["n_obs"] == 60 - negative and message in fit["warnings"]
    # missing values in the data are no news: lme4 drops them silently
    missing = [(y, "NA" if i < 5 else x, g) for i, (y, x, g) in enumerate(rows)]
    p = mlm("fit", str(small_csv(tmp_path / "na.csv", missing)), "y ~ x + (1|g)", "-f", "json")
    assert p.returncode == 0 and "NaNs produced" not in p.stderr


# ------------------------------------------------------------ --strict and exit codes


def test_strict_exits_3_after_writing_the_output(tmp_path):
    out = tmp_path / "fit.json"
    p = mlm("fit", HECK, "math ~ ses + (ses|schcode)", "-f", "json", "-o", str(out), "--strict")
    assert p.returncode == 3
    assert "boundary (singular) fit" in p.stderr
    assert json.loads(out.read_text())["singular"] is True
    p = mlm("fit", SLEEP, SS, "-f", "json", "--strict")
    assert p.returncode == 0 and json.loads(p.stdout)["warnings"] == []
    rows = noisy_rows(60, 6)
    p = mlm("ranef", str(small_csv(tmp_path / "neg.csv", rows)), "y ~ sqrt(x) + (1|g)", "-f", "csv", "--strict")
    assert p.returncode == 3 and "NaNs produced by sqrt(x)" in p.stderr and p.stdout.startswith("group,")


def test_internal_errors_exit_1_and_say_how_to_report_them(monkeypatch, capsys):
    from mlmcli import cli
    from mlmcli.cli import models

    def broken(*args, **kwargs):
        raise KeyError("oops")

    monkeypatch.setattr(models, "_fit", broken)  # what the fit command calls
    with pytest.raises(SystemExit) as done:
        cli.main(["fit", SLEEP, SS])
    assert done.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mlm: internal error: KeyError") and "report" in err[0]


# ------------------------------------------------------------ what is printed


def test_levels_with_newlines_print_escaped_as_r_does(tmp_path):
    rnd = random.Random(3)
    levels = ["a\nb", "c\\d", "e\tf", "g"]
    lines = ["y,x,g"] + [f'{rnd.gauss(0, 1) + i % 4},{rnd.gauss(0, 1)},"{levels[i % 4]}"' for i in range(40)]
    data = tmp_path / "nl.csv"
    data.write_text("\n".join(lines) + "\n")
    p = mlm("ranef", str(data), "y ~ x + (1|g)", "-f", "text")
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    # R: print(ranef(fit)) shows a\nb, c\\d, e\tf on one line each
    assert [row.split()[0] for row in out[2:6]] == ["a\\nb", "c\\\\d", "e\\tf", "g"]
    p = mlm("ranef", str(data), "y ~ x + (1|g)", "-f", "table", env={"NO_COLOR": "1"})
    assert "a\\nb" in p.stdout and "\t" not in p.stdout
    p = mlm("ranef", str(data), "y ~ x + (1|g)", "-f", "json")
    assert [r["level"] for r in json.loads(p.stdout)["ranef"]] == levels


def test_narrow_terminal_does_not_cut_numbers():
    p = mlm("fit", SLEEP, SS, "-f", "table", "--correlation", env={"COLUMNS": "60", "NO_COLOR": "1"})
    assert p.returncode == 0
    assert "…" not in p.stdout and "251.41" in p.stdout
    # narrower still, the text layout stands in for the table (test_options.py)
    p = mlm("fit", SLEEP, SS, "-f", "table", "--correlation", env={"COLUMNS": "40", "NO_COLOR": "1"})
    assert p.returncode == 0
    assert "…" not in p.stdout and "251.405" in p.stdout


def test_options_that_do_not_apply_are_named(tmp_path):
    p = mlm("ranef", SLEEP, SS, "-f", "csv", "--head", "2")
    assert p.returncode == 0
    assert "mlm: note: --head applies to table and text output; ignored with --format csv" in p.stderr
    assert len(p.stdout.splitlines()) == 37
    p = mlm("fit", SLEEP, SS, "-f", "text", "--correlation")
    assert "--correlation applies to table output" in p.stderr


# ------------------------------------------------------------ help, completion, schemas


def test_short_help_shows_argument_help_without_stray_backslashes():
    p = mlm("fit", "-h", env={"COLUMNS": "120"})
    assert p.returncode == 0
    assert "CSV file with a header line" in p.stdout and "lme4 model formula" in p.stdout
    assert "\\[" not in p.stdout and "[required]" in p.stdout
    top = mlm("-h")
    assert top.returncode == 0 and "--install-completion" in top.stdout and "Exit status" in top.stdout


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o default -F _mlm_completion mlm"),
        ("zsh", "#compdef mlm"),
        ("fish", "complete --command mlm"),
    ],
)
def test_completion_scripts_for_each_shell(tmp_path, shell, marker):
    # the shell is detected from the parent process's name
    fake = tmp_path / shell
    fake.symlink_to("/bin/bash")
    p = subprocess.run(
        [str(fake), "-c", f"{MLM} --show-completion; true"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment(),
    )
    assert p.returncode == 0 and marker in p.stdout, p.stderr


def undeclared(doc, schema: dict, path: str = "$") -> list[str]:
    """Keys of a JSON document that its schema does not declare."""
    out = []
    if isinstance(doc, dict):
        props, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for key, value in doc.items():
            if key in props:
                out += undeclared(value, props[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                out += undeclared(value, extra, f"{path}.{key}")
            else:
                out.append(f"{path}.{key}")
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += undeclared(value, schema.get("items", {}), f"{path}[{i}]")
    return out


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("fit", [SLEEP, SS]),
        ("tau", [SLEEP, SS]),
        ("ranef", [SLEEP, SS, "--with-coef"]),
        ("compare", [SLEEP, "Reaction ~ 1 + (1|Subject)", "Reaction ~ Days + (1|Subject)", "--variance-reduction"]),
        ("table", [SLEEP, "Reaction ~ 1 + (1|Subject)", SS, "--ci"]),
    ],
)
def test_every_json_key_is_in_the_schema_mlm_schema_prints(command, args):
    printed = mlm("schema", command)
    assert printed.returncode == 0
    schema = json.loads(printed.stdout)
    assert schema == json.loads((SCHEMAS / f"{command}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    doc = json.loads(mlm(command, *args, "-f", "json").stdout)
    jsonschema.validate(doc, schema)
    assert undeclared(doc, schema) == []
    assert doc["schema_version"] == 1


def test_outputs_are_written_all_or_none(tmp_path, monkeypatch):
    """The picture and its numbers: when one cannot be written, neither is left behind."""
    from mlmcli import outfile
    from mlmcli.errors import MlmError

    real_replace = outfile.os.replace
    calls = []

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(outfile.os, "replace", second_fails)
    png, csv_ = tmp_path / "p.png", tmp_path / "p.csv"
    with pytest.raises(MlmError, match="no space left"):
        outfile.write_outputs([(str(png), b"image"), (str(csv_), b"a,b\n")])
    assert list(tmp_path.iterdir()) == []  # the picture renamed first is taken back too
    # staged before anything is renamed: a file that cannot even be staged stops both
    monkeypatch.setattr(outfile.os, "replace", real_replace)
    with pytest.raises(MlmError):
        outfile.write_outputs([(str(tmp_path / "q.png"), b"image"), (str(tmp_path / "no" / "q.csv"), b"x")])
    assert list(tmp_path.iterdir()) == []
