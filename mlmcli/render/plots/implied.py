"""Model-implied means as one predictor moves over a range, the others held at their observed values."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mlmcli.errors import MlmError

if TYPE_CHECKING:
    from mlmcli.io.frame import Factor, Frame
    from mlmcli.model import FittedModel

CURVE_POINTS = 60  # points of a model-implied curve when x enters non-linearly


def line_ends(by: Any, grid: np.ndarray, means: np.ndarray, se: np.ndarray) -> dict[str, Any]:
    """A drawn population line's row of the JSON: its panel and its two ends, mean and SE."""
    return {
        "by": by,
        "x0": grid[0],
        "x1": grid[-1],
        "y0": means[0],
        "y1": means[-1],
        "se0": se[0],
        "se1": se[-1],
    }


class Implied:
    """Model-implied means as x moves, with every other predictor at its observed values.

    An observation's row of X (and of each Z) is rebuilt with x replaced; averaging these rows
    over a set of observations puts a predictor that is constant within the set at its value and
    one that varies at its mean (exactly so whenever it enters linearly).
    """

    def __init__(self, model: FittedModel, frame: Frame, x: str) -> None:
        from mlmcli.design import evaluate
        from mlmcli.formula import Sym
        from mlmcli.io.frame import Factor

        self.model, self.frame, self.x = model, frame, x
        rows = model.design.rows
        self.ref: dict[str, Any] = {}
        self.moving: list[Any] = []
        response = model.formula.response.label
        linear = True
        for var in model.formula.variables:
            if var.label == response:
                continue
            col = evaluate(var, frame)
            if isinstance(col, Factor):
                col = _drop_unused(_take(col, rows))
            else:
                col = np.asarray(col, dtype=float)[rows]
            self.ref[var.label] = col
            if x in var.columns():
                if isinstance(col, Factor):
                    raise MlmError(
                        f"--x '{x}' enters the model as a factor ({var.label}); "
                        "the fitted plot needs a numeric predictor"
                    )
                if _has_call(var.expr, "scale"):
                    raise MlmError(
                        f"the fitted plot cannot move '{x}' inside scale() ({var.label}): "
                        "scale the column in the data instead"
                    )
                self.moving.append(var)
                linear &= isinstance(var.expr, Sym)
        # X is multilinear in the variables, so a straight line needs two points; a GLMM's inverse
        # link bends it
        self.family = getattr(model, "family", None)
        self.points = 2 if linear and self.family is None else CURVE_POINTS

    def _values(self, sel: np.ndarray, xnew: np.ndarray) -> dict[str, Any]:
        """Variables of the observations `sel`, repeated once per grid point, x replaced by xnew."""
        from mlmcli.design import evaluate
        from mlmcli.io.frame import Frame

        tiled = np.tile(sel, len(xnew) // len(sel))
        values = {label: _take(col, tiled) for label, col in self.ref.items()}
        rows = self.model.design.rows[tiled]
        for var in self.moving:
            cols = {c: xnew if c == self.x else _take(self.frame.columns[c], rows) for c in var.columns()}
            values[var.label] = evaluate(var, Frame(self.frame.name, cols, len(xnew), self.frame.int_columns))
        return values

    def curves(
        self, x: np.ndarray, sets: np.ndarray, n_sets: int, random_group: str | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(drawn, grid, means, se), the last three (n_sets, points): the mean the model implies for each set.

        `sets` gives each observation's set (-1 = none); x runs over the observed range of its
        set, and `drawn` marks the sets with observations. With `random_group`, the set's own
        random effects of that grouping factor are added (coef()'s line). `se` is the standard
        error of the fixed-effects part, sqrt(x' vcov(beta) x) for the set's mean row x of X.
        """
        from mlmcli.design import model_matrix

        lo, hi = _set_ranges(x, sets, n_sets)
        drawn = np.isfinite(lo)
        lo, hi = np.where(drawn, lo, 0.0), np.where(np.isfinite(hi), hi, 0.0)
        m = self.points
        t = np.linspace(0.0, 1.0, m)
        sel = np.flatnonzero(sets >= 0)
        s = sets[sel]
        # (1 - t) lo + t hi hits both ends exactly; rows: grid point k, then observation i
        xnew = ((1.0 - t)[:, None] * lo[s][None, :] + t[:, None] * hi[s][None, :]).ravel()
        values = self._values(sel, xnew)
        N = len(xnew)
        design = self.model.design
        X, names = model_matrix(self.model.formula.fixed, values, N)
        X = X[:, [names.index(nm) for nm in design.xnames]]
        eta = X @ self.model.beta
        if design.offset is not None:  # each row's own offset, as lme4's fitted() includes it
            eta = eta + np.tile(np.asarray(design.offset, dtype=float)[sel], m)
        if random_group is not None:
            modes = self.model.conditional_modes()
            used: set[int] = set()
            for ti, term in enumerate(design.terms):
                if term.group != random_group:
                    continue
                ri = next(
                    i
                    for i, rt in enumerate(self.model.formula.random)
                    if i not in used and rt.label == term.label and rt.group == term.group
                )
                used.add(ri)
                Z, znames = model_matrix(self.model.formula.random[ri].lhs, values, N)
                Z = Z[:, [znames.index(nm) for nm in term.cnames]]
                b = modes[ti][np.tile(term.codes[sel], m)]
                eta = eta + np.sum(Z * b, axis=1)
        eta = eta.reshape(m, len(sel))
        counts = np.bincount(s, minlength=n_sets).astype(float)
        means = np.vstack([np.bincount(s, weights=eta[k], minlength=n_sets) for k in range(m)]).T
        # the set's mean row of X at each grid point: (n_sets, points, p)
        X = X.reshape(m, len(sel), -1)
        xbar = np.stack(
            [
                np.vstack([np.bincount(s, weights=X[k, :, c], minlength=n_sets) for c in range(X.shape[2])]).T
                for k in range(m)
            ],
            axis=1,
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            means = means / counts[:, None]
            xbar = xbar / counts[:, None, None]
        se = np.sqrt(np.maximum(np.einsum("skp,pq,skq->sk", xbar, self.model.vcov, xbar), 0.0))
        grid = (1.0 - t)[None, :] * lo[:, None] + t[None, :] * hi[:, None]
        return drawn, grid, means, se


def _set_ranges(x: np.ndarray, sets: np.ndarray, n_sets: int) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest x of each set; +inf and -inf for a set without observations."""
    lo = np.full(n_sets, np.inf)
    hi = np.full(n_sets, -np.inf)
    ok = sets >= 0
    np.minimum.at(lo, sets[ok], x[ok])
    np.maximum.at(hi, sets[ok], x[ok])
    return lo, hi


def _take(col: Any, idx: np.ndarray) -> Any:
    """Rows `idx` of a column, numeric or factor."""
    from mlmcli.io.frame import Factor

    if isinstance(col, Factor):
        return Factor(col.codes[idx], col.levels, col.logical)
    return col[idx]


def _drop_unused(f: Factor) -> Factor:
    """Levels no observation uses are dropped, as lme4's model frame does."""
    from mlmcli.io.frame import Factor

    if f.logical:
        return f
    used = np.zeros(len(f.levels), dtype=bool)
    used[f.codes[f.codes >= 0]] = True
    new_index = np.cumsum(used) - 1
    codes = np.where(f.codes >= 0, new_index[np.maximum(f.codes, 0)], -1)
    return Factor(codes, [lev for lev, u in zip(f.levels, used, strict=True) if u], f.logical)


def _has_call(node: Any, fn: str) -> bool:
    """Whether the formula expression calls `fn` anywhere inside."""
    from mlmcli.formula import Binary, Call, Paren, Unary

    if isinstance(node, Call):
        return node.fn == fn or any(_has_call(a, fn) for a in node.args)
    if isinstance(node, Paren):
        return _has_call(node.inner, fn)
    if isinstance(node, Unary):
        return _has_call(node.arg, fn)
    if isinstance(node, Binary):
        return _has_call(node.left, fn) or _has_call(node.right, fn)
    return False
