"""Kenward-Roger: the blocked pieces against a dense transcription of pbkrtest's vcovAdj, and
lmerTest's summary and anova with ddf = "Kenward-Roger" against R (tests/fixtures/kenward_roger)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from mlmcli.engine import vc_information as vci
from mlmcli.engine.kenward_roger import full_row_rank
from mlmcli.pipeline import lmer
from mlmcli.render.inference import anova_text
from mlmcli.render.text import fit_summary_output
from mlmcli.report import fit_report
from mlmcli.stats.anova import anova_report
from tests.commands import mlm
from tests.refcheck import at_lme4

ROOT = Path(__file__).resolve().parent.parent
REFS = ROOT / "tests" / "fixtures" / "kenward_roger"
CASES = [
    "heck_seed1",
    "heck_seed2",
    "sleep",
    "sleep_uncorr",
    "penicillin",
    "pastes",
    "factorial",
    "dye2",
    "nested3",
    "block3",
    "nested_slopes",
    "subjitem_nested",
    "subjitem_slopes",
]
SMALL = ["sleep", "sleep_uncorr", "penicillin", "pastes", "factorial", "dye2"]  # n <= 300: dense is cheap
_fits: dict[str, tuple] = {}


def ref(case: str) -> dict:
    return json.loads((REFS / f"{case}.json").read_text())


def optimum(case: str):
    if case not in _fits:
        c = ref(case)["case"]
        _fits[case] = lmer(str(ROOT / c["data"]), c["formula"], ddf="Kenward-Roger")
    return _fits[case]


def fitted(case: str):
    """Ours at lme4's theta (tests/refcheck.py: at_lme4)."""
    model, frame = optimum(case)
    return at_lme4(model, ref(case)), frame


# ------------------------------------------------------------ a dense pbkrtest, for small n


def dense_sigma_g(model) -> tuple[np.ndarray, list[np.ndarray]]:
    """pbkrtest's get_SigmaG: Sigma and the G_r as n x n matrices."""
    n = model.n
    s2 = model.sigma**2
    G, gamma = [], []
    for term, T in zip(model.design.terms, model.system.T, strict=True):
        k = term.X.shape[1]
        ell = len(term.levels)
        Z = np.zeros((n, ell * k))
        for a in range(k):
            Z[np.arange(n), np.asarray(term.codes) * k + a] = term.X[:, a]
        Tau = s2 * T @ T.T
        for b in range(k):
            for a in range(b, k):
                E = np.zeros((k, k))
                E[a, b] = E[b, a] = 1.0
                G.append(Z @ np.kron(np.eye(ell), E) @ Z.T)
                gamma.append(Tau[a, b])
    G.append(np.eye(n))
    gamma.append(s2)
    return sum(g * Gi for g, Gi in zip(gamma, G, strict=True)), G


def dense_pieces(model):
    Sigma, G = dense_sigma_g(model)
    X = model.design.X
    Si = np.linalg.inv(Sigma)
    H = [Gi @ Si for Gi in G]
    O = [h @ X for h in H]
    P = [-(o.T @ Si @ X) for o in O]
    Q = [[o.T @ Si @ o2 for o2 in O] for o in O]
    K = np.array([[np.sum(h.T * h2) for h2 in H] for h in H])
    return P, Q, K


def assert_pieces_equal(got, P, Q, K, rel=1e-7) -> None:
    assert got.K == pytest.approx(K, rel=rel, abs=rel * 1e-2 * np.abs(K).max())
    for r in range(len(P)):
        assert got.P[r] == pytest.approx(P[r], rel=rel, abs=rel * 1e-2 * np.abs(P[r]).max())
        for s in range(len(P)):
            assert got.Q[r][s] == pytest.approx(Q[r][s], rel=rel, abs=rel * 1e-2 * np.abs(Q[r][s]).max()), (r, s)


@pytest.mark.parametrize("case", SMALL)
def test_blocked_pieces_equal_the_dense_ones(case):
    """P_r, Q_rs and tr(Sigma^-1 G_r Sigma^-1 G_s) without n x n matrices."""
    model, _ = fitted(case)
    model.system.update(model.theta)
    assert_pieces_equal(vci.vc_information(model.system, model.sigma), *dense_pieces(model))


@pytest.mark.parametrize("formula", ["y ~ x + (1|a) + (1|b) + (1|c)", "y ~ x + (x|a) + (1|b) + (x|c)"])
def test_a_dense_tail_of_two_crossed_terms(formula, tmp_path, monkeypatch):
    """Three crossed factors (two in the dense tail), with slopes and a singular fit, in chunks."""
    lines = (ROOT / "tests" / "fixtures" / "lme4" / "data" / "crossed3.csv").read_text().splitlines()
    data = tmp_path / "crossed3_head.csv"
    data.write_text("\n".join(lines[:301]) + "\n")
    model, _ = lmer(str(data), formula, ddf="none")
    assert model.system.cp.q_tail > 0
    model.system.update(model.theta)
    monkeypatch.setattr(vci, "CHUNK_ENTRIES", 30)
    assert_pieces_equal(vci.vc_information(model.system, model.sigma), *dense_pieces(model))


@pytest.mark.parametrize("case", ["heck_seed2", "sleep", "dye2"])
def test_one_term_by_levels_equals_the_chunked_columns(case):
    """The per-level sums of a single term's block-diagonal M are those of the general path."""
    model, _ = fitted(case)
    model.system.update(model.theta)
    ops = vci._Operators(model.system)
    G4, N, tr_SA = vci._single_term_sums(model.system)
    G4c, Nc, tr_SAc = vci._chunked_sums(model.system, ops)
    assert G4[0][0] == pytest.approx(G4c[0][0], rel=1e-9, abs=1e-12 * np.abs(G4c[0][0]).max())
    assert N[0] == pytest.approx(Nc[0], rel=1e-9, abs=1e-12 * np.abs(Nc[0]).max())
    assert tr_SA == pytest.approx(tr_SAc, rel=1e-12)


@pytest.mark.parametrize("case", ["pastes", "nested_slopes", "sleep_uncorr", "nested3"])
@pytest.mark.parametrize("chunk", [vci.CHUNK_ENTRIES, 40])
def test_nested_terms_probed_by_group_equal_the_chunked_columns(case, chunk, monkeypatch):
    """Nested terms without a crossed one: one probe column per level rank within the outermost
    groups gives the sums of all of M's columns."""
    monkeypatch.setattr(vci, "CHUNK_ENTRIES", chunk)
    model, _ = fitted(case)
    model.system.update(model.theta)
    ops = vci._Operators(model.system)
    G4, N, tr_SA = vci._probed_sums(model.system, ops)
    G4c, Nc, tr_SAc = vci._chunked_sums(model.system, ops)
    for j in range(len(N)):
        assert N[j] == pytest.approx(Nc[j], rel=1e-9, abs=1e-12 * np.abs(Nc[j]).max())
        for i in range(len(N)):
            assert G4[j][i] == pytest.approx(G4c[j][i], rel=1e-9, abs=1e-12 * np.abs(G4c[j][i]).max())
    assert tr_SA == pytest.approx(tr_SAc, rel=1e-12)


def test_ranks_within_groups():
    assert vci._ranks(np.array([2, 0, 2, 1, 0, 2])).tolist() == [0, 0, 1, 0, 1, 2]


@pytest.mark.parametrize("case", ["penicillin", "pastes", "nested_slopes", "subjitem_nested", "subjitem_slopes"])
def test_chunks_of_m_give_the_same_traces(case, monkeypatch):
    """M's columns a few levels at a time (crossed tail, nested blocks, slopes) sum as in one go."""
    model, _ = fitted(case)
    model.system.update(model.theta)
    whole = vci.vc_information(model.system, model.sigma)
    monkeypatch.setattr(vci, "CHUNK_ENTRIES", 40)
    assert_pieces_equal(vci.vc_information(model.system, model.sigma), whole.P, whole.Q, whole.K, rel=1e-10)


# ------------------------------------------------------------ against pbkrtest and lmerTest


@pytest.mark.parametrize("case", CASES)
def test_adjusted_covariance_and_df_match_pbkrtest(case):
    model, _ = fitted(case)
    want = ref(case)
    kr = model.kenward_roger()
    VA = np.array(want["vcov_adjusted"])
    assert kr.vcov_adjusted == pytest.approx(VA, rel=1e-5, abs=1e-7 * np.abs(VA).max())
    for got, w in zip(model.coef_table(), want["coefficients"], strict=True):
        assert got["term"] == w["term"]
        assert got["std_error"] == pytest.approx(w["std_error"], rel=1e-5)
        assert got["df"] == pytest.approx(w["df"], rel=1e-5)
        assert got["t_value"] == pytest.approx(w["t_value"], rel=1e-5)
        assert got["p_value"] == pytest.approx(w["p_value"], rel=1e-4, abs=1e-300)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", [1, 3])
def test_anova_matches_lmertest(case, kind):
    model, frame = fitted(case)
    got = anova_report(model, frame, kind)
    want = ref(case)[f"anova_{kind}"]
    assert got["ddf"] == "Kenward-Roger"
    assert [r["term"] for r in got["terms"]] == [r["term"] for r in want["terms"]]
    for g, w in zip(got["terms"], want["terms"], strict=True):
        assert g["num_df"] == w["num_df"]
        for key in ("sum_sq", "mean_sq", "den_df", "f_value", "p_value"):
            assert g[key] == pytest.approx(w[key], rel=1e-5), (g["term"], key)
    assert anova_text(got) == (REFS / f"{case}.anova{kind}.txt").read_text()


@pytest.mark.parametrize("case", CASES)
def test_summary_text_matches_lmertest(case):
    model, _ = fitted(case)
    printed = fit_summary_output(fit_report(model))
    assert printed.out == (REFS / f"{case}.summary.txt").read_text()


def test_multi_df_f_from_the_adjusted_covariance():
    """A 2-df hypothesis: the unscaled F is the Wald statistic on Phi_A over q."""
    model, _ = fitted("factorial")
    kr = model.kenward_roger()
    L = np.zeros((2, model.p))
    L[0, 1] = L[1, 2] = 1.0  # f1low, f1mid
    F, q, ddf, scale = kr.ftest(L, model.beta)
    assert q == 2
    b = L @ model.beta
    assert F == pytest.approx(b @ np.linalg.solve(L @ kr.vcov_adjusted @ L.T, b) / 2)
    # a dependent row changes nothing (pbkrtest's force_full_rank)
    assert kr.ftest(np.vstack([L, L[0] + L[1]]), model.beta) == pytest.approx((F, q, ddf, scale))


@pytest.mark.parametrize("L", [[[1.0, 0, 0], [0, 1, 0], [1, 1, 0]], [[1.0, 1, 0], [2, 2, 0], [0, 0, 1]]])
def test_full_row_rank_keeps_the_row_space(L):
    L = np.array(L)
    B = full_row_rank(L)
    assert B.shape == (2, 3)
    assert np.linalg.matrix_rank(np.vstack([B, L])) == 2


# ------------------------------------------------------------ command line


def schema(name: str) -> dict:
    return json.loads((ROOT / "mlmcli" / "schemas" / f"{name}.schema.json").read_text())


FACT = "tests/fixtures/lme4/data/factorial.csv"


def test_cli_anova_and_fit_with_kenward_roger():
    from tests.test_cli_exit import undeclared

    p = mlm("anova", FACT, "y ~ f1*f2*x + (1|g)", "--ddf", "Kenward-Roger", "-f", "text")
    assert p.returncode == 0, p.stderr
    assert p.stdout == (REFS / "factorial.anova3.txt").read_text()
    p = mlm("anova", FACT, "y ~ f1*f2*x + (1|g)", "--ddf", "Kenward-Roger", "--type", "1", "-f", "json")
    doc = json.loads(p.stdout)
    jsonschema.validate(doc, schema("anova"))
    assert undeclared(doc, schema("anova")) == []
    assert doc["ddf"] == "Kenward-Roger" and doc["type"] == 1
    p = mlm("fit", FACT, "y ~ f1*f2*x + (1|g)", "--ddf", "Kenward-Roger", "-f", "json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    jsonschema.validate(doc, schema("fit"))
    assert undeclared(doc, schema("fit")) == []
    assert doc["ddf"] == "Kenward-Roger" and "lmerTest_messages" not in doc
    for got, w in zip(doc["fixed_effects"], ref("factorial")["coefficients"], strict=True):
        assert got["std_error"] == pytest.approx(w["std_error"], rel=1e-5)
        assert got["df"] == pytest.approx(w["df"], rel=1e-5)
    p = mlm("fit", FACT, "y ~ f1*f2*x + (1|g)", "--ddf", "Kenward-Roger", "-f", "table", "--no-color")
    assert p.returncode == 0 and "t-tests use Kenward-Roger's method" in p.stdout


@pytest.mark.parametrize("command", ["fit", "anova"])
def test_cli_kenward_roger_needs_reml(command):
    p = mlm(command, FACT, "y ~ x + (1|g)", "--ddf", "Kenward-Roger", "--ml")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "mlm: error: Kenward-Roger's method is only available for REML model fits: drop --ml or use --ddf Satterthwaite"
    ]
    assert p.stdout == ""


@pytest.mark.parametrize("command", ["fit", "anova"])
def test_cli_kenward_roger_refuses_prior_weights(command):
    p = mlm(
        command,
        "tests/fixtures/weights/sleep_w.csv",
        "Reaction ~ Days + (Days|Subject)",
        "--weights",
        "w",
        "--ddf",
        "Kenward-Roger",
    )
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().splitlines() == [
        "mlm: error: --ddf Kenward-Roger with --weights is not offered (pbkrtest leaves prior weights out of its "
        "covariance): use --ddf Satterthwaite"
    ]


def test_cli_no_fixed_effects():
    """Nothing to adjust: the summary without a fixed-effects table, under either method."""
    for ddf in ("Kenward-Roger", "Satterthwaite"):
        p = mlm(
            "fit",
            "tests/fixtures/lme4/data/Penicillin.csv",
            "diameter ~ 0 + (1|plate) + (1|sample)",
            "--ddf",
            ddf,
            "-f",
            "text",
        )
        assert p.returncode == 0, p.stderr
        assert "Fixed effects" not in p.stdout and "Number of obs: 144" in p.stdout
