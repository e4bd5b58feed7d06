"""Who is told of the criterion's evaluations: the command line's progress line on a terminal.

The engine never prints; it calls `on_evaluation` (when set) once per evaluation of the profiled
criterion, from whichever thread evaluates it.  Nothing heavy is imported here, so that the command line
can set the hook without loading the engine.
"""

from __future__ import annotations

from collections.abc import Callable

on_evaluation: Callable[[], None] | None = None
