"""Progress on standard error, and only when that is a terminal (redirected output and pipes get
neither escape sequences nor carriage returns): a bar for the bootstrap's refits, and a status line
for fits that take more than a moment."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# a fit shorter than this shows nothing; MLM_TEST_PROGRESS_DELAY overrides it (a test hook: 0 shows the
# line from the first evaluation, so a test on a pseudo-terminal needs no slow fit)
DELAY = 2.0
REFRESH = 0.1  # seconds between redraws: the criterion is evaluated far more often than a person reads


class StatusLine:
    """ "mlm: fitting... N evaluations (T s)" on one terminal line, redrawn in place as the engine
    evaluates the criterion, and wiped (carriage return and spaces: no escape sequences, so any
    terminal, TERM=dumb too) before anything else is written to either stream."""

    def __init__(self, write: Callable[[str], None], delay: float = DELAY, width: int = 80) -> None:
        self._write = write
        self._delay = delay
        self._width = max(width - 1, 20)  # never the last column: some terminals wrap there
        self._start = time.monotonic()
        self._last = 0.0
        self._count = 0
        self._shown = 0  # characters now on the line
        self._paused = 0
        self._lock = threading.RLock()  # the bootstrap and profiles evaluate in threads

    def tick(self) -> None:
        """One more evaluation of the criterion (the engine's observe.on_evaluation)."""
        with self._lock:
            self._count += 1
            if self._paused:
                return
            now = time.monotonic()
            if now - self._start < self._delay or (self._shown and now - self._last < REFRESH):
                return
            self._last = now
            text = f"mlm: fitting... {self._count} evaluations ({now - self._start:.0f} s)"[: self._width]
            self._put("\r" + text + " " * (self._shown - len(text)))
            self._shown = len(text)

    def show(self, text: str) -> None:
        """`text` on the line now (a wait that is not counted in evaluations)."""
        with self._lock:
            text = text[: self._width]
            self._put("\r" + text + " " * (self._shown - len(text)))
            self._shown = len(text)

    @property
    def delay(self) -> float:
        return self._delay

    def clear(self) -> None:
        """Wipe the line, if shown; the next evaluation draws it again."""
        if not self._shown:
            return
        with self._lock:
            if self._shown:
                self._put("\r" + " " * self._shown + "\r")
                self._shown = 0

    @contextmanager
    def paused(self) -> Iterator[None]:
        """While another display (a progress bar) owns the terminal."""
        self.clear()
        with self._lock:
            self._paused += 1
        try:
            yield
        finally:
            with self._lock:
                self._paused -= 1

    def _put(self, text: str) -> None:
        try:
            self._write(text)
        except (OSError, ValueError):
            self._shown = 0  # a terminal gone away: progress is not worth an error


_status: StatusLine | None = None


def set_status_line(line: StatusLine | None) -> None:
    """The command line's status line (None: none), which bars pause and writes clear."""
    global _status
    _status = line


def clear_status() -> None:
    """Before writing to stdout or stderr: the status line, if shown, is wiped first."""
    if _status is not None:
        _status.clear()


@contextmanager
def waiting(text: str) -> Iterator[None]:
    """`text` on the status line while a wait (a dask scheduler's answer) lasts longer than the
    status line's delay; nothing where there is no status line (stderr is not a terminal)."""
    line = _status
    if line is None:
        yield
        return
    timer = threading.Timer(line.delay, line.show, args=(text,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        line.clear()


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None] | None]:
    """Yields advance(k), or None when standard error is not a terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    from contextlib import nullcontext

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with (
        _status.paused() if _status is not None else nullcontext(),
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
            transient=True,
        ) as bar,
    ):
        task = bar.add_task(description, total=total)
        yield lambda k: bar.advance(task, k)
