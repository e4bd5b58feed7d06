"""The benchmark's cases (data + model) and, for each tool, the command that fits a case or why it cannot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
INSTEVAL_CANDIDATES = [ROOT.parent / "shared" / "data" / "InstEval.csv",
                       ROOT / "tests" / "fixtures" / "lme4" / "data" / "InstEval.csv"]
VERBAGG_FIXTURE = ROOT / "tests" / "fixtures" / "glmer" / "data" / "VerbAgg.csv"

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

# The GLMM counterpart, what `mlm fit --family F [--nagq N]` does: read.csv, glmer, print(summary(fit)).
# The last line is the deviance of the summary's table (-2 logLik, not deviance(fit), which for a GLMM is
# the sum of squared deviance residuals) at full precision.
R_GLMER = """
args <- commandArgs(trailingOnly = TRUE)
suppressPackageStartupMessages(library(lme4))
d <- read.csv(args[1], stringsAsFactors = TRUE)
fit <- glmer(as.formula(args[2]), data = d, family = args[3], nAGQ = as.integer(args[4]))
print(summary(fit))
cat(sprintf("deviance (-2 logLik) at convergence: %.6f\\n", -2 * as.numeric(logLik(fit))))
"""
R_SCRIPTS = {"fit.R": R_PROCESS, "glmer.R": R_GLMER}


@dataclass(frozen=True)
class Target:
    """A line of the issue's speed contract: `other`'s median wall time over mlm's at least `speedup`, or
    (with `optimum`) mlm's deviance no more than 1e-3 above `other`'s."""

    other: str
    speedup: float | None = None
    optimum: bool = False

    def describe(self) -> str:
        if self.optimum:
            return f"at {self.other}'s optimum (deviance within 1e-3)"
        if self.speedup == 1:
            return f"at least as fast as {self.other}"
        return f"{self.speedup:g}x faster than {self.other}"


@dataclass(frozen=True)
class Case:
    """One model on one data set. `generated` names a bench/make_data.py data set; `path` a fixed file.

    `mixedlm` is (fixed formula, grouping column, re_formula) for mixedlm-rs's statsmodels-style
    API, or None where the model has more than one grouping factor, which mixedlm-rs cannot fit.
    A `family` makes it a GLMM (glmer), fitted with `nagq` quadrature points (None: the default
    Laplace approximation, nAGQ = 1). A case with both `path` and `generated` uses the file when it
    exists and generates the data set otherwise.
    """

    name: str
    formula: str
    path: Path | None = None
    generated: str | None = None
    mixedlm: tuple[str, str, str] | None = None
    scalable: bool = False
    family: str | None = None
    nagq: int | None = None
    targets: tuple[Target, ...] = ()

    @property
    def glmm(self) -> bool:
        return self.family is not None


VERBAGG = "r2 ~ Anger + Gender + btype + situ + (1|id) + (1|item)"

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
    Case("binary200k", "y ~ x + z + (1|district) + (x|school)", generated="binary200k", scalable=True,
         family="binomial", targets=(Target("lme4", speedup=10),)),
    Case("verbagg", VERBAGG, path=VERBAGG_FIXTURE, generated="VerbAgg", family="binomial",
         targets=(Target("lme4", speedup=5), Target("lme4", optimum=True))),
    Case("verbagg_nagq0", VERBAGG, path=VERBAGG_FIXTURE, generated="VerbAgg", family="binomial", nagq=0,
         targets=(Target("lme-python", speedup=1),)),
    Case("insteval_binary", "y4 ~ 1 + service + (1|s) + (1|d)", generated="insteval_binary", family="binomial",
         targets=(Target("lme4", speedup=10),)),
]}


def command(tool: str, case: Case, data: Path, *, mlm: list[str], rscript: str | None,
            r_dir: Path, peers_python: str | None, peers: set[str]) -> list[str] | str:
    """The argv that fits `case` with `tool`, or a short reason why it cannot be run here.

    `r_dir` holds R_SCRIPTS, written under their names.
    """
    nagq = 1 if case.nagq is None else case.nagq
    if tool == "mlm":
        glmm = ["--family", case.family] + ([] if case.nagq is None else ["--nagq", str(case.nagq)])
        return [*mlm, "fit", str(data), case.formula, *(glmm if case.glmm else [])]
    if tool == "lme4":
        if not rscript:
            return "no Rscript with lme4 + lmerTest"
        if case.glmm:
            return [rscript, str(r_dir / "glmer.R"), str(data), case.formula, case.family, str(nagq)]
        return [rscript, str(r_dir / "fit.R"), str(data), case.formula]
    if tool == "mixedlm-rs" and case.glmm:
        return "n/a (no GLMM)"
    if not peers_python:
        return "no peer venv"
    if tool not in peers:
        return f"{tool} not installed in the peer venv"
    if tool == "lme-python":
        if case.glmm:
            return [peers_python, str(HERE / "peers" / "fit_lme_python_glmer.py"), str(data), case.formula,
                    case.family, str(nagq)]
        return [peers_python, str(HERE / "peers" / "fit_lme_python.py"), str(data), case.formula]
    if tool == "mixedlm-rs":
        if case.mixedlm is None:
            return "n/a (one grouping factor only)"
        return [peers_python, str(HERE / "peers" / "fit_mixedlm_rs.py"), str(data), *case.mixedlm]
    raise ValueError(f"unknown tool {tool}")
