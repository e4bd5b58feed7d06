"""The formula grammar: parsing, R's terms() expansion, lme4's bar handling, R's deparse()."""

from __future__ import annotations

import itertools
import json
import re
from math import comb
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmcli.errors import FormulaError
from mlmcli.formula import Binary, Call, Num, Paren, Sym, Unary, Var, deparse_node, parse_formula

FIXTURES = Path(__file__).parent / "fixtures" / "design"
R_FORMULAS = json.loads((FIXTURES / "formulas.json").read_text())


def _as_list(x) -> list:
    return x if isinstance(x, list) else [x]


# ---------------------------------------------------------------- against R


@pytest.mark.parametrize("case", R_FORMULAS, ids=lambda c: c["formula"])
def test_formula_matches_r(case):
    f = parse_formula(case["formula"])
    assert f.deparse() == _as_list(case["deparse"])
    assert f.fixed.intercept == case["fixed"]["intercept"]
    assert [t.label for t in f.fixed.terms] == case["fixed"]["labels"]
    # variables are named as terms() names them: R's model frame alone keeps the L of 2L
    assert [v.label for v in f.variables] == [re.sub(r"(\d)L\b", r"\1", v) for v in case["variables"]]
    ours = [(r.label, r.group, r.lhs.intercept, r.lhs.labels) for r in f.random]
    theirs = [(r["label"], r["group"], r["intercept"], r["labels"]) for r in case["random"]]
    assert ours == theirs


@pytest.mark.parametrize("case", R_FORMULAS, ids=lambda c: c["formula"])
def test_deparse_round_trips(case):
    f = parse_formula(case["formula"])
    again = parse_formula(" ".join(f.deparse()))
    assert again.deparse() == f.deparse()
    assert again.fixed == f.fixed
    assert again.random == f.random


# ---------------------------------------------------------------- parser


def test_precedence_follows_r():
    f = parse_formula("y ~ -a:b + I(x^-1^2) + (1 + x | g)")
    rhs = f.stored.right
    assert isinstance(rhs, Binary) and rhs.op == "+"
    left = rhs.left
    assert isinstance(left, Binary) and left.op == "+"
    # unary minus binds tighter than ':'
    assert left.left == Binary(":", Unary("-", Sym("a")), Sym("b"))
    # '^' is right associative and takes a signed exponent
    assert left.right == Call("I", (Binary("^", Sym("x"), Unary("-", Binary("^", Num(1.0), Num(2.0)))),))
    assert rhs.right == Paren(Binary("|", Binary("+", Num(1.0), Sym("x")), Sym("g")))


def test_numbers_and_names():
    f = parse_formula("y ~ I(x * 1e5 + 0x10 + 2L + .5) + `x` + (1|g)")
    assert f.deparse() == ["y ~ I(x * 1e+05 + 16 + 2L + 0.5) + x + (1 | g)"]
    # terms() names variables without the L of integer constants
    assert f.fixed.labels == ["I(x * 1e+05 + 16 + 2 + 0.5)", "x"]


def test_whitespace_is_ignored():
    a = parse_formula("math~ses+(1+ses|schcode)")
    b = parse_formula("  math  ~  ses +\n (  1 + ses |\tschcode )  ")
    assert a.deparse() == b.deparse() == ["math ~ ses + (1 + ses | schcode)"]
    assert a.fixed == b.fixed and a.random == b.random


def test_var_columns_and_formula_columns():
    f = parse_formula("log(y) ~ I(x^2 / z) + scale(w) + factor(k):x + (1 + x | a/b)")
    assert f.response == Var("log(y)")
    assert f.response.columns() == Var("log(y)").columns() == ["y"]
    assert f.fixed.terms[0].vars[0].columns() == ["x", "z"]
    assert f.columns() == ["y", "x", "z", "w", "k", "a", "b"]
    # `x` itself first appears after factor(k): R orders the interaction's variables so
    assert [t.label for t in f.fixed.terms] == ["I(x^2/z)", "scale(w)", "factor(k):x"]


def test_random_terms_after_expansion():
    f = parse_formula("y ~ x + (x || g) + (1 | a/b)")
    assert [(r.group, r.group_vars, r.lhs.intercept, r.lhs.labels) for r in f.random] == [
        ("g", ("g",), True, []),
        ("g", ("g",), False, ["x"]),
        ("b:a", ("b", "a"), True, []),
        ("a", ("a",), True, []),
    ]
    assert f.deparse() == ["y ~ x + ((1 | g) + (0 + x | g)) + (1 | a/b)"]


def test_grouping_factors_may_be_calls():
    """lme4 takes any expression giving a factor: the grouping variables are the model frame's."""
    f = parse_formula('y ~ x + (1 | factor(a):b) + (x || interaction(a, b, sep = "_")) + (1 | c/factor(d))')
    assert [(r.group, r.group_vars) for r in f.random] == [
        ("factor(a):b", ("factor(a)", "b")),
        ('interaction(a, b, sep = "_")', ('interaction(a, b, sep = "_")',)),
        ('interaction(a, b, sep = "_")', ('interaction(a, b, sep = "_")',)),
        ("factor(d):c", ("factor(d)", "c")),
        ("c", ("c",)),
    ]
    assert [v.label for v in f.variables] == [
        "y",
        "x",
        "factor(a)",
        "b",
        'interaction(a, b, sep = "_")',
        "c",
        "factor(d)",
    ]
    assert f.columns() == ["y", "x", "a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("y ~ (1 | interaction())", "interaction() needs an argument"),
        ('y ~ (1 | interaction(sep = "."))', "interaction() needs an argument"),
        ('y ~ (1 | interaction(a, b, sepp = "_"))', "interaction() has no argument 'sepp'"),
        ("y ~ (1 | interaction(a, b, sep = 1))", 'interaction(): sep must be a string, as "."'),
        ("y ~ (1 | interaction(a, b, drop = d))", "interaction(): drop must be TRUE, FALSE or a number"),
    ],
)
def test_interaction_arguments_are_checked(text, message):
    with pytest.raises(FormulaError, match=re.escape(message)):
        parse_formula(text)


def test_intercept_implied_on_random_lhs():
    f = parse_formula("y ~ 1 + (x | g) + (0 + x | h) + (x - 1 | k)")
    assert [r.lhs.intercept for r in f.random] == [True, False, False]
    assert [r.lhs.labels for r in f.random] == [["x"], ["x"], ["x"]]


def test_factor_inside_random_term():
    f = parse_formula("y ~ x + (0 + f | g)")
    assert f.random[0].lhs.labels == ["f"]
    assert not f.random[0].lhs.intercept


def test_deparse_breaks_long_formulas_like_r():
    names = [f"predictor_number_{i}" for i in range(12)]
    f = parse_formula("y ~ " + " + ".join(names) + " + (1 | g)")
    lines = f.deparse()
    assert len(lines) > 1
    assert all(line.startswith("    ") for line in lines[1:])
    # a line ends right after the first operator that takes it past 60 bytes
    for line in lines[:-1]:
        assert line.endswith("+ ") and len(line) > 60
        assert len(line.rstrip(" +").rsplit(" + ", 1)[0]) <= 60 + 3


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("y ~ x + (1 | g", "unbalanced parentheses", 8),
        ("y ~ x + 1 | g)", "unbalanced parentheses", 13),
        ("y ~ x + ", "empty term", 8),
        ("y ~ x + + * z + (1|g)", "empty term", 10),
        ("y ~ () + (1|g)", "empty term", 5),
        ("y ~ x + (1 | )", "empty term", 13),
        ("y ~ foo(x) + (1|g)", "unknown function 'foo'", 4),
        ("y ~ x + (1|g) + weights(w)", "unknown function 'weights'", 16),
        ("y + x + (1|g)", "missing '~'", 0),
        ("~ x + (1|g)", "response", 0),
        ("y ~ x", "No random effects terms specified in formula", 5),
        ("y ~ x + 2 + (1|g)", "invalid term", 8),
        ("y ~ (a+b)^x + (1|g)", "invalid power", 10),
        ("y ~ (a+b)^1 + (1|g)", "invalid power", 10),
        ("y ~ x ~ z + (1|g)", "more than one '~'", 6),
        ("y ~ x * (1|g)", "must be added", 10),
        ("y ~ x + (1|g + h)", "grouping factor", 13),
        ("y ~ x + (1|g) + #", "unexpected character '#'", 16),
        ("y ~ I(x | z) + (1|g)", "cannot be inside", 4),
        ("y ~ I(a:b) + (1|g)", "cannot be used inside I()", 7),
        ("y ~ . + (1|g)", "not supported", 4),
        ("", "empty formula", 0),
    ],
)
def test_errors_have_positions(text, message, position):
    with pytest.raises(FormulaError) as info:
        parse_formula(text)
    err = info.value
    assert message in str(err)
    assert err.position == position
    assert err.formula == text


# ---------------------------------------------------------------- properties

VARIABLES = ["a", "b", "c", "d", "log(e)", "I(f^2)"]


def _sum_formula(terms: list[tuple[str, ...]]) -> str:
    return "y ~ " + " + ".join(":".join(t) for t in terms) + " + (1 | g)"


term_lists = st.lists(
    st.lists(st.sampled_from(VARIABLES), min_size=1, max_size=3, unique=True).map(tuple),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(term_lists)
def test_sums_are_deduplicated_and_ordered_by_degree(terms):
    f = parse_formula(_sum_formula(terms))
    labels = f.fixed.labels
    sets = [frozenset(v.label for v in t.vars) for t in f.fixed.terms]
    assert len(set(sets)) == len(sets)  # no term twice, whatever the order of its variables
    assert set(sets) == {frozenset(t) for t in terms}
    degrees = [len(t.vars) for t in f.fixed.terms]
    assert degrees == sorted(degrees)
    # within a degree, terms keep their order of first appearance
    first = {}
    for t in terms:
        first.setdefault(frozenset(t), len(first))
    for d in set(degrees):
        same = [s for s, k in zip(sets, degrees, strict=True) if k == d]
        assert same == sorted(same, key=first.__getitem__)
    # variables of a term appear in their order of first appearance in the formula
    order = list(dict.fromkeys(v for t in terms for v in t))
    for label in labels:
        parts = label.split(":")
        assert parts == sorted(parts, key=order.index)


@settings(max_examples=60, deadline=None)
@given(term_lists, st.booleans())
def test_parse_deparse_round_trip(terms, intercept):
    text = _sum_formula(terms).replace("y ~ ", "y ~ 1 + " if intercept else "y ~ 0 + ")
    f = parse_formula(text)
    g = parse_formula(" ".join(f.deparse()))
    assert g.deparse() == f.deparse()
    assert (g.fixed, g.random, g.variables) == (f.fixed, f.random, f.variables)
    assert f.fixed.intercept == intercept


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(VARIABLES), min_size=1, max_size=5, unique=True), st.integers(2, 4))
def test_power_expansion_counts(variables, power):
    f = parse_formula(f"y ~ ({' + '.join(variables)})^{power} + (1 | g)")
    k = len(variables)
    assert len(f.fixed.terms) == sum(comb(k, j) for j in range(1, min(power, k) + 1))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(VARIABLES), min_size=2, max_size=6, unique=True), st.data())
def test_crossing_disjoint_sums(variables, data):
    cut = data.draw(st.integers(1, len(variables) - 1))
    left, right = variables[:cut], variables[cut:]
    f = parse_formula(f"y ~ ({' + '.join(left)}) * ({' + '.join(right)}) + (1 | g)")
    assert len(f.fixed.terms) == len(left) + len(right) + len(left) * len(right)
    g = parse_formula(f"y ~ ({' + '.join(left)}):({' + '.join(right)}) + (1 | g)")
    assert [t.label for t in g.fixed.terms] == [
        ":".join(sorted(pair, key=variables.index)) for pair in itertools.product(left, right)
    ]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(VARIABLES), min_size=1, max_size=4, unique=True))
def test_full_interaction_has_all_subsets(variables):
    f = parse_formula(f"y ~ {' * '.join(variables)} + (1 | g)")
    assert len(f.fixed.terms) == 2 ** len(variables) - 1


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(VARIABLES[:4]), min_size=1, max_size=4, unique=True), st.booleans())
def test_double_vert_expands_to_one_term_per_lhs_term(variables, intercept):
    lhs = ("1 + " if intercept else "0 + ") + " + ".join(variables)
    f = parse_formula(f"y ~ x + ({lhs} || g)")
    expected = ([(True, [])] if intercept else []) + [(False, [v]) for v in variables]
    assert [(r.lhs.intercept, r.lhs.labels) for r in f.random] == expected
    assert all(r.group == "g" for r in f.random)


def test_deparse_node_of_calls_with_several_arguments():
    node = Call("log", (Sym("x"), Num(2.0)))
    assert deparse_node(node) == ["log(x, 2)"]
