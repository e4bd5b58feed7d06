#!/usr/bin/env python3
"""The start-up budget of each `mlm` command: what it imports and how long that takes.

    .venv/bin/python bench/startup.py [--runs 5] [--only fit,tau] [--top 15] [--python PATH]

Each command runs on the bundled data (sample_data/heck2011.csv, the lme4 fixtures' sleepstudy and
cbpp) as `python -X importtime -m mlmcli COMMAND ...`, `--runs` times; every module's self time is
the least over the runs (the machine is shared: the least is the least disturbed), and the modules
are summed by origin: numpy, typer + click, nlopt, mlm's own package, the heavy packages a plain fit
should never load (scipy, rich, pandas, pyarrow, matplotlib) and "python" (the interpreter's own
start-up: site, runpy). A standard-library module counts for the package that imported it first
(numpy's inspect is numpy's). The same command without -X importtime gives the median wall time of
the whole process; `--top N` lists each command's N slowest modules (self time) as well.

A budget, not a test: the numbers vary with the machine and its load, so nothing here fails on a
time. What a plain fit must not import is checked by tests/test_startup.py.

Under PYTHONDONTWRITEBYTECODE=1 with no compiled files beside mlm's sources, every import compiles
its module again and the import times are the compiler's; the script says so (compile them once with
`python -m compileall -q mlmcli`). Run it with the project's Python; it imports neither numpy nor
pandas itself.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HECK = "sample_data/heck2011.csv"
SLEEP = "tests/fixtures/lme4/data/sleepstudy.csv"
CBPP = "tests/fixtures/glmer/data/cbpp.csv"
HECK_MODEL = "math ~ ses + (ses|schcode)"
SLEEP_MODEL = "Reaction ~ Days + (Days|Subject)"
CBPP_MODEL = "cbind(incidence, size - incidence) ~ period + (1|herd)"

# the heavy packages: none of them belongs on the path of `mlm fit DATA FORMULA` with text output
HEAVY = ("scipy", "rich", "pandas", "pyarrow", "matplotlib")
GROUPS = {
    "numpy": "numpy",
    "typer": "typer+click",
    "click": "typer+click",
    "shellingham": "typer+click",
    "nlopt": "nlopt",
    "mlmcli": "mlm",
} | {h: h for h in HEAVY}
COLUMNS = ("python", "numpy", "typer+click", "nlopt", "mlm", *HEAVY, "other")


def commands(tmp: str) -> list[tuple[str, list[str]]]:
    """(label, arguments of `mlm`) for each command; outputs that are files go to `tmp`."""
    png = os.path.join(tmp, "plot.png")
    return [
        ("fit", ["fit", HECK, HECK_MODEL]),
        ("fit -f json", ["fit", HECK, HECK_MODEL, "-f", "json"]),
        ("fit -f csv", ["fit", HECK, HECK_MODEL, "-f", "csv"]),
        ("fit -f table", ["fit", HECK, HECK_MODEL, "-f", "table"]),
        ("fit --family", ["fit", CBPP, CBPP_MODEL, "--family", "binomial"]),
        ("tau", ["tau", HECK, HECK_MODEL]),
        ("ranef", ["ranef", SLEEP, SLEEP_MODEL]),
        ("compare", ["compare", SLEEP, "Reaction ~ 1 + (1|Subject)", SLEEP_MODEL]),
        ("table", ["table", SLEEP, SLEEP_MODEL, "--format", "markdown"]),
        ("predict", ["predict", SLEEP, SLEEP_MODEL]),
        ("augment", ["augment", SLEEP, SLEEP_MODEL]),
        ("confint", ["confint", SLEEP, SLEEP_MODEL, "--method", "wald"]),
        ("anova", ["anova", HECK, "math ~ ses*public + (ses|schcode)"]),
        ("ranova", ["ranova", SLEEP, SLEEP_MODEL]),
        ("plot", ["plot", SLEEP, SLEEP_MODEL, "--kind", "caterpillar", "-o", png]),
        ("schema", ["schema", "fit"]),
        ("man", ["man"]),
        ("--help", ["--help"]),
        ("fit --help", ["fit", "--help"]),
        ("--version", ["--version"]),
    ]


@dataclass
class Budget:
    """One command's runs: each module's least self time (microseconds) and the processes' wall times."""

    label: str
    self_us: dict[str, int] = field(default_factory=dict)
    importer: dict[str, str | None] = field(default_factory=dict)
    walls: list[float] = field(default_factory=list)
    failed: str | None = None

    def add_importtime(self, stderr: str) -> None:
        rows: list[tuple[int, str, int]] = []
        for line in stderr.splitlines():
            # "import time: self [us] | cumulative | imported package", the name indented by depth
            if not line.startswith("import time:") or "[us]" in line:
                continue
            fields = line[len("import time:") :].split("|")
            if len(fields) != 3:
                continue
            name = fields[2].rstrip()
            rows.append((len(name) - len(name.lstrip()), name.strip(), int(fields[0])))
        for i, (depth, name, us) in enumerate(rows):
            self.self_us[name] = min(us, self.self_us.get(name, us))
            # a module is printed after those it imported: its importer is the next one less indented
            importer = next((n for d, n, _ in rows[i + 1 :] if d < depth), None)
            self.importer.setdefault(name, importer)

    def groups(self) -> dict[str, float]:
        """Milliseconds of import time by origin; a standard-library module counts for the package
        whose import brought it in (numpy's inspect is numpy's), "python" when none did (site, runpy)."""
        out = dict.fromkeys(COLUMNS, 0.0)
        for name, us in self.self_us.items():
            out[self.origin(name)] += us / 1000
        return out

    def origin(self, name: str) -> str:
        seen = set()
        while name is not None and name not in seen:
            seen.add(name)
            if (g := group(name)) != "python":
                return g
            name = self.importer.get(name)
        return "python"

    def heavy(self) -> list[str]:
        return sorted({name.split(".")[0] for name in self.self_us} & set(HEAVY))


def group(module: str) -> str:
    top = module.split(".")[0]
    if top in GROUPS:
        return GROUPS[top]
    if top in sys.stdlib_module_names or top.startswith("_"):
        return "python"
    return "other"


def run_once(python: str, args: list[str], importtime: bool) -> tuple[float, int, str]:
    argv = [python, *(["-X", "importtime"] if importtime else []), "-m", "mlmcli", *args]
    with tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        p = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
        seconds = time.perf_counter() - t0
        err.seek(0)
        return seconds, p.returncode, err.read()


def measure(python: str, label: str, args: list[str], runs: int) -> Budget:
    budget = Budget(label)
    for _ in range(runs):
        # the two kinds of run take turns, so that a busy spell of the machine hits both alike
        seconds, code, stderr = run_once(python, args, importtime=False)
        if code != 0:
            budget.failed = f"exit {code}: " + (stderr.strip().splitlines() or [""])[-1]
            return budget
        budget.walls.append(seconds)
        _, _, stderr = run_once(python, args, importtime=True)
        budget.add_importtime(stderr)
    return budget


def stale_bytecode() -> list[str]:
    """mlm's modules that have no up-to-date compiled file next to them (and so compile on every import
    when bytecode is not written)."""
    stale = []
    for path in sorted((ROOT / "mlmcli").rglob("*.py")):
        cached = Path(importlib.util.cache_from_source(str(path)))
        if not cached.exists() or cached.stat().st_mtime < path.stat().st_mtime:
            stale.append(str(path.relative_to(ROOT)))
    return stale


def table(budgets: list[Budget]) -> list[str]:
    shown = [c for c in COLUMNS if c not in HEAVY or any(b.groups()[c] for b in budgets)]
    head = ["command", "wall ms", "imports ms", "modules", *shown, "heavy"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for b in budgets:
        if b.failed:
            lines.append(f"| {b.label} | failed: {b.failed} |")
            continue
        g = b.groups()
        cells = [
            b.label,
            f"{statistics.median(b.walls) * 1000:.0f}",
            f"{sum(g.values()):.0f}",
            str(len(b.self_us)),
            *(f"{g[c]:.1f}" for c in shown),
            ", ".join(b.heavy()) or "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def slowest(budget: Budget, top: int) -> list[str]:
    ranked = sorted(budget.self_us.items(), key=lambda kv: -kv[1])[:top]
    return [f"  {us / 1000:7.2f} ms  {name}" for name, us in ranked]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="runs of each command (default 5)")
    p.add_argument(
        "--only",
        default="",
        help="comma-separated labels of the commands to run, e.g. fit,tau (--only=--version for a leading dash)",
    )
    p.add_argument("--top", type=int, default=0, help="list each command's N slowest modules")
    p.add_argument("--python", default=sys.executable, help="the Python that has mlm installed")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.runs < 1:
        sys.stderr.write("startup.py: --runs must be at least 1\n")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        chosen = commands(tmp)
        if a.only:
            wanted = [w.strip() for w in a.only.split(",") if w.strip()]
            unknown = [w for w in wanted if w not in {label for label, _ in chosen}]
            if unknown:
                known = ", ".join(label for label, _ in chosen)
                sys.stderr.write(f"startup.py: unknown command {', '.join(unknown)} (known: {known})\n")
                return 2
            chosen = [(label, args) for label, args in chosen if label in wanted]
        if os.environ.get("PYTHONDONTWRITEBYTECODE") and (stale := stale_bytecode()):
            print(
                f"note: PYTHONDONTWRITEBYTECODE is set and {len(stale)} of mlm's modules have no current "
                "compiled file: their import times include compiling them (python -m compileall -q mlmcli)\n"
            )
        budgets = []
        for label, args in chosen:
            budgets.append(measure(a.python, label, args, a.runs))
            print(f"measured {label}", file=sys.stderr)
    print(
        f"Start-up budget: least self time of each module over {a.runs} run(s) of `python -X importtime -m "
        "mlmcli ...`, summed by origin (ms); wall: median of the same number of plain runs (ms).\n"
    )
    print("\n".join(table(budgets)))
    if a.top:
        for b in budgets:
            if not b.failed:
                print(f"\n{b.label}: the {a.top} slowest imports (self time)")
                print("\n".join(slowest(b, a.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
