"""Fit one model with mixedlm-rs (statsmodels-style API, Rust core): read the CSV, fit by REML, print
the summary.

    python fit_mixedlm_rs.py DATA FIXED GROUPS RE_FORMULA

e.g. `fit_mixedlm_rs.py heck2011.csv "math ~ ses" schcode "~ses"` is lme4's
`math ~ ses + (ses|schcode)`. mixedlm-rs fits one grouping factor only (no nested or crossed
factors) and reports z tests, not Satterthwaite df. Runs in the peers' venv (bench/.peers). The
last line is the REML criterion (-2 x the REML log-likelihood, lme4's scale) for the runner.
"""

import sys

import mixedlm_rs
import pandas as pd


def main() -> int:
    path, fixed, groups, re_formula = sys.argv[1:5]
    data = pd.read_csv(path)
    result = mixedlm_rs.mixedlm(fixed, data, groups=groups, re_formula=re_formula).fit(reml=True)
    print(result.summary())
    print(f"converged: {result.converged}")
    print(f"REML criterion at convergence: {-2.0 * result.llf:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
