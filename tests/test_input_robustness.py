"""Input a pipeline can hand the command: pipes, devices, other encodings, binary and damaged files,
duplicated column names, numbers spoiled by one word. Each case runs the command in a subprocess, as
a shell would; `timeout=` only keeps a returning hang from stalling the suite."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.commands import run

ROOT = Path(__file__).resolve().parent.parent
HECK = ROOT / "sample_data" / "heck2011.csv"
MODEL = "math ~ ses + (1|schcode)"
ENGINES = ["python", "pandas", "arrow"]
HANG_GUARD = 300  # seconds; a fit of heck2011 takes about one


def mlm(*args: str, env: dict | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    p = run(*args, input=stdin, capture_output=True, env=env, timeout=HANG_GUARD)
    return subprocess.CompletedProcess(p.args, p.returncode, p.stdout.decode(), p.stderr.decode())


def one_error_line(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlm: error: "), p.stderr
    return lines[0]


def estimates(p: subprocess.CompletedProcess) -> tuple[float, list[tuple[str, float, float]]]:
    """The criterion and the fixed effects (term, estimate, standard error) of `fit -f json`."""
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    return report["criterion"], [(f["term"], f["estimate"], f["std_error"]) for f in report["fixed_effects"]]


@pytest.fixture(scope="module")
def heck_fit() -> tuple[float, list[tuple[str, float, float]]]:
    return estimates(mlm("fit", str(HECK), MODEL, "-f", "json"))


# ------------------------------------------------------------ inputs that are not regular files


def _fit_through_fifo(fifo: Path, payload: Path) -> subprocess.CompletedProcess:
    """`mlm fit FIFO` while `cat` writes `payload` into the FIFO."""
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", 'cat "$1" > "$2"', "sh", str(payload), str(fifo)], stderr=subprocess.DEVNULL)
    try:
        return mlm("fit", str(fifo), MODEL, "-f", "json")
    finally:
        if writer.poll() is None:  # the command never opened the FIFO: the writer still waits
            writer.kill()
        writer.wait()


def test_a_fifo_is_read_once(tmp_path, heck_fit):
    """A named pipe gives its bytes once: opening it twice lost the first bytes or hung."""
    assert estimates(_fit_through_fifo(tmp_path / "p.csv", HECK)) == heck_fit


def test_compressed_data_through_a_fifo(tmp_path, heck_fit):
    gz = tmp_path / "heck2011.csv.gz"
    gz.write_bytes(gzip.compress(HECK.read_bytes()))
    assert estimates(_fit_through_fifo(tmp_path / "p.csv", gz)) == heck_fit


@pytest.mark.parametrize("compress", [False, True])
def test_dev_stdin_is_read_once(heck_fit, compress):
    data = HECK.read_bytes()
    p = mlm("fit", "/dev/stdin", MODEL, "-f", "json", stdin=gzip.compress(data) if compress else data)
    assert estimates(p) == heck_fit


def test_parquet_through_a_fifo(tmp_path, heck_fit):
    """Parquet's reader seeks: the bytes of a pipe are held in memory first."""
    import pandas as pd

    parquet = tmp_path / "heck2011.parquet"
    pd.read_csv(HECK).to_parquet(parquet)
    assert estimates(_fit_through_fifo(tmp_path / "p.parquet", parquet)) == heck_fit


# ------------------------------------------------------------ encodings


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be-bom", "utf-8-sig", "utf-32"])
def test_text_with_a_byte_order_mark_fits_as_utf8(tmp_path, heck_fit, encoding):
    """UTF-16 and UTF-32 with their byte-order mark, as read.csv(fileEncoding = ...) reads them
    (Excel's "Unicode text" is UTF-16 LE), and UTF-8 with a byte-order mark."""
    text = HECK.read_text(encoding="utf-8")
    path = tmp_path / "heck2011.csv"
    if encoding == "utf-16-be-bom":
        path.write_bytes(b"\xfe\xff" + text.encode("utf-16-be"))
    else:
        path.write_text(text, encoding=encoding)
    for engine in ENGINES:
        assert estimates(mlm("fit", str(path), MODEL, "-f", "json", env={"MLM_CSV_ENGINE": engine})) == heck_fit


def test_utf16_without_a_byte_order_mark_is_named(tmp_path):
    path = tmp_path / "heck2011.csv"
    path.write_bytes(HECK.read_text().encode("utf-16-le"))
    line = one_error_line(mlm("fit", str(path), MODEL))
    assert line == (
        f"mlm: error: '{path}' looks like UTF-16 text without a byte-order mark: "
        "save it as UTF-8 (or as UTF-16 with its byte-order mark)"
    )


# ------------------------------------------------------------ binary and damaged files


def test_a_file_of_nul_bytes_is_refused_as_binary(tmp_path):
    """Refused from its first block, before the whole file is parsed."""
    path = tmp_path / "zeros.csv"
    path.write_bytes(bytes(4 << 20))
    line = one_error_line(mlm("fit", str(path), MODEL))
    assert line == f"mlm: error: '{path}' looks like a binary file, not CSV text (it holds NUL bytes)"


def test_binary_data_through_a_pipe_is_refused():
    p = mlm("fit", "-", MODEL, stdin=b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 64)
    assert one_error_line(p) == "mlm: error: '-' looks like a binary file, not CSV text (it holds NUL bytes)"


def test_a_first_block_of_blanks_is_no_header(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_bytes(b" \n" * (1 << 20))
    line = one_error_line(mlm("fit", str(path), MODEL))
    assert line == f"mlm: error: '{path}': no header line in the first 64 KiB, only blanks"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("where", ["early", "late", "late-gzip"])
def test_a_nul_byte_inside_a_field_names_its_line(tmp_path, engine, where):
    """In the first block or far after it, plain or compressed: every reader names the line."""
    lines = HECK.read_bytes().split(b"\n")
    target = 41 if where == "early" else 6001  # 1-based, the header being line 1
    fields = lines[target - 1].split(b",")
    fields[3] = fields[3] + b"\x00"
    lines[target - 1] = b",".join(fields)
    data = b"\n".join(lines)
    path = tmp_path / ("heck2011.csv.gz" if where.endswith("gzip") else "heck2011.csv")
    path.write_bytes(gzip.compress(data) if where.endswith("gzip") else data)
    line = one_error_line(mlm("fit", str(path), MODEL, env={"MLM_CSV_ENGINE": engine}))
    assert line == (f"mlm: error: '{path}' line {target}: a NUL byte inside a field (the file is damaged or not text)")


# ------------------------------------------------------------ column names and types


@pytest.mark.parametrize("suffix", ["parquet", "feather"])
def test_a_duplicated_column_name_is_made_unique(tmp_path, suffix):
    """As make.unique makes it (the CSV reader's rule): the second 'math' is 'math.1'."""
    import pyarrow as pa
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    csv = tmp_path / "d.csv"
    rows = [
        (57.1 + (i % 7) * 1.3 + (i % 3) * 0.7, 50.0 + (i % 11) * 0.9, 0.1 * (i % 5), f"s{i % 9}") for i in range(180)
    ]
    csv.write_text("math,math,ses,school\n" + "".join(f"{a},{b},{c},{d}\n" for a, b, c, d in rows))
    columns = list(zip(*rows, strict=True))
    table = pa.Table.from_arrays([pa.array(c) for c in columns], names=["math", "math", "ses", "school"])
    path = tmp_path / f"d.{suffix}"
    (pq.write_table if suffix == "parquet" else feather.write_feather)(table, str(path))
    for formula in ("math.1 ~ ses + (1|school)", "math ~ math.1 + (1|school)"):
        got, expected = (estimates(mlm("fit", str(f), formula, "-f", "json")) for f in (path, csv))
        assert got == expected
    assert [t for t, _, _ in got[1]] == ["(Intercept)", "math.1"]


def test_numbers_with_one_word_are_read_as_text_with_a_note(tmp_path):
    """R reads such a column as a factor too; the note names it and its first words, and the
    exit status stays 0. Columns the model does not use give no note."""
    lines = HECK.read_text().splitlines()
    header = lines[0].split(",")
    for k, word in ((300, "n/a"), (310, "?"), (320, "n/a")):
        fields = lines[k].split(",")
        fields[header.index("female")] = word
        fields[header.index("ses")] = word
        lines[k] = ",".join(fields)
    path = tmp_path / "heck2011.csv"
    path.write_text("\n".join(lines) + "\n")
    note = 'mlm: note: column \'female\' is read as text (a factor): values that are not numbers: "n/a", "?"'
    for engine in ENGINES:
        p = mlm("fit", str(path), "math ~ female + (1|schcode)", "-f", "json", env={"MLM_CSV_ENGINE": engine})
        assert p.returncode == 0, p.stderr
        assert [line for line in p.stderr.splitlines() if line.startswith("mlm: note: column")] == [note]
        terms = [f["term"] for f in json.loads(p.stdout)["fixed_effects"]]
        assert terms == ["(Intercept)", "female0", "female1", "femalen/a"]  # a factor; "?" sorts first, as in R
