"""lme4's lmer() as its phases, shared by the command line, the Python API (mlmcli.lmer), the
statistics that refit a model and the Dask engine.

lme4 runs lFormula (parse the formula, build the model frame and the matrices), mkLmerDevfun (the
cross-products and the sparse factor the deviance is evaluated on), optimizeLmer (the optimizer over
theta) and mkMerMod (the fitted model). Here `read_rows` and `l_formula` are lFormula's halves
(the data as R reads them, then the design), `fit_design` runs mkLmerDevfun, optimizeLmer and
mkMerMod (mlmcli.model; from cross-products summed elsewhere for the Dask engine), and
`lmer_models` chains them for one or more formulas on data read once.  Refits: `refit` is lme4's
update(fit, formula) (ranova's reduced models) and refitML (anova's and profile's ML fits);
`bootstrap_refits` and `refit_simulated` are refit(fit, newresp) for bootMer's simulated responses.
Errors are the project's MlmError family; nothing here writes to a stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mlmcli.errors import DataError, FormulaError, MlmError

if TYPE_CHECKING:
    import numpy as np

    from mlmcli.design import Design
    from mlmcli.engine.bootstrap import BootstrapModel, Replicates
    from mlmcli.engine.crossprod import CrossProducts
    from mlmcli.engine.glmm_bootstrap import GlmmBootstrapModel
    from mlmcli.formula import Formula
    from mlmcli.glmmodel import GlmmModel
    from mlmcli.io.frame import Frame
    from mlmcli.model import FittedModel, RemoteRows


@contextmanager
def user_errors(formula: str = "") -> Iterator[None]:
    """Failures a model or formula (not a bug) causes, as one plain line each."""
    import numpy as np

    try:
        yield
    except RecursionError:
        raise FormulaError(
            f"the formula is nested too deeply or has too many terms to process ({len(formula)} characters)"
        ) from None
    except (ZeroDivisionError, FloatingPointError, np.linalg.LinAlgError) as e:
        raise DataError(
            f"the model cannot be fitted: the computation broke down numerically ({e}); "
            "check for predictors on extreme scales or nearly collinear terms"
        ) from None


def check_finite(model: FittedModel) -> None:
    """Non-finite estimates are no result: lme4 stops with an error where these arise."""
    import numpy as np

    parts = {
        "fixed effects": model.beta,
        "standard errors": model.std_errors,
        "sigma": [model.sigma],
        "criterion": [model.criterion],
        "theta": model.theta,
    }
    bad = [name for name, v in parts.items() if not np.all(np.isfinite(np.asarray(v, dtype=float)))]
    if bad:
        X = np.asarray(model.design.X, dtype=float)
        big = float(np.max(np.abs(X))) if X.size else 0.0
        hint = f"; the largest predictor value is {big:.3g}: rescale it" if big > 1e8 else ""
        raise DataError(f"the fit gave non-finite results ({', '.join(bad)}){hint}")


def where_columns(where: str | None) -> list[str]:
    """The columns a where expression names (none if it does not parse: that error comes later)."""
    if not where:
        return []
    from mlmcli.where import columns_used, parse_where

    try:
        return columns_used(parse_where(where))
    except MlmError:
        return []


def read_rows(
    data: str | Frame,
    columns: Sequence[str],
    *,
    sep: str | None = None,
    sheet: str | None = None,
    where: str | None = None,
    weights: str | None = None,
    offset: str | None = None,
    on_read: Callable[[Frame], None] | None = None,
) -> Frame:
    """The data as R reads them (the first half of lFormula): a path read by its format (only
    `columns`, the weights, offset and `where` columns converted), or a Frame already made; then the
    rows `where` keeps. `on_read` sees the frame as read (its notes) before any row is dropped."""
    if where is not None:
        from mlmcli.where import parse_where

        with user_errors(where):
            parse_where(where)  # a mistake in it is found before reading
    if isinstance(data, str):
        from mlmcli.io.formats import read_data

        extra = [c for c in (weights, offset) if c is not None] + where_columns(where)
        frame = read_data(data, columns=list(columns) + extra, sep=sep, sheet=sheet)
    else:
        frame = data
    if on_read is not None:
        on_read(frame)
    if where is None:
        return frame
    from mlmcli.where import keep_rows

    with user_errors(where):
        return keep_rows(frame, where)


def l_formula(
    formula: Formula, frame: Frame, weights: str | None = None, offset: str | None = None, family: str | None = None
) -> Design:
    """lme4's lFormula (glFormula with a family) on data read: the model frame, X, y and the
    random-effects terms."""
    from mlmcli.design import ModelArguments, build_design

    with user_errors(formula.text):
        return build_design(frame, formula, ModelArguments(weights=weights, offset=offset, family=family))


def fit_design(
    formula: Formula,
    design: Design,
    *,
    reml: bool = True,
    data_name: str = "",
    ddf: str = "Satterthwaite",
    optimizer: str = "robust",
    crossproducts: CrossProducts | None = None,
    remote: RemoteRows | None = None,
    theta0: np.ndarray | None = None,
) -> FittedModel:
    """mkLmerDevfun, optimizeLmer and mkMerMod: the fitted model of a design, checked to be finite.
    `crossproducts`: the blocks of A summed where the rows are (the Dask engine), with `remote`, what
    the output needs from those rows, and lme4's start value `theta0` computed there; without them
    the blocks are formed from the design's rows."""
    from mlmcli.model import fit_crossproducts, fit_model

    with user_errors(formula.text):
        if crossproducts is None:
            model = fit_model(formula, design, reml=reml, data_name=data_name, ddf=ddf, optimizer=optimizer)
        else:
            model = fit_crossproducts(
                formula, design, crossproducts, reml, data_name, ddf, optimizer, remote=remote, theta0=theta0
            )
    check_finite(model)
    return model


def refit(
    model: FittedModel,
    *,
    formula: str | None = None,
    frame: Frame | None = None,
    reml: bool | None = None,
    ddf: str | None = None,
) -> FittedModel:
    """The model refitted, with the fit's optimizer: to another `formula` on `frame`, the data it was
    fitted to, with its weights and offset (lme4's update(fit, formula), as lmerTest's ranova
    refits the reduced models), or by the other criterion from the fitted theta (lme4's refitML,
    as anova and profile refit a REML fit by ML).  `reml` and `ddf` default to the fit's."""
    reml = model.reml if reml is None else reml
    ddf = model.ddf if ddf is None else ddf
    if formula is None:
        if reml == model.reml:
            return model
        from mlmcli.model import refit as refit_criterion

        with user_errors(model.formula.text):
            new = refit_criterion(model, reml)
        check_finite(new)
        return new
    if frame is None:
        raise TypeError("refit with a new formula needs the frame the model was fitted to")
    parsed = parse(formula)
    args = model.design.args
    design = l_formula(parsed, frame, args.weights, args.offset)
    return fit_design(parsed, design, reml=reml, data_name=model.data_name, ddf=ddf, optimizer=model.optimizer)


def bootstrap_refits(model: FittedModel | GlmmModel, seed: int) -> BootstrapModel | GlmmBootstrapModel:
    """lme4's refit(fit, newresp) as bootMer calls it, set up once for every simulated response: the
    fit's blocks of A (a new response changes only those that involve y), and the fitted theta, beta
    and sigma the responses are simulated from (simulate()) and each refit starts at.  Replicate i
    draws from its own stream of `seed`.  A glmer fit's: its design and response, theta, beta and
    the standard errors its refits are scaled by (engine/glmm_bootstrap.py)."""
    import numpy as np

    from mlmcli.engine.bootstrap import BootstrapModel
    from mlmcli.glmmodel import GlmmModel

    if isinstance(model, GlmmModel):
        from mlmcli.engine.glmm_bootstrap import GlmmBootstrapModel

        return GlmmBootstrapModel(
            model.problem,
            model.fit.modes.system.cp,
            model.nagq,
            np.array(model.theta, dtype=float),
            np.array(model.beta, dtype=float),
            np.array(model.std_errors, dtype=float),
            seed,
        )
    return BootstrapModel(
        model.system.cp,
        model.reml,
        np.array(model.theta, dtype=float),
        np.array(model.beta, dtype=float),
        float(model.sigma),
        seed,
    )


def refit_simulated(shared: BootstrapModel | GlmmBootstrapModel, indices: range | list[int]) -> Replicates:
    """The replicates `indices`: each a simulated response refitted (refit(fit, newresp)), in
    lockstep for a model with one random-effects term (engine/lockstep.py); a glmer fit's one
    after another."""
    from mlmcli.engine.bootstrap import replicate
    from mlmcli.engine.glmm_bootstrap import GlmmBootstrapModel
    from mlmcli.engine.glmm_bootstrap import replicate as glmm_replicate

    if isinstance(shared, GlmmBootstrapModel):
        return glmm_replicate(shared, indices)
    return replicate(shared, indices)


def parse(formula: str) -> Formula:
    """The formula parsed (FormulaError for a mistake in it)."""
    from mlmcli.formula import parse_formula

    with user_errors(formula):
        return parse_formula(formula)


def read_for(
    data: str | Frame,
    formulas: Sequence[str],
    also: Sequence[str],
    sep: str | None,
    sheet: str | None,
    where: str | None,
    weights: str | None,
    offset: str | None,
    on_read: Callable[[Frame], None] | None,
) -> tuple[list[Formula], Frame]:
    """The formulas parsed and the data read once for all of them (every formula's columns and
    `also`, the weights, offset and `where` columns)."""
    parsed = [parse(f) for f in formulas]
    columns = list(dict.fromkeys([c for p in parsed for c in p.columns()] + list(also)))
    with user_errors(formulas[0] if formulas else ""):
        frame = read_rows(
            data, columns, sep=sep, sheet=sheet, where=where, weights=weights, offset=offset, on_read=on_read
        )
    return parsed, frame


def lmer_models(
    data: str | Frame,
    formulas: Sequence[str],
    *,
    reml: bool = True,
    ddf: str = "Satterthwaite",
    optimizer: str = "robust",
    weights: str | None = None,
    offset: str | None = None,
    sep: str | None = None,
    sheet: str | None = None,
    where: str | None = None,
    also: Sequence[str] = (),
    on_read: Callable[[Frame], None] | None = None,
) -> tuple[list[FittedModel], Frame]:
    """lmer() of every formula on one data set, read once (every formula's columns and `also`):
    the fitted models and the frame they were built from."""
    parsed, frame = read_for(data, formulas, also, sep, sheet, where, weights, offset, on_read)
    models = [
        fit_design(
            p, l_formula(p, frame, weights, offset), reml=reml, data_name=frame.name, ddf=ddf, optimizer=optimizer
        )
        for p in parsed
    ]
    return models, frame


def lmer(data: str | Frame, formula: str, **options: Any) -> tuple[FittedModel, Frame]:
    """lmer() of one formula (options as lmer_models): the fitted model and its frame."""
    models, frame = lmer_models(data, [formula], **options)
    return models[0], frame


def missing_rows_note(model: FittedModel | GlmmModel, n_rows: int) -> str | None:
    """lme4 drops rows with missing values silently (na.omit): how many went, if any."""
    missing = model.design.missing_rows
    if not missing:
        return None
    rows = "row with a missing value was" if missing == 1 else "rows with missing values were"
    return f"{missing} {rows} left out (of {n_rows})"


def glmer_models(
    data: str | Frame,
    formulas: Sequence[str],
    *,
    family: str,
    link: str | None = None,
    nagq: int = 1,
    optimizer: str = "robust",
    weights: str | None = None,
    offset: str | None = None,
    sep: str | None = None,
    sheet: str | None = None,
    where: str | None = None,
    on_read: Callable[[Frame], None] | None = None,
    also: Sequence[str] = (),
) -> tuple[list[GlmmModel], Frame]:
    """glmer() of every formula on one data set, read once: glFormula, mkGlmerDevfun,
    optimizeGlmer's two stages and mkMerMod.  The fitted models and their frame, which also holds
    the columns `also` names."""
    from mlmcli.engine.family import LINKS
    from mlmcli.glmmodel import fit_glmm_model

    if family not in LINKS:
        raise MlmError(f"--family {family}: use binomial or poisson")
    if link is not None and link not in LINKS[family]:
        raise MlmError(f"--link {link} is not offered for {family}: use {', '.join(LINKS[family])}")
    parsed, frame = read_for(data, formulas, also, sep, sheet, where, weights, offset, on_read)
    models = []
    for p in parsed:
        design = l_formula(p, frame, weights, offset, family=family)
        with user_errors(p.text):
            models.append(
                fit_glmm_model(p, design, family, link=link, nagq=nagq, data_name=frame.name, optimizer=optimizer)
            )
    return models, frame


def glmer(data: str | Frame, formula: str, **options: Any) -> tuple[GlmmModel, Frame]:
    """glmer() of one formula (options as glmer_models): the fitted model and its frame."""
    models, frame = glmer_models(data, [formula], **options)
    return models[0], frame
