"""The formula's syntax tree, tokenizer and parser, with R's operator precedence."""

from __future__ import annotations

import re

from mlmcli.errors import FormulaError
from mlmcli.rcompat.rsort import format_number

# ----------------------------------------------------------------- syntax tree


class Node:
    """A syntax tree node. Nodes are equal when of one kind with equal fields; `pos`, the
    offset in the formula text, only serves error messages. (Plain slotted classes, not
    dataclasses, to keep the import fast.)"""

    __slots__ = ("pos",)

    def _key(self) -> tuple:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._key()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self._key()!r}"


class Sym(Node):
    __slots__ = ("name",)

    def __init__(self, name: str, *, pos: int = 0) -> None:
        self.name, self.pos = name, pos

    def _key(self) -> tuple:
        return (self.name,)


class Num(Node):
    __slots__ = ("value", "integer")

    def __init__(self, value: float, integer: bool = False, *, pos: int = 0) -> None:
        self.value, self.integer, self.pos = value, integer, pos  # integer: R's 2L

    def _key(self) -> tuple:
        return (self.value, self.integer)

    @property
    def text(self) -> str:
        return f"{int(self.value)}L" if self.integer else format_number(self.value)


class Bool(Node):
    """R's logical constants TRUE and FALSE."""

    __slots__ = ("value",)

    def __init__(self, value: bool, *, pos: int = 0) -> None:
        self.value, self.pos = value, pos

    def _key(self) -> tuple:
        return (self.value,)


class Str(Node):
    """A string constant ("b"), as in relevel(f, ref = "b")."""

    __slots__ = ("value",)

    def __init__(self, value: str, *, pos: int = 0) -> None:
        self.value, self.pos = value, pos

    def _key(self) -> tuple:
        return (self.value,)


class Call(Node):
    __slots__ = ("fn", "args", "names")

    def __init__(
        self, fn: str, args: tuple[Node, ...], names: tuple[str | None, ...] | None = None, *, pos: int = 0
    ) -> None:
        # names: the argument names as written ("scale" in scale(x, scale = FALSE)), None if positional
        self.fn, self.args, self.pos = fn, args, pos
        self.names = names if names is not None else (None,) * len(args)

    def _key(self) -> tuple:
        return (self.fn, self.args, self.names)


class Paren(Node):
    __slots__ = ("inner",)

    def __init__(self, inner: Node, *, pos: int = 0) -> None:
        self.inner, self.pos = inner, pos

    def _key(self) -> tuple:
        return (self.inner,)


class Unary(Node):
    __slots__ = ("op", "arg")

    def __init__(self, op: str, arg: Node, *, pos: int = 0) -> None:
        self.op, self.arg, self.pos = op, arg, pos

    def _key(self) -> tuple:
        return (self.op, self.arg)


class Binary(Node):
    __slots__ = ("op", "left", "right")

    def __init__(self, op: str, left: Node, right: Node, *, pos: int = 0) -> None:
        self.op, self.left, self.right, self.pos = op, left, right, pos

    def _key(self) -> tuple:
        return (self.op, self.left, self.right)


# ------------------------------------------------------------------- tokenizer

_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<num>0[xX][0-9a-fA-F]+L?|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?L?)
    |(?P<name>(?:[^\W\d_]|\.(?!\d))[\w.]*)
    |(?P<quoted>`[^`]*`)
    |(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    |(?P<op>\|\||\*\*|%[^%\s]*%|==|!=|<=|>=|[~+\-*/^:|<>])
    |(?P<punct>[(),=])""",
    re.VERBOSE,
)


class _Token:
    __slots__ = ("kind", "value", "pos")

    def __init__(self, kind: str, value: str, pos: int) -> None:
        self.kind, self.value, self.pos = kind, value, pos  # kind: num, name, op, (, ), ",", =, end


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise FormulaError(f"unexpected character '{text[pos]}'", text, pos)
        kind = m.lastgroup or ""
        value = m.group()
        if kind == "quoted":
            kind, value = "name", value[1:-1]
        elif kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        elif kind == "punct":
            kind = value
        elif value == "**":  # R reads ** as ^
            value = "^"
        if kind != "space":
            tokens.append(_Token(kind, value, pos))
        pos = m.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _check_parentheses(text: str, tokens: list[_Token]) -> None:
    stack: list[int] = []
    for tok in tokens:
        if tok.kind == "(":
            stack.append(tok.pos)
        elif tok.kind == ")":
            if not stack:
                raise FormulaError("unbalanced parentheses: ')' without '('", text, tok.pos)
            stack.pop()
    if stack:
        raise FormulaError("unbalanced parentheses: '(' is never closed", text, stack[-1])


# --------------------------------------------------------------------- parser

# binding powers (left, right) following R's precedence:
# ~ < | || < comparisons < + - < * / < %op% < : < unary < ^
_BINARY: dict[str, tuple[float, float]] = {
    "~": (1, 2),
    "|": (3, 4),
    "||": (3, 4),
    "+": (5, 6),
    "-": (5, 6),
    "*": (7, 8),
    "/": (7, 8),
    ":": (11, 12),
    "^": (16, 16),
}
COMPARISONS = {"==", "!=", "<", ">", "<=", ">="}
_BINARY.update({op: (4.5, 4.6) for op in COMPARISONS})
_SPECIAL_BP = (9, 10)  # %in% and friends
_UNARY_BP = {"-": 13, "+": 13, "~": 2}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        _check_parentheses(text, self.tokens)
        self.i = 0

    def _peek(self) -> _Token:
        return self.tokens[self.i]

    def _next(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def _error(self, message: str, pos: int) -> FormulaError:
        return FormulaError(message, self.text, pos)

    def parse(self) -> Node:
        if self._peek().kind == "end":
            raise self._error("empty formula", 0)
        node = self._expr(0)
        tok = self._peek()
        if tok.kind != "end":
            raise self._error(f"unexpected '{tok.value}'", tok.pos)
        return node

    def _expr(self, min_bp: float) -> Node:
        left = self._prefix()
        while True:
            tok = self._peek()
            if tok.kind != "op":
                break
            bp = _SPECIAL_BP if tok.value.startswith("%") else _BINARY.get(tok.value)
            if bp is None or bp[0] < min_bp:
                break
            self._next()
            right = self._expr(bp[1])
            left = Binary(tok.value, left, right, pos=tok.pos)
        return left

    def _prefix(self) -> Node:
        tok = self._next()
        if tok.kind == "num":
            return _number(tok)
        if tok.kind == "string":
            return Str(tok.value, pos=tok.pos)
        if tok.kind == "name":
            if self._peek().kind == "(":
                return self._call(tok)
            if tok.value in ("TRUE", "FALSE"):
                return Bool(tok.value == "TRUE", pos=tok.pos)
            return Sym(tok.value, pos=tok.pos)
        if tok.kind == "(":
            if self._peek().kind == ")":
                raise self._error("empty term: nothing inside '()'", self._peek().pos)
            inner = self._expr(0)
            close = self._next()
            if close.kind != ")":
                raise self._error(f"unexpected '{close.value}'", close.pos)
            return Paren(inner, pos=tok.pos)
        if tok.kind == "op" and tok.value in _UNARY_BP:
            return Unary(tok.value, self._expr(_UNARY_BP[tok.value]), pos=tok.pos)
        if tok.kind == "end":
            raise self._error("empty term at the end of the formula", tok.pos)
        if tok.kind == "op" or tok.kind == ")":
            raise self._error(f"empty term before '{tok.value}'", tok.pos)
        raise self._error(f"unexpected '{tok.value}'", tok.pos)

    def _call(self, name: _Token) -> Node:
        self._next()  # (
        args: list[Node] = []
        names: list[str | None] = []
        if self._peek().kind == ")":
            raise self._error(f"empty term: {name.value}() needs an argument", self._peek().pos)
        while True:
            tok = self._peek()
            if tok.kind == "name" and self.tokens[self.i + 1].kind == "=":
                self.i += 2  # name =
                names.append(tok.value)
            else:
                names.append(None)
            args.append(self._expr(0))
            tok = self._next()
            if tok.kind == ")":
                break
            if tok.kind != ",":
                raise self._error(f"unexpected '{tok.value}'", tok.pos)
        return Call(name.value, tuple(args), tuple(names), pos=name.pos)


def _number(tok: _Token) -> Num:
    text = tok.value
    integer = text.endswith("L")
    if integer:
        text = text[:-1]
    value = float(int(text, 16)) if text[:2].lower() == "0x" else float(text)
    if integer and value != int(value):
        integer = False
    return Num(value, integer, pos=tok.pos)
