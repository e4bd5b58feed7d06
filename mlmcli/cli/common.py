"""What every command does around its work: fit the model, say what went wrong in one line, write the
output whole (by the renderer the registry names for the report and format: JSON, R's text, CSV or a
table), and exit 3 under --strict when the fit warned."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import typer

from mlmcli.cli.app import EXIT_STRICT, DataOptions
from mlmcli.errors import MlmError
from mlmcli.pipeline import user_errors as _user_errors


def _default_format(fmt: str | None, output: str | None) -> str:
    """Tables on a terminal, lme4's text otherwise."""
    if fmt is not None:
        return fmt
    return "table" if output is None and sys.stdout.isatty() else "text"


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


# A data file of this size makes row-length arrays of tens of MB, which numpy allocates and frees
# many times in one fit.  glibc serves each from fresh pages of the kernel (mmap above its threshold,
# at most 32 MB) and the page faults cost a third of a 5M-row fit's time; with the threshold raised
# freed arrays stay in the heap and are used again.  The process is the command's, so it may choose.
ROOMY_HEAP_BYTES = 64 << 20
_NEVER = 2**31 - 1  # bytes, as a threshold: the largest mallopt takes


def _keep_freed_memory(data: str) -> None:
    """For a large DATA file, glibc's malloc keeps freed memory for reuse (mallopt); nothing elsewhere."""
    try:
        if os.stat(data).st_size < ROOMY_HEAP_BYTES:
            return
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, _NEVER)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, _NEVER)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError, ValueError):
        pass  # not a file, or not glibc: malloc as it is


def _read(
    data: str, columns: list[str] | None, sep: str | None = None, sheet: str | None = None, verbose: bool = False
):
    """DATA by its format (CSV, Parquet, SPSS, ...); only `columns` are converted."""
    from mlmcli.io.formats import read_data

    _keep_freed_memory(data)
    frame = read_data(data, columns=columns, sep=sep, sheet=sheet)
    _reader_notes(verbose)(frame)
    return frame


def _reader_notes(verbose: bool) -> Callable[[Any], None]:
    """What the reader says of DATA on stderr: numbers read as text always; with --verbose also
    what it did beyond read.csv's rules (labelled columns made factors)."""

    def say(frame: Any) -> None:
        _warn([f"mlm: note: {w}" for w in dict.fromkeys(frame.warnings)])
        if verbose:
            _warn([f"mlm: {note}" for note in frame.notes])

    return say


def _memory_only(command: str, source: DataOptions) -> None:
    """Commands that need DATA's rows in this process: --engine dask is one line and exit 2."""
    if source.engine == "dask":
        raise MlmError(f"mlm {command} needs the rows of DATA in this process: it is not offered with --engine dask")
    if source.scheduler is not None:
        _note_engine("--scheduler")


def _check_ddf(ddf: str, ml: bool, weights: str | None = None) -> None:
    """lmerTest refuses Kenward-Roger for ML fits; say so before fitting. With prior weights
    pbkrtest leaves the weights out of its covariance, so there is no reference to agree with."""
    if ddf == "Kenward-Roger" and ml:
        from mlmcli.model import KR_REML_ONLY

        raise MlmError(f"{KR_REML_ONLY}: drop --ml or use --ddf Satterthwaite")
    if ddf == "Kenward-Roger" and weights is not None:
        raise MlmError(
            "--ddf Kenward-Roger with --weights is not offered (pbkrtest leaves prior weights out of "
            "its covariance): use --ddf Satterthwaite"
        )


def _fit(
    data: str,
    formula: str,
    ml: bool,
    ddf: str = "Satterthwaite",
    also: list[str] | None = None,
    source: DataOptions | None = None,
    optimizer: str = "robust",
    verbose: bool = False,
    residuals: bool = False,
):
    """The model of `formula` on DATA read and filtered as `source` says; the frame it was built from
    (None with --engine dask)."""
    source = source or DataOptions()
    if source.engine == "dask":
        models = _fit_on_cluster(data, [formula], ml, ddf, optimizer, source, residuals)
        return models[0], None
    fits, frame = _fit_all(data, [formula], ml, source, optimizer, verbose, ddf, also)
    return fits[0], frame


def _fit_all(
    data: str,
    formulas: list[str],
    ml: bool,
    source: DataOptions,
    optimizer: str,
    verbose: bool,
    ddf: str = "none",
    also: list[str] | None = None,
) -> tuple[list, Any]:
    """Several models of one DATA, read once (every formula's columns) as `source` says, through
    the library's lmer pipeline; the frame they were built from."""
    from mlmcli.pipeline import lmer_models

    if source.scheduler is not None:
        _note_engine("--scheduler")
    _keep_freed_memory(data)
    fits, frame = lmer_models(
        data,
        formulas,
        reml=not ml,
        ddf=ddf,
        optimizer=optimizer,
        weights=source.weights,
        offset=source.offset,
        sep=source.sep,
        sheet=source.sheet,
        where=source.where,
        also=also or [],
        on_read=_reader_notes(verbose),
    )
    _note_missing_rows(fits, frame.n_rows)
    return fits, frame


def _note_missing_rows(fits: list[Any], n_rows: int) -> None:
    """The rows na.omit left out, once for models that lost the same rows."""
    from mlmcli.pipeline import missing_rows_note

    for missing in dict.fromkeys(m.design.missing_rows for m in fits):
        note = missing_rows_note(next(m for m in fits if m.design.missing_rows == missing), n_rows)
        if note:
            _warn([f"mlm: note: {note}"])


def _row_notes(*models: Any) -> bool:
    """Whether the data lost rows to missing values before a fit, which --strict counts as a warning."""
    return any(getattr(m.design, "missing_rows", 0) for m in models)


def _fit_on_cluster(
    data: str, formulas: list[str], ml: bool, ddf: str, optimizer: str, source: DataOptions, residuals: bool
) -> list:
    """--engine dask: every formula fitted from sums over DATA's partitions on one cluster."""

    def fit(client: Any, data_source: Any, formula: str, note: Callable[[list[str]], None]) -> Any:
        from mlmcli.distributed.fit import fit_on_cluster

        return fit_on_cluster(
            client,
            data_source,
            formula,
            reml=not ml,
            ddf=ddf,
            optimizer=optimizer,
            residuals=residuals,
            weights=source.weights,
            offset=source.offset,
            on_notes=note,
        )

    return _on_cluster(data, formulas, source, fit)


def _on_cluster(
    data: str, formulas: list[str], source: DataOptions, fit: Callable[[Any, Any, str, Callable], Any]
) -> list:
    """The models of `formulas` fitted by `fit(client, source, formula, on_notes)` on one dask cluster
    (a running scheduler's or a local one), DATA's files and the formulas checked before it starts."""
    _dask_refuses(sheet=source.sheet, where=source.where)
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError as e:
        raise MlmError(
            f"--engine dask needs the dask extra ({e.name} is not installed): pip install 'mlm[dask]'"
        ) from None
    from mlmcli.distributed.cluster import check_address, connect
    from mlmcli.distributed.fit import check_formula
    from mlmcli.distributed.source import open_source
    from mlmcli.render.progress import waiting

    address = check_address(source.scheduler)  # a malformed address is found before anything is read
    models = []
    data_source = open_source(data, source.sep)
    for formula in formulas:  # before a cluster is started or reached
        with _user_errors(formula):
            check_formula(data_source, formula, source.weights, source.offset)
    noted: dict[str, None] = {}

    def note(notes: list[str]) -> None:  # the reader's notes once, however many formulas read the data
        _warn([f"mlm: note: {n}" for n in notes if n not in noted])
        noted.update(dict.fromkeys(notes))

    with ExitStack() as stack:
        where = f"the dask scheduler at {address}" if address else "a local dask cluster"
        with waiting(f"mlm: connecting to {where}..."):
            client = stack.enter_context(connect(address, source.timeout))
        for formula in formulas:
            with _user_errors(formula):
                models.append(fit(client, data_source, formula, note))
    return models


def _dask_refuses(**options: str | None) -> None:
    """Options --engine dask does not offer (yet): one line, exit status 2."""
    given = [f"--{name}" for name, value in options.items() if value is not None]
    if given:
        raise MlmError(f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} not offered with --engine dask")


def _note_engine(option: str, applies_to: str = "--engine dask") -> None:
    sys.stderr.write(f"mlm: note: {option} applies to {applies_to}; ignored\n")


def _fit_and_warn(
    data: str,
    formula: str,
    ml: bool,
    also: list[str] | None = None,
    source: DataOptions | None = None,
    optimizer: str = "robust",
    verbose: bool = False,
):
    """Fit without Satterthwaite set-up and send lme4's warnings to stderr."""
    model, frame = _fit(data, formula, ml, "none", also, source, optimizer, verbose=verbose)
    _warn(list(dict.fromkeys(model.warnings)))
    return model, frame


def _warn(lines: list[str]) -> None:
    for line in lines:
        sys.stderr.write(line + "\n")


def _deliver(
    kind: str,
    form: str,
    report: dict,
    output: str | None,
    inputs: tuple[str, ...] = (),
    no_color: bool = False,
    **options: Any,
) -> None:
    """The report of the command `kind` in the format `form`, by its renderer in the registry
    (mlmcli/render/registry.py): text written whole (R's messages to stderr after it), a table drawn
    on a console (the registry's text layout instead where the terminal is too narrow for it)."""
    from mlmcli.render.registry import draw, render, renderer

    entry = renderer(kind, form)
    if entry.console:
        _table(
            lambda c: draw(kind, form, c, report, **options),
            output,
            no_color,
            inputs,
            lambda: render(kind, entry.narrow, report, **options).text,
        )
        return
    printed = render(kind, form, report, **options)
    _emit(printed.text, output, inputs)
    if printed.err:
        sys.stderr.write(printed.err)


def _strict_exit(strict: bool, warnings: list[str], *models: Any) -> None:
    """--strict: a CI job fails (exit 3) on a doubtful fit, or one that lost rows to missing values
    (the `models`' notes); the output is written first."""
    if strict and (warnings or _row_notes(*models)):
        raise typer.Exit(EXIT_STRICT)


def _family_notes(family: object, link: object, nagq: int, ml: bool) -> None:
    """An option that does nothing in this combination says so on stderr (a typo in a shell line
    should not pass silently): --link and --nagq without --family, --ml with it."""
    notes = []
    if family is None:
        notes += [
            f"mlm: note: {o} applies with --family; ignored"
            for o, v in (("--link", link is not None), ("--nagq", nagq != 1))
            if v
        ]
    elif ml:
        notes.append("mlm: note: --ml is ignored with --family: glmer fits by maximum likelihood")
    _warn(notes)


def _note_ignored(option: str, form: str, applies_to: str) -> None:
    sys.stderr.write(f"mlm: note: {option} applies to {applies_to} output; ignored with --format {form}\n")


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


def _table(
    draw: Callable[[Any], None],
    output: str | None,
    no_color: bool,
    inputs: tuple[str, ...],
    text: Callable[[], str] | None = None,
) -> None:
    """Rich tables, rendered whole into a string and then written like any other output.

    Rendering first means a closed pipe (`| head -1`) is handled as for text, and `-o FILE` gets the table.
    A table that needs more than the terminal's width (or a terminal narrower than MIN_TABLE_WIDTH) would
    wrap into a mess: the text layout (`text`, R's print-out) is written instead.
    """
    import io

    from mlmcli.render.layout import make_console

    tty = (output is None or output == "-") and sys.stdout.isatty()
    plain = no_color or bool(os.environ.get("NO_COLOR")) or not tty
    columns = _terminal_columns()
    if text is not None and columns < MIN_TABLE_WIDTH:
        _emit(text(), output, inputs)
        return
    buf = io.StringIO()
    console = make_console(
        no_color=plain, width=max(columns, MIN_TABLE_WIDTH), file=buf, force_terminal=True if tty else None
    )
    draw(console)
    if text is not None and console.too_narrow:
        _emit(text(), output, inputs)
        return
    _emit(buf.getvalue(), output, inputs)


# narrower than this, rich would cut numbers short (`-3…`) and split matrices into slivers: the text
# layout is written instead (where there is none, the table is this wide and wraps in the terminal)
MIN_TABLE_WIDTH = 60


def _terminal_columns() -> int:
    from shutil import get_terminal_size

    return get_terminal_size((80, 24)).columns


def _begin(data: str, output: str | None, fmt: str | None) -> tuple[tuple[str, ...], str]:
    """A command's first step, before any work: the files it must not overwrite (checked against
    -o) and the output format it will write."""
    inputs = (data,)
    _check_outputs(inputs, output)
    return inputs, _default_format(fmt, output)


def _check_outputs(inputs: tuple[str, ...], *outputs: str | None) -> None:
    """Before fitting: an output must not overwrite an input, and its folder must exist."""
    for out in outputs:
        if out is not None:
            from mlmcli.outfile import check_output

            check_output(out, inputs)


def _quiet_stdout() -> None:
    """After a broken pipe, send what is left to /dev/null so that exiting does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
