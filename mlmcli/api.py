"""The Python API: lme4's lmer() and anova(m1, m2, ...) on pandas DataFrames or data files.

`lmer` fits through the same pipeline as the `mlm` command (mlmcli.pipeline), so a fit of a file
gives the command's numbers and, from `summary()` and `to_dict()`, its text and JSON exactly.
Results come back as pandas objects labelled as lme4 and lmerTest label them.
"""

from __future__ import annotations

import copy
import html
import os
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mlmcli.engine.threads import engine_threads
from mlmcli.errors import MlmError

if TYPE_CHECKING:
    import pandas as pd

    from mlmcli.glmmodel import GlmmModel
    from mlmcli.io.frame import Frame
    from mlmcli.model import FittedModel

__all__ = ["GlmerFit", "LmerFit", "MlmWarning", "compare", "glmer", "lmer"]


class MlmWarning(UserWarning):
    """A warning lme4 or lmerTest gives about a fit (convergence, a singular fit, rows left out)."""


def _frame_of(data: Any, columns: list[str]) -> str | Frame:
    """A path as the command reads it, or the Frame of a DataFrame (only `columns` converted)."""
    if isinstance(data, (str, os.PathLike)):
        return os.fspath(data)
    from mlmcli.io.dataframe import frame_from_pandas

    return frame_from_pandas(data, columns)


def _notes(model: Any, frame: Frame) -> list[str]:
    """The reader's notes on the data and the rows na.omit left out, as the command writes them."""
    from mlmcli.pipeline import missing_rows_note

    notes = list(dict.fromkeys(frame.warnings))
    missing = missing_rows_note(model, frame.n_rows)
    if missing:
        notes.append(missing)
    return notes


def lmer(
    formula: str,
    data: Any,
    *,
    reml: bool = True,
    weights: str | None = None,
    offset: str | None = None,
    optimizer: Literal["robust", "lme4"] = "robust",
) -> LmerFit:
    """Fit a linear mixed-effects model as lme4's ``lmer(formula, data, REML = reml)`` with lmerTest's tests.

    Parameters
    ----------
    formula:
        An lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data:
        A pandas DataFrame, or the path of a data file (CSV, Parquet, Feather, SPSS, Stata, Excel) read
        exactly as ``mlm fit`` reads it. DataFrame columns follow R's rules: a Categorical is a factor
        with its categories' order as the levels, text becomes a factor with levels in R's sort order,
        bool is a logical, numbers stay numbers, and NaN/None are NA (rows with NA are left out).
    reml:
        REML (the default) or, with False, maximum likelihood.
    weights, offset:
        The name of a column of prior weights or of an offset (lmer's ``weights =`` and ``offset =``).
    optimizer:
        ``"robust"`` (the default) refines an end point that fails lme4's convergence checks;
        ``"lme4"`` stops where lme4's BOBYQA stops.

    Returns
    -------
    LmerFit
        The fitted model. Its warnings (convergence, singular fit) are also issued as MlmWarning.

    Raises
    ------
    mlmcli.errors.MlmError
        For a mistake in the formula or the data (FormulaError, DataError), with one plain message.

    Examples
    --------
    >>> import mlmcli
    >>> fit = mlmcli.lmer("Reaction ~ Days + (Days | Subject)", "sleepstudy.csv")  # doctest: +SKIP
    >>> fit.fixef()  # doctest: +SKIP
    """
    from mlmcli.model import OPTIMIZERS
    from mlmcli.pipeline import lmer as fit_pipeline
    from mlmcli.pipeline import parse

    if optimizer not in OPTIMIZERS:
        raise MlmError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {optimizer!r}")
    parsed = parse(formula)
    columns = parsed.columns() + [c for c in (weights, offset) if c is not None]
    with engine_threads():
        model, frame = fit_pipeline(
            _frame_of(data, columns),
            formula,
            reml=bool(reml),
            ddf="Satterthwaite",
            optimizer=optimizer,
            weights=weights,
            offset=offset,
        )
    fit = LmerFit(model, frame, _notes(model, frame))
    for w in list(dict.fromkeys(model.warnings)) + fit.notes:
        warnings.warn(w, MlmWarning, stacklevel=2)
    return fit


class LmerFit:
    """A fitted linear mixed model: lme4's merMod with lmerTest's methods.

    Made by :func:`mlmcli.lmer`. ``model`` is the engine's FittedModel and ``frame`` the data it was
    built from, for use with the statistics modules.
    """

    def __init__(self, model: FittedModel, frame: Frame, notes: Sequence[str] = ()) -> None:
        self.model = model
        self.frame = frame
        self.notes: list[str] = list(notes)
        self._report: dict | None = None

    # ------------------------------------------------------------------ the command's outputs
    def _fit_report(self) -> dict:
        if self._report is None:
            from mlmcli.pipeline import user_errors
            from mlmcli.report import fit_report

            with user_errors(self.model.formula.text):
                self._report = fit_report(self.model)
        return self._report

    def summary(self) -> str:
        """lme4's ``summary(fit)`` as printed, the text ``mlm fit DATA FORMULA --format text`` writes.

        Character for character the command's output when the model was fitted to a path.

        Examples
        --------
        >>> print(fit.summary())  # doctest: +SKIP
        """
        from mlmcli.rcompat.escape import escape_strings
        from mlmcli.render.text import fit_summary_output

        return fit_summary_output(escape_strings(self._fit_report())).out

    def to_dict(self) -> dict:
        """The command's JSON document (``mlm fit ... --format json``) as a dict.

        Its keys are documented by the fit schema (``mlm schema fit``); NaN is None as in the JSON.
        """
        return copy.deepcopy(self._fit_report())

    @property
    def warnings(self) -> list[str]:
        """lme4's and lmerTest's warnings about this fit (as ``summary()`` prints them)."""
        report = self._fit_report()
        return list(report["warnings"]) + list(report.get("lmerTest_messages", []))

    # ------------------------------------------------------------------ estimates
    def fixef(self) -> pd.Series:
        """lme4's ``fixef(fit)``: the fixed-effect estimates, a Series indexed by term."""
        import pandas as pd

        return pd.Series(
            np.asarray(self.model.beta, dtype=float), index=list(self.model.design.xnames), name="Estimate"
        )

    def vcov(self) -> pd.DataFrame:
        """lme4's ``vcov(fit)``: the fixed effects' covariance matrix, rows and columns named by term."""
        import pandas as pd

        names = list(self.model.design.xnames)
        return pd.DataFrame(np.asarray(self.model.vcov, dtype=float), index=names, columns=names)

    def ranef(self, condvar: bool = False) -> dict[str, pd.DataFrame]:
        """lme4's ``ranef(fit, condVar = condvar)``: each grouping factor's conditional modes.

        Returns a dict from grouping factor to a DataFrame indexed by the factor's levels with one
        column per term (terms of several random terms of one factor side by side, as lme4 has them).
        With ``condvar=True`` the columns are a two-level MultiIndex: ``"mode"`` (the conditional
        modes) and ``"cond_sd"`` (their conditional standard deviations, the square roots of the
        diagonal of lme4's ``attr(, "postVar")``), each over the terms:
        ``fit.ranef(condvar=True)["Subject"]["cond_sd"]``.
        """
        import pandas as pd

        modes = self.model.conditional_modes()
        sds = self.model.conditional_sd() if condvar else None
        out: dict[str, pd.DataFrame] = {}
        for factor in self.model.groups():
            idx = [i for i, t in enumerate(self.model.design.terms) if t.group == factor]
            terms = self.model.design.terms
            levels = [str(v) for v in terms[idx[0]].levels]
            names = [c for i in idx for c in terms[i].cnames]
            values = np.hstack([modes[i] for i in idx])
            df = pd.DataFrame(values, index=pd.Index(levels, name=factor), columns=names)
            if sds is not None:
                sd = pd.DataFrame(np.hstack([sds[i] for i in idx]), index=df.index, columns=names)
                df = pd.concat({"mode": df, "cond_sd": sd}, axis=1)
            out[factor] = df
        return out

    @property
    def sigma(self) -> float:
        """lme4's ``sigma(fit)``: the residual standard deviation."""
        return float(self.model.sigma)

    @property
    def theta(self) -> np.ndarray:
        """lme4's ``getME(fit, "theta")``: the relative covariance factors' parameters."""
        return np.array(self.model.theta, dtype=float)

    @property
    def loglik(self) -> float:
        """``logLik(fit)``: the log-likelihood (the REML criterion's for a REML fit)."""
        return float(self.model.loglik)

    @property
    def aic(self) -> float:
        """``AIC(fit)``."""
        return float(self.model.aic)

    @property
    def bic(self) -> float:
        """``BIC(fit)``."""
        return float(self.model.bic)

    @property
    def nobs(self) -> int:
        """``nobs(fit)``: the number of rows the model was fitted to (after rows with NA left out)."""
        return int(self.model.n)

    # ------------------------------------------------------------------ what follows from the fit
    def predict(
        self, newdata: Any = None, re_form: Literal["all", "none"] = "all", allow_new_levels: bool = False
    ) -> np.ndarray:
        """lme4's ``predict(fit, newdata, re.form, allow.new.levels)``.

        Parameters
        ----------
        newdata:
            None (the fitted values on the rows the model used), a DataFrame, or a path.
        re_form:
            ``"all"`` (``re.form = NULL``: with the random effects) or ``"none"`` (``re.form = NA``).
        allow_new_levels:
            Give levels of a grouping factor the fit never saw the population value instead of an error.

        Returns
        -------
        numpy.ndarray
            One prediction per row, NaN where a variable the prediction needs is missing.
        """
        from mlmcli.model import FittedModel, fitted_values
        from mlmcli.pipeline import user_errors
        from mlmcli.stats.predict import predict_new

        if re_form not in ("all", "none"):
            raise MlmError(f"re_form must be 'all' or 'none', not {re_form!r}")
        if newdata is None:
            model = self.model
            pred = fitted_values(model) if isinstance(model, FittedModel) else model.fitted_values()
        else:
            new = _frame_of(newdata, [])
            if isinstance(new, str):
                from mlmcli.io.formats import read_data

                new = read_data(new)
            else:
                from mlmcli.io.dataframe import frame_from_pandas

                new = frame_from_pandas(newdata)
            with user_errors(self.model.formula.text):
                pred = predict_new(
                    self.model, self.frame, new, random=re_form == "all", allow_new_levels=allow_new_levels
                )
        return np.asarray(pred.values if re_form == "all" else pred.fixed, dtype=float)

    def augment(self) -> pd.DataFrame:
        """broom.mixed's ``augment(fit)``: the model frame's rows with ``.fitted``, ``.resid`` and
        ``.fixed``, the columns ``mlm augment`` writes.

        For a glmer fit ``.fitted`` is on the response scale (lme4's ``fitted()``), ``.resid`` holds
        the deviance residuals, ``.fixed`` is ``predict(fit, re.form = NA)`` on the link scale, and
        ``.eta`` (the linear predictor) and ``.wtres`` (Pearson residuals) follow.
        """
        import pandas as pd

        from mlmcli.stats.predict import augment_report

        _, columns = augment_report(self.model, self.frame.int_columns)
        return pd.DataFrame(columns)

    def confint(
        self,
        method: Literal["wald", "profile", "boot"] = "wald",
        level: float = 0.95,
        nsim: int = 1000,
        seed: int | None = None,
    ) -> pd.DataFrame:
        """lme4's ``confint(fit, method =, level =, nsim =)``.

        Rows are named as lme4 names them with ``oldNames = FALSE`` (``sd_(Intercept)|Subject``,
        ``cor_Days.(Intercept)|Subject``, ``sigma``, then the fixed effects), as the JSON's
        ``parameter``; columns are lme4's percent labels (``"2.5 %"``, ``"97.5 %"``). Wald intervals
        of the variance parameters are NaN, as lme4's are NA.

        Parameters
        ----------
        method:
            ``"wald"``, ``"profile"`` (likelihood profile) or ``"boot"`` (parametric bootstrap).
        level:
            The confidence level, between 0 and 1.
        nsim, seed:
            The bootstrap's number of replicates and its seed (a fresh seed when None).
        """
        import pandas as pd

        from mlmcli.pipeline import user_errors
        from mlmcli.stats.confint import METHODS, Bootstrap, confint_report

        if method not in METHODS:
            raise MlmError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
        spec = Bootstrap(nsim=nsim, seed=seed) if method == "boot" else None
        with user_errors(self.model.formula.text), engine_threads():
            report = confint_report(self.model, method, level, None, spec)
        if spec is not None:
            for m in spec.messages:
                warnings.warn(m, MlmWarning, stacklevel=2)
        rows = report["intervals"]
        values = np.array(
            [[np.nan if r[k] is None else r[k] for k in ("lower", "upper")] for r in rows], dtype=float
        ).reshape(len(rows), 2)
        return pd.DataFrame(values, index=[r["parameter"] for r in rows], columns=report["labels"])

    def anova(
        self,
        type: Literal[1, 2, 3] = 3,  # noqa: A002  (lmerTest's argument name)
        ddf: Literal["Satterthwaite", "Kenward-Roger"] = "Satterthwaite",
    ) -> pd.DataFrame:
        """lmerTest's ``anova(fit, type =, ddf =)``: F tests of the fixed-effect terms.

        Returns a DataFrame indexed by term with lmerTest's columns ``Sum Sq``, ``Mean Sq``, ``NumDF``,
        ``DenDF``, ``F value`` and ``Pr(>F)``; ``attrs["heading"]`` holds its title.
        Kenward-Roger is offered for REML fits without prior weights, as with ``mlm anova``.
        """
        import pandas as pd

        from mlmcli.model import KR_REML_ONLY
        from mlmcli.pipeline import user_errors
        from mlmcli.stats.anova import anova_report

        if type not in (1, 2, 3):
            raise MlmError(f"type must be 1, 2 or 3, not {type!r}")
        if ddf not in ("Satterthwaite", "Kenward-Roger"):
            raise MlmError(f"ddf must be 'Satterthwaite' or 'Kenward-Roger', not {ddf!r}")
        model = self.model
        if ddf == "Kenward-Roger":
            if not model.reml:
                raise MlmError(KR_REML_ONLY)
            if model.design.args.weights is not None:
                raise MlmError(
                    "Kenward-Roger with prior weights is not offered (pbkrtest leaves them out of "
                    "its covariance): use Satterthwaite"
                )
            model = copy.copy(model)
            model.ddf = ddf
        with user_errors(model.formula.text), engine_threads():
            report = anova_report(model, self.frame, int(type))
        keys = {
            "sum_sq": "Sum Sq",
            "mean_sq": "Mean Sq",
            "num_df": "NumDF",
            "den_df": "DenDF",
            "f_value": "F value",
            "p_value": "Pr(>F)",
        }
        table = pd.DataFrame(
            [[np.nan if r[k] is None else r[k] for k in keys] for r in report["terms"]],
            index=[r["term"] for r in report["terms"]],
            columns=list(keys.values()),
            dtype=float,
        )
        table.attrs["heading"] = report["heading"]
        return table

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        m = self.model
        return (
            f"<LmerFit {m.formula.text!r} ({m.method}) on {m.data_name}: n = {m.n}, "
            f"logLik = {m.loglik:.4f}, sigma = {m.sigma:.4g}>"
        )

    def _repr_html_(self) -> str:
        """The fixed effects and the variance components as HTML tables, for notebooks."""
        m = self.model
        e = html.escape
        fixed = _fixed_rows_html(m)
        rows = [(vc.name, term, sd) for vc in m.varcomps() for term, sd in zip(vc.terms, vc.std_dev, strict=True)]
        rows.append(("Residual", "", m.sigma))
        random = "".join(f"<tr><td>{e(g)}</td><td>{e(t)}</td><td>{sd:.4g}</td></tr>" for g, t, sd in rows)
        return (
            f"<p><b>Linear mixed model fit by {m.method}</b>: <code>{e(m.formula.text)}</code>, "
            f"{m.n} observations, logLik {m.loglik:.2f}</p>"
            "<table><tr><th>Fixed effect</th><th>Estimate</th><th>Std. Error</th></tr>"
            f"{fixed}</table>"
            "<table><tr><th>Groups</th><th>Name</th><th>Std.Dev.</th></tr>"
            f"{random}</table>"
        )


def glmer(
    formula: str,
    data: Any,
    *,
    family: Literal["binomial", "poisson"],
    link: str | None = None,
    nagq: int = 1,
    weights: str | None = None,
    offset: str | None = None,
    optimizer: Literal["robust", "lme4"] = "robust",
) -> GlmerFit:
    """Fit a generalized linear mixed model as lme4's ``glmer(formula, data, family, nAGQ = nagq)``.

    Parameters
    ----------
    formula:
        An lme4 formula. A binomial response is a 0/1 column, a two-level factor (the first level is
        failure), ``cbind(successes, failures)``, or a proportion with ``weights`` naming the trials;
        a poisson response is a count, with ``offset(log(exposure))`` in the formula or ``offset``.
    data:
        A pandas DataFrame or the path of a data file, as for :func:`lmer`.
    family, link:
        ``"binomial"`` (links ``"logit"``, the default, ``"probit"``, ``"cloglog"``) or
        ``"poisson"`` (``"log"``).
    nagq:
        1 (the default) for the Laplace approximation; above 1, adaptive Gauss-Hermite quadrature
        with that many points (one scalar random-effects term only); 0 for lme4's nAGQ = 0.
    weights, offset, optimizer:
        As for :func:`lmer`.

    Examples
    --------
    >>> fit = mlmcli.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                    "cbpp.csv", family="binomial")  # doctest: +SKIP
    >>> print(fit.summary())  # doctest: +SKIP
    """
    from mlmcli.model import OPTIMIZERS
    from mlmcli.pipeline import glmer as fit_pipeline
    from mlmcli.pipeline import parse

    if optimizer not in OPTIMIZERS:
        raise MlmError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {optimizer!r}")
    parsed = parse(formula)
    columns = parsed.columns() + [c for c in (weights, offset) if c is not None]
    with engine_threads():
        model, frame = fit_pipeline(
            _frame_of(data, columns),
            formula,
            family=family,
            link=link,
            nagq=int(nagq),
            optimizer=optimizer,
            weights=weights,
            offset=offset,
        )
    fit = GlmerFit(model, frame, _notes(model, frame))
    for w in list(dict.fromkeys(model.warnings)) + fit.notes:
        warnings.warn(w, MlmWarning, stacklevel=2)
    return fit


class GlmerFit(LmerFit):
    """A fitted generalized linear mixed model: lme4's glmerMod.

    Made by :func:`mlmcli.glmer`; ``fixef``, ``vcov``, ``ranef``, ``theta``, ``loglik``, ``aic``,
    ``bic`` and ``nobs`` are as for :class:`LmerFit`.
    """

    model: GlmmModel  # type: ignore[assignment]

    def __init__(self, model: GlmmModel, frame: Frame, notes: Sequence[str] = ()) -> None:
        super().__init__(model, frame, notes)  # type: ignore[arg-type]

    def _fit_report(self) -> dict:
        if self._report is None:
            from mlmcli.pipeline import user_errors
            from mlmcli.report import glmer_fit_report

            with user_errors(self.model.formula.text):
                self._report = glmer_fit_report(self.model)
        return self._report

    def summary(self) -> str:
        """lme4's ``summary(fit)`` as printed, the text ``mlm fit ... --family ... --format text`` writes."""
        from mlmcli.rcompat.escape import escape_strings
        from mlmcli.render.glmer_text import glmer_summary_output
        from mlmcli.report import glmer_fit_report

        # the summary prints no ICC: a Poisson fit's null model is refitted only for to_dict()
        report = self._report if self._report is not None else glmer_fit_report(self.model, effects=False)
        return glmer_summary_output(escape_strings(report)).out

    @property
    def warnings(self) -> list[str]:
        """lme4's warnings about this fit."""
        return list(dict.fromkeys(self.model.warnings))

    @property
    def sigma(self) -> float:
        """``sigma(fit)``: 1 for binomial and poisson."""
        return 1.0

    @property
    def deviance(self) -> float:
        """-2 logLik, as summary(fit) prints it."""
        return float(self.model.deviance)

    def __repr__(self) -> str:
        m = self.model
        return (
            f"<GlmerFit {m.formula.text!r} ({m.family.name}, {m.family.link}, {m.method}) on {m.data_name}: "
            f"n = {m.n}, logLik = {m.loglik:.4f}>"
        )

    def _repr_html_(self) -> str:
        m = self.model
        e = html.escape
        fixed = _fixed_rows_html(m)
        return (
            f"<p><b>Generalized linear mixed model ({e(m.family.name)}, {e(m.family.link)}) fit by "
            f"{m.method}</b>: <code>{e(m.formula.text)}</code>, {m.n} observations, logLik {m.loglik:.2f}</p>"
            "<table><tr><th>Fixed effect</th><th>Estimate</th><th>Std. Error</th></tr>"
            f"{fixed}</table>"
        )

    def predict(
        self,
        newdata: Any = None,
        re_form: Literal["all", "none"] = "all",
        allow_new_levels: bool = False,
        type: Literal["link", "response"] = "link",
    ) -> np.ndarray:
        """lme4's ``predict(fit, newdata, re.form, allow.new.levels, type)``: on the link scale (the
        default, as lme4's) or, with ``type="response"``, the response's (probabilities, rates).
        An offset in the formula is included; glmer's ``offset =`` is left out for new data, as lme4
        leaves it out."""
        if type not in ("link", "response"):
            raise MlmError(f"type must be 'link' or 'response', not {type!r}")
        eta = super().predict(newdata, re_form, allow_new_levels)
        return self.model.family.linkinv(eta) if type == "response" else eta

    def anova(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        raise MlmError("anova() of a glmer fit is not offered: lmerTest's F tests are for linear models")


def _fixed_rows_html(m: Any) -> str:
    """The fixed effects as rows of an HTML table: term, estimate, standard error."""
    return "".join(
        f"<tr><td>{html.escape(str(n))}</td><td>{b:.4g}</td><td>{se:.4g}</td></tr>"
        for n, b, se in zip(m.design.xnames, m.beta, m.std_errors, strict=True)
    )


def compare(*fits: LmerFit, names: Sequence[str] | None = None) -> pd.DataFrame:
    """lme4's ``anova(m1, m2, ...)``: likelihood-ratio tests of nested models.

    REML fits are refitted by ML first, as lme4 does; its note ("refitting model(s) with ML (instead
    of REML)") is issued as an MlmWarning and kept in ``attrs["messages"]``. Rows are ordered by the
    number of parameters, as lme4 orders them.

    Parameters
    ----------
    *fits:
        Two or more LmerFit objects of one data set (the same rows).
    names:
        The models' names (the table's index); ``m1``, ``m2``, ... by default.

    Returns
    -------
    pandas.DataFrame
        Columns ``npar, AIC, BIC, logLik, deviance, Chisq, Df, Pr(>Chisq)`` (NaN in the first row's
        test columns, as lme4's NA).

    Examples
    --------
    >>> m0 = mlmcli.lmer("Reaction ~ 1 + (1 | Subject)", df)  # doctest: +SKIP
    >>> m1 = mlmcli.lmer("Reaction ~ Days + (1 | Subject)", df)  # doctest: +SKIP
    >>> mlmcli.compare(m0, m1, names=["null", "days"])  # doctest: +SKIP
    """
    import pandas as pd

    from mlmcli.pipeline import user_errors
    from mlmcli.stats.compare import compare as run_compare
    from mlmcli.stats.compare import compare_report

    if len(fits) < 2:
        raise MlmError("compare needs at least two fits")
    if not all(isinstance(f, LmerFit) for f in fits):
        raise MlmError("compare takes fits made by mlmcli.lmer")
    labels = list(names) if names is not None else [f"m{i + 1}" for i in range(len(fits))]
    if len(labels) != len(fits) or len(set(labels)) != len(labels):
        raise MlmError(f"names needs {len(fits)} distinct names, got {labels!r}")
    with user_errors(), engine_threads():
        report = compare_report(run_compare([f.model for f in fits], labels))
    keys = {
        "npar": "npar",
        "aic": "AIC",
        "bic": "BIC",
        "loglik": "logLik",
        "deviance": "deviance",
        "chisq": "Chisq",
        "df": "Df",
        "p_value": "Pr(>Chisq)",
    }
    rows = report["models"]
    table = pd.DataFrame(
        [[np.nan if r[k] is None else r[k] for k in keys] for r in rows],
        index=[r["name"] for r in rows],
        columns=list(keys.values()),
        dtype=float,
    )
    table["npar"] = table["npar"].astype(int)
    table.attrs["messages"] = list(report["messages"])
    for m in report["messages"]:
        warnings.warn(m, MlmWarning, stacklevel=2)
    return table
