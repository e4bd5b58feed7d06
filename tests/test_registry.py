"""The renderers' registry: every format a command offers has a renderer that imports, takes the
options the registry gives it and writes what calling it directly writes; a plain fit imports
neither rich nor matplotlib."""

from __future__ import annotations

import inspect
import io
import json
from pathlib import Path

import pytest

from mlmcli.cli import app
from mlmcli.cli.tables import _BY_SUFFIX
from mlmcli.errors import MlmError
from mlmcli.rcompat.escape import escape_strings
from mlmcli.render import registry
from mlmcli.render.layout import make_console
from tests.commands import mlm, python

ROOT = Path(__file__).resolve().parent.parent
REF = ROOT / "tests" / "fixtures" / "lme4"
SLEEP = str(REF / "data" / "sleepstudy.csv")
SLOPES = "Reaction ~ Days + (Days|Subject)"

# what each command offers today, in --help's order: a format added or lost shows here
OFFERED = {
    "fit": ["text", "table", "json", "csv"],
    "tau": ["text", "table", "json"],
    "ranef": ["text", "table", "json", "csv"],
    "compare": ["text", "table", "json"],
    "table": ["table", "markdown", "latex", "html", "csv", "json"],
    "predict": ["csv", "json"],
    "augment": ["csv", "json"],
    "confint": ["text", "table", "json"],
    "anova": ["text", "table", "json"],
    "ranova": ["text", "table", "json"],
    "plot": ["json"],
}
# reports a command writes under an option: `mlm fit --family` (glmer's summary)
REPORTS_OF_OPTIONS = {"glmer_fit": ["text", "table", "json", "csv"]}


def load(case: str) -> dict:
    return json.loads((REF / f"{case}.json").read_text())


def format_choices() -> dict[str, list[str]]:
    """Each command's --format choices, as the command line parses them."""
    from typer.main import get_command

    out = {}
    for name, command in get_command(app).commands.items():  # type: ignore[attr-defined]
        for param in command.params:
            if "--format" in getattr(param, "opts", []):
                out[name] = list(param.type.choices)
    return out


def test_the_command_line_offers_the_registrys_formats():
    assert format_choices() == OFFERED
    assert {kind: registry.formats(kind) for kind in registry.RENDERERS} == OFFERED | REPORTS_OF_OPTIONS


@pytest.mark.parametrize(
    ("kind", "fmt"), [(k, f) for k, formats in (OFFERED | REPORTS_OF_OPTIONS).items() for f in formats]
)
def test_every_offered_format_resolves_to_an_importable_renderer(kind: str, fmt: str):
    entry = registry.renderer(kind, fmt)
    function = registry.load(entry)
    assert callable(function)
    params = list(inspect.signature(function).parameters)
    first = ["console", params[1]] if entry.console else [params[0]]
    assert params[: len(first)] == first
    assert set(entry.takes) <= set(params[len(first) :])
    if entry.console:
        assert entry.narrow in (OFFERED | REPORTS_OF_OPTIONS)[kind]
        assert not registry.renderer(kind, entry.narrow).console


def test_a_format_not_offered_is_one_line_and_exit_2():
    with pytest.raises(MlmError, match=r"^--format csv is not offered for tau: use one of text, table, json$"):
        registry.renderer("tau", "csv")
    p = mlm("tau", SLEEP, SLOPES, "--format", "csv")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == "mlm: error: Invalid value for '--format' / '-f': 'csv' is not one of 'text', 'table', 'json'.\n"


def test_text_and_tables_are_not_mixed_up():
    with pytest.raises(ValueError, match="draws on a console"):
        registry.render("fit", "table", {})
    with pytest.raises(ValueError, match="is text"):
        registry.draw("fit", "text", make_console(width=80, file=io.StringIO()), {})


def test_every_json_report_has_its_schema_and_the_schema_command_offers_it():
    from typer.main import get_command

    names = registry.reports_in("json")
    assert names == [k for k in registry.RENDERERS if k in OFFERED or "json" in REPORTS_OF_OPTIONS.get(k, [])]
    assert all((ROOT / "mlmcli" / "schemas" / f"{n}.schema.json").is_file() for n in names)
    schema = get_command(app).commands["schema"]  # type: ignore[attr-defined]
    assert list(schema.params[0].type.choices) == names


def test_table_suffixes_choose_offered_formats():
    assert sorted(set(_BY_SUFFIX.values())) == ["csv", "html", "json", "latex", "markdown"]
    assert set(_BY_SUFFIX.values()) <= set(registry.formats("table"))


def test_render_is_the_renderer_on_the_escaped_report():
    from mlmcli.render.text import fit_summary_output

    fit = load("ss_slope_reml")["fit"]
    printed = registry.render("fit", "text", fit)
    assert printed == (fit_summary_output(fit).out, fit_summary_output(fit).err)
    assert printed.text.startswith("Linear mixed model fit by REML")
    written = registry.render("fit", "json", fit)
    assert json.loads(written.text) == fit and written.err == ""
    assert written.text.startswith('{\n "formula": "Reaction ~ Days + (Days|Subject)",\n "method": "REML",\n')


def test_levels_are_escaped_in_text_and_kept_in_csv_and_json():
    ranef = load("ss_slope_reml")["ranef"]
    for row in ranef["ranef"]:
        if row["level"] == "308":
            row["level"] = "3\n08"
    text = registry.render("ranef", "text", ranef, head=1).text
    assert "3\\n08" in text and "3\n08" not in text
    assert text == registry.load(registry.renderer("ranef", "text"))(escape_strings(ranef), head=1)
    csv = registry.render("ranef", "csv", ranef, head=1, wide=False).text
    assert csv.startswith('group,level,term,value,cond_sd\nSubject,"3\n08",(Intercept),2.2585509499')
    assert json.loads(registry.render("ranef", "json", ranef).text)["ranef"][0]["level"] == "3\n08"


def draw(kind: str, fmt: str, report: dict, **options) -> str:
    buf = io.StringIO()
    registry.draw(kind, fmt, make_console(width=100, file=buf), report, **options)
    return buf.getvalue()


def test_tables_show_what_the_report_carries():
    cmp = load("cmp_ss_three")
    assert "Proportional reduction" not in draw("compare", "table", cmp)
    vr = {
        "base": "Reaction ~ 1 + (1|Subject)",
        "models": [{"name": "m2", "formula": SLOPES, "reduction": {"Residual": 0.5, "Subject/(Intercept)": -0.25}}],
        "icc": 0.4,
    }
    shown = draw("compare", "table", {**cmp, "variance_reduction": vr})
    assert "Proportional reduction in variance" in shown and "ICC of the first model: 0.4000" in shown
    assert [ln.split()[-1] for ln in shown.splitlines() if ln.startswith("Level ")] == ["0.5000", "-0.2500"]
    text = registry.render("compare", "text", {**cmp, "variance_reduction": vr}).text
    assert text.startswith(registry.render("compare", "text", cmp).text)
    assert text.splitlines()[-6:] == [
        "",
        "Proportion of variance reduced, relative to: Reaction ~ 1 + (1|Subject)",
        f"m2: {SLOPES}",
        "  level 1 (sigma^2)" + " " * 24 + "0.5000",
        "  level 2 (Subject/(Intercept))" + " " * 12 + "-0.2500",
        "ICC of the intercept-only model: 0.4000",
    ]


def test_the_ranef_table_shows_the_reports_coef():
    ranef = load("ss_slope_reml")["ranef"]
    coef = {"Subject": {"308": {"(Intercept)": 253.66, "Days": 19.67}}}
    assert "Coefficients: Subject" not in draw("ranef", "table", ranef, head=1, wide=True)
    shown = draw("ranef", "table", {**ranef, "coef": coef}, head=1, wide=True)
    coef_table = shown[shown.index("Coefficients: Subject") :].splitlines()
    assert coef_table[3].split() == ["308", "253.7", "19.67"]


@pytest.mark.parametrize("fmt", ["text", "json", "csv"])
def test_a_plain_fit_imports_neither_rich_nor_matplotlib(tmp_path: Path, fmt: str):
    out = tmp_path / "out"
    code = (
        f"import sys\nfrom mlmcli.cli import main\ntry:\n    main(['fit', {SLEEP!r}, {SLOPES!r}, '-f', {fmt!r}, "
        f"'-o', {str(out)!r}])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'rich', 'matplotlib'}), "
        "'mlmcli.render.table' in sys.modules, 'mlmcli.render.registry' in sys.modules)"
    )
    p = python("-c", code, capture_output=True, text=True)
    assert p.stdout.split() == ["[]", "False", "True"], p.stderr
    first = {
        "text": "Linear mixed model fit by REML. t-tests use Satterthwaite's method [",
        "json": "{",
        "csv": '"effect","group","term","estimate","std.error","statistic","df","p.value"',
    }
    assert out.read_text().splitlines()[0] == first[fmt]


def test_a_fit_table_imports_rich_and_not_matplotlib(tmp_path: Path):
    code = (
        f"import sys\nfrom mlmcli.cli import main\ntry:\n    main(['fit', {SLEEP!r}, {SLOPES!r}, '-f', 'table', "
        f"'-o', {str(tmp_path / 'out')!r}])\nexcept SystemExit:\n    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'rich', 'matplotlib'}))"
    )
    p = python("-c", code, capture_output=True, text=True)
    assert p.stdout.strip() == "['rich']", p.stderr
    assert "Fixed effects" in (tmp_path / "out").read_text()
