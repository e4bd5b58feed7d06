"""R's deparse() of a formula's syntax tree: how lme4 prints terms and formulas."""

from __future__ import annotations

import re

from mlmcli.formula.syntax import COMPARISONS, Binary, Bool, Call, Node, Num, Paren, Str, Sym, Unary
from mlmcli.rcompat.names import RESERVED
from mlmcli.rcompat.rsort import format_number

# ------------------------------------------------------------------- deparse

# printed with spaces, line breaks allowed after (R's PP_BINARY and user %op%; %% and %/% are not)
_PP_BINARY = {"~", "+", "-", "*", "|", "||"} | COMPARISONS
_SYNTACTIC = re.compile(r"(?:[^\W\d_]|\.(?!\d))[\w.]*|\.")


def _symbol_text(name: str) -> str:
    if _SYNTACTIC.fullmatch(name) and name not in RESERVED:
        return name
    return "`" + name.replace("`", "\\`") + "`"


class _Deparser:
    """R's deparse(): the same text and the same line breaks at width.cutoff."""

    def __init__(self, cutoff: int, keep_integer: bool = True) -> None:
        self.cutoff = cutoff
        self.keep_integer = keep_integer
        self.lines: list[str] = []
        self.buf: list[str] = []
        self.len = 0
        self.indent = 0
        self.startline = True

    def put(self, s: str) -> None:
        if self.startline:
            self.startline = False
            for i in range(1, self.indent + 1):
                tab = "    " if i <= 4 else "  "
                self.buf.append(tab)
                self.len += len(tab)
        self.buf.append(s)
        self.len += len(s.encode("utf-8"))  # R counts bytes

    def writeline(self) -> None:
        self.lines.append("".join(self.buf))
        self.buf = []
        self.len = 0
        self.startline = True

    def linebreak(self, broke: bool) -> bool:
        if self.len > self.cutoff:
            if not broke:
                broke = True
                self.indent += 1
            self.writeline()
        return broke

    def node(self, n: Node) -> None:
        if isinstance(n, Sym):
            self.put(_symbol_text(n.name))
        elif isinstance(n, Num):
            self.put(n.text if self.keep_integer else format_number(n.value))
        elif isinstance(n, Bool):
            self.put("TRUE" if n.value else "FALSE")
        elif isinstance(n, Str):
            self.put('"' + n.value.replace("\\", "\\\\").replace('"', '\\"') + '"')
        elif isinstance(n, Paren):
            self.put("(")
            self.node(n.inner)
            self.put(")")
        elif isinstance(n, Unary):
            self.put(n.op)
            self.node(n.arg)
        elif isinstance(n, Binary):
            self.node(n.left)
            if n.op in _PP_BINARY or (n.op.startswith("%") and n.op not in ("%%", "%/%")):
                self.put(f" {n.op} ")
                broke = self.linebreak(False)
                self.node(n.right)
                if broke:
                    self.indent -= 1
            else:
                self.put(n.op)
                self.node(n.right)
        elif isinstance(n, Call):
            self.put(_symbol_text(n.fn))
            self.put("(")
            broke = False
            for i, arg in enumerate(n.args):
                if n.names[i] is not None:
                    self.put(f"{_symbol_text(n.names[i])} = ")
                self.node(arg)
                if i < len(n.args) - 1:
                    self.put(", ")
                    broke = self.linebreak(broke)
            if broke:
                self.indent -= 1
            self.put(")")
        else:  # pragma: no cover
            raise TypeError(n)


def deparse_node(node: Node, cutoff: int = 60, keep_integer: bool = True) -> list[str]:
    """R's deparse(expr, width.cutoff = cutoff) of a syntax tree."""
    d = _Deparser(cutoff, keep_integer)
    d.node(node)
    d.writeline()
    return d.lines


def _line(node: Node) -> str:
    """One-line deparse, as lme4 names grouping factors and terms (deparse1)."""
    return " ".join(deparse_node(node, 500))


def _label(node: Node) -> str:
    """A variable's name as terms() gives it (R's simple deparse: 2L prints as 2)."""
    return " ".join(deparse_node(node, 500, keep_integer=False))
