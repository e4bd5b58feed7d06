"""Ctrl-C: exit status 130 and one line on stderr, whenever it comes.

While Python is still importing the command's modules, an interrupt ends the process at once (no
output file can exist yet, and a KeyboardInterrupt there would print a traceback); once the command
runs, it raises KeyboardInterrupt so that temporary files are removed on the way out.
"""

from __future__ import annotations

import os
import signal

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a process it terminated
MESSAGE = "mlm: interrupted\n"


class Terminated(KeyboardInterrupt):
    """SIGTERM (a cancelled CI job, `kill`): unwinds as Ctrl-C does, so temporary files go too."""


_terminated = False


def terminated() -> bool:
    """Whether SIGTERM arrived (click reports any interrupt as status 130; this tells them apart)."""
    return _terminated


def _raise_terminated(signum: int, frame: object) -> None:
    global _terminated
    _terminated = True
    raise Terminated()


def _exit_now(signum: int, frame: object) -> None:
    try:
        os.write(2, MESSAGE.encode())
    except OSError:
        pass  # stderr closed or full: the exit status still says it
    os._exit(EXIT_INTERRUPTED)


def _ignored() -> bool:
    # a shell starts background jobs with SIGINT ignored; keep it that way
    return signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def exit_during_startup() -> None:
    """Before the heavy imports: Ctrl-C exits 130 without a traceback."""
    if not _ignored():
        signal.signal(signal.SIGINT, _exit_now)


def raise_keyboard_interrupt() -> None:
    """Once the command runs: Ctrl-C raises KeyboardInterrupt and SIGTERM raises Terminated, so that
    cleanup code runs (before this, SIGTERM's default action ends the process with no file begun)."""
    if not _ignored():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
        signal.signal(signal.SIGTERM, _raise_terminated)
