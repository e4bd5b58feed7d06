"""The blocked factor against dense linear algebra on small random designs.

Nested chains (block-diagonal and nested blocks), crossed factors (the dense tail) and mixes of
the two, with random slopes at any level: the log-determinant, penalized RSS, beta, the
spherical modes and the conditional variances must equal the dense computation's.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmcli.design import ReTerm
from mlmcli.engine.blocks import Nested, UniformDiagonal, batched_cholesky, bmm, segment_sum
from mlmcli.engine.crossprod import CrossProducts
from mlmcli.engine.factor import BlockedFactor
from mlmcli.engine.response import GaussianResponse


def _term(codes: np.ndarray, k: int, x: np.ndarray) -> ReTerm:
    ell = int(codes.max()) + 1
    X = np.column_stack([x**a for a in range(k)])
    return ReTerm(group="g", levels=[str(i) for i in range(ell)], codes=codes, X=X, cnames=[f"c{a}" for a in range(k)])


def _design(rng: np.random.Generator, kind: str, ks: list[int]):
    """Terms in lme4's order (decreasing levels) for a nested chain, crossed factors, or a mix."""
    n = int(rng.integers(60, 140))
    x = rng.normal(size=n)
    top = rng.integers(0, 3, size=n)  # 3 outer levels
    mid = top * 3 + rng.integers(0, 3, size=n)  # 9 levels nested in top
    low = mid * 2 + rng.integers(0, 2, size=n)  # 18 levels nested in mid
    crossed = rng.integers(0, 5, size=n)  # 5 levels crossed with everything
    groups = {"nested": [low, mid, top], "crossed": [low, crossed], "mixed": [low, mid, crossed, top], "single": [low]}[
        kind
    ]
    groups = [np.unique(g, return_inverse=True)[1] for g in groups]
    groups.sort(key=lambda g: -(g.max() + 1))
    terms = [_term(g, k, x) for g, k in zip(groups, ks, strict=False)]
    X = np.column_stack([np.ones(n), x, rng.normal(size=n)])
    y = X @ np.array([1.0, 0.5, -0.2]) + rng.normal(size=n)
    return terms, X, y


def _dense_reference(terms: list[ReTerm], X: np.ndarray, y: np.ndarray, T: list[np.ndarray]):
    n = len(y)
    Zs, Ls = [], []
    for term, Ti in zip(terms, T, strict=True):
        ell, k = len(term.levels), term.X.shape[1]
        Z = np.zeros((n, ell * k))
        for a in range(k):
            Z[np.arange(n), term.codes * k + a] = term.X[:, a]
        Zs.append(Z)
        Ls.append(np.kron(np.eye(ell), Ti))
    Z = np.hstack(Zs)
    q = Z.shape[1]
    Lam = np.zeros((q, q))
    o = 0
    for Li in Ls:
        Lam[o : o + Li.shape[0], o : o + Li.shape[0]] = Li
        o += Li.shape[0]
    ZL = Z @ Lam
    Omega = ZL.T @ ZL + np.eye(q)
    Lz = np.linalg.cholesky(Omega)
    full = np.hstack([ZL, X])
    M = full.T @ full
    M[:q, :q] += np.eye(q)
    sol = np.linalg.solve(M, full.T @ y)
    u, beta = sol[:q], sol[q:]
    r = y - ZL @ u - X @ beta
    pwrss = r @ r + u @ u
    cond = Lam @ np.linalg.inv(Omega) @ Lam.T
    return 2 * np.log(np.diag(Lz)).sum(), pwrss, beta, u, cond


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(["nested", "crossed", "mixed", "single"]),
    ks=st.lists(st.integers(1, 3), min_size=4, max_size=4),
)
def test_blocked_factor_equals_dense(seed, kind, ks):
    rng = np.random.default_rng(seed)
    terms, X, y = _design(rng, kind, ks)
    cp = CrossProducts(terms, X, y)
    if kind == "nested":
        assert cp.nbd == 3 and cp.q_tail == 0
    elif kind == "crossed":
        assert cp.nbd == 1 and cp.q_tail > 0
    f = BlockedFactor(cp)
    assert isinstance(f.diagonal[0], UniformDiagonal)  # small data: the stacked blocks, lme4's rounding
    theta = []
    for s in cp.structures:
        diag = s.tri_rows == s.tri_cols
        theta.append(np.where(diag, rng.uniform(0.3, 1.5, size=s.ntheta), rng.uniform(-0.5, 0.5, size=s.ntheta)))
    theta = np.concatenate(theta)
    assert f.update(theta)
    ldL2, pwrss, beta, u, cond = _dense_reference(terms, X, y, cp.templates(theta))
    assert f.ldL2 == pytest.approx(ldL2, rel=1e-10)
    assert f.pwrss == pytest.approx(pwrss, rel=1e-9)
    assert GaussianResponse.of(cp, reml=True).pwrss_direct(f) == pytest.approx(pwrss, rel=1e-9)
    np.testing.assert_allclose(f.beta(), beta, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(np.concatenate(f.spherical_modes()), u, rtol=1e-8, atol=1e-10)
    o = 0
    for s, B in zip(cp.structures, f.unscaled_condvar(), strict=True):
        dense = cond[o : o + s.q, o : o + s.q].reshape(s.ell, s.k, s.ell, s.k)
        lev = np.arange(s.ell)
        np.testing.assert_allclose(B, dense[lev, :, lev, :], rtol=1e-8, atol=1e-12)
        o += s.q


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 4), m=st.integers(1, 4), ell=st.integers(1, 7))
def test_kernels_equal_their_dense_meaning(seed, k, m, ell):
    rng = np.random.default_rng(seed)
    A, B = rng.normal(size=(ell, k, m)), rng.normal(size=(ell, m, k))
    np.testing.assert_allclose(bmm(A, B), A @ B, rtol=1e-12, atol=1e-12)
    G = rng.normal(size=(ell, k, k))
    M = G @ np.swapaxes(G, 1, 2) + k * np.eye(k)
    L, Linv = batched_cholesky(M)
    np.testing.assert_allclose(L @ np.swapaxes(L, 1, 2), M, rtol=1e-10)
    np.testing.assert_allclose(L @ Linv, np.broadcast_to(np.eye(k), M.shape), atol=1e-10)
    parent = rng.integers(0, 3, size=ell)
    np.testing.assert_allclose(segment_sum(A, parent, 3), np.stack([A[parent == g].sum(axis=0) for g in range(3)]))
    nb = Nested(parent, A, 3)
    dense = nb.to_csr().toarray()
    gram = dense @ dense.T
    blocks = nb.gram()
    for g in range(3):
        np.testing.assert_allclose(gram[g * k : (g + 1) * k, g * k : (g + 1) * k], blocks[g], atol=1e-12)
    u = rng.normal(size=(3, k, 2))
    np.testing.assert_allclose(nb.t_times(u).reshape(-1, 2), dense.T @ u.reshape(-1, 2), atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 2))
def test_closed_form_kernel_equals_the_stacked_blocks(seed, k):
    """One term of one or two columns: the closed-form kernel and the general blocked factor give
    the same L, L^{-1}, L_FZ and L_FF."""
    rng = np.random.default_rng(seed)
    terms, X, y = _design(rng, "single", [k])
    cp = CrossProducts(terms, X, y)
    theta = np.concatenate(
        [rng.uniform(0.2, 1.5, size=1), rng.uniform(-0.6, 0.6, size=k - 1), rng.uniform(0.2, 1.5, size=k - 1)]
    )
    from mlmcli.engine.small_term import SmallTermDiagonal

    fast, general = BlockedFactor(cp, small_term=True), BlockedFactor(cp)
    assert isinstance(fast.diagonal[0], SmallTermDiagonal) and isinstance(general.diagonal[0], UniformDiagonal)
    assert fast.update(theta) and general.update(theta)
    assert fast.ldL2 == pytest.approx(general.ldL2, rel=1e-13)
    np.testing.assert_allclose(fast.L_FF, general.L_FF, rtol=1e-12, atol=1e-13)
    for a, b in [(fast.Ldiag, general.Ldiag), (fast.Linv, general.Linv), (fast.LF, general.LF)]:
        np.testing.assert_allclose(a[0], b[0], rtol=1e-12, atol=1e-13)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 3), ell=st.integers(1, 9), q=st.integers(1, 8))
def test_tail_gram_equals_the_dense_product(seed, k, ell, q):
    import scipy.sparse as sp

    from mlmcli.engine.tail import TailGram

    rng = np.random.default_rng(seed)
    A = rng.normal(size=(q, ell * k)) * (rng.uniform(size=(q, ell * k)) < 0.4)
    W = rng.normal(size=(ell, k, k))
    W = W + W.transpose(0, 2, 1)  # symmetric, as R0 R0' is
    dense = A @ _block_diag(W) @ A.T
    gram = TailGram.of(sp.csr_matrix(A), k)
    assert gram.P.nnz <= TailGram.pairs(sp.csr_matrix(A), k)
    np.testing.assert_allclose(gram(W), dense, rtol=1e-12, atol=1e-12)
    # laid out a few levels at a time, as large designs are
    np.testing.assert_allclose(TailGram.of(sp.csr_matrix(A), k, chunk=3)(W), dense, rtol=1e-12, atol=1e-12)


def _block_diag(W: np.ndarray) -> np.ndarray:
    ell, k, _ = W.shape
    out = np.zeros((ell * k, ell * k))
    for lev in range(ell):
        out[lev * k : (lev + 1) * k, lev * k : (lev + 1) * k] = W[lev]
    return out


@pytest.mark.parametrize(("kind", "ks"), [("mixed", [2, 1, 2, 1]), ("crossed", [1, 1]), ("crossed", [2, 1])])
def test_factor_with_and_without_the_tail_gram_agree(kind, ks):
    """The laid-out product against the sparse product; a scalar tail (a diagonal Lambda_t) takes
    G's lower triangle only."""
    rng = np.random.default_rng(7)
    terms, X, y = _design(rng, kind, ks)
    cp = CrossProducts(terms, X, y)
    assert cp.q_tail > 0
    theta = np.concatenate([np.where(s.tri_rows == s.tri_cols, 0.8, 0.3) for s in cp.structures])
    from mlmcli.engine.tail import DenseTail, GramTail

    with_gram, without = BlockedFactor(cp, tail_gram=True), BlockedFactor(cp, tail_gram=False)
    assert isinstance(with_gram.diagonal[cp.nbd], GramTail) and type(without.diagonal[cp.nbd]) is DenseTail
    assert with_gram.update(theta) and without.update(theta)
    np.testing.assert_allclose(with_gram.Ltt, without.Ltt, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(with_gram.L_FF, without.L_FF, rtol=1e-11, atol=1e-12)


def test_term_order_decides_the_block_types():
    """A term nested in a later one stays block diagonal; a crossed one starts the dense tail."""
    rng = np.random.default_rng(3)
    terms, X, y = _design(rng, "mixed", [1, 2, 1, 1])
    cp = CrossProducts(terms, X, y)
    assert cp.nbd == 2  # low nests in mid; crossed (5 levels) does not nest
    assert cp.q_tail == 5 + 3  # crossed and top, dense
    assert set(cp.A_nested) == {(1, 0)}


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(["nested", "crossed", "mixed", "single"]),
    ks=st.lists(st.integers(1, 2), min_size=4, max_size=4),
)
def test_exact_derivatives_equal_central_differences(seed, kind, ks):
    """d pwrss / d theta and d (R_X'R_X)^{-1} / d theta from the blocks of A, against differences."""
    from mlmcli.engine.derivatives import GradientPieces

    rng = np.random.default_rng(seed)
    terms, X, y = _design(rng, kind, ks)
    cp = CrossProducts(terms, X, y)
    f = BlockedFactor(cp)
    theta = np.concatenate(
        [
            np.where(s.tri_rows == s.tri_cols, rng.uniform(0.4, 1.2, s.ntheta), rng.uniform(-0.3, 0.3, s.ntheta))
            for s in cp.structures
        ]
    )
    assert f.update(theta)
    d = GradientPieces(f)
    g, dC = d.pwrss(), d.unscaled_vcov_gradient()
    h = 1e-6
    for k in range(len(theta)):
        e = np.zeros_like(theta)
        e[k] = h
        f.update(theta + e)
        up, Cup = f.pwrss, f.unscaled_vcov()
        f.update(theta - e)
        down, Cdown = f.pwrss, f.unscaled_vcov()
        assert g[k] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-6)
        ref = (Cup - Cdown) / (2 * h)
        # central differences carry an absolute error of about 1e-7 of the matrix's largest entries
        np.testing.assert_allclose(dC[k], ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


@pytest.mark.parametrize(
    ("kind", "ks", "diagonal"), [("crossed", [1, 1], True), ("crossed", [1, 2], False), ("mixed", [1, 1, 1, 1], False)]
)
def test_a_diagonal_tail_block_multiplies_as_its_diagonal(kind, ks, diagonal):
    """One scalar crossed term's Z_t'Z_t is diagonal (each row meets one level): Z'Z's products take
    its diagonal, and give what the dense block gives, to the bit."""
    rng = np.random.default_rng(11)
    terms, X, y = _design(rng, kind, ks)
    cp = CrossProducts(terms, X, y)
    d = cp.tail_diagonal()
    assert (d is not None) is diagonal
    if d is not None:
        np.testing.assert_array_equal(np.diag(d), cp.A_tt)
    B = [rng.normal(size=(s.ell, s.k, 3)) for s in cp.structures]
    fast = cp.zz_times(B)
    cp._tail_diagonal = None  # the dense block's product
    for a, b in zip(fast, cp.zz_times(B), strict=True):
        np.testing.assert_array_equal(a, b)
