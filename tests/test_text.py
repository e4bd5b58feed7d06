"""text.py against lme4 1.1-31 + lmerTest 3.1-3 output, byte for byte.

Fixtures: tests/fixtures/text/visible (the visible shared references), tests/fixtures/text (R fits
made by make_text_refs.R for the tricky cases) and tests/fixtures/lme4 (the reference suite).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from mlmcli.render import text

FIX = Path(__file__).parent / "fixtures"
VISIBLE = FIX / "text" / "visible"
OWN = FIX / "text"
SUITE = FIX / "lme4"
REFIT = "refitting model(s) with ML (instead of REML)\n"


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def stderr_of(path: Path) -> str:
    return read(path) if path.exists() else ""


def ids_with(folder: Path, suffix: str) -> list[str]:
    return sorted(p.name[: -len(suffix)] for p in folder.glob("*" + suffix))


# ---------------------------------------------------------------- visible references


def visible_fit(case_id: str) -> dict:
    """The visible fit JSON plus the keys the engine adds, taken from the case as the brief says."""
    ref = load(VISIBLE / f"{case_id}.json")
    fit = copy.deepcopy(ref["fit"])
    formula_line = next(
        ln for ln in read(VISIBLE / f"{case_id}.summary.txt").splitlines() if ln.startswith("Formula: ")
    )
    fit.update(
        data_name=ref["case"]["data_name"],
        deparsed_formula=[formula_line[len("Formula: ") :]],
        ddf="Satterthwaite",
        df_resid=fit["n_obs"] - fit["npar"],
        conv_code=0,
        conv_messages=fit["lme4_conv_messages"],
    )
    return fit


VISIBLE_FITS = ids_with(VISIBLE, ".summary.txt")


def test_visible_cases_present() -> None:
    assert VISIBLE_FITS == [
        "heck_seed1_ml",
        "heck_seed1_reml",
        "heck_seed2_ml",
        "heck_seed2_reml",
        "ss_slope_reml",
        "ss_uncorr_reml",
    ]


@pytest.mark.parametrize("case_id", VISIBLE_FITS)
def test_visible_summary(case_id: str) -> None:
    out = text.fit_summary_output(visible_fit(case_id))
    assert out.out == read(VISIBLE / f"{case_id}.summary.txt")
    assert out.err == ""


@pytest.mark.parametrize("case_id", VISIBLE_FITS)
def test_visible_tau(case_id: str) -> None:
    assert text.tau_text(load(VISIBLE / f"{case_id}.json")["tau"]) == read(VISIBLE / f"{case_id}.tau.txt")


def test_visible_anova() -> None:
    cmp = copy.deepcopy(load(VISIBLE / "cmp_heck_seed.json"))
    want = read(VISIBLE / "cmp_heck_seed.anova.txt")
    deparsed = dict(re.findall(r"^(m\d+): (.*)$", want, flags=re.M))
    cmp["data_name"] = cmp["case"]["data_name"]
    for m in cmp["models"]:
        m["deparsed_formula"] = [deparsed[m["name"]]]
    out = text.anova_output(cmp)
    assert out.err + out.out == want
    assert out.err == REFIT
    assert text.anova_text(cmp) == want[len(REFIT) :]


# ---------------------------------------------------------------- own R fits (make_text_refs.R)

OWN_FITS = ids_with(OWN, ".summary.txt")
OWN_TAUS = ids_with(OWN, ".tau.txt")
OWN_CMPS = ids_with(OWN, ".anova.txt")


def test_own_fixtures_present() -> None:
    assert len(OWN_FITS) == 17 and len(OWN_CMPS) == 5 and len(OWN_TAUS) == 25


@pytest.mark.parametrize("case_id", OWN_FITS)
def test_own_summary_satterthwaite(case_id: str) -> None:
    fit = load(OWN / f"{case_id}.json")["fit"]
    out = text.fit_summary_output(fit)
    assert out.out == read(OWN / f"{case_id}.summary.txt")
    assert out.err == stderr_of(OWN / f"{case_id}.summary.stderr.txt")


@pytest.mark.parametrize("case_id", OWN_FITS)
def test_own_summary_lme4(case_id: str) -> None:
    fit = dict(load(OWN / f"{case_id}.json")["fit"], ddf="none")
    out = text.fit_summary_output(fit)
    assert out.out == read(OWN / f"{case_id}.summary_lme4.txt")
    assert out.err == stderr_of(OWN / f"{case_id}.summary_lme4.stderr.txt")


@pytest.mark.parametrize("case_id", OWN_TAUS)
def test_own_tau(case_id: str) -> None:
    out = text.tau_output(load(OWN / f"{case_id}.json")["tau"])
    assert out.out == read(OWN / f"{case_id}.tau.txt")
    assert out.err == stderr_of(OWN / f"{case_id}.tau.stderr.txt")


@pytest.mark.parametrize("case_id", OWN_CMPS)
def test_own_anova(case_id: str) -> None:
    out = text.anova_output(load(OWN / f"{case_id}.json"))
    assert out.out == read(OWN / f"{case_id}.anova.txt")
    assert out.err == stderr_of(OWN / f"{case_id}.anova.stderr.txt")


# ---------------------------------------------------------------- the lme4 reference suite

SUITE_FITS = ids_with(SUITE, ".summary.txt")
SUITE_LME4 = ids_with(SUITE, ".summary_lme4.txt")
SUITE_TAUS = ids_with(SUITE, ".tau.txt")
SUITE_CMPS = ids_with(SUITE, ".anova.txt")


def suite_fit(case_id: str, ddf: str) -> dict:
    return dict(load(SUITE / f"{case_id}.json")["fit"], ddf=ddf)


@pytest.mark.parametrize("case_id", SUITE_FITS)
def test_suite_summary(case_id: str) -> None:
    assert text.fit_summary(suite_fit(case_id, "Satterthwaite")) == read(SUITE / f"{case_id}.summary.txt")


@pytest.mark.parametrize("case_id", SUITE_LME4)
def test_suite_summary_lme4(case_id: str) -> None:
    fit = suite_fit(case_id, "none")
    out = text.fit_summary_output(fit)
    assert out.out == read(SUITE / f"{case_id}.summary_lme4.txt")
    if "lme4_summary_messages" in fit:
        assert out.err.rstrip("\n") == "".join(fit["lme4_summary_messages"]).rstrip("\n")


@pytest.mark.parametrize("case_id", SUITE_TAUS)
def test_suite_tau(case_id: str) -> None:
    assert text.tau_text(load(SUITE / f"{case_id}.json")["tau"]) == read(SUITE / f"{case_id}.tau.txt")


@pytest.mark.parametrize("case_id", SUITE_CMPS)
def test_suite_anova(case_id: str) -> None:
    cmp = load(SUITE / f"{case_id}.json")
    out = text.anova_output(cmp)
    assert out.err + out.out == read(SUITE / f"{case_id}.anova.txt")


# ---------------------------------------------------------------- behaviour without R


def test_cor_note_goes_to_stderr_with_the_object_name() -> None:
    fit = load(OWN / "cake_p18_reml.json")["fit"]
    out = text.fit_summary_output(fit, name="m")
    assert "Correlation of Fixed Effects" not in out.out
    assert out.err.startswith("\nCorrelation matrix not shown by default, as p = 18 > 12.\n")
    assert "Use print(m, correlation=TRUE)  or\n    vcov(m)        if you need it\n" in out.err


def test_summary_defaults_to_lmertest_and_formula() -> None:
    fit = visible_fit("ss_slope_reml")
    for key in ("ddf", "deparsed_formula", "conv_code", "conv_messages", "df_resid"):
        fit.pop(key)
    got = text.fit_summary(fit)
    assert got.startswith(
        "Linear mixed model fit by REML. t-tests use Satterthwaite's method [\n"
        "lmerModLmerTest]\nFormula: Reaction ~ Days + (Days|Subject)\n"
    )


def test_deparse1_joins_continuation_lines() -> None:
    lines = ["y ~ a + b + (1 | ", "    g) + c"]
    assert text.deparse1(lines) == "y ~ a + b + (1 | g) + c"
