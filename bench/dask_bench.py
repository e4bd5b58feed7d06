#!/usr/bin/env python3
"""--engine dask against the in-memory engine on y ~ x + (x|g): 100k groups (fewer below 5M rows: 50 rows each).

    python bench/dask_bench.py data N [DIR] [--parts K] [--csv]
    python bench/dask_bench.py run DIR [--scheduler ADDRESS] [--memory]

`data` writes N rows (fixed seed: the same command writes the same rows) as K Parquet files in
DIR/slope_N/ (default bench/data/dask/, 64 parts), and with --csv the same rows as one CSV file
DIR/slope_N.csv (shortest round-trip decimals, so both hold the same numbers) for the in-memory
engine.  `run` times `mlm fit DIR/slope_N "y ~ x + (x|g)" --engine dask -f json` (a local cluster of
one worker per core, or --scheduler) and with --memory `mlm fit DIR/slope_N.csv ...`, and prints
wall time, peak RSS and the REML criterion of each as a Markdown table.  The peak RSS of a process
includes the children it started: with a local cluster that is the largest worker, with
--scheduler the client alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import make_data  # noqa: E402
import procs  # noqa: E402

DEFAULT_DIR = HERE / "data" / "dask"
FORMULA = "y ~ x + (x|g)"
GROUPS = 100_000
SEED = 20010


def write(n: int, folder: Path, parts: int, csv: bool) -> Path:
    """N rows of the slope model as Parquet parts (and a CSV copy); nothing is rewritten."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    target = folder / f"slope_{n}"
    spec = make_data.Spec(f"slope_{n}", FORMULA, n, {"g": min(GROUPS, max(2, n // 50))}, make_data.SLOPE, SEED,
                          make_data.draw_slope)
    cols = None
    if not target.exists():
        cols = spec.draw(spec, 1.0, np.random.default_rng(SEED))
        tmp = folder / f".slope_{n}.tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        for i, idx in enumerate(np.array_split(np.arange(n), parts)):
            table = pa.table({k: v[idx[0]:idx[-1] + 1] for k, v in cols.items()})
            pq.write_table(table, tmp / f"part{i:04d}.parquet")
        tmp.rename(target)
    path = folder / f"slope_{n}.csv"
    if csv and not path.exists():
        if cols is None:
            cols = spec.draw(spec, 1.0, np.random.default_rng(SEED))
        tmp = path.with_suffix(".tmp")
        pacsv.write_csv(pa.table(cols), tmp)
        tmp.replace(path)
    return target


def time_fit(data: str, extra: list[str]) -> dict:
    r = procs.run([sys.executable, "-m", "mlmcli", "fit", data, FORMULA, "-f", "json", *extra])
    crit = json.loads(r.stdout)["criterion"] if r.ok else None
    return {"seconds": r.seconds, "rss_mb": r.rss_mb, "criterion": crit, "ok": r.ok,
            "error": r.stderr.strip().splitlines()[-1] if not r.ok and r.stderr.strip() else ""}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data")
    d.add_argument("rows", type=int)
    d.add_argument("folder", nargs="?", type=Path, default=DEFAULT_DIR)
    d.add_argument("--parts", type=int, default=64)
    d.add_argument("--csv", action="store_true", help="also the same rows as one CSV file")
    r = sub.add_parser("run")
    r.add_argument("data", type=Path, help="a folder written by `data`")
    r.add_argument("--scheduler", default=None)
    r.add_argument("--memory", action="store_true", help="also the in-memory engine on DATA.csv")
    args = ap.parse_args(argv)
    if args.cmd == "data":
        print(write(args.rows, args.folder, args.parts, args.csv))
        return 0
    rows = [("mlm --engine dask", time_fit(str(args.data), ["--engine", "dask"]
                                           + (["--scheduler", args.scheduler] if args.scheduler else [])))]
    if args.memory:
        rows.append(("mlm (in memory)", time_fit(str(args.data) + ".csv", [])))
    print(f"`{FORMULA}` on {args.data.name}\n")
    print("| engine | wall time | peak RSS | REML criterion |\n| --- | --- | --- | --- |")
    for name, m in rows:
        crit = f"{m['criterion']:.6f}" if m["ok"] else f"failed: {m['error']}"
        print(f"| {name} | {m['seconds']:.1f} s | {m['rss_mb']:.0f} MB | {crit} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
