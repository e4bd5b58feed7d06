"""The standard streams around a command: closed ones, a stderr that cannot be written, and the
progress line on a terminal.

- A closed stdin or stdout (`<&-`, `>&-`) is an error only when the command uses it: "standard
  output is closed", exit status 2.  Its descriptor is taken by /dev/null, opened read-only, so that
  no file the command opens later lands there (and gets what a library prints to stdout).
- stderr is for warnings and notes, which must not cost the result: when it cannot be written (a
  full disk, `2>&-`, a reader gone) what is written there is dropped and the command goes on; the
  exit status still says what happened (3 under --strict, whether or not its warnings could be
  printed).
- On a terminal, a fit that takes more than a moment shows a status line on stderr
  (render/progress.py), wiped before anything else is written to stdout or stderr.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mlmcli.errors import MlmError
from mlmcli.render.progress import DELAY, StatusLine, clear_status, set_status_line


class _Closed:
    """A standard stream whose descriptor was closed when the command started."""

    def __init__(self, name: str) -> None:
        self._name = name

    def _refuse(self, *args: Any) -> Any:
        raise MlmError(f"standard {self._name} is closed")

    write = read = readline = _refuse

    @property
    def buffer(self) -> _Closed:
        return self

    def fileno(self) -> int:
        raise OSError(f"standard {self._name} is closed")

    def isatty(self) -> bool:
        return False

    def flush(self) -> None:
        pass


class _Forgiving:
    """stderr, where a write that fails is dropped instead of ending the command."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._lost = stream is None

    def write(self, text: str) -> int:
        clear_status()
        if not self._lost:
            try:
                self._stream.write(text)
            except (OSError, ValueError):
                self._lose()
        return len(text)

    def flush(self) -> None:
        if not self._lost:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._lose()

    def isatty(self) -> bool:
        return not self._lost and self._stream.isatty()

    def _lose(self) -> None:
        # what the stream still holds would fail again when Python flushes it at exit, and so would
        # every later writer to the descriptor (a child process, a progress bar): let them write nowhere
        self._lost = True
        try:
            fd = self._stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)
        except (OSError, ValueError):
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Clearing:
    """stdout while a status line may be on the terminal: wiped before the output is written."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        clear_status()
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _occupy(fd: int) -> None:
    """A closed descriptor 0, 1 or 2 gets /dev/null, read-only (writes fail as on a closed one)."""
    try:
        os.fstat(fd)
        return
    except OSError:
        pass
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
    except OSError:
        pass


def _status_line(stderr: Any) -> StatusLine | None:
    """A status line when stderr is a terminal."""
    try:
        if not stderr.isatty():
            return None
        width = os.get_terminal_size(stderr.fileno()).columns or 80  # 0: a terminal that does not say
    except (OSError, ValueError, AttributeError):
        return None
    try:
        delay = float(os.environ.get("MLM_TEST_PROGRESS_DELAY", DELAY))
    except ValueError:
        delay = DELAY

    def write(text: str) -> None:
        stderr.write(text)
        stderr.flush()

    return StatusLine(write, delay, width)


def _announce_start(path: str, then: Callable[[], None] | None) -> Callable[[], None]:
    """A test hook: MLM_TEST_STARTED_FIFO names a FIFO (or file) to which "started" is written when
    the criterion is first evaluated, so that a test can signal the process while it fits without
    guessing how long start-up takes.  Unset (always, outside tests), nothing is done."""
    from mlmcli.engine import observe

    def first() -> None:
        observe.on_evaluation = then
        try:
            with open(path, "w") as f:
                f.write("started\n")
        except OSError:
            pass
        if then is not None:
            then()

    return first


@contextmanager
def guarded_streams() -> Iterator[None]:
    """Around a command: closed and unwritable streams handled, the progress line set up; on the way
    out, the line is wiped and the streams are put back."""
    saved = sys.stdin, sys.stdout, sys.stderr
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        if getattr(sys, name) is None:
            _occupy(fd)
    if sys.stdin is None:
        sys.stdin = _Closed("input")
    if sys.stdout is None:
        sys.stdout = _Closed("output")
    status = _status_line(saved[2]) if saved[2] is not None else None
    started = os.environ.get("MLM_TEST_STARTED_FIFO")
    observer = status.tick if status is not None else None
    if started:
        observer = _announce_start(started, observer)
    if status is not None:
        set_status_line(status)
        sys.stdout = _Clearing(sys.stdout)
    sys.stderr = _Forgiving(saved[2])
    if observer is not None:
        from mlmcli.engine import observe

        observe.on_evaluation = observer
    try:
        yield
    finally:
        if observer is not None:
            from mlmcli.engine import observe

            observe.on_evaluation = None
        if status is not None:
            status.clear()
            set_status_line(None)
        sys.stdin, sys.stdout, sys.stderr = saved
