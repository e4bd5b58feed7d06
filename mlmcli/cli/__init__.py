"""The `mlm` command line: parse options, call the engine, hand the report to the renderer that
mlmcli/render/registry.py names for its format.

app.py holds the typer application and the shared option types; common.py what every command does
around its work; models.py, tables.py, inference.py, workflow.py and pictures.py the commands; entry.py main().

Exit codes: 0 ok, 1 internal error (a bug), 2 bad input or usage, 3 warnings under --strict,
130 interrupted, 143 terminated.
"""

import os

import mlmcli.engine.threads  # noqa: F401  (first: it records whether the user chose a thread count)

# One BLAS thread unless the user chose otherwise, set before numpy is first imported: the engine's
# dense work is many small products and one factorization of modest size per evaluation, where
# OpenBLAS's threads cost more in waking and spinning than they save (InstEval with df: 4.3 s with
# one thread, 6.7 s and twice the CPU with two).  A big crossed tail's factorization is the
# exception (engine/threads.py).
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
# and its threads sleep ~30 microseconds after their work instead of ~0.1 s: between one tail's
# factorization and the next they would spin on the other core, doubling the CPU time for nothing
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "16")
mlmcli.engine.threads.SINGLE_THREADED = os.environ["OPENBLAS_NUM_THREADS"] == "1"

from mlmcli.cli import inference, manual, models, pictures, tables, workflow  # noqa: E402, F401  (each registers its commands)
from mlmcli.cli.app import app  # noqa: E402
from mlmcli.cli.common import _user_errors  # noqa: E402
from mlmcli.cli.entry import main  # noqa: E402

# help lists the commands in this order: the model, then what follows from it, then pictures
_ORDER = [
    "fit",
    "tau",
    "ranef",
    "compare",
    "table",
    "predict",
    "augment",
    "confint",
    "anova",
    "ranova",
    "plot",
    "schema",
    "man",
]
app.registered_commands.sort(key=lambda c: _ORDER.index(getattr(c.callback, "__name__", "")))

__all__ = ["_user_errors", "app", "main"]
