"""Fit one model with lme-python (Rust lme-rs engine) the way `mlm fit` does: read the CSV, fit by REML,
add Satterthwaite df, print the summary.

    python fit_lme_python.py DATA FORMULA

Runs in the peers' venv (bench/.peers), never in the project's. The last line repeats the REML
criterion at full precision so the runner can compare fits.
"""

import sys
import time

import lme_python
import polars as pl


def main() -> int:
    path, formula = sys.argv[1], sys.argv[2]
    t0 = time.perf_counter()
    data = pl.read_csv(path)
    t1 = time.perf_counter()
    fit = lme_python.lmer(formula, data=data, reml=True)
    t2 = time.perf_counter()
    fit.with_satterthwaite(data)   # lme4 + lmerTest and mlm print Satterthwaite df by default
    t3 = time.perf_counter()
    print(fit.summary())
    print(f"converged: {fit.converged}")
    print(f"seconds: read {t1 - t0:.3f}, fit {t2 - t1:.3f}, Satterthwaite df {t3 - t2:.3f}")
    print(f"REML criterion at convergence: {fit.reml_criterion:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
