"""The options every command shares, and the command line's habits: the reading and filtering options of
DATA on every command that reads it, the dask scheduler's address and timeout, the examples in -h,
`mlm man`, tables on narrow terminals, the plot schema, and the note on rows with missing values.

Each test drives the command in a subprocess, as a shell would.
"""

from __future__ import annotations

import csv
import json
import shlex
import socket
import subprocess
import threading
from pathlib import Path

import jsonschema
import pytest

from tests.commands import MLM, environment
from tests.test_cli_exit import HECK, ROOT, SCHEMAS, SLEEP, SS, mlm, one_error_line, undeclared

WHERE = "Days >= 2"
# each command with the arguments that make it print something comparable (JSON where it has it)
COMMANDS = {
    "fit": [SS, "-f", "json"],
    "tau": [SS, "-f", "json"],
    "ranef": [SS, "-f", "json"],
    "compare": ["Reaction ~ Days + (1|Subject)", SS, "-f", "json"],
    "table": [SS, "-f", "json"],
    "confint": [SS, "--method", "wald", "-f", "json"],
    "anova": [SS, "-f", "json"],
    "ranova": [SS, "-f", "json"],
    "predict": [SS, "-f", "csv"],
    "augment": [SS, "-f", "csv"],
    "plot": [SS, "--kind", "fitted", "-f", "json"],
}
MEMORY_ONLY = ["anova", "ranova", "predict", "augment", "plot"]


def sleep_rows() -> list[list[str]]:
    with open(SLEEP, newline="") as f:
        return list(csv.reader(f))


def write_csv(path: Path, rows: list[list[str]], sep: str = ",") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        csv.writer(f, delimiter=sep).writerows(rows)
    return str(path)


def run(command: str, data: str, *options: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """The command on `data`; a plot's picture goes to tmp_path."""
    extra = ["-o", str(tmp_path / "p.png")] if command == "plot" else []
    return mlm(command, data, *COMMANDS[command], *extra, *options)


def result(p: subprocess.CompletedProcess) -> object:
    """What a run printed, without the parts that name its options (a plot's --where and file)."""
    assert p.returncode == 0, p.stderr
    if p.stdout.startswith(("{", "[")):
        doc = json.loads(p.stdout)
        if isinstance(doc, dict):
            for key in ("where", "output", "seed"):
                doc.pop(key, None)
        return doc
    return p.stdout


@pytest.mark.parametrize("command", list(COMMANDS))
def test_where_uses_the_rows_it_keeps(command, tmp_path):
    """--where on DATA fits what the same command fits on a copy holding only the rows it keeps."""
    rows = sleep_rows()
    kept = write_csv(tmp_path / "kept" / "sleepstudy.csv", [rows[0]] + [r for r in rows[1:] if int(r[1]) >= 2])
    filtered = run(command, SLEEP, "--where", WHERE, tmp_path=tmp_path)
    assert result(filtered) == result(run(command, kept, tmp_path=tmp_path))
    assert result(filtered) != result(run(command, SLEEP, tmp_path=tmp_path))
    if command == "fit":
        assert json.loads(filtered.stdout)["n_obs"] == 144
    if command in ("predict", "augment"):
        assert len(filtered.stdout.splitlines()) == 1 + 144


@pytest.mark.parametrize("command", list(COMMANDS))
def test_sep_sheet_and_engine_memory_read_the_same_data(command, tmp_path):
    """A ;-separated copy with --sep ';', an Excel copy with --sheet, and --engine memory (with
    --timeout, which only a dask scheduler uses) give the same result as the CSV file."""
    from openpyxl import Workbook

    rows = sleep_rows()
    semicolons = write_csv(tmp_path / "semi" / "sleepstudy.csv", rows, sep=";")
    book = Workbook()
    book.active.title = "notes"
    sheet = book.create_sheet("wave 2")
    sheet.append(rows[0])
    for r in rows[1:]:
        sheet.append([float(r[0]), int(r[1]), int(r[2])])
    (tmp_path / "xl").mkdir()
    book.save(tmp_path / "xl" / "sleepstudy.xlsx")
    expected = result(run(command, SLEEP, tmp_path=tmp_path))
    assert result(run(command, semicolons, "--sep", ";", tmp_path=tmp_path)) == expected
    assert (
        result(run(command, str(tmp_path / "xl" / "sleepstudy.xlsx"), "--sheet", "wave 2", tmp_path=tmp_path))
        == expected
    )
    assert result(run(command, SLEEP, "--engine", "memory", "--timeout", "5", tmp_path=tmp_path)) == expected


@pytest.mark.parametrize("command", list(COMMANDS))
def test_weights_and_offset_on_every_command(command, tmp_path):
    """--weights and --offset name columns on every command; weights of 1 and an offset of 0 change nothing."""
    rows = sleep_rows()
    data = write_csv(tmp_path / "w" / "sleepstudy.csv", [rows[0] + ["w", "off"]] + [r + ["1", "0"] for r in rows[1:]])
    plain = result(run(command, data, tmp_path=tmp_path))
    weighted = result(run(command, data, "--weights", "w", "--offset", "off", tmp_path=tmp_path))
    if command == "fit":  # the json names the columns
        assert (weighted.pop("weights"), weighted.pop("offset")) == ("w", "off")
        plain.pop("weights"), plain.pop("offset")
    if command in ("predict", "augment"):  # lme4's model frame has the (weights) and (offset) columns
        return
    assert weighted == plain


def test_the_sep_the_error_suggests_is_accepted(tmp_path):
    semicolons = write_csv(tmp_path / "sleepstudy.csv", sleep_rows(), sep=";")
    for command in ("confint", "anova", "ranova", "predict", "augment"):
        hint = one_error_line(run(command, semicolons, tmp_path=tmp_path))
        assert "--sep ';'" in hint
        assert run(command, semicolons, "--sep", ";", tmp_path=tmp_path).returncode == 0


@pytest.mark.parametrize("command", MEMORY_ONLY)
def test_commands_that_need_the_rows_refuse_dask(command, tmp_path):
    line = one_error_line(run(command, SLEEP, "--engine", "dask", tmp_path=tmp_path))
    assert f"mlm {command} needs the rows of DATA" in line and "--engine dask" in line
    assert list(tmp_path.iterdir()) == []


def test_dask_refuses_where_and_the_methods_that_need_rows():
    assert "--where is not offered with --engine dask" in one_error_line(
        mlm("fit", SLEEP, SS, "--engine", "dask", "--where", WHERE)
    )
    assert "--method profile is not offered with --engine dask" in one_error_line(
        mlm("confint", SLEEP, SS, "--engine", "dask")
    )


# ------------------------------------------------------------ the dask scheduler


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("not a url", "is not an address"),
        ("http://127.0.0.1:8786", "has an unknown protocol 'http://'"),
        ("tcp://127.0.0.1", "has no port"),
        ("127.0.0.1:99999", "has the port '99999', not a number from 1 to 65535"),
    ],
)
def test_a_malformed_scheduler_address_is_named(address, says):
    line = one_error_line(mlm("fit", SLEEP, SS, "--engine", "dask", "--scheduler", address))
    assert f"the dask scheduler address {address!r} {says}" in line and "tcp://HOST:PORT" in line


@pytest.fixture
def silent_server():
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []

    def serve() -> None:
        try:
            while True:
                accepted.append(server.accept()[0])
        except OSError:  # closed at the end of the test
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for conn in accepted:
        conn.close()


@pytest.mark.parametrize("command", ["fit", "compare"])
def test_a_scheduler_that_never_answers_is_given_up(command, silent_server):
    formulas = ["Reaction ~ Days + (1|Subject)", SS] if command == "compare" else [SS]
    p = mlm(command, SLEEP, *formulas, "--engine", "dask", "--scheduler", silent_server, "--timeout", "1")
    line = one_error_line(p)
    assert line == (
        f"mlm: error: the dask scheduler at {silent_server} took the connection but did not answer "
        "within 1 second (--timeout)"
    )
    assert p.stdout == ""


# ------------------------------------------------------------ -h examples, mlm man


def command_names() -> list[str]:
    from mlmcli.cli import app

    return [c.name or c.callback.__name__ for c in app.registered_commands]


def examples_of(command: str) -> list[str]:
    p = mlm(command, "-h", env={"COLUMNS": "250"})
    assert p.returncode == 0, p.stderr
    assert "Examples" in p.stdout
    after = p.stdout.split("Examples", 1)[1]
    return [line.strip() for line in after.splitlines() if line.strip().startswith(f"mlm {command}")]


@pytest.mark.parametrize("command", command_names())
def test_help_shows_examples_that_run(command, tmp_path):
    """Two or more examples under -h, each run as written (in a folder with the bundled data)."""
    lines = examples_of(command)
    assert len(lines) >= 2, lines
    for folder in ("sample_data", "tests"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    for line in lines:
        # as a user's shell finds it: the installed command first on the PATH
        p = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {line}"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={"PATH": f"{Path(MLM).parent}:/usr/bin:/bin"},
        )
        assert p.returncode == 0, (line, p.stderr)
        assert p.stdout or list(tmp_path.glob("*.*")), line


def test_mlm_man_prints_the_page_into_a_pipe():
    p = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {shlex.quote(MLM)} man | head -4"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment(),
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[:4] == [
        "MLM(1)",
        "",
        "NAME",
        "       mlm - multilevel (linear mixed-effects) models from the command line, with lme4's numbers",
    ]
    whole = mlm("man")
    assert whole.returncode == 0 and whole.stderr == ""
    assert "WHERE EXPRESSIONS" in whole.stdout and "EXIT STATUS" in whole.stdout
    assert not [line for line in whole.stdout.splitlines() if line.startswith(".") or "\\f" in line]
    # the page ships inside the package, found without MANPATH
    from importlib.resources import files

    assert (files("mlmcli") / "man" / "mlm.1").read_text().startswith(".TH MLM 1")
    assert "mlm man" in mlm("-h").stdout and "mlm man" in mlm("fit", "-h", env={"COLUMNS": "200"}).stdout


# ------------------------------------------------------------ narrow terminals


@pytest.mark.parametrize("command", ["fit", "tau", "ranef", "anova"])
def test_a_table_too_wide_for_the_terminal_is_the_text_layout(command):
    narrow = mlm(command, SLEEP, SS, "-f", "table", env={"COLUMNS": "40", "NO_COLOR": "1"})
    text = mlm(command, SLEEP, SS, "-f", "text")
    assert narrow.returncode == 0 and text.returncode == 0
    assert narrow.stdout == text.stdout
    longest = max(len(line) for line in text.stdout.splitlines())
    assert max(len(line) for line in narrow.stdout.splitlines()) <= longest
    wide = mlm(command, SLEEP, SS, "-f", "table", env={"COLUMNS": "100", "NO_COLOR": "1"})
    assert wide.returncode == 0 and wide.stdout != text.stdout


# ------------------------------------------------------------ the plot schema


@pytest.mark.parametrize(
    ("data", "formula", "options"),
    [
        (SLEEP, SS, ["--kind", "ranef"]),
        (SLEEP, SS, ["--kind", "caterpillar"]),
        (SLEEP, SS, ["--kind", "spaghetti", "--where", WHERE]),
        (HECK, "math ~ ses*public + (ses|schcode)", ["--kind", "fitted", "--by", "public", "--where", "schcode <= 40"]),
        (SLEEP, SS, ["--kind", "residuals"]),
        (SLEEP, SS, ["--kind", "profile"]),
        (HECK, "math ~ ses + (ses|schcode)", ["--kind", "shrinkage", "--groups", "12"]),
    ],
)
def test_plot_json_follows_the_schema_mlm_schema_prints(data, formula, options, tmp_path):
    printed = mlm("schema", "plot")
    assert printed.returncode == 0
    schema = json.loads(printed.stdout)
    assert schema == json.loads((SCHEMAS / "plot.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    p = mlm("plot", data, formula, *options, "-o", str(tmp_path / "p.png"), "-f", "json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    jsonschema.validate(doc, schema)
    assert undeclared(doc, schema) == []


# ------------------------------------------------------------ rows with missing values


def with_missing(tmp_path: Path) -> str:
    """sleepstudy with Days missing in 8 rows and the weight missing in 2 others."""
    rows = sleep_rows()
    out = [rows[0] + ["w"]]
    for i, r in enumerate(rows[1:]):
        days = "NA" if i % 25 == 3 else r[1]
        out.append([r[0], days, r[2], "NA" if i in (10, 11) else "1"])
    return write_csv(tmp_path / "sleepstudy.csv", out)


@pytest.mark.parametrize("command", ["fit", "tau", "ranef", "confint", "anova", "ranova", "predict", "augment"])
def test_rows_left_out_for_missing_values_are_noted(command, tmp_path):
    data = with_missing(tmp_path)
    note = "mlm: note: 10 rows with missing values were left out (of 180)"
    p = run(command, data, "--weights", "w", tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr
    assert note in p.stderr.splitlines()
    if command == "fit":
        assert json.loads(p.stdout)["n_obs"] == 170
    strict = run(command, data, "--weights", "w", "--strict", tmp_path=tmp_path)
    assert strict.returncode == 3 and note in strict.stderr.splitlines()
    assert strict.stdout == p.stdout
    complete = run(command, SLEEP, "--strict", tmp_path=tmp_path)
    assert complete.returncode == 0 and "left out" not in complete.stderr


def test_one_row_left_out_is_noted_in_the_singular(tmp_path):
    rows = sleep_rows()
    rows[5][0] = "NA"
    p = mlm(
        "compare",
        write_csv(tmp_path / "sleepstudy.csv", rows),
        "Reaction ~ Days + (1|Subject)",
        SS,
        "-f",
        "json",
        "--strict",
    )
    assert p.returncode == 3
    # both models lost the same row: one note
    assert p.stderr.count("left out") == 1
    assert "mlm: note: 1 row with a missing value was left out (of 180)" in p.stderr.splitlines()
