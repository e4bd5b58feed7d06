#!/usr/bin/env python3
"""Write the benchmark's data sets as CSV files: simulated mixed models with known parameters, and two
data sets derived from lme4's (InstEval with a binary response, VerbAgg).

    python bench/make_data.py [DIR] [--only nested200k,slope1m] [--scale 0.01]

DIR defaults to bench/data/ (git-ignored). Files that already exist are left alone, so the runner can
call this before every run. Fixed seeds: the same command writes the same bytes. Next to each CSV a
NAME.json records the true parameters and the formula.

  nested200k   4000 schools x 5 classes, ~10 pupils a class        y ~ x + (1|school/class)
  nested1m     10,000 schools x 10 classes, ~10 pupils a class     y ~ x + (1|school/class)
  slope1m      20k groups, ~50 rows each                           y ~ x + (x|g)
  slope5m      100k groups, ~50 rows each                          y ~ x + (x|g)
  crossed500k  20k subjects x 3k items, each row a random pair     y ~ x + (1|subject) + (1|item)
  binary200k   2000 schools in 100 districts, ~100 pupils a school, a binary response (logit link):
               y ~ x + z + (1|district) + (x|school)
  insteval_binary  InstEval with y4 = (y >= 4), 73,421 rows, 2972 s x 1128 d:
               y4 ~ 1 + service + (1|s) + (1|d)
  VerbAgg      lme4's VerbAgg (7,584 rows), the columns of the model:
               r2 ~ Anger + Gender + btype + situ + (1|id) + (1|item)

binary200k's school codes run 1..2000 across districts (each school in one district), so (x|school)
needs no district/school spelling; z is a school-level covariate. insteval_binary is derived from
InstEval.csv when one is found (bench/cases.py's INSTEVAL_CANDIDATES), else simulated with the same
row and level counts; its NAME.json says which. VerbAgg is copied from the glmer test fixtures when
they are present, else exported by `Rscript` from lme4 (write.csv, no row names): the same bytes.

Class labels run 1..K within each school (as in most school data), so the nesting must be spelled
school/class. --scale s shrinks rows and group counts by s (at least 2 groups each) and writes
NAME_s<s>.csv, for quick checks of the runner.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_DIR = HERE / "data"


@dataclass(frozen=True)
class Spec:
    """One simulated data set: its size, its model and the generator that draws it."""

    name: str
    formula: str
    rows: int
    groups: dict[str, int]
    params: dict[str, float]
    seed: int
    draw: Callable[[Spec, float, np.random.Generator], dict[str, np.ndarray]]
    factors: tuple[str, ...] = ()   # grouping columns, counted into NAME.json; () = all but x and y


def _sizes(n_rows: int, n_cells: int, rng: np.random.Generator, minimum: int = 2) -> np.ndarray:
    """Cell sizes summing to exactly n_rows: `minimum` each, the rest spread multinomially (Poisson-like)."""
    base = np.full(n_cells, minimum, dtype=np.int64)
    rest = n_rows - minimum * n_cells
    if rest < 0:
        raise ValueError(f"{n_rows} rows cannot fill {n_cells} cells with {minimum} rows each")
    return base + rng.multinomial(rest, np.full(n_cells, 1.0 / n_cells))


def _scaled(n: int, scale: float, floor: int = 2) -> int:
    return max(floor, round(n * scale))


def draw_nested(spec: Spec, scale: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    p = spec.params
    n_school = _scaled(spec.groups["school"], scale)
    per_school = spec.groups["class_per_school"]
    n_class = n_school * per_school
    rows = max(_scaled(spec.rows, scale), 2 * n_class)
    size = _sizes(rows, n_class, rng)
    cell = np.repeat(np.arange(n_class), size)
    school = cell // per_school
    u_school = rng.normal(0.0, p["sd_school"], n_school)
    v_class = rng.normal(0.0, p["sd_class"], n_class)
    x = rng.normal(0.0, 1.0, rows)
    y = p["b0"] + p["b1"] * x + u_school[school] + v_class[cell] + rng.normal(0.0, p["sigma"], rows)
    return {"school": school + 1, "class": cell % per_school + 1, "x": x, "y": y}


def draw_slope(spec: Spec, scale: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    p = spec.params
    n_g = _scaled(spec.groups["g"], scale)
    rows = max(_scaled(spec.rows, scale), 2 * n_g)
    g = np.repeat(np.arange(n_g), _sizes(rows, n_g, rng))
    cov = np.array([[p["sd_int"] ** 2, p["corr"] * p["sd_int"] * p["sd_slope"]],
                    [p["corr"] * p["sd_int"] * p["sd_slope"], p["sd_slope"] ** 2]])
    b = rng.multivariate_normal([0.0, 0.0], cov, n_g)
    x = rng.normal(0.0, 1.0, rows)
    y = p["b0"] + b[g, 0] + (p["b1"] + b[g, 1]) * x + rng.normal(0.0, p["sigma"], rows)
    return {"g": g + 1, "x": x, "y": y}


def draw_crossed(spec: Spec, scale: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    p = spec.params
    n_s = _scaled(spec.groups["subject"], scale)
    n_i = _scaled(spec.groups["item"], scale)
    rows = max(_scaled(spec.rows, scale), 2 * (n_s + n_i))
    # Every subject and every item appears at least once; the remaining rows are random pairs.
    subject = np.concatenate([np.arange(n_s), rng.integers(0, n_s, rows - n_s)])
    item = np.concatenate([rng.integers(0, n_i, n_s), np.arange(n_i), rng.integers(0, n_i, rows - n_s - n_i)])
    order = rng.permutation(rows)
    subject, item = subject[order], item[order]
    s_eff = rng.normal(0.0, p["sd_subject"], n_s)
    i_eff = rng.normal(0.0, p["sd_item"], n_i)
    x = rng.normal(0.0, 1.0, rows)
    y = p["b0"] + p["b1"] * x + s_eff[subject] + i_eff[item] + rng.normal(0.0, p["sigma"], rows)
    return {"subject": subject + 1, "item": item + 1, "x": x, "y": y}


def _logistic(eta: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-eta))


def draw_binary(spec: Spec, scale: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Districts > schools, a correlated random intercept and x slope per school, y ~ Bernoulli(logistic(eta))."""
    p = spec.params
    n_district = _scaled(spec.groups["district"], scale)
    per_district = spec.groups["school_per_district"]
    n_school = n_district * per_district
    rows = max(_scaled(spec.rows, scale), 2 * n_school)
    school = np.repeat(np.arange(n_school), _sizes(rows, n_school, rng))
    district = school // per_district
    cov = np.array([[p["sd_school"] ** 2, p["corr"] * p["sd_school"] * p["sd_slope"]],
                    [p["corr"] * p["sd_school"] * p["sd_slope"], p["sd_slope"] ** 2]])
    b = rng.multivariate_normal([0.0, 0.0], cov, n_school)
    u = rng.normal(0.0, p["sd_district"], n_district)
    z = rng.normal(0.0, 1.0, n_school)
    x = rng.normal(0.0, 1.0, rows)
    eta = p["b0"] + u[district] + b[school, 0] + (p["b1"] + b[school, 1]) * x + p["b2"] * z[school]
    y = (rng.random(rows) < _logistic(eta)).astype(np.int64)
    return {"district": district + 1, "school": school + 1, "x": x, "z": z[school], "y": y}


def draw_insteval_binary(spec: Spec, scale: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """InstEval's size and shape with a binary response: students and lecturers crossed, random pairs."""
    p = spec.params
    n_s, n_d, rows = spec.groups["s"], spec.groups["d"], spec.rows
    s = np.concatenate([np.arange(n_s), rng.integers(0, n_s, rows - n_s)])
    d = np.concatenate([rng.integers(0, n_d, n_s), np.arange(n_d), rng.integers(0, n_d, rows - n_s - n_d)])
    order = rng.permutation(rows)
    s, d = s[order], d[order]
    service = (rng.random(rows) < p["p_service"]).astype(np.int64)
    eta = p["b0"] + p["b_service"] * service + rng.normal(0.0, p["sd_s"], n_s)[s] + rng.normal(0.0, p["sd_d"], n_d)[d]
    y4 = (rng.random(rows) < _logistic(eta)).astype(np.int64)
    return {"s": s + 1, "d": d + 1, "service": service, "y4": y4}


NESTED = {"b0": 50.0, "b1": 2.0, "sd_school": 3.0, "sd_class": 1.5, "sigma": 5.0}
SLOPE = {"b0": 10.0, "b1": 1.5, "sd_int": 2.0, "sd_slope": 0.8, "corr": 0.3, "sigma": 3.0}
CROSSED = {"b0": 100.0, "b1": 3.0, "sd_subject": 4.0, "sd_item": 2.0, "sigma": 6.0}
BINARY = {"b0": -0.5, "b1": 0.8, "b2": 0.4, "sd_district": 0.5, "sd_school": 0.7, "sd_slope": 0.3, "corr": -0.2}
# The simulated stand-in for InstEval's y >= 4 (used only when InstEval.csv is absent): about the real
# data's share of ratings of 4 or 5 (0.45) and of service lectures (0.43).
INSTEVAL_BINARY = {"b0": -0.2, "b_service": -0.1, "sd_s": 0.7, "sd_d": 0.6, "p_service": 0.43}

SPECS: dict[str, Spec] = {s.name: s for s in [
    Spec("nested200k", "y ~ x + (1|school/class)", 200_000, {"school": 4000, "class_per_school": 5},
         NESTED, 20001, draw_nested),
    Spec("nested1m", "y ~ x + (1|school/class)", 1_000_000, {"school": 10_000, "class_per_school": 10},
         NESTED, 20002, draw_nested),
    Spec("slope1m", "y ~ x + (x|g)", 1_000_000, {"g": 20_000}, SLOPE, 20003, draw_slope),
    Spec("slope5m", "y ~ x + (x|g)", 5_000_000, {"g": 100_000}, SLOPE, 20004, draw_slope),
    Spec("crossed500k", "y ~ x + (1|subject) + (1|item)", 500_000, {"subject": 20_000, "item": 3000},
         CROSSED, 20005, draw_crossed),
    Spec("binary200k", "y ~ x + z + (1|district) + (x|school)", 200_000,
         {"district": 100, "school_per_district": 20}, BINARY, 20006, draw_binary, ("district", "school")),
    Spec("insteval_binary", "y4 ~ 1 + service + (1|s) + (1|d)", 73_421, {"s": 2972, "d": 1128},
         INSTEVAL_BINARY, 20007, draw_insteval_binary, ("s", "d")),
]}
# Data sets taken from elsewhere rather than drawn (insteval_binary is drawn only without InstEval.csv).
DERIVED = ("insteval_binary", "VerbAgg")
VERBAGG_COLUMNS = ("id", "item", "Anger", "Gender", "btype", "situ", "r2")


KNOWN = (*SPECS, *(n for n in DERIVED if n not in SPECS))


def file_name(name: str, scale: float = 1.0) -> str:
    return f"{name}.csv" if scale == 1.0 else f"{name}_s{scale:g}.csv"


def write_csv(path: Path, cols: dict[str, np.ndarray], chunk: int = 200_000) -> None:
    """CSV with integers as %d and floats to 6 significant digits (pandas' float_format="%.6g", byte for byte).

    One %-format over a whole chunk of rows is about four times faster than DataFrame.to_csv.
    """
    names = list(cols)
    row = ",".join("%d" if np.issubdtype(cols[k].dtype, np.integer) else "%.6g" for k in names) + "\n"
    n = len(cols[names[0]])
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            flat = np.empty(m * len(names), dtype=object)
            for j, k in enumerate(names):
                flat[j::len(names)] = cols[k][start:start + m].tolist()
            f.write((row * m) % tuple(flat))


def instevalb_from_csv(source: Path) -> dict[str, np.ndarray]:
    """s, d, service and y4 = (y >= 4) from lme4's InstEval written by write.csv (columns by name)."""
    with open(source, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        at = {k: header.index(k) for k in ("s", "d", "service", "y")}
        rows = list(reader)
    cols = {k: np.array([int(r[i]) for r in rows], dtype=np.int64) for k, i in at.items()}
    return {"s": cols["s"], "d": cols["d"], "service": cols["service"], "y4": (cols["y"] >= 4).astype(np.int64)}


def insteval_source() -> Path | None:
    from cases import INSTEVAL_CANDIDATES  # bench/ is the script's folder, so on sys.path

    return next((p for p in INSTEVAL_CANDIDATES if p.is_file()), None)


def shown(path: Path) -> str:
    """A path as NAME.json records it: relative to the repository when inside it (no machine's folders)."""
    root = HERE.parent
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def verbagg_fixture() -> Path | None:
    from cases import VERBAGG_FIXTURE

    return VERBAGG_FIXTURE if VERBAGG_FIXTURE.is_file() else None


VERBAGG_R_COLUMNS = ", ".join(f'"{c}"' for c in VERBAGG_COLUMNS)
R_VERBAGG = ("args <- commandArgs(trailingOnly = TRUE)\n"
             f"write.csv(lme4::VerbAgg[c({VERBAGG_R_COLUMNS})], args[1], row.names = FALSE)\n")


def write_verbagg(tmp: Path) -> str:
    """Copy the test fixture, or export lme4::VerbAgg with Rscript; return where it came from."""
    fixture = verbagg_fixture()
    if fixture is not None:
        shutil.copyfile(fixture, tmp)
        return shown(fixture)
    rscript = shutil.which("Rscript")
    if rscript is None:
        raise RuntimeError("VerbAgg needs the glmer test fixtures or Rscript with lme4")
    subprocess.run([rscript, "-e", R_VERBAGG, str(tmp)], check=True, stdout=subprocess.DEVNULL)
    return "lme4::VerbAgg, written by Rscript"


def write(name: str, folder: Path, scale: float = 1.0) -> tuple[Path, bool]:
    """Write one data set unless it exists; return its path and whether it was written now."""
    if name in DERIVED:
        scale = 1.0   # taken whole from elsewhere (or, for insteval_binary, drawn at the same size)
    path = folder / file_name(name, scale)
    if path.exists():
        return path, False
    folder.mkdir(parents=True, exist_ok=True)
    # Write under a temporary name and rename, so an interrupted run never leaves a truncated file
    # that a later run would take as finished.
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    if name == "VerbAgg":
        meta = {"formula": "r2 ~ Anger + Gender + btype + situ + (1|id) + (1|item)", "source": write_verbagg(tmp)}
    else:
        spec = SPECS[name]
        source = insteval_source() if name == "insteval_binary" else None
        cols = instevalb_from_csv(source) if source else spec.draw(spec, scale, np.random.default_rng(spec.seed))
        write_csv(tmp, cols)
        factors = spec.factors or tuple(k for k in cols if k not in ("x", "y"))
        meta = {"formula": spec.formula, "rows": len(next(iter(cols.values())))}
        if source:
            meta |= {"source": f"{shown(source)}, y4 = (y >= 4)"}
        else:
            meta |= {"seed": spec.seed, "scale": scale}
        meta |= {"groups": {k: len(np.unique(cols[k])) for k in factors}}
        if not source:
            meta |= {"true_parameters": spec.params}
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path, True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--only", default=",".join(KNOWN), help="comma-separated names (default: all)")
    ap.add_argument("--scale", type=float, default=1.0, help="shrink rows and groups by this factor")
    a = ap.parse_args(argv)
    names = [n for n in a.only.split(",") if n]
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        print(f"make_data: unknown data set {', '.join(unknown)} (known: {', '.join(KNOWN)})", file=sys.stderr)
        return 2
    if not 0 < a.scale <= 1:
        print("make_data: --scale must be in (0, 1]", file=sys.stderr)
        return 2
    for n in names:
        try:
            path, made = write(n, a.folder, a.scale)
        except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
            print(f"make_data: {n}: {e}", file=sys.stderr)
            return 2
        print(f"{'wrote' if made else 'exists'} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
