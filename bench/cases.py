"""The benchmark's cases (data + model) and, for each tool, the command that fits a case or why it cannot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
INSTEVAL_CANDIDATES = [ROOT.parent / "shared" / "data" / "InstEval.csv",
                       ROOT / "tests" / "fixtures" / "lme4" / "data" / "InstEval.csv"]

TOOLS = ("mlm", "lme4", "lme-python", "mixedlm-rs")

# Read the CSV, fit with lmerTest::lmer (REML) and print the summary with Satterthwaite df: what
# `mlm fit` does. The last line repeats the REML criterion at full precision for the agreement check.
R_PROCESS = """
args <- commandArgs(trailingOnly = TRUE)
suppressPackageStartupMessages({library(lme4); library(lmerTest)})
d <- read.csv(args[1], stringsAsFactors = TRUE)
fit <- lmer(as.formula(args[2]), data = d)
print(summary(fit))
cat(sprintf("REML criterion at convergence: %.4f\\n", REMLcrit(fit)))
"""


@dataclass(frozen=True)
class Case:
    """One model on one data set. `generated` names a bench/make_data.py data set; `path` a fixed file.

    `mixedlm` is (fixed formula, grouping column, re_formula) for mixedlm-rs's statsmodels-style
    API, or None where the model has more than one grouping factor, which mixedlm-rs cannot fit.
    """

    name: str
    formula: str
    path: Path | None = None
    generated: str | None = None
    mixedlm: tuple[str, str, str] | None = None
    scalable: bool = False


CASES: dict[str, Case] = {c.name: c for c in [
    Case("heck2011", "math ~ ses + (ses|schcode)", path=ROOT / "sample_data" / "heck2011.csv",
         mixedlm=("math ~ ses", "schcode", "~ses")),
    Case("insteval", "y ~ 1 + service + (1|s) + (1|d)",
         path=next((p for p in INSTEVAL_CANDIDATES if p.is_file()), INSTEVAL_CANDIDATES[0])),
    Case("insteval_dept", "y ~ 1 + service + (1|s) + (1|d) + (1|dept)",
         path=next((p for p in INSTEVAL_CANDIDATES if p.is_file()), INSTEVAL_CANDIDATES[0])),
    Case("nested200k", "y ~ x + (1|school/class)", generated="nested200k", scalable=True),
    Case("slope1m", "y ~ x + (x|g)", generated="slope1m", mixedlm=("y ~ x", "g", "~x"), scalable=True),
    Case("nested1m", "y ~ x + (1|school/class)", generated="nested1m", scalable=True),
    Case("crossed500k", "y ~ x + (1|subject) + (1|item)", generated="crossed500k", scalable=True),
    Case("slope5m", "y ~ x + (x|g)", generated="slope5m", mixedlm=("y ~ x", "g", "~x"), scalable=True),
]}


def command(tool: str, case: Case, data: Path, *, mlm: list[str], rscript: str | None,
            r_file: Path, peers_python: str | None, peers: set[str]) -> list[str] | str:
    """The argv that fits `case` with `tool`, or a short reason why it cannot be run here."""
    if tool == "mlm":
        return [*mlm, "fit", str(data), case.formula]
    if tool == "lme4":
        return [rscript, str(r_file), str(data), case.formula] if rscript else "no Rscript with lme4 + lmerTest"
    if not peers_python:
        return "no peer venv"
    if tool not in peers:
        return f"{tool} not installed in the peer venv"
    if tool == "lme-python":
        return [peers_python, str(HERE / "peers" / "fit_lme_python.py"), str(data), case.formula]
    if tool == "mixedlm-rs":
        if case.mixedlm is None:
            return "n/a (one grouping factor only)"
        return [peers_python, str(HERE / "peers" / "fit_mixedlm_rs.py"), str(data), *case.mixedlm]
    raise ValueError(f"unknown tool {tool}")
