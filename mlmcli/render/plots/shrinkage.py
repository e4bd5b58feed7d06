"""shrinkage: each group's own least-squares intercept and slope (lmList) against the model's (coef(fit)),
an arrow from the one to the other, and the population estimate (fixef(fit)) marked.

Drawn as arrows in the (intercept, slope) plane, as Bates' lme4 book draws the comparison of the
within-subject estimates with the conditional modes, rather than as a facet of lines per group: one
panel holds every group at one journal column, where 18 facets (or 419) would be too small to read;
the arrows show at a glance that estimates move towards the population point, that groups far from
it (and small ones) move most, and along which direction the random effects' correlation pulls them.
A facet of lines shows one group at a time and hides all three.

The numbers are stats/shrinkage.py's, computed before drawing (opts.estimates): the renderer only
picks the groups to draw. With more than DEFAULT_GROUPS groups it draws that many (--groups N; 0:
all), evenly spread over the arrows' lengths, the shortest and the longest kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mlmcli.errors import MlmError
from mlmcli.render.plots.groups import factor_codes, shown_levels
from mlmcli.render.plots.options import Drawn, PlotOptions
from mlmcli.render.plots.sample import evenly
from mlmcli.render.plots.style import GROUP_COLOURS, ONE, POP, Theme, fit_text

if TYPE_CHECKING:
    from mlmcli.io.frame import Frame
    from mlmcli.model import FittedModel

DEFAULT_GROUPS = 50  # arrows beyond this many cross one another until none can be followed
_ARROW = "#7a7a7a"
_MODEL = GROUP_COLOURS[1]  # the model's estimates, vermilion beside the blue of the groups' own


def shrinkage(fig: Any, model: FittedModel, frame: Frame, keep: np.ndarray, opts: PlotOptions, theme: Theme) -> Drawn:
    report = opts.estimates
    if report is None:
        raise MlmError("no estimates to draw for the shrinkage plot")
    group, x = report["group"], report["x"]
    codes, levels = factor_codes(model, group)
    shown = set(shown_levels(codes, len(levels), keep).tolist())
    rows = [r for r in report["groups"] if r["index"] in shown]
    if not rows:
        raise MlmError(f"--where keeps no {group} group whose own least-squares fit is identifiable")
    drawn = _thin(rows, DEFAULT_GROUPS if opts.groups is None else opts.groups)

    oi, os_ = np.array([r["own_intercept"] for r in drawn]), np.array([r["own_slope"] for r in drawn])
    mi, ms = np.array([r["model_intercept"] for r in drawn]), np.array([r["model_slope"] for r in drawn])
    pop = report["population"]
    ax = fig.subplots()
    many = len(drawn) > 60
    from matplotlib.patches import FancyArrowPatch

    mark = theme.ms(3.2 if many else 5.0)
    for a, b, c, d in zip(oi, os_, mi, ms, strict=True):
        ax.add_patch(
            FancyArrowPatch(
                (a, b),
                (c, d),
                arrowstyle="-|>",
                mutation_scale=7.0 * theme.scale,
                lw=theme.lw(0.6 if many else 0.8),
                color=_ARROW,
                shrinkA=mark / 2,
                shrinkB=mark / 2,
                zorder=2,
            )
        )
    style = dict(ms=mark, linestyle="none", zorder=3)
    own = ax.plot(oi, os_, "o", mfc="white", mec=ONE, mew=theme.lw(0.9), **style)[0]
    mod = ax.plot(mi, ms, "o", color=_MODEL, markeredgewidth=0, **style)[0]
    popm = ax.plot(
        [pop["intercept"]], [pop["slope"]], "P", ms=theme.ms(9.0), color=POP, mec="white", mew=theme.lw(0.6), zorder=4
    )[0]
    ax.update_datalim(np.column_stack([np.r_[oi, mi, pop["intercept"]], np.r_[os_, ms, pop["slope"]]]))
    ax.autoscale_view()
    room = theme.chars(opts.width * 0.8, 10)
    ax.set_xlabel(fit_text([f"intercept (at {x} = 0)", "intercept"], room))
    ax.set_ylabel(fit_text([f"slope of {x}", x], theme.chars(opts.height * 0.7, 10)))
    narrow = opts.width < 5
    names = (
        ["own fit", "model", "population"]
        if narrow
        else [f"each {group}'s own fit (lmList)", "the model's (coef)", "population (fixef)"]
    )
    fig.legend([own, mod, popm], names, loc="outside lower center", ncols=3, handlelength=1.2, columnspacing=1.2)

    total = len(rows)
    caption = []
    if len(drawn) < total:
        caption.append(
            f"{len(drawn)} of {total} {group} groups shown (--groups 0: all)"
            if narrow
            else f"{len(drawn)} of {total} {group} groups, evenly spread over their arrows' lengths (--groups 0: all)"
        )
    left = report["left_out"]
    if left:
        caption.append(
            f"{len(left)} {group} group{'s' if len(left) > 1 else ''} left out: no own least-squares fit "
            f"(a single row, or {x} constant within it)"
        )
    if report["random_slope"] is None:
        caption.append(
            f"no random slope: one {x} slope for all"
            if narrow
            else f"no random slope of {x}: the model's slopes are all the fixed effect"
        )
    data = {
        "group": group,
        "x": x,
        "random_slope": report["random_slope"],
        "pooled": pop,
        "groups_total": report["groups_total"],
        "groups_drawn": len(drawn),
        "picked": "all" if len(drawn) == total else "spread",
        "left_out": left,
        "fits": [{k: v for k, v in r.items() if k != "index"} for r in drawn],
    }
    title = f"Shrinkage: each {group}'s own fit and the model's"
    return Drawn(data, data["fits"], title, caption=caption, short_title=f"Shrinkage by {group}")


def _thin(rows: list[dict], limit: int) -> list[dict]:
    """At most `limit` groups (0: all), evenly spread over their arrows' lengths, each coordinate in units
    of the groups' own spread; in level order."""
    if limit == 0 or len(rows) <= limit:
        return rows
    spread = []
    for key in ("intercept", "slope"):
        own = np.array([r[f"own_{key}"] for r in rows])
        moved = np.array([r[f"model_{key}"] for r in rows]) - own
        s = float(np.std(own))
        spread.append(moved / s if s > 0 else np.zeros_like(moved))
    length = np.hypot(*spread)
    picked = np.sort(evenly(np.argsort(length, kind="stable"), limit))
    return [rows[i] for i in picked]
