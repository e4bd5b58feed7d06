"""lme4's model formula grammar: parsing, R's terms() expansion and R's deparse().

A formula is parsed into a small syntax tree with R's operator precedence. The
random-effects terms are found, expanded and removed as lme4 does (expandDoubleVerts
for `||`, expandSlash for `/` in a grouping factor, findbars and nobars); the fixed part
and each random term's left-hand side are expanded into model terms as R's terms()
does (bitsets of variables in order of first appearance, terms sorted by degree).
"""

from __future__ import annotations

from mlmcli.errors import FormulaError
from mlmcli.formula.bars import (
    _expand_double_verts,
    _expand_slash,
    _find_bars,
    _group_variables,
    _has_bar,
    _inner_tilde,
    _no_bars,
    _start,
    _sub_bars,
)
from mlmcli.formula.deparse import _line, deparse_node
from mlmcli.formula.syntax import (
    COMPARISONS,
    Binary,
    Bool,
    Call,
    Node,
    Num,
    Paren,
    Str,
    Sym,
    Unary,
    _Parser,
)
from mlmcli.formula.terms import (
    FACTOR_FUNCTIONS,
    GROUP_MEAN_FUNCTIONS,
    R_CONSTANTS,
    Formula,
    ModelSpec,
    RandomTerm,
    Term,
    Var,
    _check_arithmetic,
    _Terms,
    constant_value,
    literal_values,
    match_arguments,
    model_spec,
)

__all__ = [
    "COMPARISONS",
    "FACTOR_FUNCTIONS",
    "GROUP_MEAN_FUNCTIONS",
    "R_CONSTANTS",
    "Binary",
    "Bool",
    "Call",
    "Formula",
    "FormulaError",
    "ModelSpec",
    "Node",
    "Num",
    "Paren",
    "RandomTerm",
    "Str",
    "Sym",
    "Term",
    "Unary",
    "Var",
    "constant_value",
    "deparse_node",
    "literal_values",
    "match_arguments",
    "parse_formula",
]

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
        if not lhs_spec.intercept and not lhs_spec.terms:
            # lme4 gets as far as a model with no covariance parameters and stops at
            # "length(theta) > 0L is not TRUE" (or, beside other terms, fits and then cannot print)
            raise FormulaError(
                f"the random-effects term ({_line(bar)}) has no columns: put 1 or a variable on the left of '|'",
                text,
                _start(bar),
            )
        if any(_is_offset(v) for v in lhs_vars):
            raise FormulaError("offset() belongs to the fixed part of the formula", text, bar.pos)
        for group in _expand_slash(bar.right, text):
            group_vars: list[str] = []
            _group_variables(group, text, group_vars)
            label = _line(Binary("|", bar.left, group))
            random.append(RandomTerm(lhs_spec, tuple(group_vars), _line(group), label))
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
