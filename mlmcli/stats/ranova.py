"""lmerTest's ranova(fit): likelihood-ratio tests of the random-effects terms, one at a time.

Each random term (g) is reduced as lmerTest's get_newforms does: a term whose left-hand side has
droppable terms loses each of them in turn ("x in (1 + x | g)", refitted with the remaining
left-hand side, or (1 | g)); an intercept-only term goes altogether ("(1 | g)"), and a model with
no random terms left is an ordinary linear model.  Fits use the criterion of the original fit (REML
log-likelihoods for a REML fit), as lmerTest does, and its optimizer; each reduced model is the
pipeline's refit of the fit with the reduced formula (lme4's update()).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from mlmcli.errors import DataError
from mlmcli.rcompat.distributions import chisq_upper

if TYPE_CHECKING:
    from mlmcli.formula import Formula, ModelSpec
    from mlmcli.io.frame import Frame
    from mlmcli.model import FittedModel

HEADING = "ANOVA-like table for random-effects: Single term deletions"


def _spec_text(spec: ModelSpec) -> str:
    if not spec.terms:
        return "1" if spec.intercept else "0"
    return ("" if spec.intercept else "0 + ") + " + ".join(spec.labels)


def _drop_scope(spec: ModelSpec) -> list[str]:
    """R's drop.scope(): terms no other term contains."""
    sets = {t.label: {v.label for v in t.vars} for t in spec.terms}
    return [a for a in spec.labels if not any(sets[a] < sets[b] for b in spec.labels)]


def reductions(formula: Formula) -> list[tuple[str, str]]:
    """(row name, reduced formula text) for every reduction lmerTest's ranova makes."""
    fixed = _spec_text(formula.fixed)
    response = formula.response.label
    out = []
    for i, rt in enumerate(formula.random):
        others = [f"({r.label})" for j, r in enumerate(formula.random) if j != i]
        scope = _drop_scope(rt.lhs)
        if not scope:
            out.append((f"({rt.label})", _formula_text(response, fixed, others)))
            continue
        for scp in scope:
            rest = [lab for lab in rt.lhs.labels if lab != scp]
            new_lhs = "1" if not rest else ("" if rt.lhs.intercept else "0 + ") + " + ".join(rest)
            new_term = f"({new_lhs} | {rt.group})"
            out.append((f"{scp} in ({rt.label})", _formula_text(response, fixed, others + [new_term])))
    return out


def _formula_text(response: str, fixed: str, randoms: list[str]) -> str:
    # update() keeps one copy of a term that is already there: (0 + x | g) reduced to (1 | g)
    # beside an existing (1 | g) leaves a single (1 | g)
    return f"{response} ~ " + " + ".join([fixed] + list(dict.fromkeys(randoms)))


def model_line(formula: Formula) -> str:
    """The "Model:" line: update()'s formula, terms by order with the random terms among the
    first-order ones."""
    spec = formula.fixed
    first = [t.label for t in spec.terms if len(t.vars) == 1]
    higher = [t.label for t in sorted(spec.terms, key=lambda t: len(t.vars)) if len(t.vars) > 1]
    # offset() terms last, as R's terms() keeps them out of the term labels
    parts = first + [f"({r.label})" for r in formula.random] + higher + [v.label for v in formula.offsets]
    text = " + ".join(parts) if parts else "1"
    if not spec.intercept:
        text += " - 1"
    return f"{formula.response.label} ~ {text}"


def _lm_loglik(X: np.ndarray, y: np.ndarray, reml: bool, weights: np.ndarray | None = None) -> tuple[int, float]:
    """logLik() of lm(): (df, value), REML when asked; with prior weights, of the rows scaled by
    sqrt(w) plus sum(log w) / 2, as logLik.lm."""
    if weights is not None:
        sw = np.sqrt(weights)
        X, y = X * sw[:, None], y * sw
    n, p = X.shape
    if p:
        Q, R = np.linalg.qr(X)
        resid = y - Q @ (Q.T @ y)
    else:
        R = np.empty((0, 0))
        resid = y
    rss = float(resid @ resid)
    N = n - p if reml else n
    val = 0.5 * (-N * (math.log(2 * math.pi) + 1 - math.log(N) + math.log(rss)))
    if reml and p:
        val -= float(np.sum(np.log(np.abs(np.diag(R)))))
    if weights is not None:
        val += 0.5 * float(np.log(weights).sum())
    return p + 1, val


def _random_free(model: FittedModel) -> tuple[int, float]:
    return _lm_loglik(model.design.X, model.design.y, model.reml, model.design.weights)


def ranova_report(model: FittedModel, frame: Frame) -> dict:
    """{"heading", "model", "terms": [{"term", "npar", "loglik", "aic", "lrt", "df", "p_value"}]}."""
    from mlmcli.pipeline import refit
    from mlmcli.render.jsonvalues import clean
    from mlmcli.report import SCHEMA_VERSION

    rows = [{"term": "<none>", "npar": model.npar, "loglik": model.loglik}]
    for name, text in reductions(model.formula):
        if "|" in text:
            fit = refit(model, formula=text, frame=frame, ddf="none")
            if fit.n != model.n:
                raise DataError("number of rows in use has changed: remove missing values?")
            npar, ll = fit.npar, fit.loglik
        else:
            npar, ll = _random_free(model)
        rows.append({"term": name, "npar": npar, "loglik": ll})
    base = rows[0]
    for r in rows:
        r["aic"] = -2 * r["loglik"] + 2 * r["npar"]
        if r is base:
            r.update(lrt=None, df=None, p_value=None)
            continue
        r["lrt"] = 2 * (base["loglik"] - r["loglik"])
        r["df"] = base["npar"] - r["npar"]
        r["p_value"] = chisq_upper(r["lrt"], r["df"]) if r["df"] > 0 else None
    return clean(
        {
            "schema_version": SCHEMA_VERSION,
            "formula": model.formula.text,
            "heading": HEADING,
            "model": model_line(model.formula),
            "terms": rows,
        }
    )
