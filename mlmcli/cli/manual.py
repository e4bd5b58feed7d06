"""man: the manual page, wherever pip put it, without MANPATH: through a pager on a terminal, as
plain text into a pipe."""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

from mlmcli.cli.app import app, examples
from mlmcli.cli.common import _emit
from mlmcli.errors import MlmError


def page_path() -> Path:
    """The installed page: package data (mlmcli/man/mlm.1), else where pip's data files put it."""
    from importlib.resources import files

    shipped = files("mlmcli") / "man" / "mlm.1"
    candidates = [
        Path(str(shipped)),
        Path(sys.prefix) / "share" / "man" / "man1" / "mlm.1",
        Path(__file__).resolve().parents[2] / "man" / "mlm.1",
    ]  # a source checkout
    for path in candidates:
        if path.is_file():
            return path
    raise MlmError("the manual page mlm.1 is not installed with this copy of mlm")


_FONT = re.compile(r"\\f[BIRP]|\\f\(..|\\f\[[A-Z]*\]")
_SPECIAL = {
    r"\-": "-",
    r"\(S2": "²",
    r"\[:a]": "ä",
    r"\(em": "—",
    r"\(en": "–",
    r"\e": "\\",
    r"\&": "",
    r"\ ": " ",
    r"\(aq": "'",
    r"\(dq": '"',
    r"\(co": "©",
    r"\(mu": "×",
    r"\|": "",
    r"\^": "",
}


def _inline(text: str) -> str:
    text = _FONT.sub("", text)
    for roff, plain in _SPECIAL.items():
        text = text.replace(roff, plain)
    return text.replace("\\\\", "\\")


def _macro_words(args: str) -> str:
    """.B/.BR/.I arguments: words, or quoted phrases, set without the spaces alternating fonts remove."""
    return "".join(shlex.split(args.replace("\\", "\\\\"), posix=True)) if args else ""


def roff_to_text(roff: str) -> str:
    """The page as plain text: section names flush left, paragraphs indented, a .TP paragraph under
    its tag; enough of man(7) for mlm.1."""
    out: list[str] = []
    tagged = tag_next = False
    for line in roff.splitlines():
        if line.startswith('.\\"'):
            continue
        name, text = "", line
        if line.startswith("."):
            name, _, args = line[1:].partition(" ")
            if name == "TH":
                title = shlex.split(args)
                out.append(f"{title[0]}({title[1]})" if len(title) > 1 else args)
            elif name in ("SH", "SS"):
                out += ["", _inline(args.strip('"'))]
                tagged = False
            elif name in ("PP", "P", "LP", "TP"):
                out.append("")
                tagged = tag_next = name == "TP"
            if name not in ("B", "I", "BR", "RB", "IR", "RI", "BI", "IB"):
                continue
            text = _macro_words(args) if len(name) == 2 else args.strip('"')
        indent = 14 if tagged and not tag_next else 7
        out.append(" " * indent + _inline(text))
        tag_next = False
    return "\n".join(out).strip("\n") + "\n"


@app.command(epilog=examples("mlm man", "mlm man | grep -A3 -- --where"))
def man() -> None:
    """Show the manual page (mlm.1): through a pager on a terminal, as plain text into a pipe or file."""
    import shutil
    import subprocess

    path = page_path()
    if not sys.stdout.isatty():
        _emit(roff_to_text(path.read_text(encoding="utf-8")), None)
        return
    sys.stdout.flush()
    if shutil.which("man"):  # man formats the page and honours MANPAGER and PAGER itself
        code = subprocess.call(["man", "-l", str(path)])
        if code == 0:
            return
    text = roff_to_text(path.read_text(encoding="utf-8"))
    pager = os.environ.get("MANPAGER") or os.environ.get("PAGER") or ("less" if shutil.which("less") else "")
    if pager:
        try:
            subprocess.run(shlex.split(pager), input=text, text=True, check=False)
            return
        except OSError:
            pass
    _emit(text, None)
