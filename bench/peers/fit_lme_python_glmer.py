"""Fit one GLMM with lme-python's glmer (Rust lme-rs engine) the way `mlm fit --family F --nagq N` does:
read the CSV, fit by maximum likelihood, print the summary.

    python fit_lme_python_glmer.py DATA FORMULA FAMILY NAGQ

lme-python wants a numeric response; a text column (VerbAgg's r2, "N"/"Y") becomes 0/1 here as R's
glmer reads a factor: the first level in sorted order is failure, any other success. lme-python 0.2.7
fits nAGQ = 0 by Laplace ("Quadrature: requested 0, used 1" in its summary). Runs in the peers' venv
(bench/.peers). The last line is the deviance (-2 logLik) at full precision for the runner.
"""

import sys
import time

import lme_python
import polars as pl


def main() -> int:
    path, formula, family, nagq = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    t0 = time.perf_counter()
    data = pl.read_csv(path)
    response = formula.split("~", 1)[0].strip()
    if data[response].dtype == pl.String:
        first = data[response].drop_nulls().unique().sort()[0]
        data = data.with_columns((pl.col(response) != first).cast(pl.Float64).alias(response))
    t1 = time.perf_counter()
    fit = lme_python.glmer(formula, data, family, n_agq=nagq)
    t2 = time.perf_counter()
    print(fit.summary())
    print(f"converged: {fit.converged}")
    print(f"seconds: read {t1 - t0:.3f}, fit {t2 - t1:.3f}")
    print(f"deviance (-2 logLik) at convergence: {-2.0 * fit.log_likelihood:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
