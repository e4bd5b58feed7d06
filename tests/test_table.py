"""Terminal tables: every reference case rendered at 80 and 120 columns, checked against lme4's print-out."""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path

import pytest

from mlmcli.render import numbers as N
from mlmcli.render import table as T
from mlmcli.render.layout import make_console

REF = Path(__file__).parent / "fixtures" / "lme4"  # lme4 1.1-31 + lmerTest 3.1-3 output, see make_refs.R
CASES = json.loads((REF / "cases.json").read_text())["cases"]
FIT_CASES = [c["id"] for c in CASES if c["kind"] == "fit"]
CMP_CASES = [c["id"] for c in CASES if c["kind"] == "compare"]
WIDTHS = (80, 120)
ANSI = "\x1b["


def load(case: str) -> dict:
    return json.loads((REF / f"{case}.json").read_text())


def fit_of(case: str) -> dict:
    """The fit member plus the keys the engine adds (data name, ddf, df.resid, convergence messages)."""
    d = load(case)
    fit = dict(d["fit"])
    fit.update(
        data_name=d["case"]["data_name"],
        ddf="Satterthwaite",
        df_resid=fit["n_obs"] - fit["npar"],
        conv_messages=fit.get("lme4_conv_messages", []),
    )
    return fit


def render(printer, *args, width: int = 80, **kwargs) -> str:
    buf = io.StringIO()
    printer(make_console(width=width, file=buf), *args, **kwargs)
    return buf.getvalue()


def line_with(text: str, start: str) -> str:
    hits = [ln for ln in text.splitlines() if ln.startswith(start) or ln.startswith("│ " + start)]
    assert hits, f"no line starting with {start!r}"
    return hits[0]


def block(text: str, title: str) -> str:
    """The lines of one printed table: from its title line to the next blank line."""
    lines = text.splitlines()
    start = lines.index(title)
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return "\n".join(lines[start:end])


def numbers(line: str) -> list[float]:
    return [float(x) for x in re.findall(r"(?<![\w.(])-?\d+(?:\.\d+)?(?:e[-+]\d+)?(?![\w)])", line)]


def assert_fits_width(text: str, width: int) -> None:
    assert max(len(ln) for ln in text.splitlines()) <= width
    assert "…" not in text  # nothing was cut short


# ------------------------------------------------------------------------------------- R's print-out
def squeeze(s: str) -> str:
    return re.sub(r"[\s│]", "", s)


def join_lt(tokens: list[str]) -> list[str]:
    """R writes "< 2e-16" where we write "<2e-16": make both one token."""
    out: list[str] = []
    for t in tokens:
        if out and out[-1] == "<":
            out[-1] += t
        else:
            out.append(t)
    return out


def rows_by_label(lines: list[str]) -> dict[str, list[str]]:
    """Cells of a printed matrix per row label, joining the blocks a wide matrix is split into."""
    rows: dict[str, list[str]] = {}
    for ln in lines:
        if ln.strip() and not ln[0].isspace():  # header lines start with blanks
            label, *cells = ln.split()
            rows.setdefault(label, []).extend(join_lt(cells))
    return rows


def region(text: str, title: str, ends: tuple[str, ...]) -> list[str]:
    """Our lines from a title line up to the first line starting with one of `ends`."""
    lines = text.splitlines()
    start = lines.index(title) + 1
    stop = next((i for i in range(start, len(lines)) if lines[i].startswith(ends)), len(lines))
    return [ln for ln in lines[start:stop] if not ln.startswith("─")]


def summary_sections(case: str) -> dict[str, list[str]]:
    """Parse <case>.summary.txt (print(summary(fit)) from R) into the pieces the table must reproduce."""
    lines = (REF / f"{case}.summary.txt").read_text().splitlines()
    out: dict[str, list[str]] = {"random": [], "fixed": [], "corr": []}
    section = None
    for i, ln in enumerate(lines):
        if ln.startswith("REML criterion at convergence:"):
            out["criterion"] = [ln.split(":")[1].strip()]
        elif ln.strip().startswith("AIC") and "df.resid" in ln:
            out["criterion"] = lines[i + 1].split()
        elif ln.startswith("Scaled residuals"):
            out["residuals"] = lines[i + 2].split()
        elif ln.startswith("Random effects:"):
            section = "random"
        elif ln.startswith("Fixed effects:"):
            section = "fixed"
        elif ln.startswith("Correlation of Fixed Effects:"):
            section = "corr"
        elif ln.startswith(("Number of obs", "---", "optimizer", "boundary", "fit warnings")):
            section = None
        elif section and not ln.lstrip().startswith("Groups "):
            out[section].append(ln)
    return out


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("case", FIT_CASES)
def test_fit_matches_lme4_printout(case: str, width: int) -> None:
    fit = fit_of(case)
    text = render(T.print_fit, fit, width=width, correlation=True)
    assert_fits_width(text, width)
    r = summary_sections(case)
    assert squeeze(fit["formula"]) in squeeze(text)  # long formulas wrap inside the header panel
    assert line_with(text, "Data").split()[-2] == fit["data_name"]
    # criterion line: REML criterion, or AIC BIC logLik deviance df.resid for ML
    if fit["method"] == "REML":
        assert line_with(text, "REML criterion").split()[-2] == r["criterion"][0]
    else:
        row = text.splitlines()[text.splitlines().index(line_with(text, "Fit")) + 1]
        assert row.split()[1:-1] == r["criterion"]
    res_row = text.splitlines()[text.splitlines().index(line_with(text, "Scaled resid.")) + 1]
    assert res_row.split()[1:-1] == r["residuals"]
    # random effects: variances, SDs and correlations as lme4 prints them
    random = region(text, "Random effects", ("Fixed effects",))
    for rline in filter(str.strip, r["random"]):
        values = [t for t in rline.split() if re.fullmatch(r"-?\d+(\.\d+)?(e[-+]\d+)?", t)]
        assert values and any(ln.split()[-len(values) :] == values for ln in random), rline
    # fixed effects: t value, p-value and stars as lmerTest prints them (R may split wide tables)
    ours = rows_by_label(region(text, "Fixed effects", ("Signif. codes", "Correlation", "╭")))
    theirs = rows_by_label(r["fixed"])
    assert list(ours) == list(theirs) == [row["term"] for row in fit["fixed_effects"]]
    for term, cells in theirs.items():
        assert ours[term][3:] == cells[3:], term  # t value, Pr(>|t|), stars
    # correlation of fixed effects, lower triangle; R abbreviates long row names, so match by order
    if r["corr"]:
        ours_c = list(rows_by_label(region(text, "Correlation of fixed effects", ("╭",))).values())
        theirs_c = [cells for cells in rows_by_label(r["corr"]).values()]
        assert ours_c == theirs_c
    assert "Signif. codes:" in text
    assert ("Warnings" in text) == bool(fit["warnings"] or fit["conv_messages"])
    for w in fit["warnings"]:
        assert squeeze(w) in squeeze(text)
        assert squeeze(text).count(squeeze(w)) == 1  # shown once, though also among conv_messages


@pytest.mark.parametrize("width", WIDTHS)
def test_fit_heck_key_cells(width: int) -> None:
    full = render(T.print_fit, fit_of("heck_seed2_reml"), width=width)
    assert "Linear mixed model fit by REML" in full
    assert "t-tests use Satterthwaite's method" in full
    assert "schcode (419 levels)" in full
    assert line_with(full, "Observations").split()[-2] == "6871"
    text = block(full, "Fixed effects")
    assert line_with(text, "(Intercept) ").split()[1:] == ["57.72440", "0.2518", "382.4", "229.216", "<2e-16", "***"]
    assert line_with(text, "public ").split()[-2:] == ["-0.089", "0.9289"]
    assert line_with(text, "ses:public ").split()[-2:] == ["0.0506", "."]
    assert line_with(full, "Residual").split()[1:] == ["62.5555", "7.9092"]
    text = full
    # formula fits on one line of the header at both widths
    assert "math ~ 1 + ses + public + ses:public + (1 + ses|schcode)" in text
    assert "Correlation of fixed effects" not in text


def test_fit_ml_header() -> None:
    text = render(T.print_fit, fit_of("heck_seed1_ml"))
    assert "Linear mixed model fit by maximum likelihood" in text
    assert "REML criterion" not in text
    assert "df.resid" in text and "6865" in text


def test_fit_without_ddf_drops_df_and_p() -> None:
    fit = fit_of("ss_slope_reml")
    fit["ddf"] = "none"
    for row in fit["fixed_effects"]:
        row["df"] = row["p_value"] = None
    text = render(T.print_fit, fit)
    assert "Pr(>|t|)" not in text and "Signif. codes" not in text and "Satterthwaite" not in text
    fixed = block(text, "Fixed effects")
    assert fixed.splitlines()[1].split() == ["Estimate", "Std.", "Error", "t", "value"]
    assert line_with(fixed, "Days ").split()[1:] == ["10.47", "1.546", "6.771"]


def test_fit_convergence_messages_in_warning_panel() -> None:
    fit = fit_of("ss_slope_reml")
    fit["conv_messages"] = ["Model failed to converge with max|grad| = 0.0123 (tol = 0.002, component 1)"]
    text = render(T.print_fit, fit, width=120)
    assert "Warnings" in text and "max|grad| = 0.0123" in text
    fit["conv_messages"], fit["converged"] = [], False
    assert "did not report convergence" in render(T.print_fit, fit)


def test_significant_rows_are_bold_on_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    buf = io.StringIO()
    T.print_fit(make_console(width=100, file=buf, force_terminal=True), fit_of("heck_seed2_reml"))
    lines = buf.getvalue().splitlines()
    bold = "\x1b[1m"
    assert bold in next(ln for ln in lines if "4.42383" in ln)  # ses, p < 2e-16
    assert bold not in next(ln for ln in lines if "-0.02632" in ln)  # public, p = 0.93
    assert bold not in next(ln for ln in lines if "-0.62520" in ln)  # ses:public, p = 0.0506


# ------------------------------------------------------------------------------------------------ tau
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("case", FIT_CASES)
def test_tau_parts(case: str, width: int) -> None:
    tau = load(case)["tau"]
    text = render(T.print_tau, tau, width=width)
    assert_fits_width(text, width)
    assert "below the diagonal: covariance; on it: variance; above it: correlation" in text
    for g in tau["groups"]:
        assert f"Tau: {g['group']}" in text
        table = block(text, f"Tau: {g['group']}")
        k = len(g["terms"])
        for i, term in enumerate(g["terms"]):
            row = numbers(line_with(table, term + " " if k > 1 else term))
            assert len(row) == k
            for j, x in enumerate(row):
                want = g["covariance"][i][j] if j <= i else g["correlation"][i][j]
                assert x == pytest.approx(want, rel=5e-4, abs=5e-4)
    res = numbers(line_with(text, "Residual variance"))[0]
    assert res == pytest.approx(tau["residual_variance"], rel=5e-4)


def test_tau_sleepstudy_cells_and_corr_only() -> None:
    tau = load("ss_slope_reml")["tau"]
    text = render(T.print_tau, tau)
    assert line_with(text, "(Intercept) ").split()[1:] == ["612.100", "0.066"]
    assert line_with(text, "Days ").split()[1:] == ["9.604", "35.072"]
    corr = render(T.print_tau, tau, corr_only=True)
    assert "Correlation: Subject" in corr and "Residual variance" not in corr and "covariance" not in corr
    assert line_with(corr, "Days ").split()[1:] == ["0.066", "1.000"]


def test_tau_uncorrelated_terms_get_own_tables() -> None:
    text = render(T.print_tau, load("ss_uncorr_reml")["tau"])
    assert "Tau: Subject\n" in text and "Tau: Subject.1\n" in text
    assert line_with(text, "Days").split()[1:] == ["35.86"]


# ---------------------------------------------------------------------------------------------- ranef
def coef_of(case: str) -> dict | None:
    """coef(fit): fixed effect plus conditional mode per level; None where lme4 refuses (no fixed effect)."""
    d = load(case)
    fixef = {r["term"]: r["estimate"] for r in d["fit"]["fixed_effects"]}
    coef: dict = {}
    for r in d["ranef"]["ranef"]:
        if r["term"] not in fixef:
            return None
        level = coef.setdefault(r["group"], {}).setdefault(r["level"], dict(fixef))
        level[r["term"]] += r["value"]
    return coef


def close(token: str, x: float) -> bool:
    """True when `token` is `x` correctly rounded to the places it shows."""
    m = re.fullmatch(r"-?\d+(?:\.(\d+))?(?:e([-+]\d+))?", token)
    assert m, token
    half_ulp = 0.5 * 10.0 ** (int(m.group(2) or 0) - len(m.group(1) or ""))
    return abs(float(token) - x) <= half_ulp * (1 + 1e-9) + 1e-300


def ranef_groups(case: str) -> dict[str, dict]:
    groups: dict[str, dict] = {}
    for r in load(case)["ranef"]["ranef"]:
        g = groups.setdefault(r["group"], {"levels": {}, "terms": {}, "rows": {}})
        g["levels"][r["level"]] = None
        g["terms"][r["term"]] = None
        g["rows"][(r["level"], r["term"])] = r
    return groups


def table_lines(lines: list[str]) -> list[str]:
    """Body rows only: no header row, no notes."""
    return [
        ln for ln in lines if ln.split()[:1] != ["Level"] and "not shown" not in ln and not ln.startswith("conditional")
    ]


def long_rows(lines: list[str], levels: dict) -> dict[tuple[str, str], list[str]]:
    """(level, term) -> number cells of the long view; the level is written on its first row only."""
    out: dict[tuple[str, str], list[str]] = {}
    level = None
    for ln in lines:
        tokens = ln.split()
        if not tokens or "not shown" in ln or tokens[0] == "Level" or ln.startswith("terms without"):
            continue
        if not ln[0].isspace():
            level, tokens = tokens[0], tokens[1:]
            assert level in levels
        out[(level, tokens[0])] = tokens[1:]
    return out


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("case", FIT_CASES)
def test_ranef_long_and_wide(case: str, width: int) -> None:
    d = load(case)
    coef = coef_of(case)
    groups = ranef_groups(case)
    for wide in (False, True):
        text = render(T.print_ranef, d["ranef"], width=width, head=5, wide=wide, coef=coef)
        assert_fits_width(text, width)
        titles = [ln for ln in text.splitlines() if ln.startswith(("Conditional modes:", "Coefficients:"))]
        assert [t.split(":")[0] for t in titles] == [
            k
            for _ in groups
            for k in (("Conditional modes", "Coefficients") if wide and coef else ("Conditional modes",))
        ]
        for name, g in groups.items():
            levels, terms = list(g["levels"]), list(g["terms"])
            title = f"Conditional modes: {name} ({len(levels)} levels)"
            lines = region(text, title, ("Conditional modes:", "Coefficients:"))
            hidden = len(levels) - 5
            assert (f"{hidden} of {len(levels)} levels not shown" in lines) == (hidden > 0)
            group_coef = coef[name] if coef else None
            if wide:
                cells = rows_by_label(table_lines(lines))
                assert list(cells) == levels[:5]
                for lv, got in cells.items():
                    want = [x for t in terms for x in (g["rows"][(lv, t)]["value"], g["rows"][(lv, t)]["cond_sd"])]
                    assert all(close(tok, x) for tok, x in zip(got, want, strict=True)), (lv, got)
                if group_coef:
                    ends = ("Conditional modes:", "Coefficients:")
                    cells = rows_by_label(table_lines(region(text, f"Coefficients: {name}", ends)))
                    for lv, got in cells.items():
                        want_c = [group_coef[lv][t] for t in terms] + [
                            v for t, v in group_coef[lv].items() if t not in terms
                        ]
                        assert all(close(tok, x) for tok, x in zip(got, want_c, strict=True)), (lv, got)
            else:
                cells = long_rows(lines, g["levels"])
                assert list(cells) == [(lv, t) for lv in levels[:5] for t in terms]
                for (lv, term), got in cells.items():
                    want = [g["rows"][(lv, term)]["value"], g["rows"][(lv, term)]["cond_sd"]]
                    if group_coef:
                        want.append(group_coef[lv][term])
                    assert len(got) == len(want) and all(close(t, x) for t, x in zip(got, want, strict=True))


def test_ranef_all_levels_and_exact_cells() -> None:
    d = load("ss_slope_reml")
    text = render(T.print_ranef, d["ranef"])
    assert "not shown" not in text and "Conditional modes: Subject (18 levels)" in text
    # lme4: ranef(fit)$Subject["308", ] is 2.258551, 9.198976
    assert line_with(text, "308 ").split() == ["308", "(Intercept)", "2.26", "12.07"]
    wide = render(T.print_ranef, d["ranef"], wide=True)
    assert len([ln for ln in wide.splitlines() if re.match(r"^3\d\d ", ln)]) == 18
    assert line_with(wide, "309 ").split()[1:] == ["-40.40", "12.07", "-8.62", "2.305"]


def test_ranef_uncorrelated_terms_share_one_group() -> None:
    text = render(T.print_ranef, load("ss_uncorr_reml")["ranef"], head=2)
    assert text.count("Conditional modes:") == 1 and "Subject.1" not in text
    assert "16 of 18 levels not shown" in text


def test_ranef_coef_with_fixed_only_terms() -> None:
    case = "heck_seed2_reml"
    coef = coef_of(case)
    text = render(T.print_ranef, load(case)["ranef"], head=1, coef=coef)
    # long view: only the random terms get rows, the constant ones are named in a note
    assert [ln.split()[-1] for ln in text.splitlines()[3:5]] == ["58.76", "3.909"]
    assert "terms without a random effect are left out: their coef is the fixed effect" in text
    assert "public" not in text
    assert "418 of 419 levels not shown" in text
    # wide view: coef(fit)$schcode, every term
    wide = render(T.print_ranef, load(case)["ranef"], head=1, wide=True, coef=coef)
    coef_table = wide[wide.index("Coefficients: schcode") :].splitlines()
    assert coef_table[1].split() == ["Level", "(Intercept)", "ses", "public", "ses:public"]
    assert coef_table[3].split() == ["1", "58.76", "3.909", "-0.02632", "-0.6252"]


def test_ranef_coef_carried_per_row() -> None:
    ranef = copy.deepcopy(load("ss_slope_reml")["ranef"])
    coef = coef_of("ss_slope_reml")
    for r in ranef["ranef"]:
        r["coef"] = coef[r["group"]][r["level"]][r["term"]]
    text = render(T.print_ranef, ranef, head=1)
    assert (
        line_with(text, "308 ").split()[-1] == N.format_fixed([c["(Intercept)"] for c in coef["Subject"].values()])[0]
    )
    assert line_with(text, "Level").split()[-1] == "Coef"


def test_wide_matrix_is_split_not_cut() -> None:
    text = render(T.print_fit, fit_of("factorial_ml"), width=80, correlation=True)
    assert_fits_width(text, 80)
    corr = region(text, "Correlation of fixed effects", ("╭",))
    headers = [ln.split() for ln in corr if ln.startswith(" ")]
    assert len(headers) == 2 and headers[0][0] == "(Intercept)" and headers[1][-1] == "f1low:f2trt:x"
    # the second block leaves out the rows that are empty in it
    assert sum(ln.startswith("f1mid:f2trt:x ") for ln in corr) == 2
    assert sum(ln.startswith("f1low ") for ln in corr) == 1


# -------------------------------------------------------------------------------------------- compare
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("case", CMP_CASES)
def test_compare_matches_anova_printout(case: str, width: int) -> None:
    cmp = load(case)
    cmp["data_name"] = cmp["case"]["data_name"]
    text = render(T.print_compare, cmp, width=width)
    assert_fits_width(text, width)
    printed = (REF / f"{case}.anova.txt").read_text().splitlines()
    for m in cmp["models"]:
        name = m["name"]
        r_row = next(ln for ln in printed if ln.startswith(name + " "))
        # R prints "< 2.2e-16" with a space: compare the cells with spaces squeezed out of that one
        assert line_with(text, name + " ").replace("< ", "<").split() == r_row.replace("< ", "<").split()
        formula = next(ln for ln in printed if ln.startswith(name + ":"))
        assert formula.split(":", 1)[1].replace(" ", "") in line_with(text, name + ":").replace(" ", "")
    assert f"Data: {cmp['data_name']}" in " ".join(text.split())
    assert ("refitted with ML" in text) == cmp["refit_ml"]
    assert ("Signif. codes" in text) == any(m["p_value"] is not None for m in cmp["models"])
    assert "Proportional reduction" not in text


def variances(fit: dict) -> dict[str, float]:
    out = {}
    for r in fit["random_effects"]:
        out["Residual" if r["term"] is None else f"{r['group']}/{r['term']}"] = r["variance"]
    return out


def test_compare_variance_reduction_table() -> None:
    # Raudenbush & Bryk's proportional reduction from the random-intercept model to the random-slope model
    base, other = variances(load("ss_int_reml")["fit"]), variances(load("ss_slope_reml")["fit"])
    red = {k: (base[k] - other[k]) / base[k] for k in base if k in other}
    vr = {"level1": red["Residual"], "level2": {k: v for k, v in red.items() if k != "Residual"}, "icc": None}
    text = render(T.print_compare, load("cmp_ss_three"), variance_reduction=vr)
    assert line_with(text, "Level 1: Residual").split()[-1] == f"{red['Residual']:.4f}"
    assert line_with(text, "Level 2: Subject/(Intercept)").split()[-1] == f"{red['Subject/(Intercept)']:.4f}"
    assert "ICC" not in text
    vr["icc"] = base["Subject/(Intercept)"] / (base["Subject/(Intercept)"] + base["Residual"])
    text = render(T.print_compare, load("cmp_ss_three"), variance_reduction=vr)
    assert f"ICC of the first model: {vr['icc']:.4f}" in text


def test_compare_variance_reduction_per_model() -> None:
    base = variances(load("ss_int_reml")["fit"])
    models = []
    for name, case in (("m2", "ss_slope_reml"), ("m3", "ss_uncorr_reml")):
        other = variances(load(case)["fit"])
        models.append(
            {
                "name": name,
                "formula": load(case)["fit"]["formula"],
                "reduction": {k: (base[k] - other[k]) / base[k] if k in other else None for k in base},
            }
        )
    vr = {"base": "Reaction ~ 1 + (1|Subject)", "models": models, "icc": None}
    text = render(T.print_compare, load("cmp_ss_three"), variance_reduction=vr)
    assert line_with(text, "Component").split()[1:] == ["m2", "m3"]
    row = line_with(text, "Level 1: Residual").split()[-2:]
    assert row == [f"{m['reduction']['Residual']:.4f}" for m in models]
    assert "relative to: Reaction ~ 1 + (1|Subject)" in text


def test_compare_stars_and_bold() -> None:
    cmp = copy.deepcopy(load("cmp_heck_seed"))
    cmp["models"][1]["p_value"] = 0.00049
    text = render(T.print_compare, cmp)
    assert line_with(text, "m2 ").split()[-2:] == ["0.00049", "***"]


# --------------------------------------------------------------------------------------------- colour
def test_not_a_terminal_writes_no_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert ANSI not in render(T.print_fit, fit_of("heck_seed1_reml"))


def test_forced_terminal_has_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    buf = io.StringIO()
    T.print_fit(make_console(width=80, file=buf, force_terminal=True), fit_of("heck_seed1_reml"))
    assert ANSI in buf.getvalue()
    assert "\x1b[33m" in buf.getvalue() or "\x1b[38;5;3m" in buf.getvalue()  # the yellow warning panel


@pytest.mark.parametrize("printer", ["fit", "tau", "ranef", "compare"])
def test_no_color_writes_no_escapes(monkeypatch: pytest.MonkeyPatch, printer: str) -> None:
    d = load("heck_seed1_reml")
    calls = {
        "fit": (T.print_fit, fit_of("heck_seed1_reml")),
        "tau": (T.print_tau, d["tau"]),
        "ranef": (T.print_ranef, d["ranef"]),
        "compare": (T.print_compare, load("cmp_heck_seed")),
    }
    fn, arg = calls[printer]
    monkeypatch.delenv("NO_COLOR", raising=False)
    buf = io.StringIO()
    fn(make_console(file=buf, force_terminal=True, no_color=True), arg)
    assert ANSI not in buf.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    buf = io.StringIO()
    fn(make_console(file=buf, force_terminal=True), arg)
    assert ANSI not in buf.getvalue()


def test_empty_no_color_variable_keeps_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "")
    buf = io.StringIO()
    T.print_tau(make_console(file=buf, force_terminal=True), load("ss_slope_reml")["tau"])
    assert ANSI in buf.getvalue()


def test_cells_are_not_markup() -> None:
    ranef = {
        "formula": "y ~ 1 + (1|g)",
        "ranef": [{"group": "g", "level": "[bold]a[/bold]", "term": "(Intercept)", "value": 1.5, "cond_sd": 0.25}],
    }
    assert "[bold]a[/bold]" in render(T.print_ranef, ranef)


# ------------------------------------------------------------------------------------------ formatting
# Expected strings are R 4.2.2's output: format.pval(p, digits = d) and format(x, digits = 4).
PVALUE_CASES = [
    (3, [0.9288612, 0.0506190, 1e-20], ["0.9289", "0.0506", "<2e-16"]),
    (3, [2.594e-06, 1e-20], ["2.59e-06", "< 2e-16"]),
    (3, [0.12350889], ["0.124"]),
    (3, [0.0002], ["2e-04"]),
    (3, [0.00012345, 0.5], ["0.000123", "0.500000"]),
    (3, [0.049999, 0.00099], ["0.05000", "0.00099"]),
    (3, [1e-300], ["<2e-16"]),
    (4, [0.9288612, 0.0506190, 1e-20], ["0.92886", "0.05062", "< 2e-16"]),
    (4, [2.594e-06, 1e-20], ["2.594e-06", "< 2.2e-16"]),
    (4, [0.12350889], ["0.1235"]),
    (4, [0.00012345, 0.5], ["0.0001234", "0.5000000"]),
    (4, [1e-300], ["< 2.2e-16"]),
]
COLUMN_CASES = [
    ([57.7244, 4.42383, -0.02632, -0.6252], ["57.72440", "4.42383", "-0.02632", "-0.62520"]),
    ([627.5690508, 35.8583796, 653.5835], ["627.57", "35.86", "653.58"]),
    ([1.2e-8, 3.5], ["1.2e-08", "3.5e+00"]),
    ([123456789, 1], ["123456789", "1"]),
    ([0.000012345, 0.00002], ["1.234e-05", "2.000e-05"]),
    ([0, 1.5, -2.25], ["0.00", "1.50", "-2.25"]),
    ([1e10, 2e-10], ["1e+10", "2e-10"]),
]


@pytest.mark.parametrize(("digits", "pvalues", "expected"), PVALUE_CASES)
def test_format_pvalues_as_r(digits: int, pvalues: list[float], expected: list[str]) -> None:
    assert N.format_pvalues(pvalues, digits) == expected


@pytest.mark.parametrize(("values", "expected"), COLUMN_CASES)
def test_format_column_as_r(values: list[float], expected: list[str]) -> None:
    assert N.format_column(values, 4) == expected


def test_format_helpers_edge_cases() -> None:
    assert N.format_column([None, float("nan"), 2.5]) == ["", "", "2.5"]
    assert N.format_pvalues([None, 0.03]) == ["", "0.03"]
    stars = [N.signif_stars(p) for p in (1e-5, 0.005, 0.02, 0.07, 0.5, None)]
    assert stars == ["***", "**", "*", ".", "", ""]
    assert N.format_fixed([-0.00001, 12.3456]) == ["0.00", "12.35"]
    # R: abbreviate(c("(Intercept)", "ses", "public", "ses:public"), 6)
    short = N.abbreviate(["(Intercept)", "ses", "public", "ses:public"])
    assert short == ["(Intr)", "ses", "public", "ss:pbl"]
    assert N.abbreviate(["abcdefgh1", "abcdefgh2"]) == ["abcdefgh1", "abcdefgh2"]  # would collide
