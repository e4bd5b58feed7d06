"""The `mlm` command as a user runs it: formats, files, standard input, and errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import jsonschema
import pytest

from tests.commands import mlm
from tests.test_text_end_to_end import nearly_same

ROOT = Path(__file__).resolve().parent.parent
HECK = str(ROOT / "sample_data" / "heck2011.csv")
SLEEP = str(ROOT / "tests" / "fixtures" / "lme4" / "data" / "sleepstudy.csv")
SCHEMAS = ROOT / "mlmcli" / "schemas"
SEED = "math ~ ses + (1 + ses|schcode)"


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


def test_fit_json_follows_the_schema_and_lme4():
    p = mlm("fit", HECK, SEED, "--format", "json")
    assert p.returncode == 0, p.stderr
    fit = json.loads(p.stdout)
    jsonschema.validate(fit, schema("fit"))
    assert fit["n_obs"] == 6871 and fit["groups"] == {"schcode": 419}
    assert fit["criterion"] == pytest.approx(48190.12993498824, abs=1e-6)
    assert fit["singular"] is True
    assert fit["warnings"] == ["boundary (singular) fit: see help('isSingular')"]
    # lme4 sends that message to stderr too
    assert "boundary (singular) fit" in p.stderr


def test_tau_ranef_compare_json_follow_their_schemas():
    tau = json.loads(mlm("tau", SLEEP, "Reaction ~ Days + (Days|Subject)", "--format", "json").stdout)
    jsonschema.validate(tau, schema("tau"))
    # lme4 stops 1.5e-9 above the REML minimum here: a variance's 5th digit (tests/refcheck.py)
    assert tau["groups"][0]["covariance"][0][0] == pytest.approx(612.1001580247688, rel=1e-4)
    ranef = json.loads(mlm("ranef", SLEEP, "Reaction ~ Days + (Days|Subject)", "--format", "json").stdout)
    jsonschema.validate(ranef, schema("ranef"))
    assert len(ranef["ranef"]) == 36 and all(isinstance(r["level"], str) for r in ranef["ranef"])
    p = mlm("compare", SLEEP, "Reaction ~ Days + (1|Subject)", "Reaction ~ Days + (Days|Subject)", "--format", "json")
    cmp = json.loads(p.stdout)
    jsonschema.validate(cmp, schema("compare"))
    assert cmp["refit_ml"] is True and cmp["models"][0]["chisq"] is None
    assert cmp["models"][1]["chisq"] == pytest.approx(42.139, abs=1e-3)
    assert p.stderr.strip() == "refitting model(s) with ML (instead of REML)"


def test_text_is_the_default_when_piped_and_matches_lme4():
    p = mlm("fit", SLEEP, "Reaction ~ Days + (Days|Subject)")
    want = (ROOT / "tests" / "fixtures" / "lme4" / "ss_slope_reml.summary.txt").read_text()
    # lme4's words; numbers as at our optimum, which lme4 stops a hair short of (test_text_end_to_end)
    assert not nearly_same(p.stdout.rstrip("\n"), want.rstrip("\n"), rel=2e-3)


def test_standard_input_is_data_named_stdin():
    data = Path(SLEEP).read_text()
    p = mlm("fit", "-", "Reaction ~ Days + (Days|Subject)", "--format", "text", stdin=data)
    assert p.returncode == 0, p.stderr
    assert "   Data: stdin" in p.stdout
    assert "Number of obs: 180, groups:  Subject, 18" in p.stdout


def test_output_file_is_written_whole(tmp_path):
    out = tmp_path / "fit.json"
    p = mlm("fit", SLEEP, "Reaction ~ Days + (Days|Subject)", "--ml", "--format", "json", "--output", str(out))
    assert p.returncode == 0 and p.stdout == ""
    fit = json.loads(out.read_text())
    assert fit["method"] == "ML"
    assert [f.name for f in tmp_path.iterdir()] == ["fit.json"]  # no temporary files left behind


def test_failed_run_leaves_no_output_file(tmp_path):
    out = tmp_path / "fit.json"
    p = mlm("fit", SLEEP, "Reaction ~ Dayz + (Days|Subject)", "--format", "json", "--output", str(out))
    assert p.returncode == 2
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_ddf_none_prints_lme4s_own_table():
    p = mlm("fit", SLEEP, "Reaction ~ Days + (Days|Subject)", "--ddf", "none", "--format", "text")
    want = (ROOT / "tests" / "fixtures" / "lme4" / "ss_slope_reml.summary_lme4.txt").read_text()
    assert not nearly_same(p.stdout.rstrip("\n"), want.rstrip("\n"), rel=2e-3)
    fit = json.loads(mlm("fit", SLEEP, "Reaction ~ Days + (Days|Subject)", "--ddf", "none", "--format", "json").stdout)
    assert all(r["df"] is None and r["p_value"] is None for r in fit["fixed_effects"])


def test_ranef_csv_long_and_wide():
    p = mlm("ranef", SLEEP, "Reaction ~ Days + (Days|Subject)", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert len(rows) == 36 and list(rows[0]) == ["group", "level", "term", "value", "cond_sd"]
    assert rows[0]["level"] == "308" and float(rows[0]["value"]) == pytest.approx(2.2585509, abs=1e-4)
    p = mlm("ranef", SLEEP, "Reaction ~ Days + (Days|Subject)", "--format", "csv", "--wide", "--with-coef")
    wide = list(csv.DictReader(io.StringIO(p.stdout)))
    assert len(wide) == 18
    # coef = fixed effect + conditional mode (lme4's coef(fit))
    assert float(wide[0]["coef(Days)"]) == pytest.approx(10.467286 + float(wide[0]["Days"]), abs=1e-5)


def test_table_format_without_colour():
    p = mlm("fit", HECK, SEED, "--format", "table", env={"NO_COLOR": "1", "COLUMNS": "100"})
    assert p.returncode == 0
    assert "\x1b[" not in p.stdout
    assert "schcode" in p.stdout and "57.70" in p.stdout


def test_tau_text_is_bdiag_print():
    p = mlm("tau", HECK, SEED, "--format", "text")
    assert p.stdout.splitlines()[0] == '2 x 2 sparse Matrix of class "dsCMatrix"'


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", SLEEP, "Reaction ~ Dayz + (Days|Subject)"], "unknown column 'Dayz' in formula; did you mean 'Days'?"),
        (["fit", SLEEP, "Reaction ~ Days + (Days|Subject"], "position"),
        (["fit", SLEEP, "Reaction ~ Days"], "No random effects terms specified in formula"),
        (["fit", "no/such/file.csv", "y ~ x + (1|g)"], "no/such/file.csv"),
        (["fit", SLEEP], "Missing argument 'FORMULA'"),
        (["compare", SLEEP, "Reaction ~ Days + (1|Subject)"], "at least two formulas"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    p = mlm(*args)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in p.stderr


def test_non_numeric_response_is_refused(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("y,x,g\na,1,1\nb,2,1\nc,3,2\nd,4,2\n")
    p = mlm("fit", str(data), "y ~ x + (1|g)")
    assert p.returncode == 2 and "y" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_compare_refuses_different_rows(tmp_path):
    text = Path(SLEEP).read_text().splitlines()
    header, rows = text[0], text[1:]
    cols = header.split(",")
    rows = [r.split(",") for r in rows]
    cols.append('"z"')
    for i, r in enumerate(rows):
        r.append("NA" if i % 10 == 0 else str(i % 7))
    data = tmp_path / "d.csv"
    data.write_text("\n".join([",".join(cols)] + [",".join(r) for r in rows]) + "\n")
    p = mlm("compare", str(data), "Reaction ~ Days + (1|Subject)", "Reaction ~ Days + z + (1|Subject)")
    assert p.returncode == 2 and "same" in p.stderr


def test_tau_table_and_correlation_only():
    env = {"NO_COLOR": "1", "COLUMNS": "100"}
    p = mlm("tau", SLEEP, "Reaction ~ Days + (Days|Subject)", "--format", "table", env=env)
    assert p.returncode == 0 and "0.066" in p.stdout and "654.9" in p.stdout
    intercept = next(line.split() for line in p.stdout.splitlines() if line.startswith("(Intercept)"))
    assert float(intercept[1]) == pytest.approx(612.1, rel=1e-4)
    p = mlm("tau", SLEEP, "Reaction ~ Days + (Days|Subject)", "--format", "table", "--corr", env=env)
    assert p.returncode == 0 and "0.066" in p.stdout and "612.09" not in p.stdout


def test_ranef_table_head_and_text():
    env = {"NO_COLOR": "1", "COLUMNS": "100"}
    p = mlm("ranef", HECK, SEED, "--format", "table", "--head", "3", env=env)
    assert p.returncode == 0 and "416 of 419 levels not shown" in p.stdout
    p = mlm("ranef", SLEEP, "Reaction ~ Days + (Days|Subject)", "--format", "text")
    lines = p.stdout.splitlines()
    assert lines[0] == "$Subject" and lines[2].split()[0] == "308"
    assert float(lines[2].split()[1]) == pytest.approx(2.2585509, abs=1e-4)


def test_compare_names_text_and_variance_reduction():
    p = mlm(
        "compare",
        SLEEP,
        "Reaction ~ 1 + (1|Subject)",
        "Reaction ~ Days + (1|Subject)",
        "--names",
        "null,days",
        "--format",
        "text",
    )
    assert p.returncode == 0
    assert "null: Reaction ~ 1 + (1 | Subject)" in p.stdout and p.stdout.splitlines()[-3].startswith("days ")
    p = mlm(
        "compare",
        SLEEP,
        "Reaction ~ 1 + (1|Subject)",
        "Reaction ~ Days + (1|Subject)",
        "--variance-reduction",
        "--format",
        "json",
    )
    vr = json.loads(p.stdout)["variance_reduction"]
    jsonschema.validate(json.loads(p.stdout), schema("compare"))
    # the icc of the empty model, and the share of level-1 variance Days explains
    tau00, s2 = 1278.337756, 1958.865177  # lme4: VarCorr(lmer(Reaction ~ 1 + (1|Subject), sleepstudy))
    assert vr["icc"] == pytest.approx(tau00 / (tau00 + s2), abs=1e-5)
    assert vr["models"][0]["reduction"]["Residual"] == pytest.approx((s2 - 960.4565786) / s2, abs=1e-5)


def test_compare_refuses_different_responses():
    p = mlm("compare", HECK, "math ~ ses + (1|schcode)", "ses ~ female + (1|schcode)")
    assert p.returncode == 2 and "different responses" in p.stderr


def test_compare_table():
    p = mlm(
        "compare",
        SLEEP,
        "Reaction ~ Days + (1|Subject)",
        "Reaction ~ Days + (Days|Subject)",
        "--format",
        "table",
        env={"NO_COLOR": "1", "COLUMNS": "100"},
    )
    assert p.returncode == 0 and "42.139" in p.stdout and "***" in p.stdout


def test_version_and_help():
    p = mlm("--version")
    assert p.returncode == 0 and p.stdout.strip() == "mlm 0.1.0"
    p = mlm()
    assert p.returncode == 0 and "compare" in p.stdout and "plot" in p.stdout
