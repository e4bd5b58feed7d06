"""`python -m mlmcli` and the `mlm` command."""

import os

from mlmcli.interrupt import exit_during_startup


def _one_blas_thread() -> None:
    """One BLAS thread unless the user chose otherwise; it must be set before numpy loads BLAS.
    The engine's dense work is many small or skinny products and one Cholesky factor of modest
    size per evaluation, where OpenBLAS's threads cost more in waking and spinning than they save
    (InstEval with df: 5.0 s with one thread, 6.7 s and twice the CPU with two)."""
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def run() -> None:
    """Entry point: guard Ctrl-C before importing the command line, then run it."""
    exit_during_startup()
    _one_blas_thread()
    from mlmcli.cli import main

    main()


if __name__ == "__main__":
    run()
