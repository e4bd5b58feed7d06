"""Where a CSV file's bytes come from: a path or stdin, plain or compressed, and its separator.

R's read.csv opens gzip, bzip2 and xz files transparently (it looks at the first bytes), so the
compression is detected from the magic bytes, whatever the file is called.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from mlmcli.errors import DataError

# the separators read.csv(sep = ) is commonly given; others are more likely a typo
SEPARATORS = {",": ",", ";": ";", "\t": "\t", "|": "|", "tab": "\t", "\\t": "\t"}
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"))
_SUFFIXES = (".gz", ".bz2", ".xz")
CHUNK = 1 << 23


def compression_of(head: bytes) -> str | None:
    """gzip, bz2 or xz from a file's first bytes; None for plain text."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


def _decompressor(kind: str, raw: io.BufferedIOBase) -> io.BufferedIOBase:
    if kind == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=raw)
    if kind == "bz2":
        import bz2

        return bz2.BZ2File(raw)
    import lzma

    return lzma.LZMAFile(raw)


def _open_error(source: str, exc: OSError) -> DataError:
    if isinstance(exc, FileNotFoundError):
        return DataError(f"cannot open file '{source}': no such file")
    if isinstance(exc, IsADirectoryError):
        return DataError(f"cannot open file '{source}': it is a directory")
    return DataError(f"cannot open file '{source}': {exc.strerror}")


def _corrupt(source: str, kind: str, exc: Exception) -> DataError:
    return DataError(f"cannot read '{source}': damaged {kind} data ({exc})")


@dataclass
class Source:
    """One CSV input: `name` as the user gave it; stdin is held in `data` (it can be read once only)."""

    name: str
    compression: str | None = None
    data: bytes | None = None

    @classmethod
    def open(cls, name: str) -> Source:
        """Check the file can be opened and detect its compression."""
        if name == "-":
            raw = sys.stdin.buffer.read()
            return cls(name, compression_of(raw[:6]), raw)
        try:
            with open(name, "rb") as fh:
                head = fh.read(6)
        except OSError as exc:
            raise _open_error(name, exc) from None
        return cls(name, compression_of(head))

    def size_on_disk(self) -> int:
        return len(self.data) if self.data is not None else os.path.getsize(self.name)

    def _raw(self) -> io.BufferedIOBase:
        if self.data is not None:
            return io.BytesIO(self.data)
        try:
            return open(self.name, "rb")
        except OSError as exc:
            raise _open_error(self.name, exc) from None

    def stream(self) -> io.BufferedIOBase:
        """The (decompressed) bytes as a binary file object."""
        raw = self._raw()
        return _decompressor(self.compression, raw) if self.compression else raw

    def read(self, limit: int = -1) -> bytes:
        """Up to `limit` (decompressed) bytes from the start; all of them by default."""
        if self.data is not None and not self.compression:
            return self.data if limit < 0 else self.data[:limit]
        try:
            with self.stream() as fh:
                return fh.read(limit)
        except (OSError, EOFError, ValueError) as exc:
            if self.compression:
                raise _corrupt(self.name, self.compression, exc) from None
            raise _open_error(self.name, exc) from None

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        """The (decompressed) bytes in pieces of `size`, for one pass without holding the file."""
        try:
            with self.stream() as fh:
                while piece := fh.read(size):
                    yield piece
        except (OSError, EOFError, ValueError) as exc:
            if self.compression:
                raise _corrupt(self.name, self.compression, exc) from None
            raise _open_error(self.name, exc) from None

    def base_name(self) -> str:
        """The file name without directory and compression suffix ("stdin" for -)."""
        if self.name == "-":
            return "stdin"
        base = os.path.basename(self.name)
        for suffix in _SUFFIXES:
            if base.lower().endswith(suffix):
                return base[: -len(suffix)]
        return base


def choose_separator(source: Source, sep: str | None) -> str:
    """read.csv's sep: the one given, else a tab for a .tsv file and a comma otherwise."""
    if sep is None:
        return "\t" if source.base_name().lower().endswith(".tsv") else ","
    if sep not in SEPARATORS:
        raise DataError(f"unsupported separator {sep!r}: use one of ',', ';', tab ('\\t') or '|'")
    return SEPARATORS[sep]


def decode(raw: bytes) -> str:
    """UTF-8 (a byte-order mark dropped), else Latin-1 as R reads a file in an unknown encoding."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
