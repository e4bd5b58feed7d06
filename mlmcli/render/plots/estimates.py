"""coef and effects: the fixed effects as a forest plot (sjPlot's plot_model(type = "est")), and
predictions on a grid of one or two predictors with their 95% band (ggeffects' plot(ggpredict())).

Both draw numbers computed before drawing (stats/estimates.py, in opts.estimates): a renderer never
refits or predicts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mlmcli.errors import MlmError
from mlmcli.render.plots.fitted import response_label
from mlmcli.render.plots.options import Drawn, PlotOptions
from mlmcli.render.plots.style import GROUP_COLOURS, POINT, POP, REF, Theme, fit_text

if TYPE_CHECKING:
    from mlmcli.io.frame import Frame
    from mlmcli.model import FittedModel


def _report(opts: PlotOptions) -> dict:
    if opts.estimates is None:
        raise MlmError(f"no estimates to draw for the {opts.kind} plot")
    return opts.estimates


def coef(fig: Any, model: FittedModel, frame: Frame, keep: np.ndarray, opts: PlotOptions, theme: Theme) -> Drawn:
    """One row per fixed effect, top to bottom in the model's order: the estimate and its Wald interval."""
    report = _report(opts)
    rows = report["estimates"]
    ax = fig.subplots()
    y = np.arange(len(rows))[::-1]
    est = np.array([r["estimate"] for r in rows])
    lo, hi = np.array([r["lower"] for r in rows]), np.array([r["upper"] for r in rows])
    ax.axvline(0.0, color=REF, lw=theme.lw(0.9), ls="--", zorder=1)
    ax.hlines(y, lo, hi, color=POINT, lw=theme.lw(1.6), zorder=2)
    ax.plot(est, y, "o", ms=theme.ms(5.0), color=POP, markeredgewidth=0, zorder=3)
    ax.set_yticks(y)
    ax.set_yticklabels([r["term"] for r in rows])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    level = round(100 * report["confidence_level"])
    ax.set_xlabel(fit_text([f"estimate with {level}% Wald interval", "estimate"], theme.chars(opts.width * 0.6, 10)))
    ax.grid(axis="y", visible=False)
    caption = [] if report["intercept"] else ["the intercept is left out (--intercept to show it)"]
    return Drawn(
        data={k: report[k] for k in ("method", "confidence_level", "intercept", "estimates")},
        table=rows,
        title="Fixed effects",
        caption=caption,
    )


def effects(fig: Any, model: FittedModel, frame: Frame, keep: np.ndarray, opts: PlotOptions, theme: Theme) -> Drawn:
    """Predicted response over the first term, one line (and band) per value of the second."""
    report = _report(opts)
    rows, terms = report["predictions"], report["focal"]
    ax = fig.subplots()
    groups = report["line_values"] or [None]
    second = terms[1] if len(terms) == 2 else None
    names = _group_names(second, groups)
    colours = [POINT] if second is None else GROUP_COLOURS
    factor_x = report["x_discrete"]  # a factor's levels or a 0/1 variable's two values: points, not a line
    xlabels = list(dict.fromkeys(r["x"] for r in rows))
    handles = []
    for gi, g in enumerate(groups):
        mine = [r for r in rows if second is None or r["group"] == g]
        colour = colours[gi % len(colours)]
        pred = np.array([r["predicted"] for r in mine])
        lo, hi = np.array([r["lower"] for r in mine]), np.array([r["upper"] for r in mine])
        if factor_x:  # a point and its interval per level, the lines side by side
            shift = (gi - (len(groups) - 1) / 2) * min(0.12, 0.6 / len(groups))
            x = np.arange(len(mine)) + shift
            ax.vlines(x, lo, hi, color=colour, lw=theme.lw(1.6), zorder=2)
            (h,) = ax.plot(x, pred, "o", ms=theme.ms(5.0), color=colour, markeredgewidth=0, zorder=3)
        else:
            x = np.array([r["x"] for r in mine])
            ax.fill_between(x, lo, hi, color=colour, alpha=0.18, linewidth=0, zorder=1)
            (h,) = ax.plot(x, pred, color=colour, lw=theme.lw(1.6), zorder=3)
        handles.append(h)
    if factor_x:
        ax.set_xticks(np.arange(len(xlabels)))
        ax.set_xticklabels([_short(v) if isinstance(v, float) else str(v) for v in xlabels])
        ax.set_xlim(-0.5, len(xlabels) - 0.5)
    ax.set_xlabel(terms[0])
    ax.set_ylabel(f"predicted {response_label(model)}")
    if second is not None:  # the second term names the legend; its entries are its values
        fig.legend(
            handles,
            names,
            loc="outside lower center",
            ncols=len(names),
            title=second,
            handlelength=1.6,
            columnspacing=1.2,
        )
    level = round(100 * report["confidence_level"])
    band = "bars" if factor_x else "bands"
    caption = [f"population level (no random effects); {band}: {level}% confidence from vcov(beta)"]
    if "link" in report:  # a GLMM's: computed on the link scale
        caption = [
            f"population level (no random effects); {band}: {level}% confidence on the {report['link']} "
            "scale, through the inverse link"
        ]
    held = report["held_at"]
    if held:
        parts = [f"{k} = {_short(v)}" for k, v in held.items()]
        caption.append("held at: " + ", ".join(parts))
    title = f"Predicted {report['response']} by {terms[0]}" + (f" and {second}" if second else "")
    return Drawn(
        data={
            **{
                k: report[k]
                for k in ("focal", "x_is_factor", "x_discrete", "line_values", "confidence_level", "held_at")
            },
            "predictions": report["predictions"],
            **({"scale": "response"} if "link" in report else {}),
        },
        table=rows,
        title=title,
        short_title=f"Predicted {report['response']}",
        caption=caption,
    )


def _short(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, list):
        return "(" + ", ".join(f"{x:.3g}" for x in v) + ")"
    return str(v)


def _group_names(second: str | None, groups: list) -> list[str]:
    """The legend's entries: a factor's levels, a binary variable's two values, or mean - sd, mean, mean + sd."""
    if second is None:
        return []
    if len(groups) == 3 and all(isinstance(g, float) for g in groups):
        tags = ("\u22121 sd", "mean", "+1 sd")
        return [f"{g:.3g} ({t})" for g, t in zip(groups, tags, strict=True)]
    return [_short(g) if isinstance(g, float) else str(g) for g in groups]
