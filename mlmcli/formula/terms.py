"""Model objects (variables, terms, formulas) and R's terms() expansion of a formula's right-hand side."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlmcli.errors import FormulaError
from mlmcli.formula.deparse import _label, deparse_node
from mlmcli.formula.syntax import COMPARISONS, Binary, Bool, Call, Node, Num, Paren, Str, Sym, Unary, _Parser

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
    # the labels of the model-frame variables whose interaction is the grouping factor: "schcode",
    # ("a", "b") for a:b, "factor(g)", "interaction(a, b)"
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
    "I": ("x",),
    "log": ("x", "base"),
    "log10": ("x",),
    "log2": ("x",),
    "log1p": ("x",),
    "exp": ("x",),
    "sqrt": ("x",),
    "abs": ("x",),
    "sin": ("x",),
    "cos": ("x",),
    "tan": ("x",),
    "floor": ("x",),
    "ceiling": ("x",),
    "round": ("x", "digits"),
    "pmin": ("x", "y"),
    "pmax": ("x", "y"),
    "scale": ("x", "center", "scale"),
    "factor": ("x", "levels"),
    "as.factor": ("x",),
    "relevel": ("x", "ref"),
    "poly": ("x", "degree", "raw"),
    "offset": ("x",),
    # centring within clusters: x minus its cluster mean, and the cluster mean (over the rows used)
    "cwc": ("x", "g"),
    "cmean": ("x", "g"),
    # the factors' combinations; its positional arguments are R's `...`, matched as ..1, ..2, ...
    "interaction": ("...", "drop", "sep", "lex.order"),
    # a binomial response's successes and failures, as glmer takes cbind(successes, failures)
    "cbind": ("...",),
}
FACTOR_FUNCTIONS = {"factor", "as.factor", "relevel", "interaction"}
GROUP_MEAN_FUNCTIONS = {"cwc", "cmean"}
# options that must be constants: TRUE/FALSE (T/F) or numbers
_CONSTANT_OPTIONS = {"center", "scale", "degree", "raw", "digits", "drop", "lex.order"}
# options that are literal values: strings or numbers, c() of them for levels
_LITERAL_OPTIONS = {"ref", "levels", "sep"}
# R's constant pi, unless the data have a column of that name
R_CONSTANTS = {"pi": 3.141592653589793}
_ARITHMETIC = {"+", "-", "*", "/", "^", "%%", "%/%"} | COMPARISONS


def match_arguments(call: Call) -> dict[str, Node]:
    """R's argument matching for the known functions: names first (exactly), then positions.

    A function whose first formal is `...` takes every positional argument there, as ..1, ..2, ...
    """
    formals = FUNCTIONS[call.fn]
    out: dict[str, Node] = {}
    if formals[0] == "...":
        dots = 0
        for name, arg in zip(call.names, call.args, strict=True):
            if name is None:
                dots += 1
                out[f"..{dots}"] = arg
            elif name not in formals[1:] or name in out:
                raise FormulaError(
                    f"{call.fn}() has no argument '{name}'"
                    if name not in formals
                    else f"argument '{name}' of {call.fn}() given twice",
                    "",
                    arg.pos,
                )
            else:
                out[name] = arg
        if "..1" not in out:
            raise FormulaError(f"{call.fn}() needs an argument", "", call.pos)
        return out
    for name, arg in zip(call.names, call.args, strict=True):
        if name is not None:
            if name not in formals or name in out:
                raise FormulaError(
                    f"{call.fn}() has no argument '{name}'"
                    if name not in formals
                    else f"argument '{name}' of {call.fn}() given twice",
                    "",
                    arg.pos,
                )
            out[name] = arg
    free = [f for f in formals if f not in out]
    positional = [a for n, a in zip(call.names, call.args, strict=True) if n is None]
    if call.fn == "poly" and len(positional) > 2:  # R would take further values as more variables
        raise FormulaError("poly() takes one variable and its degree; give raw = TRUE by name", "", positional[2].pos)
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
                if (
                    values is None
                    or (name in ("ref", "sep") and len(values) != 1)
                    or (name == "sep" and not isinstance(values[0], str))
                ):
                    what = (
                        "a level in quotes or a number"
                        if name == "ref"
                        else 'levels in quotes, as c("a", "b")'
                        if name == "levels"
                        else 'a string, as "."'
                    )
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
                raise FormulaError("invalid term in model formula: a number other than 0 or 1", self.text, node.pos)
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
                raise FormulaError(f"operator '{node.op}' is not supported in model formulas", self.text, node.pos)
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


def model_spec(node: Node | None, text: str = "", response: Node | None = None) -> tuple[ModelSpec, list[Var]]:
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
