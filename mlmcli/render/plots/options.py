"""What `mlm plot` is asked to draw, which rows --where keeps, and what a kind hands back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mlmcli.errors import DataError, MlmError

if TYPE_CHECKING:
    from mlmcli.io.frame import Frame
    from mlmcli.model import FittedModel

KINDS = ("ranef", "caterpillar", "spaghetti", "fitted", "residuals", "profile", "coef", "effects", "check", "shrinkage")
# a GLMM's pictures: its random effects, its fitted curves and predictions on the response scale, its
# fixed effects
GLMM_KINDS = ("caterpillar", "ranef", "fitted", "coef", "effects")

# the options each kind reads; any other given is a mistake. --xlabel and --ylabel name every panel's
# axis, so a kind whose panels have different axes (residuals; profile's x, one per parameter) refuses them
_USES = {
    "ranef": {"x", "y", "group", "xlabel", "ylabel"},
    "caterpillar": {"group", "groups", "xlabel", "ylabel"},
    "spaghetti": {"x", "group", "by", "groups", "seed", "xlabel", "ylabel"},
    "fitted": {"x", "group", "by", "xlabel", "ylabel"},
    "residuals": set(),
    "profile": {"ylabel"},
    "coef": {"intercept", "xlabel", "ylabel"},
    "effects": {"terms", "xlabel", "ylabel"},
    "check": set(),
    "shrinkage": {"x", "groups", "xlabel", "ylabel"},
}
_WHY = {
    "residuals": " (its panels have different axes)",
    "profile": " (each panel's x axis is its parameter)",
    "check": " (its panels have different axes)",
}
FONT_SIZES = (4.0, 24.0)  # --font-size, points


@dataclass
class PlotOptions:
    kind: str
    output: str
    x: str | None = None  # shrinkage: the fixed-effect column whose slope is drawn
    y: str | None = None
    group: str | None = None
    where: str | None = None
    by: str | None = None
    dpi: int | None = None  # None: the theme's (100 on screen, 300 on paper)
    width: float = 8.0
    height: float = 6.0
    title: str | None = None  # None: each kind's own; "": no title
    data_out: str | None = None
    inputs: tuple[str, ...] = ()  # files the outputs must never overwrite (the data)
    theme: str = "screen"
    caption: str | None = None  # None: formula, method and observations; "": no caption
    groups: int | None = None  # spaghetti, shrinkage: groups drawn (0: all); caterpillar: levels shown (0: all)
    seed: int | None = None  # spaghetti: the sample's seed (None: 1)
    profiles: list[dict] | None = None  # profile: confint.profile_curves(), computed before drawing
    estimates: dict | None = None  # coef, effects, check, shrinkage: the stats layer's report, computed before drawing
    terms: str | None = None  # effects: the focal predictor, or two joined by a comma
    intercept: bool | None = None  # coef: show the intercept (None: left out, as sjPlot does)
    xlabel: str | None = None  # None: each kind's own; "": no label
    ylabel: str | None = None
    font_size: float | None = None  # the axis labels' size in points (None: by the figure's size)


@dataclass
class Drawn:
    """What a kind hands back: its numbers, the table for --data-out, and the default title."""

    data: dict
    table: list[dict]
    title: str
    notes: list[str] = field(default_factory=list)
    caption: list[str] = field(default_factory=list)  # lines added under the default caption
    short_title: str = ""  # the title where the long one would take two lines
    method: str | None = None  # the caption's method, where it is not the fit's (profile: the ML refit)
    finish: Callable[[], None] | None = None  # after the title and caption are laid out: what needs their room


def check_kind(opts: PlotOptions) -> None:
    if opts.kind not in KINDS:
        raise MlmError(f"unknown plot kind '{opts.kind}' (kinds: {', '.join(KINDS)})")


def check_family_kind(kind: str) -> None:
    """The kinds a GLMM (--family) offers; least-squares lines, residual panels and profiles are a
    linear model's."""
    if kind not in GLMM_KINDS:
        kinds = f"{', '.join(GLMM_KINDS[:-1])} and {GLMM_KINDS[-1]}"
        raise MlmError(f"--kind {kind} is not offered with --family: a GLMM's plots are {kinds}")


def check_options(opts: PlotOptions) -> None:
    """Options a kind does not use are mistakes worth one clear line, not silence."""
    from mlmcli.render.plots.style import THEMES

    uses = _USES[opts.kind]
    for name in ("x", "y", "group", "by", "groups", "seed", "xlabel", "ylabel", "terms", "intercept"):
        if getattr(opts, name) is not None and name not in uses:
            hint = " (the y axis is the response)" if name == "y" else _WHY.get(opts.kind, "")
            raise MlmError(f"--{name} is not used by the {opts.kind} plot{hint}")
    lo, hi = FONT_SIZES
    if opts.font_size is not None and not lo <= opts.font_size <= hi:
        raise MlmError(f"--font-size must be between {lo:g} and {hi:g} points, got {opts.font_size:g}")
    if opts.theme not in THEMES:
        raise MlmError(f"unknown --theme '{opts.theme}' (themes: {', '.join(THEMES)})")
    if opts.groups is not None and opts.groups < 0:
        raise MlmError(f"--groups must be 0 (all) or a positive count, got {opts.groups}")
    if opts.seed is not None and opts.seed < 0:
        raise MlmError(f"--seed must be 0 or more, got {opts.seed}")


def kept_rows(model: FittedModel, frame: Frame, where: str | None) -> np.ndarray:
    """Which of the model's observations --where keeps (all of them without --where)."""
    n = len(model.design.rows)
    if where is None:
        return np.ones(n, dtype=bool)
    from mlmcli.where import where_mask

    keep = where_mask(frame, where)[model.design.rows]
    if not keep.any():
        raise DataError(f"--where '{where}' keeps none of the {n} observations the model uses")
    return keep
