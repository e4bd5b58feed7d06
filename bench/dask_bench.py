#!/usr/bin/env python3
"""--engine dask against the in-memory engine on y ~ x + (x|g): 100k groups (fewer below 5M rows: 50 rows each);
with --family binomial on y ~ x + (1|g) with a binary y, 500 rows a group.

    python bench/dask_bench.py data N [DIR] [--parts K] [--csv] [--family binomial]
    python bench/dask_bench.py run DIR [--scheduler ADDRESS] [--memory] [--timeout SECONDS]

`data` writes N rows (fixed seed: the same command writes the same rows) as K Parquet files in
DIR/slope_N/ (default bench/data/dask/, 64 parts), and with --csv the same rows as one CSV file
DIR/slope_N.csv (shortest round-trip decimals, so both hold the same numbers) for the in-memory
engine.  `run` times `mlm fit DIR/slope_N "y ~ x + (x|g)" --engine dask -f json` (a local cluster of
one worker per core, or --scheduler) and with --memory `mlm fit DIR/slope_N.csv ...`, and prints
wall time, peak RSS and the REML criterion of each as a Markdown table.  `data --family binomial`
writes DIR/binary_N/ (and DIR/binary_N.csv) piece by piece, one Parquet file per piece (memory holds
one piece, so 50M rows fit), and `run` on such a folder fits `mlm fit ... --family binomial` and
prints the deviance, beta and theta.  The peak RSS of a process
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
# --family binomial: y ~ x + (1|g), ROWS_PER_GROUP rows a group, logit link
BINARY_FORMULA = "y ~ x + (1|g)"
ROWS_PER_GROUP = 500
BINARY_BETA = (-0.5, 0.8)
BINARY_SD = 0.7


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


def write_binary(n: int, folder: Path, parts: int, csv: bool) -> Path:
    """N rows of the binary model in PARTS pieces, each drawn alone (seed SEED + piece) and written as
    one Parquet file and appended to the CSV copy: memory holds one piece, never all N rows.  The
    groups' rows are contiguous (as schools' pupils usually are), each piece holding its own groups."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    target = folder / f"binary_{n}"
    path = folder / f"binary_{n}.csv"
    if target.exists() and (path.exists() or not csv):
        return target
    groups = max(2 * parts, n // ROWS_PER_GROUP)
    tmp = folder / f".binary_{n}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    csv_tmp = path.with_suffix(".tmp")
    writer = None
    try:
        for i, (rows, gs) in enumerate(zip(np.array_split(np.arange(n), parts),
                                           np.array_split(np.arange(groups), parts))):
            rng = np.random.default_rng(SEED + i)
            u = rng.normal(0.0, BINARY_SD, len(gs))
            g = np.sort(rng.integers(0, len(gs), len(rows)))
            x = rng.normal(0.0, 1.0, len(rows))
            eta = BINARY_BETA[0] + BINARY_BETA[1] * x + u[g]
            y = (rng.random(len(rows)) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
            table = pa.table({"g": gs[g] + 1, "x": x, "y": y})
            pq.write_table(table, tmp / f"part{i:04d}.parquet")
            if csv:
                if writer is None:
                    writer = pacsv.CSVWriter(csv_tmp, table.schema)
                writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    if target.exists():
        import shutil

        shutil.rmtree(tmp)
    else:
        tmp.rename(target)
    if csv:
        csv_tmp.replace(path)
    return target


def time_fit(data: str, extra: list[str], formula: str = FORMULA, timeout: float | None = None) -> dict:
    r = procs.run([sys.executable, "-m", "mlmcli", "fit", data, formula, "-f", "json", *extra], timeout=timeout)
    out = json.loads(r.stdout) if r.ok else {}
    crit = out.get("criterion", out.get("deviance"))
    error = "timed out" if r.timed_out else r.stderr.strip().splitlines()[-1] if not r.ok and r.stderr.strip() else ""
    return {"seconds": r.seconds, "rss_mb": r.rss_mb, "criterion": crit, "ok": r.ok, "error": error,
            "beta": [e["estimate"] for e in out.get("fixed_effects", [])], "theta": out.get("theta")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data")
    d.add_argument("rows", type=int)
    d.add_argument("folder", nargs="?", type=Path, default=DEFAULT_DIR)
    d.add_argument("--parts", type=int, default=64)
    d.add_argument("--csv", action="store_true", help="also the same rows as one CSV file")
    d.add_argument("--family", choices=["binomial"], default=None, help="the binary model's rows instead")
    r = sub.add_parser("run")
    r.add_argument("data", type=Path, help="a folder written by `data`")
    r.add_argument("--scheduler", default=None)
    r.add_argument("--memory", action="store_true", help="also the in-memory engine on DATA.csv")
    r.add_argument("--timeout", type=float, default=None, help="seconds each fit may take")
    args = ap.parse_args(argv)
    if args.cmd == "data":
        make = write_binary if args.family else write
        print(make(args.rows, args.folder, args.parts, args.csv))
        return 0
    binary = args.data.name.startswith("binary_")
    formula, extra = (BINARY_FORMULA, ["--family", "binomial"]) if binary else (FORMULA, [])
    rows = [("mlm --engine dask", time_fit(str(args.data), ["--engine", "dask", *extra]
                                           + (["--scheduler", args.scheduler] if args.scheduler else []),
                                           formula, args.timeout))]
    if args.memory:
        rows.append(("mlm (in memory)", time_fit(str(args.data) + ".csv", extra, formula, args.timeout)))
    what = "deviance" if binary else "REML criterion"
    print(f"`{formula}` on {args.data.name}\n")
    print(f"| engine | wall time | peak RSS | {what} | beta | theta |\n| --- | --- | --- | --- | --- | --- |")
    for name, m in rows:
        crit = f"{m['criterion']:.6f}" if m["ok"] else f"failed: {m['error']}"
        beta = ", ".join(f"{b:.6f}" for b in m["beta"])
        theta = ", ".join(f"{t:.6f}" for t in m["theta"] or [])
        print(f"| {name} | {m['seconds']:.1f} s | {m['rss_mb']:.0f} MB | {crit} | {beta} | {theta} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
