"""Ctrl-C: exit status 130 and one line on stderr, whenever it comes.

While Python is still importing the command's modules, an interrupt ends the process at once (no
output file can exist yet, and a KeyboardInterrupt there would print a traceback); once the command
runs, it raises KeyboardInterrupt so that temporary files are removed on the way out.
"""

from __future__ import annotations

import os
import signal

EXIT_INTERRUPTED = 130
MESSAGE = "mlm: interrupted\n"


def _exit_now(signum: int, frame: object) -> None:
    os.write(2, MESSAGE.encode())
    os._exit(EXIT_INTERRUPTED)


def _ignored() -> bool:
    # a shell starts background jobs with SIGINT ignored; keep it that way
    return signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def exit_during_startup() -> None:
    """Before the heavy imports: Ctrl-C exits 130 without a traceback."""
    if not _ignored():
        signal.signal(signal.SIGINT, _exit_now)


def raise_keyboard_interrupt() -> None:
    """Once the command runs: Ctrl-C raises KeyboardInterrupt, so that cleanup code runs."""
    if not _ignored():
        signal.signal(signal.SIGINT, signal.default_int_handler)
