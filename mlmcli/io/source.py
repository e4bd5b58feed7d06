"""Where a CSV file's bytes come from: a path or stdin, plain or compressed, and its separator.

R's read.csv opens gzip, bzip2 and xz files transparently (it looks at the first bytes), so the
compression is detected from the magic bytes, whatever the file is called. Text in UTF-16 or UTF-32
with a byte-order mark is read as read.csv(fileEncoding = "UTF-16") reads it; binary data is
refused from its first block.
"""

from __future__ import annotations

import codecs
import io
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from mlmcli.errors import DataError

# the separators read.csv(sep = ) is commonly given; others are more likely a typo
SEPARATORS = {",": ",", ";": ";", "\t": "\t", "|": "|", "tab": "\t", "\\t": "\t"}
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"))
_SUFFIXES = (".gz", ".bz2", ".xz")
CHUNK = 1 << 23
# the first block, looked at for binary data and byte-order marks before any parsing
HEAD_BYTES = 1 << 16
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# control bytes text does not hold (tab, line ends, form feed and escape aside)
_BINARY_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13, 27))


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


def line_of(text: bytes | str, pos: int) -> int:
    """The 1-based line of position `pos` (\\n, \\r\\n and \\r end lines)."""
    nl, cr = ("\n", "\r") if isinstance(text, str) else (b"\n", b"\r")
    before = text[:pos]
    return before.count(nl) + before.count(cr) - before.count(cr + nl) + 1


def nul_in_field(source: str, line: int) -> DataError:
    # read.csv warns of "embedded nul(s)" and reads on; the fields it gives are not the file's
    return DataError(f"'{source}' line {line}: a NUL byte inside a field (the file is damaged or not text)")


@dataclass
class Source:
    """One CSV input: `name` as the user gave it; stdin is held in `data` (it can be read once only)."""

    name: str
    compression: str | None = None
    data: bytes | None = None

    @classmethod
    def open(cls, name: str) -> Source:
        """Check the file can be opened and detect its compression."""
        try:
            if name == "-":
                raw = sys.stdin.buffer.read()
                return cls(name, compression_of(raw[:6]), raw)
            with open(name, "rb") as fh:
                if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                    # a pipe, a device or /dev/fd/N gives its bytes once: they are held, as stdin's are
                    raw = fh.read()
                    return cls(name, compression_of(raw[:6]), raw)
                head = fh.read(6)
        except OSError as exc:
            raise _open_error(name, exc) from None
        return cls(name, compression_of(head))

    def check_text(self) -> None:
        """Refuse binary data from the first block; re-encode UTF-16 and UTF-32 text (told by its
        byte-order mark) as UTF-8, so that every reader sees UTF-8."""
        head = self.read(HEAD_BYTES)
        for bom, encoding in _WIDE_BOMS:
            if head.startswith(bom):
                try:
                    text = self.read().decode(encoding)
                except UnicodeDecodeError as exc:
                    raise DataError(
                        f"cannot read '{self.name}': it starts as {encoding.upper()} text, "
                        f"but byte {exc.start} is not {encoding.upper()}"
                    ) from None
                self.data, self.compression = text.encode("utf-8"), None
                return
        if len(head) == HEAD_BYTES and not head.strip():
            raise DataError(f"'{self.name}': no header line in the first {HEAD_BYTES // 1024} KiB, only blanks")
        nul = head.find(b"\x00")
        if nul < 0:
            return
        odd, even = head[1::2].count(0), head[0::2].count(0)
        if max(odd, even) > len(head) // 4 and min(odd, even) < len(head) // 64:  # ASCII as UTF-16
            raise DataError(
                f"'{self.name}' looks like UTF-16 text without a byte-order mark: "
                "save it as UTF-8 (or as UTF-16 with its byte-order mark)"
            )
        line = line_of(head, nul)
        text_like = not any(head.find(bytes([b])) >= 0 for b in _BINARY_BYTES[1:])
        if line > 1 and text_like and head.count(0) < 16:
            raise nul_in_field(self.name, line)
        raise DataError(f"'{self.name}' looks like a binary file, not CSV text (it holds NUL bytes)")

    def nul_line(self) -> int | None:
        """The line of the first NUL byte in the (decompressed) data, None if there is none."""
        if self.data is not None and not self.compression:
            pos = self.data.find(b"\x00")
            return None if pos < 0 else line_of(self.data, pos)
        lines, crlf_split = 1, False
        for piece in self.chunks():
            pos = piece.find(b"\x00")
            lines += line_of(piece, len(piece) if pos < 0 else pos) - 1 - (crlf_split and piece[:1] == b"\n")
            if pos >= 0:
                return lines
            crlf_split = piece.endswith(b"\r")
        return None

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
