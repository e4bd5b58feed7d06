"""Standard streams that cannot be used: a closed or full stdout or stderr, and the progress line a
terminal shows during a long fit.

Each test runs the command in a subprocess whose file descriptors are set up as a shell would
(`>&-`, `2>/dev/full`, a terminal on stderr) and checks the exit status and what was written.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import pytest

from tests import commands

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "fixtures" / "lme4" / "data"
SLEEP = str(DATA / "sleepstudy.csv")
HECK = str(ROOT / "sample_data" / "heck2011.csv")
SS = "Reaction ~ Days + (Days|Subject)"
SINGULAR = "math ~ ses + (ses|schcode)"
SINGULAR_WARNING = "boundary (singular) fit: see help('isSingular')"
HANG_GUARD = 300  # seconds: only so that a hung command fails the test instead of stalling the run


def run(
    *args: str, stdout=subprocess.PIPE, stderr=subprocess.PIPE, close: tuple[int, ...] = (), env: dict | None = None
) -> subprocess.CompletedProcess:
    """`mlm ARGS` with the given streams; the descriptors in `close` are closed in the child, as
    `>&-` or `2>&-` leave them."""

    def close_fds() -> None:
        for fd in close:
            os.close(fd)

    return commands.run(
        *args,
        stdout=stdout,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        preexec_fn=close_fds if close else None,
        env=env,
        timeout=HANG_GUARD,
    )


def to_full(*args: str, **kw) -> subprocess.CompletedProcess:
    """`mlm ARGS 2>/dev/full`."""
    with open("/dev/full", "wb") as full:
        return run(*args, stderr=full, **kw)


# ------------------------------------------------------------ stderr that cannot be written


def test_full_stderr_keeps_the_result_and_the_exit_status():
    p = to_full("fit", HECK, SINGULAR, "-f", "json")
    assert p.returncode == 0
    fit = json.loads(p.stdout)
    assert fit["singular"] is True and SINGULAR_WARNING in fit["warnings"]


def test_full_stderr_under_strict_still_exits_3():
    """The warnings count under --strict even where they could not be printed."""
    p = to_full("fit", HECK, SINGULAR, "-f", "json", "--strict")
    assert p.returncode == 3
    assert json.loads(p.stdout)["singular"] is True


def test_full_stderr_keeps_the_exit_status_of_an_error():
    p = to_full("fit", SLEEP, "Reaction ~ nope + (1|Subject)", "-f", "json")
    assert (p.returncode, p.stdout) == (2, b"")


def test_closed_stderr_keeps_the_result():
    p = run("fit", HECK, SINGULAR, "-f", "json", stderr=None, close=(2,))
    assert p.returncode == 0
    assert json.loads(p.stdout)["singular"] is True


# ------------------------------------------------------------ stdout that cannot be written


def test_closed_stdout_is_a_plain_error():
    for fmt in ("json", "text", "table"):
        p = run("fit", SLEEP, SS, "-f", fmt, stdout=None, close=(1,))
        assert p.returncode == 2, p.stderr
        assert p.stderr.decode().splitlines() == ["mlm: error: standard output is closed"]
    # without --format, the default is chosen by asking whether stdout is a terminal
    p = run("fit", SLEEP, SS, stdout=None, close=(1,))
    assert (p.returncode, p.stderr.decode()) == (2, "mlm: error: standard output is closed\n")


def test_closed_stdout_does_not_matter_with_an_output_file(tmp_path):
    out = tmp_path / "fit.json"
    p = run("fit", SLEEP, SS, "-f", "json", "-o", str(out), stdout=None, close=(1,))
    assert (p.returncode, p.stderr) == (0, b"")
    assert json.loads(out.read_text())["n_obs"] == 180
    assert sorted(f.name for f in tmp_path.iterdir()) == ["fit.json"]


def test_closed_stdout_and_full_stderr_exit_2():
    p = to_full("fit", SLEEP, SS, "-f", "json", stdout=None, close=(1,))
    assert p.returncode == 2


def test_closed_stdin_with_data_from_stdin_is_a_plain_error():
    p = commands.run(
        "fit", "-", SS, "-f", "json", capture_output=True, preexec_fn=lambda: os.close(0), timeout=HANG_GUARD
    )
    assert (p.returncode, p.stdout) == (2, b"")
    assert p.stderr.decode().splitlines() == ["mlm: error: standard input is closed"]


# ------------------------------------------------------------ the progress line on a terminal


def on_terminal(*args: str, env: dict | None = None) -> tuple[int, bytes, bytes]:
    """`mlm ARGS` with stderr on a pseudo-terminal and stdout on a pipe: the exit status, stdout, and
    everything written to the terminal."""
    leader, follower = pty.openpty()
    try:
        p = commands.popen(*args, stdout=subprocess.PIPE, stderr=follower, stdin=subprocess.DEVNULL, env=env)
    finally:
        os.close(follower)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child has closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    out = p.stdout.read()
    p.stdout.close()
    return p.wait(timeout=HANG_GUARD), out, screen


def rendered(screen: bytes) -> list[str]:
    """The lines a terminal shows after `screen`: a carriage return moves back to the line's start,
    and what follows overwrites what was there."""
    lines = []
    for raw in screen.decode().replace("\r\n", "\n").split("\n"):
        line: list[str] = []
        col = 0
        for ch in raw:
            if ch == "\r":
                col = 0
                continue
            if col < len(line):
                line[col] = ch
            else:
                line.append(ch)
            col += 1
        lines.append("".join(line).rstrip())
    while lines and lines[-1] == "":
        lines.pop()
    return lines


PROGRESS_NOW = {"MLM_TEST_PROGRESS_DELAY": "0"}


def test_progress_line_on_a_terminal_is_cleared_before_the_warnings():
    code, out, screen = on_terminal("fit", HECK, SINGULAR, "-f", "json", env=PROGRESS_NOW)
    assert code == 0
    assert json.loads(out)["singular"] is True
    assert b"mlm: fitting..." in screen and b" evaluations" in screen
    shown = rendered(screen)
    assert shown[0] == SINGULAR_WARNING
    assert not any("fitting" in line for line in shown), shown


def test_progress_line_is_cleared_before_an_error(tmp_path):
    code, out, screen = on_terminal("fit", SLEEP, SS, "-f", "json", "--ddf", "Kenward-Roger", "--ml", env=PROGRESS_NOW)
    assert code == 2 and out == b""
    assert b"fitting" not in screen  # refused before fitting: nothing to show
    # a group the fit has not seen: the error comes after the fit
    newdata = tmp_path / "new.csv"
    newdata.write_text("Days,Subject\n1,999\n")
    code, out, screen = on_terminal("predict", SLEEP, SS, "--newdata", str(newdata), env=PROGRESS_NOW)
    assert code == 2 and out == b""
    assert b"mlm: fitting..." in screen
    assert rendered(screen) == [
        "mlm: error: new levels detected in newdata: 999 (give --allow-new-levels to "
        "predict them without their random effects)"
    ]


def test_no_progress_line_when_stderr_is_not_a_terminal():
    p = run("fit", SLEEP, SS, "-f", "json", env=PROGRESS_NOW)
    assert (p.returncode, p.stderr) == (0, b"")
    assert json.loads(p.stdout)["n_obs"] == 180


def test_waiting_for_a_dask_scheduler_shows_on_a_terminal():
    """A scheduler that takes the connection and never answers: 'connecting ...' on the terminal
    while mlm waits, wiped before the error."""
    import socket
    import threading

    pytest.importorskip("distributed")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    try:
        code, out, screen = on_terminal(
            "fit", SLEEP, SS, "--engine", "dask", "--scheduler", address, "--timeout", "1", env=PROGRESS_NOW
        )
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
    assert code == 2 and out == b""
    assert f"mlm: connecting to the dask scheduler at {address}...".encode() in screen
    assert rendered(screen) == [
        f"mlm: error: the dask scheduler at {address} took the connection but did "
        "not answer within 1 second (--timeout)"
    ]
