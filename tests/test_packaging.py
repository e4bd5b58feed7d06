"""What a user installs: the wheel's files and entry point, and which copy of the package the tests run.

The wheel is built from a copy of the project's files (so the build leaves nothing in the checkout)
and its contents are checked by name; `python -m mlmcli` then runs from the unpacked wheel alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import mlmcli
from tests.commands import MLM, ROOT, environment, mlm, python


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in ("mlmcli", "man"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    p = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"), str(src)],
        capture_output=True,
        text=True,
        env=environment(),
    )
    assert p.returncode == 0, p.stderr
    (built,) = (work / "dist").glob("mlm-*.whl")
    return built


def test_the_wheel_ships_schemas_manual_page_types_and_entry_point(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        schemas = sorted(p.name for p in (ROOT / "mlmcli" / "schemas").glob("*.json"))
        assert schemas and sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("mlmcli/schemas/")) == schemas
        # `mlm man` reads the page from the package data; `man mlm` finds the data file's copy
        page = (ROOT / "man" / "mlm.1").read_bytes()
        assert z.read("mlmcli/man/mlm.1") == page
        assert z.read(f"mlm-{mlmcli.__version__}.data/data/share/man/man1/mlm.1") == page
        assert z.read("mlmcli/py.typed") == b""
        assert "mlmcli/__main__.py" in names
        entry = z.read(f"mlm-{mlmcli.__version__}.dist-info/entry_points.txt").decode().split()
        assert entry == ["[console_scripts]", "mlm", "=", "mlmcli.__main__:run"]


def test_python_m_mlmcli_runs_from_the_unpacked_wheel(wheel, tmp_path):
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    env = {"PYTHONPATH": str(site)}
    where = python("-c", "import mlmcli; print(mlmcli.__file__)", capture_output=True, text=True, cwd=tmp_path, env=env)
    assert where.stdout.strip() == str(site / "mlmcli" / "__init__.py"), where.stderr
    for args, first in ((["--version"], f"mlm {mlmcli.__version__}"), (["man"], "MLM(1)")):
        p = python("-m", "mlmcli", *args, capture_output=True, text=True, cwd=tmp_path, env=env)
        assert p.returncode == 0 and p.stderr == "", p.stderr
        assert p.stdout.splitlines()[0] == first


def test_the_tests_and_the_command_run_the_installed_package():
    """The `mlm` beside this Python imports the package these tests import; in CI, where the README's
    command installs it with pip (not editable), that is the copy in site-packages."""
    assert Path(MLM).is_file()
    for p in (mlm("--version"), python("-m", "mlmcli", "--version", capture_output=True, text=True)):
        assert (p.returncode, p.stdout) == (0, f"mlm {mlmcli.__version__}\n"), p.stderr
    code = "import mlmcli, mlmcli.__main__; print(mlmcli.__file__)"
    script = python("-c", code, capture_output=True, text=True)
    assert script.stdout.strip() == mlmcli.__file__, script.stderr
    if os.environ.get("CI") == "true":
        assert "site-packages" in Path(mlmcli.__file__).parts
        assert not Path(mlmcli.__file__).resolve().is_relative_to(ROOT / "mlmcli")
