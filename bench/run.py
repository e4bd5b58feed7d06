#!/usr/bin/env python3
"""Time `mlm fit` against lme4 + lmerTest and two Rust-backed Python peers, whole process against whole
process, and write bench/RESULTS.md.

    python bench/run.py [--cases heck2011,slope1m] [--runs 3] [--r-runs 1] [--timeout 1800]
                        [--tools mlm,lme4,lme-python,mixedlm-rs] [--scale 0.01] [--mlm CMD]

Each tool does what `mlm fit DATA FORMULA` does by default: read the CSV, fit by REML, print lme4's
summary with Satterthwaite df (lme-python adds its Satterthwaite df; mixedlm-rs has none and prints
z tests). GLMM cases (binary200k, verbagg, verbagg_nagq0, insteval_binary) run `mlm fit DATA FORMULA
--family F [--nagq N]` against glmer + print(summary()) and lme-python's glmer. Within a repetition
the tools take turns (A B C A B C ...), so a slow spell of this shared machine hits them alike; the
table gives the median, the range and the child's peak RSS. Every output's REML criterion (LMMs) or
deviance (GLMMs) is parsed and shown, so a tool that fails or converges elsewhere is visible; after
the first repetition the criteria are compared before timing goes on. For a GLMM, mlm's text shows
the deviance to 0.1, so one more run of mlm with `--format json`, untimed, gives it in full. Cases
with targets from the speed contract get a table of them (target, measured, met).

Tools: mlm is `/work/main/.venv/bin/mlm` or --mlm (a command, e.g. "python -m mlmcli"); lme4 needs
`Rscript` with lme4 and lmerTest; the peers need a venv made by

    python3 -m venv bench/.peers && bench/.peers/bin/pip install lme-python mixedlm-rs

(or --peers-python PATH). For start-up figures, time an installed copy as the README installs it
(`python3 -m venv /tmp/v && /tmp/v/bin/pip install .`, then --mlm /tmp/v/bin/mlm): an editable
install sends every import through setuptools' finder, and under PYTHONDONTWRITEBYTECODE a source
tree without current compiled files is compiled again on every run (0.195 s against 0.127 s on
heck2011, 2026-12-07). Simulated data sets are written on first use by bench/make_data.py into
--data-dir (default bench/data/, git-ignored); --scale 0.01 uses small versions for a quick check and
then writes no RESULTS.md unless --out is given. Run it with the project's Python (numpy and pandas
generate the data); the runner itself imports neither, so it stays small while it measures others.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import agreement
import machine
import procs
from agreement import fmt_s
from cases import CASES, HERE, R_SCRIPTS, TOOLS, Case, command

DEFAULT_MLM = "/work/main/.venv/bin/mlm"


@dataclass
class Tally:
    """One tool's runs on one case."""

    tool: str
    argv: list[str] | None
    skip: str | None = None
    runs: list[procs.Run] = field(default_factory=list)
    glmm: bool = False
    exact: str | None = None   # the criterion at full precision from an extra, untimed run (mlm's JSON)

    def good(self) -> list[procs.Run]:
        return [r for r in self.runs if r.ok]

    def median(self) -> float | None:
        good = self.good()
        return statistics.median(r.seconds for r in good) if good else None

    def cpu(self) -> float | None:
        good = [r.cpu for r in self.good() if r.cpu == r.cpu]
        return statistics.median(good) if good else None

    def criterion(self) -> str | None:
        """The REML criterion or deviance as printed (a string, so its printed precision is kept)."""
        if self.exact is not None:
            return self.exact
        for r in reversed(self.good()):
            found = agreement.criterion(r.stdout, self.glmm)
            if found:
                return found
        return None

    def status(self) -> str:
        if self.skip:
            return self.skip
        bad = [r for r in self.runs if not r.ok]
        if not bad:
            return "ok"
        r = bad[-1]
        if r.timed_out:
            return f"timed out after {r.seconds:.0f} s"
        last = (r.stderr.strip().splitlines() or ["no message"])[-1][:120]
        return f"failed (exit {r.code}: {last})"


def r_available(rscript: str | None) -> str | None:
    if not rscript:
        return None
    p = subprocess.run([rscript, "-e", "suppressPackageStartupMessages({library(lme4); library(lmerTest)})"],
                       capture_output=True)
    return rscript if p.returncode == 0 else None


def peer_packages(python: str | None) -> set[str]:
    if not python:
        return set()
    code = ("import importlib.util as u\n"
            "for m, p in (('lme_python', 'lme-python'), ('mixedlm_rs', 'mixedlm-rs')):\n"
            "    print(p) if u.find_spec(m) else None")
    p = subprocess.run([python, "-c", code], capture_output=True, text=True)
    return set(p.stdout.split()) if p.returncode == 0 else set()


def data_path(case: Case, data_dir: Path, scale: float) -> Path:
    """The case's CSV, generating a simulated one first (in a child process, see the module doc)."""
    if case.path is not None and (case.generated is None or case.path.is_file()):
        return case.path
    import make_data

    path = data_dir / make_data.file_name(case.generated, scale if case.scalable else 1.0)
    if not path.exists():
        print(f"generating {path} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, str(HERE / "make_data.py"), str(data_dir), "--only", case.generated,
                        "--scale", repr(scale)], check=True, stdout=subprocess.DEVNULL)
    return path


def warm(path: Path) -> None:
    """Read the file once so that no tool pays for a cold disk cache."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def criteria(tallies: list[Tally]) -> dict[str, str | None]:
    return {t.tool: t.criterion() for t in tallies if t.argv is not None}


def model_line(case: Case) -> str:
    if not case.glmm:
        return f"`{case.formula}`"
    return f"`{case.formula}`, {case.family}, " + ("Laplace" if case.nagq is None else f"nAGQ = {case.nagq}")


def data_note(data: Path) -> str:
    """Where a derived or simulated data set came from, from the NAME.json that bench/make_data.py wrote."""
    try:
        meta = json.loads(data.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return ""
    if "source" in meta:
        return f"; from {meta['source']}"
    return f"; simulated (seed {meta['seed']})" if "seed" in meta else ""


def case_table(case: Case, data: Path, tallies: list[Tally]) -> list[str]:
    mlm = next((t for t in tallies if t.tool == "mlm"), None)
    base = mlm.median() if mlm else None
    marks = agreement.remarks(case, criteria(tallies))
    lines = [f"### {case.name}: {model_line(case)}", "",
             f"Data: `{data.name}`" + (f", {count_rows(data):,} rows" if data.is_file() else "") + data_note(data), "",
             f"| tool | median (s) | min - max (s) | runs | CPU (s) | peak RSS (MB) | "
             f"{'deviance' if case.glmm else 'REML criterion'} | time / mlm's | status |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for t in tallies:
        good = t.good()
        med = t.median()
        crit = t.criterion()
        mark = f" ({marks[t.tool]})" if marks.get(t.tool) else ""
        ratio = f"{med / base:.2f}x" if med is not None and base else "-"
        rng = f"{fmt_s(min(r.seconds for r in good))} - {fmt_s(max(r.seconds for r in good))}" if good else "-"
        rss = max((r.rss_mb for r in t.runs), default=None)
        done = f"{len(good)}/{len(t.runs)}" if t.runs else "-"
        lines.append(f"| {t.tool} | {fmt_s(med)} | {rng} | {done} | {fmt_s(t.cpu())} | "
                     f"{'-' if rss is None or rss != rss else f'{rss:.0f}'} | {crit or '-'}{mark} | {ratio} | "
                     f"{t.status()} |")
    return lines + [""]


def count_rows(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b"")) - 1


def bench_case(case: Case, data: Path, tallies: list[Tally], runs: dict[str, int], timeout: float) -> None:
    """Alternate the tools within each repetition; check agreement after the first one."""
    warm(data)
    label = "dev" if case.glmm else "REML"
    for rep in range(max(runs.values(), default=0)):
        for t in tallies:
            if t.argv is None or rep >= runs[t.tool] or any(r.timed_out for r in t.runs):
                continue
            r = procs.run(t.argv, timeout=timeout)
            t.runs.append(r)
            state = "ok" if r.ok else ("timeout" if r.timed_out else f"exit {r.code}")
            crit = agreement.criterion(r.stdout, case.glmm)
            print(f"  {case.name} run {rep + 1} {t.tool:<11} {r.seconds:9.3f} s (CPU {r.cpu:8.3f} s) "
                  f"{r.rss_mb:6.0f} MB  {label} {crit or '-':>14}  {state}", file=sys.stderr, flush=True)
        if rep == 0:
            if case.glmm:
                exact_deviance(case, tallies, timeout)
            check_agreement(case, tallies)


def exact_deviance(case: Case, tallies: list[Tally], timeout: float) -> None:
    """mlm's deviance in full from one untimed `--format json` run: its text rounds it to 0.1."""
    t = next((t for t in tallies if t.tool == "mlm" and t.argv is not None and t.good()), None)
    if t is None:
        return
    r = procs.run([*t.argv, "--format", "json"], timeout=timeout)
    try:
        t.exact = f"{float(json.loads(r.stdout)['deviance']):.6f}"
    except (ValueError, KeyError, TypeError):
        last = (r.stderr.strip().splitlines() or ["no output"])[-1][:120]
        print(f"  {case.name}: no deviance from mlm --format json ({last}); using the printed one",
              file=sys.stderr, flush=True)


def check_agreement(case: Case, tallies: list[Tally]) -> None:
    crit = criteria(tallies)
    ref = agreement.reference(crit)
    shown = ", ".join(f"{k} {v or '-'}" for k, v in crit.items())
    marks = agreement.remarks(case, crit)
    if case.glmm:
        bad = [f"{k} ({why})" for k, why in marks.items() if why]
        verdict = f"DISAGREE: {', '.join(bad)}" if bad else "all at the same deviance"
    else:
        bad = [k for k, why in marks.items() if why]
        verdict = f"DISAGREE with {ref}: {', '.join(bad)}" if bad else f"the others agree with {ref}"
    missing = [k for k, v in crit.items() if v is None]
    if missing:
        verdict += f"; no criterion from {', '.join(missing)}"
    print(f"  {case.name}: {'deviance' if case.glmm else 'REML criterion'} {shown} -> {verdict}",
          file=sys.stderr, flush=True)


def targets_table(done: list[tuple[Case, list[Tally]]]) -> list[str]:
    """The speed contract's lines for the cases measured so far: target, measured, met."""
    rows = []
    for case, tallies in done:
        medians = {t.tool: t.median() for t in tallies}
        cpu = {t.tool: t.cpu() for t in tallies}
        for target in case.targets:
            measured, met = agreement.verdict(target, medians, criteria(tallies), cpu)
            rows.append(f"| {case.name} | {target.describe()} | {measured} | {met} |")
    if not rows:
        return []
    return ["## Against the targets", "",
            "Whole-process wall times (medians) from the tables below; a ratio is the other tool's time over mlm's"
            " (met is judged on wall time; the CPU-time ratio is beside it).",
            "", "| case | target | measured | met |", "| --- | --- | --- | --- |", *rows, ""]


# Formula parsing, model matrices and the fit in one process, data already in memory (the lmer
# pipeline's phases after reading): the engine's own speed without start-up and printing. It calls
# mlm's modules, whose names may change while the engine is rewritten, so a failure here is
# reported and the rest of the benchmark goes on.
IN_PROCESS_MLM = """
import statistics, sys, time
from mlmcli.io.csv import read_csv
from mlmcli.pipeline import fit_design, l_formula, parse
path, formula, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
frame = read_csv(path)
t = []
for _ in range(runs):
    t0 = time.perf_counter()
    parsed = parse(formula)
    fit_design(parsed, l_formula(parsed, frame), reml=True, data_name=frame.name, ddf="none")
    t.append(time.perf_counter() - t0)
print(statistics.median(t))
"""

IN_PROCESS_R = """
suppressPackageStartupMessages(library(lme4))
d <- read.csv(commandArgs(TRUE)[1], stringsAsFactors = TRUE)
f <- as.formula(commandArgs(TRUE)[2])
runs <- as.integer(commandArgs(TRUE)[3])
t <- vapply(seq_len(runs), function(i) {
  gc(); unname(system.time(suppressMessages(lmer(f, data = d)))["elapsed"])
}, 1)
cat(median(t), "\\n")
"""


def mlm_python(mlm: list[str]) -> list[str] | None:
    """The interpreter (with any env prefix) behind the mlm command, to run code against its package."""
    if mlm[-2:] == ["-m", "mlmcli"]:
        return mlm[:-2]
    if len(mlm) == 1:
        try:
            first = Path(mlm[0]).read_text(errors="replace").splitlines()[0]
        except (OSError, IndexError):
            return None
        if first.startswith("#!") and "python" in first:
            return shlex.split(first[2:])
    return None


def in_process(case: Case, mlm: list[str], rscript: str | None, runs: int, tmp: Path) -> list[str]:
    """heck2011's fit alone, inside one process, mlm against lmer(): a small table for RESULTS.md."""
    rows = []
    py = mlm_python(mlm)
    script = tmp / "in_process_mlm.py"
    script.write_text(IN_PROCESS_MLM)
    ours = None
    if py is None:
        rows.append("| mlm | - | cannot find mlm's Python |")
    else:
        p = subprocess.run([*py, str(script), str(case.path), case.formula, str(runs)], capture_output=True, text=True)
        if p.returncode == 0:
            ours = float(p.stdout.split()[-1])
            rows.append(f"| mlm (parse, design, fit) | {ours:.4f} | |")
        else:
            last = (p.stderr.strip().splitlines() or ["?"])[-1][:120]
            rows.append(f"| mlm | - | unavailable: {last} |")
    if rscript:
        r_file = tmp / "in_process.R"
        r_file.write_text(IN_PROCESS_R)
        p = subprocess.run([rscript, str(r_file), str(case.path), case.formula, str(runs)],
                           capture_output=True, text=True)
        if p.returncode == 0:
            theirs = float(p.stdout.split()[-1])
            ratio = f"{theirs / ours:.1f}x mlm's time" if ours else ""
            rows.append(f"| lme4 `lmer()` | {theirs:.4f} | {ratio} |")
    return [f"### {case.name}, the fit alone, in process (median of {runs})", "",
            "Data already in memory; no start-up, no printing, no Satterthwaite df.", "",
            "| tool | median (s) | note |", "| --- | ---: | --- |", *rows, ""]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from: {', '.join(CASES)}")
    ap.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated, from: {', '.join(TOOLS)}")
    ap.add_argument("--runs", type=int, default=3, help="repetitions per tool (default 3)")
    ap.add_argument("--r-runs", type=int, default=None, help="repetitions for lme4 (default: --runs)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per command (default 3600)")
    ap.add_argument("--mlm", default=None, help=f"mlm command (default {DEFAULT_MLM}, else `mlm` on PATH)")
    ap.add_argument("--rscript", default=shutil.which("Rscript"), help="Rscript to use (default: on PATH)")
    ap.add_argument("--peers-python", default=None, help="Python of the peer venv (default bench/.peers)")
    ap.add_argument("--data-dir", type=Path, default=HERE / "data")
    ap.add_argument("--scale", type=float, default=1.0, help="shrink the simulated data sets (quick checks)")
    ap.add_argument("--out", type=Path, default=None, help="markdown output (default bench/RESULTS.md)")
    ap.add_argument("--no-in-process", action="store_true", help="skip heck2011's in-process fit timing")
    return ap.parse_args(argv)


def fail(msg: str) -> int:
    print(f"run.py: {msg}", file=sys.stderr)
    return 2


def interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt   # so that procs.run kills the running child before the runner exits


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    names = [n for n in a.cases.split(",") if n]
    tools = [t for t in a.tools.split(",") if t]
    if bad := [n for n in names if n not in CASES]:
        return fail(f"unknown case {', '.join(bad)} (known: {', '.join(CASES)})")
    if bad := [t for t in tools if t not in TOOLS]:
        return fail(f"unknown tool {', '.join(bad)} (known: {', '.join(TOOLS)})")
    if a.runs < 1 or (a.r_runs is not None and a.r_runs < 1):
        return fail("--runs and --r-runs must be at least 1")
    if not 0 < a.scale <= 1:
        return fail("--scale must be in (0, 1]")
    mlm = shlex.split(a.mlm) if a.mlm else [DEFAULT_MLM if os.access(DEFAULT_MLM, os.X_OK)
                                            else shutil.which("mlm") or "mlm"]
    rscript = r_available(a.rscript) if "lme4" in tools else None
    peers_python = a.peers_python or (str(HERE / ".peers" / "bin" / "python")
                                      if (HERE / ".peers" / "bin" / "python").exists() else None)
    if peers_python and not ({"lme-python", "mixedlm-rs"} & set(tools)):
        peers_python = None
    peers = peer_packages(peers_python)
    out = a.out or (HERE / "RESULTS.md" if a.scale == 1.0 else None)
    runs = {t: a.runs for t in tools} | ({"lme4": a.r_runs} if a.r_runs else {})

    started = datetime.datetime.now(datetime.UTC)
    given = argv if argv is not None else sys.argv[1:]
    selected = [CASES[n] for n in names]
    lmm_notes = [
        "- lme4: `Rscript` running read.csv, lmerTest::lmer and print(summary(fit)) (Satterthwaite df).",
        "- lme-python: polars read_csv, lmer(REML), with_satterthwaite, print(summary()).",
        "- mixedlm-rs: pandas read_csv, mixedlm(...).fit(reml=True), print(summary()); one grouping factor"
        " only, so nested and crossed models are n/a; it prints z tests (no Satterthwaite df).",
        "- REML criteria are shown as each tool prints them (mlm and lme4's summary round to 0.1; the lme4"
        " row shows REMLcrit() at full precision); \"differs\" flags a gap beyond that rounding.",
    ] if any(not c.glmm for c in selected) else []
    glmm_notes = [
        "- GLMMs: mlm runs `mlm fit DATA FORMULA --family F [--nagq N]` (text output); lme4 is `Rscript`"
        " running read.csv, glmer(family = F, nAGQ = N) and print(summary(fit)); lme-python is polars"
        " read_csv, glmer(formula, data, F, n_agq = N), print(summary()) (a text response such as VerbAgg's"
        " r2 is turned into 0/1 first, as glmer reads a factor); mixedlm-rs has no GLMM.",
        "- GLMM deviances are -2 logLik at full precision: lme4's and lme-python's from their last printed"
        " line, mlm's from one extra, untimed run with `--format json` (its text rounds to 0.1). Under"
        " Laplace a tool more than 1e-3 above the lowest deviance is flagged (\"above\"); under nAGQ = 0,"
        " which minimises nothing, a gap of more than 1e-3 from lme4's either way is flagged.",
        "- lme-python 0.2.7 does not implement nAGQ = 0: its summary says \"Quadrature: requested 0, used"
        " 1\", so in the nAGQ = 0 case it fits the Laplace approximation.",
    ] if any(c.glmm for c in selected) else []
    head = [
        "# Benchmark results", "",
        f"Run {started:%Y-%m-%d %H:%M} UTC with `python bench/run.py {shlex.join(given)}`."
        " Wall time of whole processes (start-up, reading the CSV, fitting (REML for LMMs, maximum"
        " likelihood for GLMMs), printing the summary); median of the runs, tools alternating within each"
        " repetition. *time / mlm's* above 1 means slower than mlm. CPU is the median user + system time"
        " (above the wall time for multi-threaded tools; steadier than wall time when the machine is"
        " shared). Peak RSS is the child process's maximum resident set.", "",
        "## Machine", "", *[f"- {x}" for x in machine.describe(mlm, rscript, peers_python)], "",
        "## Notes", "", *lmm_notes, *glmm_notes,
        "- The peers live in a venv outside the repository: `python3 -m venv bench/.peers &&"
        " bench/.peers/bin/pip install lme-python mixedlm-rs`.", "",
    ]
    print("\n".join(head), flush=True)
    body: list[str] = []
    done: list[tuple[Case, list[Tally]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for script, text in R_SCRIPTS.items():
            (Path(tmp) / script).write_text(text)
        for name in names:
            case = CASES[name]
            data = data_path(case, a.data_dir, a.scale)
            if not data.is_file():
                body += [f"### {name}", "", f"Data not found: `{data}`.", ""]
                print(f"{name}: data not found: {data}", file=sys.stderr)
                continue
            tallies = []
            for t in tools:
                argv_or_reason = command(t, case, data, mlm=mlm, rscript=rscript, r_dir=Path(tmp),
                                         peers_python=peers_python, peers=peers)
                if isinstance(argv_or_reason, str):
                    tallies.append(Tally(t, None, skip=argv_or_reason, glmm=case.glmm))
                else:
                    tallies.append(Tally(t, argv_or_reason, glmm=case.glmm))
            print(f"{name}: {data}", file=sys.stderr, flush=True)
            bench_case(case, data, tallies, runs, a.timeout)
            done.append((case, tallies))
            table = case_table(case, data, tallies)
            print("\n".join(table), flush=True)
            body += table
            if name == "heck2011" and not a.no_in_process and "mlm" in tools:
                extra = in_process(case, mlm, rscript, max(a.runs, 5), Path(tmp))
                print("\n".join(extra), flush=True)
                body += extra
            if out:   # after every case, so a long run that is stopped keeps what it measured
                out.write_text("\n".join(head + targets_table(done) + ["## Results", ""] + body).rstrip() + "\n")
    print("\n".join(targets_table(done)), flush=True)
    if out:
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, interrupted)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
