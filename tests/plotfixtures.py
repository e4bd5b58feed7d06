"""The fits the picture tests draw (test_plots*, through tests/conftest.py's fixtures): data paths and a REML fit."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HECK = ROOT / "sample_data" / "heck2011.csv"
DATA = ROOT / "tests" / "fixtures" / "lme4" / "data"
REFS = ROOT / "tests" / "fixtures" / "lme4"
SLEEP_MODEL = "Reaction ~ Days + (Days|Subject)"


def fit(path: Path | str, formula: str):
    """(model, frame): lmer(formula, data, REML = TRUE) on a CSV file."""
    from mlmcli.design import build_design
    from mlmcli.formula import parse_formula
    from mlmcli.io.csv import read_csv
    from mlmcli.model import fit_model

    frame = read_csv(str(path))
    f = parse_formula(formula)
    return fit_model(f, build_design(frame, f), reml=True, data_name=frame.name), frame
