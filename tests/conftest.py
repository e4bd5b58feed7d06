import importlib.util
import os
import sys
from pathlib import Path

import pytest

# as the command line does (mlmcli/cli/__init__.py): single-threaded BLAS is faster for our block sizes
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

_ROOT = Path(__file__).resolve().parent.parent


def _is_root(entry: str) -> bool:
    return Path(entry or os.getcwd()).resolve() == _ROOT


def _import_the_installed_package() -> None:
    """`python -m pytest` in the repository puts it first on sys.path (and pytest puts it there again
    for each test module), so `import mlmcli` would find the source tree even when an installed copy is
    what ships.  When a copy is installed apart from the source tree (pip install ., as CI does), import
    that copy now, with the repository off the path: every later import of mlmcli finds it in
    sys.modules.  An editable install resolves to the source tree either way."""
    saved = sys.path[:]
    sys.path[:] = [entry for entry in saved if not _is_root(entry)]
    try:
        spec = importlib.util.find_spec("mlmcli")
        if spec and spec.origin and not Path(spec.origin).resolve().is_relative_to(_ROOT / "mlmcli"):
            import mlmcli  # noqa: F401
    finally:
        sys.path[:] = saved


if "mlmcli" not in sys.modules:
    _import_the_installed_package()


# ------------------------------------------------------------ the fits the picture tests draw
# (module-scoped: each test module fits once; mlmcli is imported only when a test asks for one)


@pytest.fixture(scope="module")
def heck():
    from tests.plotfixtures import HECK, fit

    return fit(HECK, "math ~ ses + (ses|schcode)")


@pytest.fixture(scope="module")
def heck_public():
    from tests.plotfixtures import HECK, fit

    return fit(HECK, "math ~ ses*public + (ses|schcode)")


@pytest.fixture(scope="module")
def heck_factor():
    from tests.plotfixtures import HECK, fit

    return fit(HECK, "math ~ ses + factor(public) + female + (1|schcode)")


@pytest.fixture(scope="module")
def sleep():
    from tests.plotfixtures import DATA, SLEEP_MODEL, fit

    return fit(DATA / "sleepstudy.csv", SLEEP_MODEL)


@pytest.fixture(scope="module")
def penicillin():
    from tests.plotfixtures import DATA, fit

    return fit(DATA / "Penicillin.csv", "diameter ~ 1 + (1|plate) + (1|sample)")


@pytest.fixture(scope="module")
def sleep_profiles(sleep):
    from mlmcli.stats.confint import profile_curves

    return profile_curves(sleep[0])


@pytest.fixture
def figure():
    """build() entered for the rest of the test: a figure is measured and saved under its theme's settings."""
    from contextlib import ExitStack

    from mlmcli.render.plots import build

    with ExitStack() as stack:
        yield lambda model, frame, opts: stack.enter_context(build(model, frame, opts))
