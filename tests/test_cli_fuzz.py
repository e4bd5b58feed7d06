"""Arbitrary text never makes the command fail with exit status 1 (an internal error).

Formulas, --where expressions and CSV files are generated at random, from plain text and from the
pieces of each grammar; the command runs in process (as `mlm ...` does) and must exit 0, 2 or 3.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import threading
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlmcli import cli
from mlmcli.errors import MlmError
from mlmcli.io.csv import read_csv
from mlmcli.where import parse_where, where_mask
from tests import commands

ROOT = Path(__file__).resolve().parent.parent
SLEEP = str(ROOT / "tests" / "fixtures" / "lme4" / "data" / "sleepstudy.csv")
ALLOWED = {0, 2, 3}
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(*args: str) -> tuple[int, str]:
    """The command in process: its exit status and standard error."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            cli.main(list(args))
        except SystemExit as e:
            code = int(e.code or 0)
    return code, err.getvalue()


def pieces(tokens: list[str], max_size: int = 24) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(tokens), max_size=max_size).map("".join)


FORMULA_TOKENS = [
    "Reaction",
    "Days",
    "Subject",
    "y",
    " ",
    "~",
    "+",
    "-",
    "*",
    "/",
    ":",
    "|",
    "||",
    "(",
    ")",
    "^",
    "0",
    "1",
    "2",
    "1e400",
    "-1",
    "I(",
    "log(",
    "sqrt(",
    "exp(",
    "factor(",
    "poly(",
    "scale(",
    ",",
    "=",
    "raw",
    "base",
    "TRUE",
    "NA",
    "%in%",
    "%%",
    ".",
    "`",
    '"',
    "'",
    "offset(",
    "Days^2",
]
WHERE_TOKENS = [
    "Reaction",
    "Days",
    "Subject",
    "nope",
    " ",
    "<",
    "<=",
    ">",
    ">=",
    "==",
    "=",
    "!=",
    "<>",
    "!",
    "&",
    "|",
    "&&",
    "||",
    "and",
    "or",
    "not",
    "in",
    "(",
    ")",
    ",",
    "1",
    "-0.5",
    "1e999",
    "308",
    '"308"',
    "'a'",
    "TRUE",
    "NA",
    "`Days`",
    "`",
    '"',
    "\\",
]
CELL = st.sampled_from(
    [
        "1",
        "2.5",
        "-3",
        "1e400",
        "NA",
        "",
        "a",
        "b c",
        '"q"',
        '"x,y"',
        "TRUE",
        "0x1A",
        '"',
        " ",
        "Inf",
        "NaN",
        "1,2",
        "é",
    ]
)


@FUZZ
@given(st.one_of(st.text(max_size=60), pieces(FORMULA_TOKENS)))
def test_formula_text_never_gives_an_internal_error(formula):
    code, err = run("fit", SLEEP, formula, "-f", "json", "--ddf", "none")
    assert code in ALLOWED, err


SLEEP_FRAME = read_csv(SLEEP)


@FUZZ
@given(st.one_of(st.text(max_size=60), pieces(WHERE_TOKENS)))
def test_where_text_is_kept_or_refused_in_words(text):
    # what `mlm plot --where` does with it: parse before fitting, then pick the rows
    try:
        with cli._user_errors(text):
            parse_where(text)
            mask = where_mask(SLEEP_FRAME, text)
    except MlmError:
        return
    assert len(mask) == SLEEP_FRAME.n_rows


@FUZZ
@given(
    st.one_of(
        st.text(max_size=200),
        st.lists(st.lists(CELL, min_size=1, max_size=4).map(",".join), max_size=12).map(
            lambda rows: "\n".join(["y,x,g", *rows]) + "\n"
        ),
    )
)
def test_csv_text_never_gives_an_internal_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("csv") / "data.csv"
    path.write_text(text, encoding="utf-8")
    code, err = run("fit", str(path), "y ~ x + (1|g)", "-f", "json", "--ddf", "none")
    assert code in ALLOWED, err


# ------------------------------------------------------------ closed and full standard streams

HECK = str(ROOT / "sample_data" / "heck2011.csv")
SS = "Reaction ~ Days + (Days|Subject)"
COMMANDS = [
    ("fit", SLEEP, SS, "-f", "json"),
    ("fit", HECK, "math ~ ses + (ses|schcode)", "-f", "json"),  # warns
    ("fit", HECK, "math ~ ses + (ses|schcode)", "-f", "text", "--strict"),  # warns: exit 3
    ("ranef", SLEEP, SS, "-f", "csv"),
    ("fit", SLEEP, "Reaction ~ nope + (1|Subject)"),  # a user error
    ("fit", str(ROOT / "no-such.csv"), SS),
    ("--version",),
    (),  # the help
]
STREAMS = st.sampled_from(["pipe", "closed", "full"])
OUTPUT_FILE = "out.txt"


def run_with(args: tuple[str, ...], stdout: str, stderr: str, folder: Path) -> tuple[int, bytes, bytes, bytes]:
    """`mlm ARGS` in a subprocess, in `folder`, with stdout and stderr each a pipe, closed (`>&-`) or
    /dev/full: its exit status, what the pipes received and the output file (b"" if none)."""

    def stream(kind: str):
        return open("/dev/full", "wb") if kind == "full" else subprocess.PIPE if kind == "pipe" else None

    def close() -> None:
        for fd, kind in ((1, stdout), (2, stderr)):
            if kind == "closed":
                os.close(fd)

    out, err = stream(stdout), stream(stderr)
    try:
        p = commands.run(
            *args,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            preexec_fn=close,
            cwd=folder,
            timeout=300,
        )
    finally:
        for s in (out, err):
            if s not in (None, subprocess.PIPE):
                s.close()
    written = folder / OUTPUT_FILE
    return p.returncode, p.stdout or b"", p.stderr or b"", written.read_bytes() if written.exists() else b""


_baselines: dict[tuple, tuple[int, bytes, bytes, bytes]] = {}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(COMMANDS), st.booleans(), STREAMS, STREAMS)
def test_closed_or_full_streams_keep_the_exit_status_contract(tmp_path_factory, args, to_file, stdout, stderr):
    """0, 2 or 3, never 1 and never a traceback; stderr that cannot be written changes nothing; stdout
    that cannot be written is exit status 2 (one more line saying so) when the command had something to
    write there; an output file is written whole whatever becomes of the streams."""
    if to_file and args[:1] in (("fit",), ("ranef",)):
        args = (*args, "-o", OUTPUT_FILE)
    if args not in _baselines:
        _baselines[args] = run_with(args, "pipe", "pipe", tmp_path_factory.mktemp("baseline"))
    base_code, base_out, base_err, base_file = _baselines[args]
    assert base_code in ALLOWED and b"Traceback" not in base_err
    code, out, err, written = run_with(args, stdout, stderr, tmp_path_factory.mktemp("streams"))
    assert code in ALLOWED, err
    assert b"Traceback" not in err and b"internal error" not in err, err
    if stdout == "pipe":
        assert (code, out) == (base_code, base_out)
    elif base_out:
        assert code == 2
        if stderr == "pipe":
            said = {
                "closed": b"mlm: error: standard output is closed",
                "full": b"mlm: error: cannot write standard output: no space left on device",
            }[stdout]
            assert err == base_err + said + b"\n"  # the warnings, then the one error line
    else:
        assert code == base_code
    if stdout == "pipe" and stderr == "pipe":
        assert err == base_err
    assert written == base_file


# ------------------------------------------------------------ inputs that are not regular files

DELIVERY = st.sampled_from(["fifo", "dash", "dev_stdin", "gzip_dash", "gzip_fifo"])


def run_delivered(text: bytes, how: str, folder: Path) -> tuple[int, bytes, bytes]:
    """`mlm fit DATA ...` with DATA's bytes given through a FIFO, standard input (`-` or
    /dev/stdin), or gzip-compressed through either: each read once, as a regular file is."""
    payload = gzip.compress(text) if how.startswith("gzip") else text
    args = [commands.MLM, "fit", "", "y ~ x + (1|g)", "-f", "json", "--ddf", "none"]
    stdin = None
    if how.endswith("fifo"):
        fifo = folder / ("data.csv.gz" if how.startswith("gzip") else "data.csv")
        os.mkfifo(fifo)
        args[2] = str(fifo)

        def feed() -> None:
            try:
                with open(fifo, "wb") as f:
                    f.write(payload)
            except BrokenPipeError:  # refused before reading it all
                pass

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
    else:
        args[2] = "-" if how.endswith("dash") else "/dev/stdin"
        stdin = payload
    # the timeout guards against a hang (a second open of the FIFO); it asserts nothing about speed
    p = subprocess.run(args, input=stdin, capture_output=True, timeout=120, cwd=ROOT, env=commands.environment())
    if how.endswith("fifo"):
        # a refusal before the FIFO was opened leaves the writer waiting: open it to release it
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        os.close(fd)
        writer.join(timeout=10)
    return p.returncode, p.stdout, p.stderr


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.lists(CELL, min_size=1, max_size=4).map(",".join), max_size=12).map(
        lambda rows: "\n".join(["y,x,g", *rows]) + "\n"
    ),
    DELIVERY,
)
def test_inputs_that_are_not_regular_files_give_the_regular_files_result(tmp_path_factory, text, how):
    folder = tmp_path_factory.mktemp("pipe")
    regular = folder / "regular.csv"
    regular.write_text(text, encoding="utf-8")
    code, out, err = run_delivered(text.encode(), how, folder)
    assert code in ALLOWED, err
    p = commands.run(
        "fit", str(regular), "y ~ x + (1|g)", "-f", "json", "--ddf", "none", capture_output=True, timeout=120
    )
    assert code == p.returncode, (err, p.stderr)
    if code == 0:
        ours, theirs = json.loads(out), json.loads(p.stdout)
        assert ours["criterion"] == theirs["criterion"] and ours["fixed_effects"] == theirs["fixed_effects"]
