"""What the command says when it is used wrongly, and grouping factors written as lme4 allows them.

Each test runs the command in a subprocess, as a shell would, and checks the exit status and the
one line on standard error (or, for the grouping factors, the numbers against lme4's).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "fixtures" / "lme4" / "data"
SLEEP = str(DATA / "sleepstudy.csv")
PASTES = str(DATA / "Pastes.csv")


def mlm(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlmcli", *args], capture_output=True, text=True,
                          env={**os.environ}, cwd=cwd)


def one_error_line(p: subprocess.CompletedProcess) -> str:
    """The run failed with exit 2 and said why in exactly one line, without a traceback."""
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlm: error: "), p.stderr
    return lines[0]


# ------------------------------------------------------- empty random-effects terms


@pytest.mark.parametrize(("term", "label", "bar"), [
    ("(0|Subject)", "0 | Subject", "|"),
    ("(-1|Subject)", "-1 | Subject", "|"),
    ("(0 + Days - Days|Subject)", "0 + Days - Days | Subject", "|"),
    ("(1 - 1 + 0|Subject)", "1 - 1 + 0 | Subject", "|"),
    ("(0||Subject)", "0 || Subject", "||"),
])
def test_an_empty_random_effects_term_is_a_user_error(term, label, bar):
    """lme4 stops at such a term ("length(theta) > 0L is not TRUE"); so does mlm, in plain words."""
    line = one_error_line(mlm("fit", SLEEP, f"Reaction ~ Days + {term}"))
    assert line.startswith(f"mlm: error: the random-effects term ({label}) has no columns: put 1 or a "
                           f"variable on the left of '{bar}' at position 20: Reaction ~ Days + (>>>")


def test_an_empty_term_beside_others_is_refused_too():
    """lme4 fits (0|Subject) + (1|Subject) and then cannot print it: refused at once instead."""
    line = one_error_line(mlm("ranova", SLEEP, "Reaction ~ Days + (1|Subject) + (0|Subject)"))
    assert "the random-effects term (0 | Subject) has no columns" in line
