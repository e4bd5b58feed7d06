"""What every command does around its work: fit the model, say what went wrong in one line, write the
output whole (JSON, R's text or a table), and exit 3 under --strict when the fit warned."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Any

import typer

from mlmcli.cli.app import EXIT_STRICT
from mlmcli.errors import DataError, FormulaError, MlmError


def _default_format(fmt: Enum | None, output: str | None) -> str:
    """Tables on a terminal, lme4's text otherwise."""
    if fmt is not None:
        return fmt.value
    return "table" if output is None and sys.stdout.isatty() else "text"


@contextmanager
def _user_errors(formula: str = "") -> Iterator[None]:
    """Failures a model or formula (not a bug) causes, as one plain line each."""
    import numpy as np

    try:
        yield
    except RecursionError:
        raise FormulaError(f"the formula is nested too deeply or has too many terms to process "
                           f"({len(formula)} characters)") from None
    except (ZeroDivisionError, FloatingPointError, np.linalg.LinAlgError) as e:
        raise DataError(f"the model cannot be fitted: the computation broke down numerically ({e}); "
                        "check for predictors on extreme scales or nearly collinear terms") from None


@contextmanager
def _bootstrap_progress(spec: Any) -> Iterator[None]:
    """The bootstrap's progress bar on a terminal (its refits take seconds to minutes); `spec` is a
    confint.Bootstrap, or None for the other methods."""
    if spec is None:
        yield
        return
    from mlmcli.render.progress import progress_bar

    with progress_bar("bootstrap", spec.nsim) as advance:
        spec.progress = advance
        yield


def _check_finite(model: Any) -> None:
    """Non-finite estimates are no result: lme4 stops with an error where these arise."""
    import numpy as np

    parts = {"fixed effects": model.beta, "standard errors": model.std_errors, "sigma": [model.sigma],
             "criterion": [model.criterion], "theta": model.theta}
    bad = [name for name, v in parts.items() if not np.all(np.isfinite(np.asarray(v, dtype=float)))]
    if bad:
        X = np.asarray(model.design.X, dtype=float)
        big = float(np.max(np.abs(X))) if X.size else 0.0
        hint = f"; the largest predictor value is {big:.3g}: rescale it" if big > 1e8 else ""
        raise DataError(f"the fit gave non-finite results ({', '.join(bad)}){hint}")


def _read(data: str, columns: list[str] | None, sep: str | None = None, sheet: str | None = None,
          verbose: bool = False):
    """DATA by its format (CSV, Parquet, SPSS, ...); only `columns` are converted. --verbose: what the
    reader did beyond read.csv's rules (labelled columns made factors) goes to stderr."""
    from mlmcli.formats import read_data

    frame = read_data(data, columns=columns, sep=sep, sheet=sheet)
    _warn([f"mlm: note: {w}" for w in dict.fromkeys(frame.warnings)])
    if verbose:
        _warn([f"mlm: {note}" for note in frame.notes])
    return frame


def _check_ddf(ddf: str, ml: bool, weights: str | None = None) -> None:
    """lmerTest refuses Kenward-Roger for ML fits; say so before fitting. With prior weights
    pbkrtest leaves the weights out of its covariance, so there is no reference to agree with."""
    if ddf == "Kenward-Roger" and ml:
        from mlmcli.model import KR_REML_ONLY

        raise MlmError(f"{KR_REML_ONLY}: drop --ml or use --ddf Satterthwaite")
    if ddf == "Kenward-Roger" and weights is not None:
        raise MlmError("--ddf Kenward-Roger with --weights is not offered (pbkrtest leaves prior weights out of "
                       "its covariance): use --ddf Satterthwaite")


def _fit(data: str, formula: str, ml: bool, ddf: str = "Satterthwaite", also: list[str] | None = None,
         sep: str | None = None, optimizer: str = "robust", sheet: str | None = None, verbose: bool = False,
         weights: str | None = None, offset: str | None = None, engine: str = "memory",
         scheduler: str | None = None, residuals: bool = False):
    if engine == "dask":
        _dask_refuses(sheet=sheet)
        models = _fit_on_cluster(data, [formula], ml, ddf, sep, optimizer, scheduler, residuals, weights, offset)
        return models[0], None
    if scheduler is not None:
        _note_engine("--scheduler")
    from mlmcli.design import ModelArguments, build_design
    from mlmcli.formula import parse_formula
    from mlmcli.model import fit_model

    args = ModelArguments(weights=weights, offset=offset)
    with _user_errors(formula):
        parsed = parse_formula(formula)
        # only these columns are converted
        frame = _read(data, parsed.columns() + args.columns() + (also or []), sep, sheet, verbose)
        design = build_design(frame, parsed, args)
        model = fit_model(parsed, design, reml=not ml, data_name=frame.name, ddf=ddf, optimizer=optimizer)
    _check_finite(model)
    return model, frame


def _fit_on_cluster(data: str, formulas: list[str], ml: bool, ddf: str, sep: str | None, optimizer: str,
                    scheduler: str | None, residuals: bool, weights: str | None = None,
                    offset: str | None = None) -> list:
    """--engine dask: every formula fitted from sums over DATA's partitions on one cluster."""
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError as e:
        raise MlmError(f"--engine dask needs the dask extra ({e.name} is not installed): "
                       "pip install 'mlm[dask]'") from None
    from mlmcli.distributed.cluster import connect
    from mlmcli.distributed.fit import check_formula, fit_on_cluster
    from mlmcli.distributed.source import open_source

    if sep is not None:
        _note_engine("--sep", "the CSV reader of --engine memory")
    models = []
    source = open_source(data)
    for formula in formulas:      # before a cluster is started or reached
        with _user_errors(formula):
            check_formula(source, formula, weights, offset)
    with connect(scheduler) as client:
        for formula in formulas:
            with _user_errors(formula):
                models.append(fit_on_cluster(client, source, formula, reml=not ml, ddf=ddf, optimizer=optimizer,
                                             residuals=residuals, weights=weights, offset=offset))
            _check_finite(models[-1])
    return models


def _dask_refuses(**options: str | None) -> None:
    """Options --engine dask does not offer (yet): one line, exit status 2."""
    given = [f"--{name}" for name, value in options.items() if value is not None]
    if given:
        raise MlmError(f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} not offered with --engine dask")


def _note_engine(option: str, applies_to: str = "--engine dask") -> None:
    sys.stderr.write(f"mlm: note: {option} applies to {applies_to}; ignored\n")


def _fit_and_warn(data: str, formula: str, ml: bool, also: list[str] | None = None, sep: str | None = None,
                  optimizer: str = "robust", sheet: str | None = None, verbose: bool = False,
                  weights: str | None = None, offset: str | None = None, engine: str = "memory",
                  scheduler: str | None = None):
    """Fit without Satterthwaite set-up and send lme4's warnings to stderr."""
    model, frame = _fit(data, formula, ml, "none", also, sep, optimizer, sheet=sheet, verbose=verbose,
                        weights=weights, offset=offset, engine=engine, scheduler=scheduler)
    _warn(list(dict.fromkeys(model.warnings)))
    return model, frame


def _warn(lines: list[str]) -> None:
    for line in lines:
        sys.stderr.write(line + "\n")


def _deliver(kind: str, report: dict, output: str | None, inputs: tuple[str, ...], no_color: bool,
             text: str, table: str, **table_options: Any) -> None:
    """A report as JSON, as R's printed text or as a table; the renderers ("module:function", imported
    only when chosen) see its printable form."""
    if kind == "json":
        _emit(_json(report), output, inputs)
        return
    from importlib import import_module

    module, name = (text if kind == "text" else table).split(":")
    render = getattr(import_module(module), name)
    if kind == "text":
        _emit(render(_printable(report)), output, inputs)
    else:
        _table(lambda c: render(c, _printable(report), **table_options), output, no_color, inputs)


def _strict_exit(strict: bool, warnings: list[str]) -> None:
    """--strict: a CI job fails (exit 3) on a doubtful fit; the output is written first."""
    if strict and warnings:
        raise typer.Exit(EXIT_STRICT)


def _note_ignored(option: str, kind: str, applies_to: str) -> None:
    sys.stderr.write(f"mlm: note: {option} applies to {applies_to} output; ignored with --format {kind}\n")


def _emit(text: str, output: str | None, inputs: tuple[str, ...] = ()) -> None:
    """Write stdout or a whole file (via a temporary file and rename: never half a file)."""
    if output is None or output == "-":
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_stdout()  # the reader (head, less) has seen enough: not a failure
        return
    from mlmcli.outfile import write_output

    write_output(output, text.encode(), inputs)


def _json(obj: dict) -> str:
    import json

    return json.dumps(obj, indent=1, allow_nan=False) + "\n"


def _table(draw: Callable[[Any], None], output: str | None, no_color: bool, inputs: tuple[str, ...]) -> None:
    """Rich tables, rendered whole into a string and then written like any other output.

    Rendering first means a closed pipe (`| head -1`) is handled as for text, and `-o FILE` gets the table.
    """
    import io

    from mlmcli.render.table import make_console

    tty = (output is None or output == "-") and sys.stdout.isatty()
    plain = no_color or bool(os.environ.get("NO_COLOR")) or not tty
    buf = io.StringIO()
    draw(make_console(no_color=plain, width=_table_width(), file=buf, force_terminal=True if tty else None))
    _emit(buf.getvalue(), output, inputs)


# narrower than this, rich would cut numbers short (`-3…`); a wider table wraps in the terminal instead
MIN_TABLE_WIDTH = 60


def _table_width() -> int:
    from shutil import get_terminal_size

    return max(get_terminal_size((80, 24)).columns, MIN_TABLE_WIDTH)


def _printable(report: dict) -> dict:
    """Levels with newlines or tabs escaped as R prints them, for text and table output."""
    from mlmcli.render.escape import escape_strings

    return escape_strings(report)


def _begin(data: str, output: str | None, fmt: Enum | None) -> tuple[tuple[str, ...], str]:
    """A command's first step, before any work: the files it must not overwrite (checked against
    -o) and the output format it will write."""
    inputs = (data,)
    _check_outputs(inputs, output)
    return inputs, _default_format(fmt, output)


def _check_outputs(inputs: tuple[str, ...], *outputs: str | None) -> None:
    """Before fitting: an output must not overwrite an input, and its folder must exist."""
    from mlmcli.outfile import check_output

    for out in outputs:
        if out is not None:
            check_output(out, inputs)


def _where_columns(where: str | None) -> list[str]:
    """The columns a --where expression names (none if it does not parse: that error comes later)."""
    from mlmcli.where import columns_used, parse_where

    try:
        return columns_used(parse_where(where)) if where else []
    except MlmError:
        return []

def _quiet_stdout() -> None:
    """After a broken pipe, send what is left to /dev/null so that exiting does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
