"""The --where row filter: a small boolean language over the columns of a CSV file.

    schcode <= 10            ses > -0.5 and public == 1       Subject in (308, 309, "310")
    (female == 1 or ses >= 0) and not public == 0            plate != "a"

Comparisons are < <= > >= == != (= is read as ==) between a column and a number, a quoted string,
TRUE/FALSE or another column; `in (...)` and `not in (...)` test membership; `and`, `or`, `not`
(also & | !) combine them, with parentheses. A missing value makes its comparison unknown and
unknown rows are dropped, as dplyr::filter() and subset() do (three-valued logic, so `not` of an
unknown stays unknown).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from mlmcli.errors import DataError
from mlmcli.io.frame import Factor, Frame

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![A-Za-z0-9_.]))
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<backtick>`[^`]+`)
  | (?P<name>[A-Za-z.][A-Za-z0-9._]*)
  | (?P<op><=|>=|==|!=|<>|&&|\|\||[<>=!&|(),])
    """,
    re.VERBOSE,
)
_COMPARE = {"<", "<=", ">", ">=", "==", "!="}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_KEYWORDS = {"and", "or", "not", "in"}


@dataclass
class Token:
    kind: str  # number, string, name, op, keyword, bool, end
    text: str
    pos: int  # 0-based offset in the expression
    value: object = None


def _fail(message: str, text: str, pos: int) -> DataError:
    """One line pointing at the offending character, as formula errors do."""
    return DataError(f"--where: {message} at position {pos + 1}: {text[:pos]}>>>{text[pos:]}")


def tokenize(text: str) -> list[Token]:
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _fail(f"unexpected character {text[pos]!r}", text, pos)
        kind, s = m.lastgroup, m.group()
        if kind == "number":
            # "a-1" is not meant as two numbers: a sign directly after a value is an error anyway
            out.append(Token("number", s, pos, float(s)))
        elif kind == "string":
            out.append(Token("string", s, pos, re.sub(r"\\(.)", r"\1", s[1:-1])))
        elif kind == "backtick":
            out.append(Token("name", s, pos, s[1:-1]))
        elif kind == "name":
            low = s.lower()
            if low in _KEYWORDS:
                out.append(Token("keyword", low, pos))
            elif s in ("TRUE", "FALSE", "true", "false"):
                out.append(Token("bool", s, pos, s.upper() == "TRUE"))
            else:
                out.append(Token("name", s, pos, s))
        elif kind == "op":
            canon = {"=": "==", "<>": "!=", "&&": "&", "||": "|"}.get(s, s)
            if canon == "&":
                out.append(Token("keyword", "and", pos))
            elif canon == "|":
                out.append(Token("keyword", "or", pos))
            elif canon == "!":
                out.append(Token("keyword", "not", pos))
            else:
                out.append(Token("op", canon, pos))
        pos = m.end()
    out.append(Token("end", "", len(text)))
    return out


# AST: ("and", a, b) | ("or", a, b) | ("not", a) | ("cmp", op, lhs, rhs, pos) | ("in", operand, [values], pos)
# operands: ("col", name, pos) | ("lit", value, pos)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def expect_op(self, op: str) -> Token:
        if self.tok.kind != "op" or self.tok.text != op:
            raise _fail(f"expected '{op}'", self.text, self.tok.pos)
        return self.take()

    def parse(self) -> tuple:
        if self.tok.kind == "end":
            raise _fail("empty expression", self.text, 0)
        node = self.or_expr()
        if self.tok.kind != "end":
            raise _fail(f"unexpected '{self.tok.text}'", self.text, self.tok.pos)
        return node

    def or_expr(self) -> tuple:
        node = self.and_expr()
        while self.tok.kind == "keyword" and self.tok.text == "or":
            self.take()
            node = ("or", node, self.and_expr())
        return node

    def and_expr(self) -> tuple:
        node = self.not_expr()
        while self.tok.kind == "keyword" and self.tok.text == "and":
            self.take()
            node = ("and", node, self.not_expr())
        return node

    def not_expr(self) -> tuple:
        if self.tok.kind == "keyword" and self.tok.text == "not":
            self.take()
            return ("not", self.not_expr())
        if self.tok.kind == "op" and self.tok.text == "(":
            self.take()
            node = self.or_expr()
            self.expect_op(")")
            return node
        return self.comparison()

    def operand(self) -> tuple:
        t = self.tok
        if t.kind == "name":
            self.take()
            return ("col", t.value, t.pos)
        if t.kind in ("number", "string", "bool"):
            self.take()
            return ("lit", t.value, t.pos)
        what = "end of expression" if t.kind == "end" else f"'{t.text}'"
        raise _fail(f"expected a column name or a value, found {what}", self.text, t.pos)

    def comparison(self) -> tuple:
        lhs = self.operand()
        t = self.tok
        negate = False
        if t.kind == "keyword" and t.text == "not" and self.tokens[self.i + 1].text == "in":
            self.take()
            negate = True
            t = self.tok
        if t.kind == "keyword" and t.text == "in":
            self.take()
            node = ("in", lhs, self.value_list(), t.pos)
            return ("not", node) if negate else node
        if t.kind != "op" or t.text not in _COMPARE:
            what = "end of expression" if t.kind == "end" else f"'{t.text}'"
            raise _fail(f"expected a comparison (< <= > >= == != in), found {what}", self.text, t.pos)
        self.take()
        rhs = self.operand()
        if lhs[0] == "lit" and rhs[0] == "lit":
            raise _fail("a comparison needs a column on one side", self.text, lhs[2])
        return ("cmp", t.text, lhs, rhs, t.pos)

    def value_list(self) -> list[tuple]:
        self.expect_op("(")
        values = []
        while True:
            t = self.tok
            if t.kind not in ("number", "string", "bool"):
                raise _fail("expected a number or a quoted string in the list", self.text, t.pos)
            values.append(("lit", self.take().value, t.pos))
            if self.tok.kind == "op" and self.tok.text == ",":
                self.take()
                continue
            self.expect_op(")")
            return values


# deeper trees are refused: walking them (columns_used, the evaluation) recurses once per level
_MAX_DEPTH = 250


def parse_where(text: str) -> tuple:
    """The expression as a small tree; DataError with the position when it does not parse."""
    try:
        node = _Parser(text).parse()
    except RecursionError:
        node = None
    if node is None or _depth(node) > _MAX_DEPTH:
        raise DataError(
            f"--where: the expression is nested too deeply or has too many terms to process ({len(text)} characters)"
        )
    return node


def _depth(node: tuple) -> int:
    deepest = 0
    stack = [(node, 1)]
    while stack:
        n, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend(
            (child, d + 1) for child in n[1:] if isinstance(child, tuple) and child and isinstance(child[0], str)
        )
    return deepest


def columns_used(node: tuple) -> list[str]:
    """Column names the expression refers to, in order of appearance."""
    out: list[str] = []

    def walk(n: tuple) -> None:
        if n[0] == "col":
            if n[1] not in out:
                out.append(n[1])
        elif n[0] in ("and", "or"):
            walk(n[1])
            walk(n[2])
        elif n[0] == "not":
            walk(n[1])
        elif n[0] == "cmp":
            walk(n[2])
            walk(n[3])
        elif n[0] == "in":
            walk(n[1])

    walk(node)
    return out


class _Evaluator:
    """Evaluates to a pair of masks (certainly true, certainly false); a missing value is neither."""

    def __init__(self, frame: Frame, text: str) -> None:
        self.frame = frame
        self.text = text

    def column(self, name: str, pos: int) -> np.ndarray | Factor:
        col = self.frame.columns.get(name)
        if col is None:
            known = ", ".join(self.frame.columns)
            raise _fail(f"unknown column '{name}' (columns: {known})", self.text, pos)
        return col

    def run(self, node: tuple) -> tuple[np.ndarray, np.ndarray]:
        kind = node[0]
        if kind == "and":
            t1, f1 = self.run(node[1])
            t2, f2 = self.run(node[2])
            return t1 & t2, f1 | f2
        if kind == "or":
            t1, f1 = self.run(node[1])
            t2, f2 = self.run(node[2])
            return t1 | t2, f1 & f2
        if kind == "not":
            t, f = self.run(node[1])
            return f, t
        if kind == "in":
            _, operand, values, pos = node
            n = self.frame.n_rows
            true, known = np.zeros(n, bool), np.ones(n, bool)
            for v in values:
                eq, ok = self.compare("==", operand, v, pos)
                true |= eq
                known &= ok
            return true, known & ~true
        _, op, lhs, rhs, pos = node
        if lhs[0] == "lit":  # 3 < x  is  x > 3
            op, lhs, rhs = _FLIP[op], rhs, lhs
        result, ok = self.compare(op, lhs, rhs, pos)
        return result & ok, ~result & ok

    def values(self, operand: tuple, other: tuple, pos: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """(values, present, is_text) of a column operand, coerced to compare with `other`."""
        col = self.column(operand[1], operand[2])
        other_text = other[0] == "lit" and isinstance(other[1], str)
        if isinstance(col, Factor):
            labels = np.array(col.levels + [""], dtype=object)[col.codes]
            present = col.codes >= 0
            if other[0] == "lit" and isinstance(other[1], bool):
                if col.logical:
                    return labels, present, True
                raise _fail(f"column '{operand[1]}' is text: compare it with a quoted string", self.text, other[2])
            if other[0] == "lit" and not other_text:
                # text columns whose labels are all numbers ("308", "309") compare as numbers
                try:
                    nums = np.array([float(v) for v in col.levels] + [np.nan])[col.codes]
                except ValueError:
                    raise _fail(
                        f"column '{operand[1]}' is text: compare it with a quoted string", self.text, other[2]
                    ) from None
                return nums, present, False
            return labels, present, True
        col = np.asarray(col, dtype=float)
        if other_text:
            raise _fail(f"column '{operand[1]}' is numeric: compare it with a number", self.text, other[2])
        return col, ~np.isnan(col), False

    def literal(self, lit: tuple, text_side: bool) -> object:
        v = lit[1]
        if isinstance(v, bool):
            return ("TRUE" if v else "FALSE") if text_side else float(v)
        return v

    def compare(self, op: str, lhs: tuple, rhs: tuple, pos: int) -> tuple[np.ndarray, np.ndarray]:
        a, a_ok, a_text = self.values(lhs, rhs, pos)
        if rhs[0] == "col":
            b, b_ok, b_text = self.values(rhs, lhs, pos)
            if a_text != b_text:
                raise _fail(f"cannot compare text column with numeric column '{rhs[1]}'", self.text, rhs[2])
            ok = a_ok & b_ok
        else:
            b, ok, b_text = self.literal(rhs, a_text), a_ok, a_text
        if a_text and op not in ("==", "!="):
            raise _fail(f"'{op}' is not meaningful for text column '{lhs[1]}': use == != or in", self.text, pos)
        with np.errstate(invalid="ignore"):
            if op == "==":
                r = a == b
            elif op == "!=":
                r = a != b
            elif op == "<":
                r = a < b
            elif op == "<=":
                r = a <= b
            elif op == ">":
                r = a > b
            else:
                r = a >= b
        return np.asarray(r, dtype=bool), ok


def where_mask(frame: Frame, text: str) -> np.ndarray:
    """Boolean mask over the frame's rows: True where the expression is (certainly) true."""
    node = parse_where(text)
    true, _ = _Evaluator(frame, text).run(node)
    return true


def keep_rows(frame: Frame, text: str) -> Frame:
    """The rows of `frame` where the expression is true, as R's subset() (and lmer's subset =) keeps them;
    factors keep their levels, which the model frame then drops when unused, as R's does."""
    keep = where_mask(frame, text)
    if not keep.any():
        raise DataError(f"--where '{text}' keeps none of the {frame.n_rows} rows of the data")
    if keep.all():
        return frame
    columns = {
        name: replace(col, codes=col.codes[keep]) if isinstance(col, Factor) else col[keep]
        for name, col in frame.columns.items()
    }
    return replace(frame, columns=columns, n_rows=int(keep.sum()))
