"""lme4's model formula grammar: parsing, R's terms() expansion and R's deparse().

A formula is parsed into a small syntax tree with R's operator precedence. The
random-effects terms are found, expanded and removed as lme4 does (expandDoubleVerts
for `||`, expandSlash for `/` in a grouping factor, findbars and nobars); the fixed part
and each random term's left-hand side are expanded into model terms as R's terms()
does (bitsets of variables in order of first appearance, terms sorted by degree).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mlmcli.errors import FormulaError
from mlmcli.rsort import format_number

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

    def __init__(self, fn: str, args: tuple[Node, ...], names: tuple[str | None, ...] | None = None, *,
                 pos: int = 0) -> None:
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
_BINARY = {
    "~": (1, 2), "|": (3, 4), "||": (3, 4), "+": (5, 6), "-": (5, 6), "*": (7, 8), "/": (7, 8),
    ":": (11, 12), "^": (16, 16),
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

    def _expr(self, min_bp: int) -> Node:
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


# ------------------------------------------------------------------- deparse

# printed with spaces, line breaks allowed after (R's PP_BINARY and user %op%; %% and %/% are not)
_PP_BINARY = {"~", "+", "-", "*", "|", "||"} | COMPARISONS
_SYNTACTIC = re.compile(r"(?:[^\W\d_]|\.(?!\d))[\w.]*|\.")
_RESERVED = {
    "if", "else", "repeat", "while", "function", "for", "next", "break", "TRUE", "FALSE", "NULL",
    "Inf", "NaN", "NA", "NA_integer_", "NA_real_", "NA_character_", "NA_complex_", "in",
}


def _symbol_text(name: str) -> str:
    if _SYNTACTIC.fullmatch(name) and name not in _RESERVED:
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


# ------------------------------------------------------------- model objects


@dataclass(frozen=True)
class Var:
    """One variable of a model formula: a data column or an expression of columns."""

    label: str
    expr: Node | None = field(compare=False, repr=False, hash=False, default=None)  # parsed label if None

    def __post_init__(self) -> None:
        if self.expr is None:
            object.__setattr__(self, "expr", _Parser(self.label).parse())

    def columns(self) -> list[str]:
        """Data columns the variable reads, in order of appearance."""
        out: list[str] = []
        assert self.expr is not None
        _collect_symbols(self.expr, out)
        return out


def _collect_symbols(node: Node, out: list[str]) -> None:
    if isinstance(node, Call) and node.fn in FUNCTIONS:
        # an option such as scale = FALSE or raw = T is a constant, not a column
        for name, arg in match_arguments(node).items():
            if name not in _CONSTANT_OPTIONS and name not in _LITERAL_OPTIONS:
                _collect_symbols(arg, out)
        return
    if isinstance(node, Sym):
        if node.name not in out and node.name not in R_CONSTANTS:
            out.append(node.name)
    elif isinstance(node, Paren):
        _collect_symbols(node.inner, out)
    elif isinstance(node, Unary):
        _collect_symbols(node.arg, out)
    elif isinstance(node, Binary):
        _collect_symbols(node.left, out)
        _collect_symbols(node.right, out)
    elif isinstance(node, Call):
        for arg in node.args:
            _collect_symbols(arg, out)


@dataclass(frozen=True)
class Term:
    """An interaction of variables (a main effect when there is one)."""

    vars: tuple[Var, ...]

    @property
    def label(self) -> str:
        return ":".join(v.label for v in self.vars)


@dataclass(frozen=True)
class ModelSpec:
    """The fixed part of a model, or the left-hand side of a random term."""

    intercept: bool
    terms: tuple[Term, ...]

    @property
    def labels(self) -> list[str]:
        return [t.label for t in self.terms]


@dataclass(frozen=True)
class RandomTerm:
    lhs: ModelSpec
    group_vars: tuple[str, ...]
    group: str
    label: str = ""  # lme4's name of the term, deparse of the bar: "1 + ses | schcode"


@dataclass(frozen=True)
class Formula:
    text: str
    response: Var
    fixed: ModelSpec
    random: tuple[RandomTerm, ...]
    # every variable of lme4's model frame (response, fixed, random, grouping), in R's order
    variables: tuple[Var, ...] = ()
    stored: Node = field(default=Sym(""), compare=False, repr=False)
    offsets: tuple[Var, ...] = ()  # offset() variables of the fixed part, summed as R sums them

    def deparse(self) -> list[str]:
        """R's deparse() of the formula lme4 stores (`||` expanded): what summary prints."""
        return deparse_node(self.stored)

    def columns(self) -> list[str]:
        """Every data column the model uses, in order of first appearance."""
        out: list[str] = []
        for v in self.variables:
            for c in v.columns():
                if c not in out:
                    out.append(c)
        return out


# ------------------------------------------------------------- R's terms()

# the functions a formula may use: their formal arguments in R's order; poly's second positional
# argument is its degree (R passes it through `...`, which poly reads as the degree)
FUNCTIONS: dict[str, tuple[str, ...]] = {
    "I": ("x",), "log": ("x", "base"), "log10": ("x",), "log2": ("x",), "log1p": ("x",), "exp": ("x",),
    "sqrt": ("x",), "abs": ("x",), "sin": ("x",), "cos": ("x",), "tan": ("x",), "floor": ("x",),
    "ceiling": ("x",), "round": ("x", "digits"), "pmin": ("x", "y"), "pmax": ("x", "y"),
    "scale": ("x", "center", "scale"), "factor": ("x", "levels"), "as.factor": ("x",),
    "relevel": ("x", "ref"), "poly": ("x", "degree", "raw"), "offset": ("x",),
    # centring within clusters: x minus its cluster mean, and the cluster mean (over the rows used)
    "cwc": ("x", "g"), "cmean": ("x", "g"),
}
FACTOR_FUNCTIONS = {"factor", "as.factor", "relevel"}
GROUP_MEAN_FUNCTIONS = {"cwc", "cmean"}
# options that must be constants: TRUE/FALSE (T/F) or numbers
_CONSTANT_OPTIONS = {"center", "scale", "degree", "raw", "digits"}
# options that are literal values: strings or numbers, c() of them for levels
_LITERAL_OPTIONS = {"ref", "levels"}
# R's constant pi, unless the data have a column of that name
R_CONSTANTS = {"pi": 3.141592653589793}
_ARITHMETIC = {"+", "-", "*", "/", "^", "%%", "%/%"} | COMPARISONS


def match_arguments(call: Call) -> dict[str, Node]:
    """R's argument matching for the known functions: names first (exactly), then positions."""
    formals = FUNCTIONS[call.fn]
    out: dict[str, Node] = {}
    for name, arg in zip(call.names, call.args, strict=True):
        if name is not None:
            if name not in formals or name in out:
                raise FormulaError(f"{call.fn}() has no argument '{name}'" if name not in formals
                                   else f"argument '{name}' of {call.fn}() given twice", "", arg.pos)
            out[name] = arg
    free = [f for f in formals if f not in out]
    positional = [a for n, a in zip(call.names, call.args, strict=True) if n is None]
    if call.fn == "poly" and len(positional) > 2:  # R would take further values as more variables
        raise FormulaError("poly() takes one variable and its degree; give raw = TRUE by name", "",
                           positional[2].pos)
    if len(positional) > len(free):
        plural = "s" if len(formals) > 1 else ""
        raise FormulaError(f"{call.fn}() takes at most {len(formals)} argument{plural}", "", call.pos)
    out.update(zip(free, positional, strict=False))
    if "x" not in out:
        raise FormulaError(f"{call.fn}() needs an argument", "", call.pos)
    return out


def constant_value(node: Node) -> float | bool | None:
    """A constant option's value: TRUE/FALSE (or T/F) as bool, a number as float, else None."""
    if isinstance(node, Bool):
        return node.value
    if isinstance(node, Sym) and node.name in ("T", "F"):
        return node.name == "T"
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Paren):
        return constant_value(node.inner)
    if isinstance(node, Unary) and node.op in "+-":
        v = constant_value(node.arg)
        if isinstance(v, float):
            return -v if node.op == "-" else v
    return None


def literal_values(node: Node) -> list[str | float] | None:
    """A literal option's values: a string or number, or c() of them; None for anything else."""
    while isinstance(node, Paren):
        node = node.inner
    if isinstance(node, Str):
        return [node.value]
    value = constant_value(node)
    if isinstance(value, float):
        return [value]
    if isinstance(node, Binary) and node.op == ":":  # 0:8, a run of whole numbers
        lo, hi = constant_value(node.left), constant_value(node.right)
        if isinstance(lo, float) and isinstance(hi, float) and lo == int(lo) and abs(hi - lo) < 1e6:
            step = 1 if hi >= lo else -1
            return [float(v) for v in range(int(lo), int(hi) + step, step)]
        return None
    if isinstance(node, Call) and node.fn == "c" and all(n is None for n in node.names):
        out: list[str | float] = []
        for arg in node.args:
            inner = literal_values(arg)
            if inner is None:
                return None
            out.extend(inner)
        return out
    return None


def _check_variable(node: Node, text: str) -> None:
    """A variable is a column or a call of a known function on arithmetic of columns."""
    if isinstance(node, Call):
        if node.fn not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise FormulaError(f"unknown function '{node.fn}' (known: {known})", text, node.pos)
        try:
            args = match_arguments(node)
        except FormulaError as exc:
            raise FormulaError(str(exc), text, exc.position) from None
        for name, arg in args.items():
            if name in _CONSTANT_OPTIONS:
                if constant_value(arg) is None:
                    raise FormulaError(f"{node.fn}(): {name} must be TRUE, FALSE or a number", text, arg.pos)
            elif name in _LITERAL_OPTIONS:
                values = literal_values(arg)
                if values is None or (name == "ref" and len(values) != 1):
                    what = "a level in quotes or a number" if name == "ref" else 'levels in quotes, as c("a", "b")'
                    raise FormulaError(f"{node.fn}(): {name} must be {what}", text, arg.pos)
            elif name == "g":
                if not isinstance(arg, Sym):
                    raise FormulaError(f"{node.fn}(): the cluster must be a column name", text, arg.pos)
            else:
                _check_arithmetic(arg, text, f"inside {node.fn}()")
    elif isinstance(node, Sym) and node.name == ".":
        raise FormulaError("'.' (all other columns) is not supported", text, node.pos)


def _check_arithmetic(node: Node, text: str, where: str) -> None:
    """Arithmetic of columns, numbers and known functions; `where` names the place for messages."""
    if isinstance(node, (Sym, Call)):
        _check_variable(node, text)
    elif isinstance(node, Bool):
        pass
    elif isinstance(node, Str):
        raise FormulaError(f"a string cannot be used {where}", text, node.pos)
    elif isinstance(node, Paren):
        _check_arithmetic(node.inner, text, where)
    elif isinstance(node, Unary):
        if node.op not in "+-":
            raise FormulaError(f"'{node.op}' cannot be used {where}", text, node.pos)
        _check_arithmetic(node.arg, text, where)
    elif isinstance(node, Binary):
        if node.op not in _ARITHMETIC:
            raise FormulaError(f"'{node.op}' cannot be used {where}", text, node.pos)
        _check_arithmetic(node.left, text, where)
        _check_arithmetic(node.right, text, where)


def _trim(terms: list[int]) -> list[int]:
    """R's TrimRepeats: drop empty and repeated terms, keeping the first."""
    out: list[int] = []
    seen: set[int] = set()
    for t in terms:
        if t and t not in seen:
            seen.add(t)
            out.append(t)
    return out


class _Terms:
    """R's termsform(): variables by first appearance, terms as bitsets of variables."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.vars: list[Var] = []
        self.intercept = True
        self.parity = True

    def install(self, node: Node) -> int:
        _check_variable(node, self.text)
        label = _label(node)
        for i, v in enumerate(self.vars):
            if v.label == label:
                return i
        self.vars.append(Var(label, node))
        return len(self.vars) - 1

    def extract(self, node: Node) -> None:
        """ExtractVars: install every variable, left to right."""
        if isinstance(node, Bool):
            raise FormulaError("invalid term in model formula: TRUE or FALSE", self.text, node.pos)
        if isinstance(node, Str):
            raise FormulaError("invalid term in model formula: a string", self.text, node.pos)
        if isinstance(node, Num):
            if node.value not in (0.0, 1.0):
                raise FormulaError("invalid term in model formula: a number other than 0 or 1",
                                   self.text, node.pos)
        elif isinstance(node, (Sym, Call)):
            self.install(node)
        elif isinstance(node, Paren):
            self.extract(node.inner)
        elif isinstance(node, Unary):
            if node.op == "~":
                raise FormulaError("more than one '~' in the formula", self.text, node.pos)
            self.extract(node.arg)
        elif isinstance(node, Binary):
            if node.op == "~":
                raise FormulaError("more than one '~' in the formula", self.text, node.pos)
            if node.op in ("|", "||"):
                raise FormulaError("random-effects term in an unexpected place", self.text, node.pos)
            if node.op == "^":
                if not isinstance(node.right, Num):
                    raise FormulaError("invalid power in formula", self.text, node.right.pos)
                self.extract(node.left)
                return
            if node.op not in ("+", "-", "*", "/", ":", "%in%"):
                raise FormulaError(f"operator '{node.op}' is not supported in model formulas",
                                   self.text, node.pos)
            self.extract(node.left)
            self.extract(node.right)

    def encode(self, node: Node) -> list[int]:
        """EncodeVars: expand the formula into a list of terms."""
        if isinstance(node, Num):
            if node.value == 1.0:
                self.intercept = self.parity
            elif node.value == 0.0:
                self.intercept = not self.parity
            return []
        if isinstance(node, Call) and node.fn == "offset":
            self.install(node)  # in the model frame, but no term of the model matrix (R's terms())
            return []
        if isinstance(node, (Sym, Call)):
            return [1 << self.install(node)]
        if isinstance(node, Paren):
            return self.encode(node.inner)
        if isinstance(node, Unary):
            if node.op == "+":
                return self.encode(node.arg)
            return self._delete([], node.arg)
        assert isinstance(node, Binary)
        op = node.op
        if op == "-":
            return self._delete(self.encode(node.left), node.right)
        if op == "^":
            return self._power(node)
        left = self.encode(node.left)
        right = self.encode(node.right)
        if op == "+":
            return _trim(left + right)
        if op == ":":
            return _trim([a | b for a in left for b in right])
        if op == "*":
            # R's CrossTerms appends to the left list: an empty left side ("(1) * b",
            # "(a - a) * b") leaves nothing at all
            return _trim(left + right + [a | b for a in left for b in right]) if left else []
        if op == "%in%":
            all_right = 0
            for t in right:
                all_right |= t
            return _trim([t | all_right for t in left])
        if op == "/":
            if not left:  # as for '*': R's NestTerms returns the (empty) left list
                return []
            all_left = 0
            for t in left:
                all_left |= t
            return _trim(left + [t | all_left for t in right])
        raise FormulaError(f"operator '{op}' is not supported in model formulas", self.text, node.pos)

    def _delete(self, left: list[int], right_node: Node) -> list[int]:
        self.parity = not self.parity
        right = self.encode(right_node)
        self.parity = not self.parity
        for t in right:
            left = [x for x in left if x != t]
        return left

    def _power(self, node: Binary) -> list[int]:
        assert isinstance(node.right, Num)
        power = int(node.right.value)
        if power <= 1:
            raise FormulaError("invalid power in formula", self.text, node.right.pos)
        left = self.encode(node.left)
        right = left
        term: list[int] = left
        for _ in range(1, power):
            term = _trim([a | b for a in left for b in right])
            right = term
        return term

    def spec(self, terms: list[int]) -> ModelSpec:
        """Terms sorted by degree (stable), variables of a term in order of appearance."""
        ordered = sorted(terms, key=lambda t: t.bit_count())
        out = []
        for t in ordered:
            out.append(Term(tuple(v for i, v in enumerate(self.vars) if t >> i & 1)))
        return ModelSpec(self.intercept, tuple(out))


def model_spec(
    node: Node | None, text: str = "", response: Node | None = None
) -> tuple[ModelSpec, list[Var]]:
    """R's terms() of `response ~ node` (or `~ node`): the expanded terms and all variables."""
    t = _Terms(text)
    if response is not None:
        t.install(response)
    if node is None:
        return ModelSpec(True, ()), t.vars
    t.extract(node)
    terms = t.encode(node)
    spec = t.spec(terms)
    if response is not None:
        # R drops a right-hand term that is the response itself
        spec = ModelSpec(spec.intercept, tuple(x for x in spec.terms if x.vars != (t.vars[0],)))
    return spec, t.vars


# ------------------------------------------------------- lme4's bar handling


def _has_bar(node: Node) -> bool:
    if isinstance(node, Binary):
        return node.op in ("|", "||") or _has_bar(node.left) or _has_bar(node.right)
    if isinstance(node, Paren):
        return _has_bar(node.inner)
    if isinstance(node, Unary):
        return _has_bar(node.arg)
    if isinstance(node, Call):
        return any(_has_bar(a) for a in node.args)
    return False


def _expand_double_verts(node: Node, text: str) -> Node:
    """lme4's expandDoubleVerts: (x + z || g) -> ((1 | g) + (0 + x | g) + (0 + z | g))."""
    if isinstance(node, Paren):
        return Paren(_expand_double_verts(node.inner, text), pos=node.pos)
    if isinstance(node, Unary):
        return Unary(node.op, _expand_double_verts(node.arg, text), pos=node.pos)
    if isinstance(node, Binary):
        if node.op == "||":
            return _expand_double_vert(node, text)
        return Binary(node.op, _expand_double_verts(node.left, text),
                      _expand_double_verts(node.right, text), pos=node.pos)
    return node


def _expand_double_vert(node: Binary, text: str) -> Node:
    spec, _ = model_spec(node.left, text)
    pieces = (["1"] if spec.intercept else []) + ["0+" + label for label in spec.labels]
    if not pieces:
        raise FormulaError("empty term on the left of '||'", text, node.pos)
    group = _line(node.right)
    # lme4 builds the expansion as text and parses it back; so do we
    source = "~(" + ")+(".join(f"{p}|{group}" for p in pieces) + ")"
    expanded = _Parser(source).parse()
    assert isinstance(expanded, Unary)
    return _reposition(expanded.arg, node.pos)


def _reposition(node: Node, pos: int) -> Node:
    """Synthesised nodes point at the `||` they came from."""
    if isinstance(node, Sym):
        return Sym(node.name, pos=pos)
    if isinstance(node, Num):
        return Num(node.value, node.integer, pos=pos)
    if isinstance(node, Paren):
        return Paren(_reposition(node.inner, pos), pos=pos)
    if isinstance(node, Unary):
        return Unary(node.op, _reposition(node.arg, pos), pos=pos)
    if isinstance(node, Binary):
        return Binary(node.op, _reposition(node.left, pos), _reposition(node.right, pos), pos=pos)
    if isinstance(node, Bool):
        return Bool(node.value, pos=pos)
    if isinstance(node, Str):
        return Str(node.value, pos=pos)
    assert isinstance(node, Call)
    return Call(node.fn, tuple(_reposition(a, pos) for a in node.args), node.names, pos=pos)


def _find_bars(node: Node, text: str, additive: bool = True) -> list[Binary]:
    """lme4's findbars, for bars added to the model (inside parentheses or not)."""
    if isinstance(node, Binary) and node.op == "|":
        if not additive:
            raise FormulaError("a random-effects term must be added to the model with '+'", text, node.pos)
        return [node]
    if isinstance(node, Paren):
        return _find_bars(node.inner, text, additive)
    if isinstance(node, Unary):
        return _find_bars(node.arg, text, additive and node.op == "+")
    if isinstance(node, Binary):
        # bars may sit on either side of '+' and on the left of '-' ("x + (1|g) - 1")
        keep = additive and node.op in ("+", "-")
        return _find_bars(node.left, text, keep) + _find_bars(node.right, text, keep and node.op == "+")
    if isinstance(node, Call) and _has_bar(node):
        raise FormulaError(f"a random-effects term cannot be inside {node.fn}()", text, node.pos)
    return []


def _no_bars(node: Node) -> Node | None:
    """lme4's nobars_: the formula without its random-effects terms (None if nothing is left)."""
    if not _has_bar(node):
        return node
    if isinstance(node, Binary) and node.op in ("|", "||"):
        return None
    if isinstance(node, Paren):
        inner = _no_bars(node.inner)
        return None if inner is None else Paren(inner, pos=node.pos)
    if isinstance(node, Unary):
        arg = _no_bars(node.arg)
        return None if arg is None else Unary(node.op, arg, pos=node.pos)
    if isinstance(node, Binary):
        left, right = _no_bars(node.left), _no_bars(node.right)
        if left is None:
            return right
        if right is None:
            return left
        return Binary(node.op, left, right, pos=node.pos)
    return None


def _sub_bars(node: Node) -> Node:
    """lme4's subbars: `|` becomes `+`, giving the formula of the whole model frame."""
    if isinstance(node, Binary):
        op = "+" if node.op in ("|", "||") else node.op
        return Binary(op, _sub_bars(node.left), _sub_bars(node.right), pos=node.pos)
    if isinstance(node, Paren):
        return Paren(_sub_bars(node.inner), pos=node.pos)
    if isinstance(node, Unary):
        return Unary(node.op, _sub_bars(node.arg), pos=node.pos)
    return node


def _slash_terms(node: Node, text: str) -> Node | list:
    if not _has_slash(node):
        return node
    if not (isinstance(node, Binary) and node.op == "/"):
        raise FormulaError("unparseable formula for grouping factor", text, node.pos)
    return [_slash_terms(node.left, text), _slash_terms(node.right, text)]


def _has_slash(node: Node) -> bool:
    if isinstance(node, Binary):
        return node.op == "/" or _has_slash(node.left) or _has_slash(node.right)
    if isinstance(node, Paren):
        return _has_slash(node.inner)
    if isinstance(node, Unary):
        return _has_slash(node.arg)
    return False


def _make_interaction(x: Node | list) -> Node | list:
    """lme4's makeInteraction: a/b/c -> [c:(b:a), [b:a, a]]."""
    if not isinstance(x, list):
        return x
    first = _make_interaction(x[0])
    inner = first[0] if isinstance(first, list) else first
    right = Paren(inner, pos=inner.pos) if isinstance(inner, Binary) else inner
    return [Binary(":", x[1], right, pos=x[1].pos), first]


def _flatten(x: Node | list) -> list[Node]:
    if isinstance(x, list):
        return [n for item in x for n in _flatten(item)]
    return [x]


def _expand_slash(group: Node, text: str) -> list[Node]:
    """lme4's expandSlash: (1 | a/b) -> (1 | b:a) and (1 | a)."""
    terms = _slash_terms(group, text)
    return _flatten(_make_interaction(terms)) if isinstance(terms, list) else [group]


def _inner_tilde(node: Node | None) -> Node | None:
    if isinstance(node, (Binary, Unary)) and node.op == "~":
        return node
    if isinstance(node, Binary):
        return _inner_tilde(node.left) or _inner_tilde(node.right)
    if isinstance(node, Unary):
        return _inner_tilde(node.arg)
    if isinstance(node, Paren):
        return _inner_tilde(node.inner)
    return None


def _group_columns(node: Node, text: str, out: list[str]) -> None:
    if isinstance(node, Sym):
        if node.name not in out:
            out.append(node.name)
    elif isinstance(node, Paren):
        _group_columns(node.inner, text, out)
    elif isinstance(node, Binary) and node.op == ":":
        _group_columns(node.left, text, out)
        _group_columns(node.right, text, out)
    else:
        raise FormulaError("a grouping factor must be column names joined by ':' or '/'", text, node.pos)


# ------------------------------------------------------------------ parse


def parse_formula(text: str) -> Formula:
    """Parse an lme4 model formula such as "math ~ ses + (1 + ses | schcode)"."""
    root = _Parser(text).parse()
    nested = _inner_tilde(root.left if isinstance(root, Binary) and root.op == "~" else None)
    if nested is not None:
        raise FormulaError("more than one '~' in the formula", text, root.pos)
    if not (isinstance(root, Binary) and root.op == "~"):
        if isinstance(root, Unary) and root.op == "~":
            raise FormulaError("the formula needs a response on the left of '~'", text, root.pos)
        tilde = text.find("~")
        if tilde < 0:
            raise FormulaError("missing '~': a formula is 'response ~ terms'", text, 0)
        raise FormulaError("a formula is 'response ~ terms'", text, tilde)
    lhs, rhs = root.left, root.right
    if _has_bar(lhs):
        raise FormulaError("random-effects terms belong on the right of '~'", text, lhs.pos)
    if isinstance(lhs, (Num, Bool, Str)) or (isinstance(lhs, Sym) and lhs.name in R_CONSTANTS):
        raise FormulaError("the response must be a column or a function of columns", text, lhs.pos)
    if isinstance(lhs, Call) and lhs.fn == "offset":
        raise FormulaError("offset() belongs on the right of '~'", text, lhs.pos)
    # arithmetic such as y/10 or incidence/size: R evaluates the response as an expression
    _check_arithmetic(lhs, text, "in the response")
    rhs = _expand_double_verts(rhs, text)
    stored = Binary("~", lhs, rhs, pos=root.pos)
    bars = _find_bars(rhs, text)
    if not bars:
        raise FormulaError("No random effects terms specified in formula", text, len(text))
    fixed, fixed_vars = model_spec(_no_bars(rhs) or Num(1.0), text, response=lhs)
    random: list[RandomTerm] = []
    for bar in bars:
        lhs_spec, lhs_vars = model_spec(bar.left, text)
        if any(_is_offset(v) for v in lhs_vars):
            raise FormulaError("offset() belongs to the fixed part of the formula", text, bar.pos)
        for group in _expand_slash(bar.right, text):
            columns: list[str] = []
            _group_columns(group, text, columns)
            label = _line(Binary("|", bar.left, group))
            random.append(RandomTerm(lhs_spec, tuple(columns), _line(group), label))
    frame_terms = _Terms(text)
    frame_terms.install(lhs)
    frame_terms.extract(_sub_bars(rhs))
    return Formula(
        text=text,
        response=fixed_vars[0],
        fixed=fixed,
        random=tuple(random),
        variables=tuple(frame_terms.vars),
        stored=stored,
        offsets=tuple(v for v in fixed_vars if _is_offset(v)),
    )


def _is_offset(var: Var) -> bool:
    return isinstance(var.expr, Call) and var.expr.fn == "offset"
