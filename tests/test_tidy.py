"""`mlm fit --format csv` against broom.mixed's tidy() as write.csv writes it (tests/fixtures/tidy)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from mlmcli.model import at_theta
from mlmcli.pipeline import lmer
from mlmcli.render.tidy import tidy_csv
from mlmcli.report import fit_report
from mlmcli.stats.confint import add_fixed_effect_intervals, varpar_names, wald
from tests.commands import mlm
from tests.refcheck import lme4_theta
from tests.test_inference import PROFILE_TOL  # of an interval's width

ROOT = Path(__file__).resolve().parent.parent
REFS = ROOT / "tests" / "fixtures" / "tidy"
DATA = "tests/fixtures/lme4/data"
# the cases of make_refs.R there
CASES = {
    "heck_seed1": ("sample_data/heck2011.csv", "math ~ ses + (ses|schcode)"),
    "heck_seed2": ("sample_data/heck2011.csv", "math ~ 1 + ses + public + ses:public + (1 + ses|schcode)"),
    "sleep": (f"{DATA}/sleepstudy.csv", "Reaction ~ Days + (Days|Subject)"),
    "sleep_uncorr": (f"{DATA}/sleepstudy.csv", "Reaction ~ Days + (Days||Subject)"),
    "penicillin": (f"{DATA}/Penicillin.csv", "diameter ~ 1 + (1|plate) + (1|sample)"),
    "pastes": (f"{DATA}/Pastes.csv", "strength ~ 1 + (1|batch/cask)"),
    "dye2": (f"{DATA}/Dyestuff2.csv", "Yield ~ 1 + (1|Batch)"),
    "block3": (f"{DATA}/block3.csv", "y ~ x1 + x2 + (1 + x1 + x2|g)"),
}
# estimates agree with lme4's to about 1e-6 relative; Satterthwaite's df (numerical derivatives in
# lmerTest) and p-values far in the tail to about 1e-5 relative
REL = {"df": 1e-4, "p.value": 1e-4}


def cells(line: str) -> list[str]:
    """The raw fields of one CSV line (quotes kept: R quotes strings and writes NA bare)."""
    return line.split(",")


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def assert_same_table(got: str, want: str) -> None:
    g_lines, w_lines = got.splitlines(), want.splitlines()
    assert g_lines[0] == w_lines[0]
    assert len(g_lines) == len(w_lines)
    header = [h.strip('"') for h in cells(w_lines[0])]
    for g_line, w_line in zip(g_lines[1:], w_lines[1:], strict=True):
        for col, g, w in zip(header, cells(g_line), cells(w_line), strict=True):
            if w.startswith('"') or w == "NA":
                assert g == w, (col, w_line)
            else:
                assert g != "NA", (col, w_line)
                want_v = float(w)
                rel = REL.get(col, 2e-6)
                assert float(g) == pytest.approx(want_v, rel=rel, abs=1e-8 + (1e-300 if col == "p.value" else 0)), (
                    col,
                    w_line,
                )


THETAS = json.loads((REFS / "thetas.json").read_text())


def fitted_report(case: str) -> tuple:
    """Ours at lme4's theta (R stops up to ~1e-6 above the criterion's minimum, where our optimizer
    goes on; tests/refcheck.py): broom.mixed's numbers are ours there, to rounding."""
    data, formula = CASES[case]
    model, _ = lmer(str(ROOT / data), formula)
    theta = THETAS[case]["theta"] if case in THETAS else lme4_theta(data, formula, True)
    model = at_theta(model, theta)
    return model, fit_report(model)


@pytest.mark.parametrize("case", sorted(CASES))
def test_tidy_csv_matches_broom_mixed(case):
    _, report = fitted_report(case)
    assert_same_table(tidy_csv(report), (REFS / f"{case}.csv").read_text())


@pytest.mark.parametrize("case", ["sleep", "pastes"])
def test_tidy_csv_with_profile_intervals(case):
    """broom.mixed's conf.method = "profile" gives the variance parameters' profile intervals; its
    fixed-effect intervals on a lmerTest fit are t intervals with Satterthwaite's df whatever the
    method, where mlm gives the --ci method's (lme4's confint()): those are checked against lme4."""
    model, report = fitted_report(case)
    all_ci = add_fixed_effect_intervals(report, model, "profile", 0.95, variance_parameters=True)
    got = parse(tidy_csv(report, all_ci[: len(all_ci) - model.p]))
    want = parse((REFS / f"{case}.profile.csv").read_text())
    assert list(got[0]) == list(want[0])
    lme4 = {
        r["parameter"]: r
        for r in json.loads((ROOT / "tests" / "fixtures" / "inference" / f"{case}.json").read_text())[
            "confint_profile"
        ]["intervals"]
    }
    for g, w in zip(got, want, strict=True):
        assert (g["effect"], g["group"], g["term"]) == (w["effect"], w["group"], w["term"])
        if w["effect"] == "fixed":
            ref = lme4[w["term"]]
            lo, hi = ref["lower"], ref["upper"]
        else:
            lo, hi = float(w["conf.low"]), float(w["conf.high"])
        width = hi - lo
        assert float(g["conf.low"]) == pytest.approx(lo, abs=PROFILE_TOL * width), g["term"]
        assert float(g["conf.high"]) == pytest.approx(hi, abs=PROFILE_TOL * width), g["term"]


def test_cli_fit_format_csv():
    data, formula = CASES["pastes"]
    p = mlm("fit", data, formula, "-f", "csv")
    assert p.returncode == 0, p.stderr
    assert_same_table(p.stdout, (REFS / "pastes.csv").read_text())


def test_cli_fit_csv_with_wald_intervals():
    """Wald: intervals for the fixed effects only (lme4's confint(method = "Wald")), NA for the
    variance parameters."""
    data, formula = CASES["penicillin"]
    p = mlm("fit", data, formula, "-f", "csv", "--ci", "wald")
    assert p.returncode == 0, p.stderr
    rows = parse(p.stdout)
    # the library's intervals at the optimum (lme4's at lme4's theta: tests/test_inference.py)
    model, _ = lmer(str(ROOT / data), formula)
    lo, hi = wald(model)[len(varpar_names(model, old=True))]
    assert rows[0]["term"] == "(Intercept)"
    assert float(rows[0]["conf.low"]) == pytest.approx(lo, rel=1e-12)
    assert float(rows[0]["conf.high"]) == pytest.approx(hi, rel=1e-12)
    assert all(r["conf.low"] == "NA" and r["conf.high"] == "NA" for r in rows[1:])
    assert p.stdout.splitlines()[1].split(",")[1] == "NA"  # group of a fixed effect: a bare NA


def test_cli_fit_csv_without_satterthwaite_has_no_df():
    """--ddf none is a plain lme4 fit: broom.mixed's tidy() of a lmerMod has no df and p.value."""
    data, formula = CASES["dye2"]
    p = mlm("fit", data, formula, "-f", "csv", "--ddf", "none")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == '"effect","group","term","estimate","std.error","statistic"'
    assert p.stdout.splitlines()[2] == '"ran_pars","Batch","sd__(Intercept)",0,NA,NA'
