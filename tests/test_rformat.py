"""rformat against R 4.2.2's own output (tests/fixtures/rformat/rformat_cases.json, see make_rformat.R)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mlmcli.rcompat import rformat as rf

CASES = json.loads((Path(__file__).parent / "fixtures" / "rformat" / "rformat_cases.json").read_text())


def num(s: str | None) -> float | None:
    """Read back a number written by make_rformat.R (NA is null; "NaN", "Inf", "-Inf" as in R)."""
    return None if s is None else float(s.replace("Inf", "inf"))


def nums(v: list) -> list[float | None]:
    return [num(s) for s in v]


def same_double(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1, a) == math.copysign(1, b)


def ids(key: str) -> list[str]:
    return [f"{key}{i}" for i in range(len(CASES[key]))]


@pytest.mark.parametrize("case", CASES["format"], ids=ids("format"))
def test_format(case: dict) -> None:
    x = nums(case["x"])
    assert list(rf.format_real(x, case["digits"], case["nsmall"])) == case["info"]
    assert rf.format_num(x, case["digits"], case["nsmall"]) == case["out"]


@pytest.mark.parametrize("case", CASES["round"], ids=ids("round"))
def test_round(case: dict) -> None:
    assert same_double(rf.r_round(num(case["x"]), case["digits"]), num(case["out"]))


@pytest.mark.parametrize("case", CASES["signif"], ids=ids("signif"))
def test_signif(case: dict) -> None:
    assert same_double(rf.r_signif(num(case["x"]), case["digits"]), num(case["out"]))


@pytest.mark.parametrize("case", CASES["zapsmall"], ids=ids("zapsmall"))
def test_zapsmall(case: dict) -> None:
    got = rf.zapsmall(nums(case["x"]), case["digits"])
    want = nums(case["out"])
    assert all(same_double(g, w) for g, w in zip(got, want, strict=True))


@pytest.mark.parametrize("case", CASES["format_pval"], ids=ids("format_pval"))
def test_format_pval(case: dict) -> None:
    assert rf.format_pval(nums(case["pv"]), case["digits"], num(case["eps"])) == case["out"]


@pytest.mark.parametrize("case", CASES["abbreviate"], ids=ids("abbreviate"))
def test_abbreviate(case: dict) -> None:
    assert rf.abbreviate(case["names"], case["minlength"]) == case["out"]


@pytest.mark.parametrize("case", CASES["cat"], ids=ids("cat"))
def test_cat_number(case: dict) -> None:
    assert rf.cat_num(num(case["x"])) == case["out"]


@pytest.mark.parametrize("case", CASES["print_named"], ids=ids("print_named"))
def test_print_named(case: dict) -> None:
    got = rf.print_named_num(nums(case["x"]), case["names"], case["digits"])
    assert got == case["out"] + "\n"


@pytest.mark.parametrize("case", CASES["char_matrix"], ids=ids("char_matrix"))
def test_print_char_matrix(case: dict) -> None:
    got = rf.print_matrix(case["cells"], case["rownames"], case["colnames"], right=case["right"])
    assert got == case["out"] + "\n"


@pytest.mark.parametrize("case", CASES["coefmat"], ids=ids("coefmat"))
def test_print_coefmat(case: dict) -> None:
    x = [nums(row) for row in case["x"]]
    got = rf.print_coefmat(x, case["rownames"], case["colnames"], digits=case["digits"])
    assert got == case["out"] + "\n"


@pytest.mark.parametrize("case", CASES["strwrap"], ids=ids("strwrap"))
def test_strwrap(case: dict) -> None:
    assert rf.strwrap(case["x"], case["width"], case["indent"], case["exdent"]) == case["out"]


@pytest.mark.parametrize("case", CASES["formatC"], ids=ids("formatC"))
def test_format_c(case: dict) -> None:
    x = int(case["x"]) if case["format"] == "d" else num(case["x"])
    assert rf.format_c(x, case["width"], case["digits"], case["format"], case["flag"]) == case["out"]


@pytest.mark.parametrize("case", CASES["cat_fill"], ids=ids("cat_fill"))
def test_cat_fill(case: dict) -> None:
    assert rf.cat(*case["objs"], sep=case["sep"], fill=case["fill"]) == case["out"] + "\n"


def test_long_double_scaling_decides_digit_counts() -> None:
    # R scales 0x1.35ada7f0c1fe3p-4 (0.075605064408705) by 1e14 in long double: the product rounds
    # to an exact .5, which rounds to even, so 12 significant digits suffice where exact arithmetic
    # would keep 13 ("0.07560506440871")
    x = float.fromhex("0x1.35ada7f0c1fe3p-4")
    assert rf.format_num([x], 13) == ["0.0756050644087"]
    assert rf.format_real([x], 13) == rf.RealFormat(15, 13, 0)


def test_na_and_specials() -> None:
    assert rf.format_num([None, math.nan, math.inf, -1.5]) == ["  NA", " NaN", " Inf", "-1.5"]
    assert rf.format_pval([None, 1e-20, 0.5], 3) == ["NA", "<2e-16", "0.5"]
    assert rf.cat_num(48190.1) == "48190.1" and rf.cat_num(1234567.8) == "1234568"
