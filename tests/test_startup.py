"""What a command imports at start-up: a plain `mlm fit DATA FORMULA` loads neither scipy, rich, pandas,
pyarrow nor matplotlib, the commands that fit nothing load no numpy, and a command builds only its own
click parameters. The modules a run leaves in sys.modules are the measure (bench/startup.py times them;
no test here depends on a time)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.commands import python

ROOT = Path(__file__).resolve().parent.parent
HECK = str(ROOT / "sample_data" / "heck2011.csv")
HEAVY = {"scipy", "rich", "pandas", "pyarrow", "matplotlib"}

# the command's run in this interpreter, as the `mlm` script runs it; then its modules, as JSON, on a file
RUN = """
import json, sys
from mlmcli.__main__ import run
out, sys.argv = sys.argv[1], ["mlm", *sys.argv[2:]]
try:
    run()
except SystemExit as e:
    code = e.code
else:
    code = 0
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def run_mlm(tmp_path: Path, *args: str) -> tuple[int, set[str], str]:
    """Exit status, the top-level packages imported, and standard output of `mlm ARGS`."""
    report = tmp_path / "modules.json"
    p = python("-c", RUN, str(report), *args, capture_output=True, text=True, cwd=tmp_path)
    got = json.loads(report.read_text())
    return got["code"], {m.split(".")[0] for m in got["modules"]}, p.stdout


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """small.csv: 40 rows, 8 groups of 5."""
    path = tmp_path_factory.mktemp("startup") / "small.csv"
    rows = ["y,x,g"] + [f"{(i * 37 % 11) / 3 + i % 8:.3f},{i % 5},{i % 8}" for i in range(40)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("fmt", ["text", "json", "csv"])
def test_a_plain_fit_imports_no_heavy_package(small, tmp_path, fmt):
    code, packages, out = run_mlm(tmp_path, "fit", str(small), "y ~ x + (1|g)", "--format", fmt)
    assert code == 0
    assert packages & HEAVY == set()
    assert {"numpy", "nlopt", "typer", "click", "mlmcli"} <= packages
    first = {"text": "Linear mixed model fit by REML", "json": "{", "csv": '"effect","group","term"'}
    assert out.startswith(first[fmt])


def test_the_seed_model_imports_no_heavy_package(tmp_path):
    """The issue's command, with text output as a pipe or file gets it by default."""
    code, packages, out = run_mlm(tmp_path, "fit", HECK, "math ~ ses + (ses|schcode)")
    assert code == 0
    assert packages & HEAVY == set()
    assert "Formula: math ~ ses + (ses | schcode)" in out
    assert "ses            3.9602     0.1408 1450.7801   28.12   <2e-16 ***" in out


def test_a_table_imports_rich_and_nothing_else_heavy(small, tmp_path):
    code, packages, _ = run_mlm(tmp_path, "fit", str(small), "y ~ x + (1|g)", "--format", "table", "-o", "t.txt")
    assert code == 0
    assert packages & HEAVY == {"rich"}
    assert "Fixed effects" in (tmp_path / "t.txt").read_text()


@pytest.mark.parametrize("args", [["--version"], ["schema", "fit"], ["man"]])
def test_commands_that_fit_nothing_import_no_numpy(tmp_path, args):
    code, packages, out = run_mlm(tmp_path, *args)
    assert code == 0
    assert packages & (HEAVY | {"numpy", "nlopt"}) == set()
    assert out.strip()


def test_a_named_command_builds_only_its_own_parameters():
    from mlmcli.cli import app
    from mlmcli.cli.entry import _command

    every = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert len(every) == 13
    assert list(_command(["fit", "data.csv", "y ~ x + (1|g)"]).commands) == ["fit"]
    assert list(_command(["ranova"]).commands) == ["ranova"]
    # help, a mistyped name or no command at all: the whole group, in --help's order
    for argv in (["--help"], ["fitt"], []):
        assert list(_command(argv).commands) == every


def test_the_fit_commands_arguments_keep_their_help():
    from mlmcli.cli.app import DATA_HELP, FORMULA_HELP
    from mlmcli.cli.entry import _command

    fit = _command(["fit"]).commands["fit"]
    helps = {p.name: p.help for p in fit.params}
    assert helps["data"] == DATA_HELP and helps["formula"] == FORMULA_HELP
    assert {"sep", "where", "weights", "engine", "timeout"} <= set(helps)  # the options of DATA
    assert "source" not in helps


def test_the_collector_runs_every_50000_objects(tmp_path, small):
    """The command raises the collector's first threshold (start-up's objects are long-lived) and
    freezes what is left at exit; library users keep Python's defaults."""
    code = (
        "import gc, sys\nfrom mlmcli.__main__ import GC_THRESHOLD, run\n"
        f"sys.argv = ['mlm', 'fit', {str(small)!r}, 'y ~ x + (1|g)', '-o', {str(tmp_path / 'f.txt')!r}]\n"
        "try:\n    run()\nexcept SystemExit:\n    pass\n"
        "print(GC_THRESHOLD, gc.get_threshold()[0], gc.get_freeze_count() > 10000)"
    )
    p = python("-c", code, capture_output=True, text=True)
    assert p.stdout.split() == ["50000", "50000", "True"], p.stderr
    p = python("-c", "import gc, mlmcli.api; print(gc.get_threshold()[0])", capture_output=True, text=True)
    assert p.stdout.strip() == "700"
