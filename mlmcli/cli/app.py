"""The typer application, the choices its options take and the option types the commands share."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import Enum
from typing import Annotated, Any

import typer

from mlmcli.render.registry import formats

EXIT_OK, EXIT_BUG, EXIT_USAGE, EXIT_STRICT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


HELP = """Multilevel (linear mixed-effects) models with lme4's numbers, from the command line. \
The manual: mlm man.

Exit status: 0 ok, 1 internal error (a bug), 2 bad input or usage, 3 warnings under --strict, \
130 interrupted, 143 terminated."""


app = typer.Typer(
    name="mlm",
    help=HELP,
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # rich help renders [required] and [default: ...] without the stray backslashes that typer's
    # plain mode leaves when rich is installed
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Ddf(str, Enum):
    satterthwaite = "Satterthwaite"
    kenward_roger = "Kenward-Roger"
    none = "none"


class CiMethod(str, Enum):
    wald = "wald"
    profile = "profile"
    boot = "boot"


class Optimizer(str, Enum):
    robust = "robust"
    lme4 = "lme4"


class Family(str, Enum):
    binomial = "binomial"
    poisson = "poisson"


class Link(str, Enum):
    logit = "logit"
    probit = "probit"
    cloglog = "cloglog"
    log = "log"


class PredictType(str, Enum):
    link = "link"
    response = "response"


class Engine(str, Enum):
    memory = "memory"
    dask = "dask"


class ReForm(str, Enum):
    all = "all"
    none = "none"


def choice(values: list[str]) -> Any:
    """click's Choice of `values` (what typer makes of an Enum), from the click typer uses."""
    from importlib import import_module

    try:
        click = import_module("typer._click")  # typer vendors click from 0.2x on
    except ImportError:
        click = import_module("click")
    return click.Choice(values)


def format_option(kind: str, help: str) -> Any:
    """--format/-f of the command `kind`: the formats the renderers' registry writes its report in
    (mlmcli/render/registry.py), in the registry's order."""
    return typer.Option("--format", "-f", help=help, click_type=choice(formats(kind)))


DATA_HELP = (
    "CSV file with a header line (.csv, or compressed .csv.gz/.bz2/.xz), or - for standard input; "
    "also .parquet, .feather, and SPSS .sav/.zsav, Stata .dta, Excel .xlsx (pip install 'mlm\\[formats]'). "
    "Text columns are factors; NA or an empty field is a missing value. With --engine dask: a Parquet "
    "file, a folder of Parquet files, or a quoted glob of .csv/.csv.gz files."
)


FORMULA_HELP = (
    'lme4 model formula in quotes, e.g. "math ~ ses + (ses|schcode)": fixed effects left of the '
    "first (, random terms as (terms | group); see mlm man for the grammar."
)


DataArg = Annotated[str, typer.Argument(help=DATA_HELP, metavar="DATA")]

# names that are data files, whatever their case: the readers' suffixes and CSV's
_DATA_SUFFIXES = (
    ".csv",
    ".tsv",
    ".txt",
    ".dat",
    ".gz",
    ".bz2",
    ".xz",
    ".zst",
    ".parquet",
    ".pq",
    ".feather",
    ".arrow",
    ".sav",
    ".zsav",
    ".dta",
    ".xlsx",
    ".xlsm",
    ".xls",
    ".por",
    ".rds",
    ".rdata",
    ".sas7bdat",
)


def check_argument_order(ctx: typer.Context, value: str | list[str] | None) -> str | list[str] | None:
    """FORMULA's callback: `mlm fit "y ~ x + (1|g)" data.csv` would otherwise report the file name as a
    formula without '~'. DATA is processed first (it comes first), so its value is known here."""
    import os

    from mlmcli.errors import MlmError

    data = ctx.params.get("data")
    formulas = [value] if isinstance(value, str) else list(value or [])
    if (
        isinstance(data, str)
        and "~" in data
        and any("~" not in f and (f.lower().endswith(_DATA_SUFFIXES) or os.path.isfile(f)) for f in formulas)
    ):
        usage = " ".join(ctx.command.collect_usage_pieces(ctx))
        raise MlmError(f"DATA and FORMULA look swapped: usage: {ctx.command_path} {usage}")
    return value


FormulaArg = Annotated[str, typer.Argument(help=FORMULA_HELP, metavar="FORMULA", callback=check_argument_order)]


MlOpt = Annotated[bool, typer.Option("--ml", help="Fit by maximum likelihood instead of REML.")]


OutputOpt = Annotated[str | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")]


NoColorOpt = Annotated[bool, typer.Option("--no-color", help="No colour in tables (also: NO_COLOR).")]


StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Exit with status 3 when the fit warns (singular, not converged, columns or rows "
        "dropped), after writing the output.",
    ),
]


OptimizerOpt = Annotated[
    Optimizer,
    typer.Option(
        "--optimizer",
        help="robust (default): refine an end point that fails lme4's convergence checks; "
        "lme4: stop where lme4's BOBYQA stops.",
    ),
]


FamilyOpt = Annotated[
    Family | None,
    typer.Option(
        "--family",
        help="Fit a generalized linear mixed model (lme4's glmer): binomial (0/1, a two-level factor, "
        "cbind(successes, failures), or proportions with --weights as trials) or poisson (counts).",
    ),
]
LinkOpt = Annotated[
    Link | None,
    typer.Option("--link", help="The link of --family: logit (default), probit, cloglog; log for poisson."),
]
NagqOpt = Annotated[
    int,
    typer.Option(
        "--nagq",
        help="glmer's nAGQ: 1 = Laplace (default), above 1 = adaptive Gauss-Hermite quadrature points "
        "(one scalar random-effects term), 0 = fixed effects inside PIRLS (faster, less exact).",
    ),
]


NsimOpt = Annotated[int, typer.Option("--nsim", help="Bootstrap replicates (--method boot / --ci boot).")]


SeedOpt = Annotated[
    int | None,
    typer.Option("--seed", help="Random seed of the bootstrap (default: a fresh one, reported in json output)."),
]


VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose",
        "-v",
        help="Say on stderr what reading DATA did beyond read.csv's rules (SPSS/Stata "
        "value-labelled columns read as factors).",
    ),
]


# ------------------------------------------------------------ reading and filtering DATA
# Every command that reads DATA takes these options, declared here once; @reads_data adds them to a
# command's signature and hands the command one DataOptions.

SepOpt = Annotated[str | None, typer.Option("--sep", help="Field separator: , ; | or tab (default: tab for .tsv).")]


SheetOpt = Annotated[
    str | None, typer.Option("--sheet", help="Excel sheet of DATA: its name or 1-based position (default: the first).")
]


WhereOpt = Annotated[
    str | None,
    typer.Option(
        "--where",
        help='Use only the rows where EXPR is true, as lmer\'s subset = does, e.g. "schcode <= 10" '
        "(see mlm man: WHERE EXPRESSIONS).",
        metavar="EXPR",
    ),
]


WeightsOpt = Annotated[
    str | None,
    typer.Option(
        "--weights",
        help="Column of prior weights (lme4's weights =): row i has residual variance sigma^2 / w_i.",
        metavar="COLUMN",
    ),
]


OffsetOpt = Annotated[
    str | None,
    typer.Option(
        "--offset",
        help="Column added to the linear predictor with coefficient 1 (lme4's offset =), on top "
        "of any offset() in the formula.",
        metavar="COLUMN",
    ),
]


EngineOpt = Annotated[
    Engine,
    typer.Option(
        "--engine",
        help="memory (default): read DATA into this process; dask: sum the model's statistics over "
        "the partitions of DATA (a Parquet file, a folder of Parquet files, or a quoted glob of .csv/.csv.gz "
        "files) on a dask.distributed cluster (pip install 'mlm\\[dask]').",
    ),
]


SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="With --engine dask: the address of a running dask scheduler, e.g. "
        "tcp://10.0.0.5:8786 (default: DASK_SCHEDULER_ADDRESS, else a local cluster of one worker per core).",
    ),
]


TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        min=0.001,
        help="With --engine dask and a scheduler address: seconds to wait "
        "for the scheduler to answer before giving up.",
        metavar="SECONDS",
    ),
]


@dataclass(frozen=True)
class DataOptions:
    """How DATA is read and which of its rows and columns the model uses."""

    sep: str | None = None
    sheet: str | None = None
    where: str | None = None
    weights: str | None = None
    offset: str | None = None
    engine: str = "memory"
    scheduler: str | None = None
    timeout: float = 30.0


_DATA_OPTIONS = {
    "sep": (SepOpt, None),
    "sheet": (SheetOpt, None),
    "where": (WhereOpt, None),
    "weights": (WeightsOpt, None),
    "offset": (OffsetOpt, None),
    "engine": (EngineOpt, Engine.memory),
    "scheduler": (SchedulerOpt, None),
    "timeout": (TimeoutOpt, 30.0),
}
assert set(_DATA_OPTIONS) == {f.name for f in fields(DataOptions)}


def reads_data(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the options of DATA: its parameter `source: DataOptions` becomes --sep, --sheet,
    --where, --weights, --offset, --engine, --scheduler and --timeout on the command line."""
    return _ReadsData(command)


class _ReadsData:
    """A command whose `source: DataOptions` parameter typer sees as the options of DATA.

    The signature typer reads is made when it is first asked for: evaluating a command's annotations
    (typer's Annotated options) costs about half a millisecond, and a run builds one command, not all.
    """

    def __init__(self, command: Callable[..., Any]) -> None:
        self.__wrapped__ = command
        self.__module__ = command.__module__
        self.__name__ = command.__name__
        self.__qualname__ = command.__qualname__
        self.__doc__ = command.__doc__

    @functools.cached_property
    def __signature__(self) -> inspect.Signature:
        signature = inspect.signature(self.__wrapped__, eval_str=True)
        params = list(signature.parameters.values())
        at = [p.name for p in params].index("source")
        params[at : at + 1] = [
            inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation, default=default)
            for name, (annotation, default) in _DATA_OPTIONS.items()
        ]
        return signature.replace(parameters=params)

    @functools.cached_property
    def __annotations__(self) -> dict[str, Any]:  # type: ignore[override]
        return {p.name: p.annotation for p in self.__signature__.parameters.values()}

    def __call__(self, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in _DATA_OPTIONS}
        given["engine"] = given["engine"].value
        return self.__wrapped__(**kwargs, source=DataOptions(**given))


# the examples' data, bundled with the sources, so that each example runs as it is written
HECK = "sample_data/heck2011.csv"
SLEEP = "tests/fixtures/lme4/data/sleepstudy.csv"
SLEEP_MODEL = '"Reaction ~ Days + (Days|Subject)"'


def examples(*lines: str) -> str:
    """A command's epilog: the examples -h shows below the options (blank lines keep typer from joining them)."""
    return "Examples:\n\n" + "\n\n".join(lines)


def _show_version(value: bool) -> None:
    if value:
        from mlmcli import __version__

        sys.stdout.write(f"mlm {__version__}\n")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_show_version, help="Print the version and exit.")
    ] = False,
) -> None:
    """Options before any command."""
