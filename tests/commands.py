"""The installed command in a subprocess, as a user's shell runs it.

The command tests run the `mlm` console script installed beside the test's Python, with no
PYTHONPATH: the package they exercise is the installed one, so a wheel that lacks its entry point,
schemas or manual page fails them instead of passing on the source tree.  `python` runs code the
same way: `-P` keeps the working directory (often the repository) off the module path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MLM = str(Path(sys.executable).parent / "mlm")


def environment(env: dict | None = None) -> dict[str, str]:
    """The test's environment without PYTHONPATH, plus `env`."""
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**base, **(env or {})}


def run(*args: str, env: dict | None = None, cwd: Path | str = ROOT, **kwargs) -> subprocess.CompletedProcess:
    """`mlm ARGS` with subprocess.run's own options for the streams."""
    return subprocess.run([MLM, *args], env=environment(env), cwd=cwd, **kwargs)


def popen(*args: str, env: dict | None = None, cwd: Path | str = ROOT, **kwargs) -> subprocess.Popen:
    """`mlm ARGS` started in the background."""
    return subprocess.Popen([MLM, *args], env=environment(env), cwd=cwd, **kwargs)


def mlm(
    *args: str, env: dict | None = None, cwd: Path | str = ROOT, stdin: str | None = None, stdout=None
) -> subprocess.CompletedProcess:
    """`mlm ARGS`, its output captured as text; `stdout` sends standard output elsewhere instead."""
    if stdout is None:
        return run(*args, env=env, cwd=cwd, input=stdin, capture_output=True, text=True)
    return run(*args, env=env, cwd=cwd, input=stdin, stdout=stdout, stderr=subprocess.PIPE, text=True)


def python(*args: str, env: dict | None = None, cwd: Path | str = ROOT, **kwargs) -> subprocess.CompletedProcess:
    """`python -P ARGS`: the test's interpreter, importing the installed package."""
    return subprocess.run([sys.executable, "-P", *args], env=environment(env), cwd=cwd, **kwargs)
