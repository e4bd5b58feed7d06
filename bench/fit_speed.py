#!/usr/bin/env python3
"""Time mlm against lme4 on the same machine, in the same run, and print the ratios.

    python bench/fit_speed.py [--runs 5] [--insteval PATH] [--skip-insteval]

Three comparisons (targets from the project's issues):
  1. the heck2011 seed fit alone: formula, model matrices and fit (ours) vs lme4's lmer() inside
     one R process (>= 5x);
  2. the whole `mlm fit` process vs an Rscript that loads lme4 + lmerTest, reads the CSV, fits and
     prints the summary (>= 3x);
  3. InstEval `y ~ 1 + service + (1|s) + (1|d)` with Satterthwaite df, whole process vs the same
     Rscript (>= 3x).
Without Rscript and lme4 only our own times are printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HECK = ROOT / "sample_data" / "heck2011.csv"
HECK_FORMULA = "math ~ ses + (1 + ses|schcode)"
INSTEVAL_FORMULA = "y ~ 1 + service + (1|s) + (1|d)"
INSTEVAL_CANDIDATES = [ROOT / "tests" / "fixtures" / "lme4" / "data" / "InstEval.csv",
                       ROOT.parent / "shared" / "data" / "InstEval.csv"]

R_FIT = """
suppressPackageStartupMessages(library(lme4))
d <- read.csv(commandArgs(TRUE)[1], stringsAsFactors = TRUE)
f <- as.formula(commandArgs(TRUE)[2])
runs <- as.integer(commandArgs(TRUE)[3])
t <- vapply(seq_len(runs), function(i) {
  gc(); unname(system.time(suppressMessages(lmer(f, data = d)))["elapsed"])
}, 1)
cat(median(t), "\\n")
"""

R_PROCESS = """
args <- commandArgs(trailingOnly = TRUE)
suppressPackageStartupMessages({library(lme4); library(lmerTest)})
d <- read.csv(args[1], stringsAsFactors = TRUE)
fit <- lmer(as.formula(args[2]), data = d)
print(summary(fit))
"""


def mlm_command() -> list[str]:
    exe = shutil.which("mlm")
    local = Path(sys.executable).parent / "mlm"
    if local.exists():
        return [str(local)]
    if exe:
        return [exe]
    return [sys.executable, "-m", "mlmcli"]


def wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def our_fit_seconds(path: Path, formula: str, runs: int) -> float:
    sys.path.insert(0, str(ROOT))
    from mlmcli.design import build_design
    from mlmcli.formula import parse_formula
    from mlmcli.frame import read_csv
    from mlmcli.model import fit_model

    frame = read_csv(str(path))   # lme4's timing starts from a data frame in memory too
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        parsed = parse_formula(formula)
        fit_model(parsed, build_design(frame, parsed), reml=True, data_name=frame.name, ddf="none")
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def have_lme4() -> bool:
    if not shutil.which("Rscript"):
        return False
    p = subprocess.run(["Rscript", "-e", "library(lme4); library(lmerTest)"], capture_output=True)
    return p.returncode == 0


def r_script(text: str) -> str:
    fd, path = tempfile.mkstemp(suffix=".R")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def row(label: str, ours: float, theirs: float | None, target: float) -> None:
    if theirs is None:
        print(f"{label:<44} mlm {ours:8.3f} s   (lme4 not installed)")
        return
    ratio = theirs / ours
    verdict = "ok" if ratio >= target else "BELOW TARGET"
    print(f"{label:<44} mlm {ours:8.3f} s   lme4 {theirs:8.3f} s   ratio {ratio:6.1f}x "
          f"(target {target:g}x: {verdict})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--insteval", type=Path, default=None)
    ap.add_argument("--skip-insteval", action="store_true")
    a = ap.parse_args()
    r_ok = have_lme4()
    mlm = mlm_command()
    print(f"mlm: {' '.join(mlm)}; lme4: {'Rscript' if r_ok else 'not available'}; runs: {a.runs}")

    fit_ours = our_fit_seconds(HECK, HECK_FORMULA, a.runs)
    fit_r = None
    if r_ok:
        out = subprocess.run(["Rscript", r_script(R_FIT), str(HECK), HECK_FORMULA, str(a.runs)],
                             capture_output=True, text=True, check=True)
        fit_r = float(out.stdout.split()[-1])
    row("1. heck2011 seed fit (in-process)", fit_ours, fit_r, 5)

    proc_ours = wall(mlm + ["fit", str(HECK), HECK_FORMULA, "--format", "text"], a.runs)
    proc_r = wall(["Rscript", r_script(R_PROCESS), str(HECK), HECK_FORMULA], max(3, a.runs // 2)) if r_ok else None
    row("2. heck2011 whole process, summary", proc_ours, proc_r, 3)

    if not a.skip_insteval:
        path = a.insteval or next((p for p in INSTEVAL_CANDIDATES if p.is_file()), None)
        if path is None:
            print("3. InstEval: data not found (pass --insteval PATH)")
        else:
            runs = max(1, min(3, a.runs))
            ie_ours = wall(mlm + ["fit", str(path), INSTEVAL_FORMULA, "--format", "text"], runs)
            ie_r = wall(["Rscript", r_script(R_PROCESS), str(path), INSTEVAL_FORMULA], 1) if r_ok else None
            row("3. InstEval crossed, Satterthwaite, process", ie_ours, ie_r, 3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
