"""Arbitrary text never makes the command fail with exit status 1 (an internal error).

Formulas, --where expressions and CSV files are generated at random, from plain text and from the
pieces of each grammar; the command runs in process (as `mlm ...` does) and must exit 0, 2 or 3.
"""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlmcli import cli
from mlmcli.errors import MlmError
from mlmcli.frame import read_csv
from mlmcli.where import parse_where, where_mask

ROOT = Path(__file__).resolve().parent.parent
SLEEP = str(ROOT / "tests" / "fixtures" / "lme4" / "data" / "sleepstudy.csv")
ALLOWED = {0, 2, 3}
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(*args: str) -> tuple[int, str]:
    """The command in process: its exit status and standard error."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            cli.main(list(args))
        except SystemExit as e:
            code = int(e.code or 0)
    return code, err.getvalue()


def pieces(tokens: list[str], max_size: int = 24) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(tokens), max_size=max_size).map("".join)


FORMULA_TOKENS = ["Reaction", "Days", "Subject", "y", " ", "~", "+", "-", "*", "/", ":", "|", "||", "(", ")",
                  "^", "0", "1", "2", "1e400", "-1", "I(", "log(", "sqrt(", "exp(", "factor(", "poly(", "scale(",
                  ",", "=", "raw", "base", "TRUE", "NA", "%in%", "%%", ".", "`", "\"", "'", "offset(", "Days^2"]
WHERE_TOKENS = ["Reaction", "Days", "Subject", "nope", " ", "<", "<=", ">", ">=", "==", "=", "!=", "<>", "!",
                "&", "|", "&&", "||", "and", "or", "not", "in", "(", ")", ",", "1", "-0.5", "1e999", "308",
                "\"308\"", "'a'", "TRUE", "NA", "`Days`", "`", "\"", "\\"]
CELL = st.sampled_from(["1", "2.5", "-3", "1e400", "NA", "", "a", "b c", "\"q\"", "\"x,y\"", "TRUE", "0x1A",
                        "\"", " ", "Inf", "NaN", "1,2", "é"])


@FUZZ
@given(st.one_of(st.text(max_size=60), pieces(FORMULA_TOKENS)))
def test_formula_text_never_gives_an_internal_error(formula):
    code, err = run("fit", SLEEP, formula, "-f", "json", "--ddf", "none")
    assert code in ALLOWED, err


SLEEP_FRAME = read_csv(SLEEP)


@FUZZ
@given(st.one_of(st.text(max_size=60), pieces(WHERE_TOKENS)))
def test_where_text_is_kept_or_refused_in_words(text):
    # what `mlm plot --where` does with it: parse before fitting, then pick the rows
    try:
        with cli._user_errors(text):
            parse_where(text)
            mask = where_mask(SLEEP_FRAME, text)
    except MlmError:
        return
    assert len(mask) == SLEEP_FRAME.n_rows


@FUZZ
@given(st.one_of(
    st.text(max_size=200),
    st.lists(st.lists(CELL, min_size=1, max_size=4).map(",".join), max_size=12).map(
        lambda rows: "\n".join(["y,x,g", *rows]) + "\n"),
))
def test_csv_text_never_gives_an_internal_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("csv") / "data.csv"
    path.write_text(text, encoding="utf-8")
    code, err = run("fit", str(path), "y ~ x + (1|g)", "-f", "json", "--ddf", "none")
    assert code in ALLOWED, err
