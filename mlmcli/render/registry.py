"""The renderers by report and format: which function writes `mlm fit --format csv`, and so which
formats each command offers.

A renderer is named as "module:function" and imported only when its format is chosen, so that a
plain `mlm fit` imports neither rich nor matplotlib. Every renderer takes the report (the dict that
`--format json` writes) and the options its entry names; the command passes all of its options and
each renderer gets those it takes. A text renderer returns the text, or a Printed (text.py) where R
also writes to stderr; a table renderer draws on a rich console instead, and names the format written
when the terminal is too narrow for the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any, NamedTuple

from mlmcli.errors import MlmError


@dataclass(frozen=True)
class Renderer:
    """One report in one format."""

    target: str  # "module:function"
    takes: tuple[str, ...] = ()  # the options it is given, of those the command passes
    # text, tables and the tidy CSV show factor levels with newlines or tabs escaped, as R prints
    # them; JSON and the other CSVs carry them as they are
    escaped: bool = True
    console: bool = False  # draws on a rich console (console, report, **options) instead of returning text
    narrow: str = "text"  # console renderers: the format written instead when the terminal is too narrow


class Rendered(NamedTuple):
    """A renderer's output: the text for stdout (or -o FILE) and what R writes to stderr."""

    text: str
    err: str = ""


_JSON = Renderer("mlmcli.render.jsonout:json_text", escaped=False)


def _inference(name: str) -> dict[str, Renderer]:
    """confint, anova and ranova (render/inference.py): R's printed matrix, a table, JSON."""
    return {
        "text": Renderer(f"mlmcli.render.inference:{name}_text"),
        "table": Renderer(f"mlmcli.render.inference:print_{name}", console=True),
        "json": _JSON,
    }


def _rows() -> dict[str, Renderer]:
    """predict and augment: the rows as CSV (from their columns, which keep R's column types) or JSON."""
    return {"csv": Renderer("mlmcli.render.rows:columns_csv", ("columns",), escaped=False), "json": _JSON}


def _side_by_side(function: str, *takes: str) -> Renderer:
    return Renderer(f"mlmcli.render.modeltable:{function}", ("digits", *takes), escaped=False)


# report -> format -> renderer; the formats in the order --help lists them, the reports in the
# commands' order. A new format is an entry here; a new report, a dict.
RENDERERS: dict[str, dict[str, Renderer]] = {
    "fit": {
        "text": Renderer("mlmcli.render.text:fit_summary_output"),
        "table": Renderer("mlmcli.render.table:print_fit", ("correlation",), console=True),
        "json": _JSON,
        "csv": Renderer("mlmcli.render.tidy:tidy_csv", ("varpar_ci",)),  # broom.mixed's tidy()
    },
    # `mlm fit --family`: lme4's summary of a glmer fit
    "glmer_fit": {
        "text": Renderer("mlmcli.render.glmer_text:glmer_summary_output"),
        "table": Renderer("mlmcli.render.glmer_table:print_glmer_fit", ("correlation",), console=True),
        "json": _JSON,
        "csv": Renderer("mlmcli.render.tidy:glmer_tidy_csv", ("varpar_ci",)),  # broom.mixed's tidy()
    },
    "tau": {
        "text": Renderer("mlmcli.render.text:tau_text"),
        "table": Renderer("mlmcli.render.table:print_tau", ("corr_only",), console=True),
        "json": _JSON,
    },
    "ranef": {
        "text": Renderer("mlmcli.render.ranef_text:ranef_text", ("head",)),
        "table": Renderer("mlmcli.render.table:print_ranef", ("head", "wide"), console=True),
        "json": _JSON,
        "csv": Renderer("mlmcli.render.csvout:ranef_csv", ("wide", "with_coef"), escaped=False),
    },
    "compare": {
        "text": Renderer("mlmcli.render.text:compare_text"),
        "table": Renderer("mlmcli.render.table:print_compare", console=True),
        "json": _JSON,
    },
    "table": {
        # too narrow for the terminal table: the Markdown layout, as piped output has
        "table": Renderer(
            "mlmcli.render.modeltable:print_table", ("digits",), escaped=False, console=True, narrow="markdown"
        ),
        "markdown": _side_by_side("markdown", "caption"),
        "latex": _side_by_side("latex", "caption", "label"),
        "html": _side_by_side("html_table", "caption"),
        "csv": _side_by_side("csv_table"),
        "json": _JSON,
    },
    "predict": _rows(),
    "augment": _rows(),
    "confint": _inference("confint"),
    "anova": _inference("anova"),
    "ranova": _inference("ranova"),
    "plot": {"json": _JSON},  # the plotted numbers; the picture itself is render/plots
}


def formats(kind: str) -> list[str]:
    """The formats `kind`'s report is written in, as its command's --format offers them."""
    return list(RENDERERS[kind])


def reports_in(fmt: str) -> list[str]:
    """The reports written in `fmt`, in the commands' order."""
    return [kind for kind, offered in RENDERERS.items() if fmt in offered]


def renderer(kind: str, fmt: str) -> Renderer:
    """The entry of `kind` in `fmt`; an unknown pair is the user's error (exit status 2)."""
    offered = RENDERERS.get(kind, {})
    if fmt not in offered:
        raise MlmError(f"--format {fmt} is not offered for {kind}: use one of {', '.join(offered) or 'none'}")
    return offered[fmt]


def load(entry: Renderer) -> Any:
    """The renderer's function, imported now."""
    module, name = entry.target.split(":")
    return getattr(import_module(module), name)


def render(kind: str, fmt: str, report: dict, **options: Any) -> Rendered:
    """`report` (of the command `kind`) written in `fmt`: for stdout, and for stderr."""
    entry = renderer(kind, fmt)
    if entry.console:
        raise ValueError(f"--format {fmt} of {kind} draws on a console: use draw()")
    out = load(entry)(_shown(entry, report), **_given(entry, options))
    if isinstance(out, str):
        return Rendered(out)
    return Rendered(out.out, out.err)  # a Printed: R's two streams


def draw(kind: str, fmt: str, console: Any, report: dict, **options: Any) -> None:
    """`report` (of the command `kind`) drawn on a rich `console` as the table `fmt`."""
    entry = renderer(kind, fmt)
    if not entry.console:
        raise ValueError(f"--format {fmt} of {kind} is text: use render()")
    load(entry)(console, _shown(entry, report), **_given(entry, options))


def _shown(entry: Renderer, report: dict) -> dict:
    if not entry.escaped:
        return report
    from mlmcli.rcompat.escape import escape_strings

    return escape_strings(report)


def _given(entry: Renderer, options: dict[str, Any]) -> dict[str, Any]:
    return {name: options[name] for name in entry.takes if name in options}
