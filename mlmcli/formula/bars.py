"""lme4's handling of random-effects bars: expandDoubleVerts, expandSlash, findbars and nobars."""

from __future__ import annotations

from mlmcli.errors import FormulaError
from mlmcli.formula.deparse import _label, _line
from mlmcli.formula.syntax import Binary, Bool, Call, Node, Num, Paren, Str, Sym, Unary, _Parser
from mlmcli.formula.terms import model_spec

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
        return Binary(
            node.op, _expand_double_verts(node.left, text), _expand_double_verts(node.right, text), pos=node.pos
        )
    return node


def _expand_double_vert(node: Binary, text: str) -> Node:
    spec, _ = model_spec(node.left, text)
    pieces = (["1"] if spec.intercept else []) + ["0+" + label for label in spec.labels]
    if not pieces:
        raise FormulaError(
            f"the random-effects term ({_line(node)}) has no columns: put 1 or a variable on the left of '||'",
            text,
            _start(node),
        )
    group = _line(node.right)
    # lme4 builds the expansion as text and parses it back; so do we
    source = "~(" + ")+(".join(f"{p}|{group}" for p in pieces) + ")"
    expanded = _Parser(source).parse()
    assert isinstance(expanded, Unary)
    return _reposition(expanded.arg, node.pos)


def _start(node: Node) -> int:
    """Where the text of a node begins (a binary operator's node points at the operator)."""
    while isinstance(node, Binary):
        node = node.left
    return node.pos


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


def _group_variables(node: Node, text: str, out: list[str]) -> None:
    """The model-frame variables whose interaction is a grouping factor, by label: columns, and
    calls such as factor(g) or interaction(a, b) (lme4 takes any expression giving a factor)."""
    if isinstance(node, Sym):
        if node.name not in out:
            out.append(node.name)
    elif isinstance(node, Paren):
        _group_variables(node.inner, text, out)
    elif isinstance(node, Binary) and node.op == ":":
        _group_variables(node.left, text, out)
        _group_variables(node.right, text, out)
    elif isinstance(node, Call):
        label = _label(node)
        if label not in out:
            out.append(label)
    else:
        raise FormulaError(
            "a grouping factor must be columns or factor(), interaction() ... of columns, joined by ':' or '/'",
            text,
            node.pos,
        )
