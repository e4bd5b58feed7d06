"""ranef: empirical Bayes estimates of two random effects of one grouping factor, one against the other
(lme4's plot(ranef(fit)) for two columns); a factor with one random effect gets ranefqq's Q-Q plot."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from mlmcli.errors import MlmError
from mlmcli.render.plots.groups import factor_codes, factor_columns, pick_group, shown_levels
from mlmcli.render.plots.options import Drawn, PlotOptions
from mlmcli.render.plots.ranefqq import ranef_qq
from mlmcli.render.plots.style import MAX_LABELLED, POINT, REF, Theme, fit_text

if TYPE_CHECKING:
    from mlmcli.io.frame import Frame
    from mlmcli.model import FittedModel

_Column = tuple[int, int, str]  # (term index, column, name), as factor_columns gives them


def ranef(fig: Any, model: FittedModel, frame: Frame, keep: np.ndarray, opts: PlotOptions, theme: Theme) -> Drawn:
    group = pick_group(model, opts.group)
    cols = factor_columns(model, group)
    if len(cols) < 2:  # nothing to plot it against: lme4's plot(ranef(fit)) draws a normal Q-Q plot
        if opts.x is not None or opts.y is not None:
            raise MlmError(f"--x and --y name two random-effect terms, and {group} has one ({cols[0][2]})")
        return ranef_qq(fig, model, keep, opts, theme, group)
    cx, cy = _axes_terms(cols, group, opts)
    modes = model.conditional_modes()
    xv, yv = modes[cx[0]][:, cx[1]], modes[cy[0]][:, cy[1]]
    # terms in separate bars (||) are independent by construction
    rho = float(model.varcomps()[cx[0]].correlation[cx[1], cy[1]]) if cx[0] == cy[0] else 0.0
    codes, levels = factor_codes(model, group)
    shown = shown_levels(codes, len(levels), keep)
    x, y = xv[shown], yv[shown]

    ax = fig.subplots()
    ax.axhline(0.0, color=REF, lw=theme.lw(0.9), ls="--", zorder=1)
    ax.axvline(0.0, color=REF, lw=theme.lw(0.9), ls="--", zorder=1)
    many = len(shown) > 150
    ax.scatter(
        x,
        y,
        s=theme.area(12 if many else 28),
        alpha=0.55 if many else 0.85,
        color=POINT,
        edgecolors="white" if not many else "none",
        linewidths=theme.lw(0.5),
        zorder=2,
    )
    if len(shown) <= MAX_LABELLED:
        for xi, yi, i in zip(x, y, shown, strict=True):
            ax.annotate(
                levels[i],
                (xi, yi),
                xytext=(3 * theme.scale, 3 * theme.scale),
                textcoords="offset points",
                fontsize=theme.pt(7.5),
                color="#333333",
            )
    empirical = float(np.corrcoef(x, y)[0, 1]) if len(shown) > 2 and np.std(x) > 0 and np.std(y) > 0 else float("nan")
    room = theme.chars(opts.width * 0.85, 9.5)
    ax.set_title(_correlations(rho, empirical, len(shown), model.singular, room), fontsize=theme.pt(9.5), color="#333")
    family = getattr(model, "family", None)  # a GLMM's random effects are on its link's scale
    what = "conditional mode" if family is None else f"conditional mode, {family.link} scale"
    short = "" if family is None else f" ({family.link} scale)"

    def label(term: str, inches: float) -> str:
        long = f"{term} random effect of {group}"
        return fit_text(
            [f"{long} ({what})", f"{long}{short}", f"{term} random effect{short}", term], theme.chars(inches, 10)
        )

    ax.set_xlabel(label(cx[2], opts.width * 0.8))
    ax.set_ylabel(label(cy[2], opts.height * 0.7))
    points = [{"level": levels[i], "x": float(xv[i]), "y": float(yv[i])} for i in shown]
    data = {
        "group": group,
        "x_term": cx[2],
        "y_term": cy[2],
        "correlation": rho,
        "correlation_of_estimates": empirical,
        "points": points,
    }
    pair = "intercepts against slopes" if cy[2] == "(Intercept)" else f"{cy[2]} against {cx[2]}"
    return Drawn(data, points, f"Empirical Bayes estimates for {group}: {pair}", short_title=f"{group}: {pair}")


def _correlations(rho: float, empirical: float, n: int, singular: bool, room: int) -> str:
    """Tau's correlation and that of the plotted estimates, as long as `room` characters allow."""
    r, tau = _fmt_r(rho), "Tau, singular fit" if singular else "Tau"
    long = f"estimated correlation ({tau}): {r}"
    if not math.isfinite(empirical):
        return fit_text([long, f"r = {r} ({tau})"], room)
    est = _fmt_r(empirical)
    return fit_text(
        [
            f"{long}   ·   correlation of the {n} plotted estimates: {est}",
            f"correlation: {r} ({tau}), {est} (the {n} estimates)",
            f"r = {r} ({tau}), {est} (estimates)",
            f"r = {r} ({tau}),\n{est} (estimates)",
        ],
        room,
    )


def _axes_terms(cols: list[_Column], group: str, opts: PlotOptions) -> tuple[_Column, _Column]:
    """(x, y) terms: intercepts (the first term) against slopes (the second) unless told otherwise."""
    names = [c[2] for c in cols]

    def find(name: str, flag: str) -> _Column:
        for c in cols:
            if c[2] == name:
                return c
        raise MlmError(f"{flag} '{name}' is not a random-effect term of {group} (terms: {', '.join(names)})")

    if opts.x is None and opts.y is None:
        cy, cx = cols[0], cols[1]
    elif opts.y is None:
        cx = find(opts.x, "--x")
        cy = next(c for c in cols if c != cx)
    elif opts.x is None:
        cy = find(opts.y, "--y")
        cx = next(c for c in cols if c != cy)
    else:
        cx, cy = find(opts.x, "--x"), find(opts.y, "--y")
    if cx == cy:
        raise MlmError(f"--x and --y are the same term '{cx[2]}'")
    return cx, cy


def _fmt_r(r: float) -> str:
    return "undefined" if not math.isfinite(r) else f"{r:.3f}"
