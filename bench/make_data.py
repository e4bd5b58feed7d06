#!/usr/bin/env python3
"""Write the benchmark's simulated data sets as CSV files, each a linear mixed model with known parameters.

    python bench/make_data.py [DIR] [--only nested200k,slope1m] [--scale 0.01]

DIR defaults to bench/data/ (git-ignored). Files that already exist are left alone, so the runner can
call this before every run. Fixed seeds: the same command writes the same bytes. Next to each CSV a
NAME.json records the true parameters and the formula.

  nested200k   4000 schools x 5 classes, ~10 pupils a class        y ~ x + (1|school/class)
  nested1m     10,000 schools x 10 classes, ~10 pupils a class     y ~ x + (1|school/class)
  slope1m      20k groups, ~50 rows each                           y ~ x + (x|g)
  slope5m      100k groups, ~50 rows each                          y ~ x + (x|g)
  crossed500k  20k subjects x 3k items, each row a random pair     y ~ x + (1|subject) + (1|item)

Class labels run 1..K within each school (as in most school data), so the nesting must be spelled
school/class. --scale s shrinks rows and group counts by s (at least 2 groups each) and writes
NAME_s<s>.csv, for quick checks of the runner.
"""

from __future__ import annotations

import argparse
import json
import os
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


NESTED = {"b0": 50.0, "b1": 2.0, "sd_school": 3.0, "sd_class": 1.5, "sigma": 5.0}
SLOPE = {"b0": 10.0, "b1": 1.5, "sd_int": 2.0, "sd_slope": 0.8, "corr": 0.3, "sigma": 3.0}
CROSSED = {"b0": 100.0, "b1": 3.0, "sd_subject": 4.0, "sd_item": 2.0, "sigma": 6.0}

SPECS: dict[str, Spec] = {s.name: s for s in [
    Spec("nested200k", "y ~ x + (1|school/class)", 200_000, {"school": 4000, "class_per_school": 5},
         NESTED, 20001, draw_nested),
    Spec("nested1m", "y ~ x + (1|school/class)", 1_000_000, {"school": 10_000, "class_per_school": 10},
         NESTED, 20002, draw_nested),
    Spec("slope1m", "y ~ x + (x|g)", 1_000_000, {"g": 20_000}, SLOPE, 20003, draw_slope),
    Spec("slope5m", "y ~ x + (x|g)", 5_000_000, {"g": 100_000}, SLOPE, 20004, draw_slope),
    Spec("crossed500k", "y ~ x + (1|subject) + (1|item)", 500_000, {"subject": 20_000, "item": 3000},
         CROSSED, 20005, draw_crossed),
]}


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


def write(name: str, folder: Path, scale: float = 1.0) -> tuple[Path, bool]:
    """Write one data set unless it exists; return its path and whether it was written now."""
    spec = SPECS[name]
    path = folder / file_name(name, scale)
    if path.exists():
        return path, False
    folder.mkdir(parents=True, exist_ok=True)
    cols = spec.draw(spec, scale, np.random.default_rng(spec.seed))
    # Write under a temporary name and rename, so an interrupted run never leaves a truncated file
    # that a later run would take as finished.
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    write_csv(tmp, cols)
    tmp.replace(path)
    meta = {"formula": spec.formula, "rows": len(cols["y"]), "seed": spec.seed, "scale": scale,
            "groups": {k: len(np.unique(v)) for k, v in cols.items() if k not in ("x", "y")},
            "true_parameters": spec.params}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path, True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--only", default=",".join(SPECS), help="comma-separated names (default: all)")
    ap.add_argument("--scale", type=float, default=1.0, help="shrink rows and groups by this factor")
    a = ap.parse_args(argv)
    names = [n for n in a.only.split(",") if n]
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        print(f"make_data: unknown data set {', '.join(unknown)} (known: {', '.join(SPECS)})", file=sys.stderr)
        return 2
    if not 0 < a.scale <= 1:
        print("make_data: --scale must be in (0, 1]", file=sys.stderr)
        return 2
    for n in names:
        path, made = write(n, a.folder, a.scale)
        print(f"{'wrote' if made else 'exists'} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
