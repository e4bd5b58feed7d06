"""`mlm plot`: the pictures a multilevel analyst draws, written as PNG, SVG or PDF.

Each kind returns the numbers it plotted (JSON-ready), so a picture can be checked or redrawn
elsewhere; `--data-out` writes its main table as CSV. matplotlib is imported only here, inside
draw(), with the Agg backend, and figures are built without pyplot's global state.

  ranef        EB estimates of two random effects of one grouping factor (intercepts against slopes)
  caterpillar  each level's conditional mode with a 95% interval, sorted (lme4's dotplot of ranef)
  spaghetti    raw data of the groups, each with its own least-squares line
  fitted       the model-implied line of every group beside the population line (fixed effects)
  residuals    scaled residuals against fitted values and normal Q-Q plots
"""

from __future__ import annotations

import io
import math
import os
import sys
import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mlmcli.errors import DataError, MlmError

if TYPE_CHECKING:
    from mlmcli.frame import Factor, Frame
    from mlmcli.model import FittedModel

FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
KINDS = ("ranef", "caterpillar", "spaghetti", "fitted", "residuals")
MAX_LABELLED = 40   # beyond this many levels, level names would overlap: no labels
MAX_LEGEND = 20     # beyond this many groups, a colour bar replaces the legend
MAX_BY = 8          # panels of a --by split
CURVE_POINTS = 60   # points of a model-implied curve when x enters non-linearly

_STYLE = {
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e3e3e3",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "legend.fontsize": 8.5,
    "legend.frameon": False,
    "svg.hashsalt": "mlm",  # identical SVG ids from run to run
}
_POP = "#111111"
_REF = "#9a9a9a"


@dataclass
class PlotOptions:
    kind: str
    output: str
    x: str | None = None
    y: str | None = None
    group: str | None = None
    where: str | None = None
    by: str | None = None
    dpi: int = 100
    width: float = 8.0
    height: float = 6.0
    title: str | None = None
    data_out: str | None = None


@dataclass
class _Drawn:
    """What a kind hands back: its numbers, the table for --data-out, and the default title."""

    data: dict
    table: list[dict]
    title: str
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ entry point


def image_format(path: str) -> str:
    """png, svg or pdf from the file name's extension."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise MlmError(f"cannot tell the image format of '{path}': name it .png, .svg or .pdf")
    return FORMATS[ext]


def draw(model: FittedModel, frame: Frame, opts: PlotOptions) -> dict:
    """Draw `opts.kind` to `opts.output`; return the plotted numbers (and write them to --data-out)."""
    fmt = image_format(opts.output)
    if opts.kind not in KINDS:
        raise MlmError(f"unknown plot kind '{opts.kind}' (kinds: {', '.join(KINDS)})")
    if opts.data_out is not None and os.path.abspath(opts.data_out) == os.path.abspath(opts.output):
        raise MlmError("--data-out must be a different file from --output")
    _check_options(opts)
    keep = kept_rows(model, frame, opts.where)

    import warnings

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    with warnings.catch_warnings(), matplotlib.rc_context(_STYLE):
        # a tiny --width/--height makes constrained layout give up with a warning: the image is still drawn
        warnings.simplefilter("ignore")
        fig = Figure(figsize=(opts.width, opts.height), dpi=opts.dpi, layout="constrained")
        drawn = _KIND_FUNCS[opts.kind](fig, model, frame, keep, opts)
        title = opts.title if opts.title is not None else drawn.title
        # about ten bold 13-point characters to the inch
        fig.suptitle("\n".join(textwrap.wrap(title, max(20, int(opts.width * 10)))) or title, fontsize=13,
                     fontweight="bold")
        fig.supxlabel(_caption(model, opts, int(keep.sum())), fontsize=8, color="#555555")
        buf = io.BytesIO()
        metadata = {"Software": None} if fmt == "png" else {"Date": None} if fmt == "svg" else {
            "CreationDate": None}
        fig.savefig(buf, format=fmt, dpi=opts.dpi, metadata=metadata)

    for note in drawn.notes:
        sys.stderr.write(note + "\n")
    from mlmcli.outfile import write_atomic

    write_atomic(opts.output, buf.getvalue())
    if opts.data_out is not None:
        write_atomic(opts.data_out, table_csv(drawn.table).encode())
    from mlmcli.report import clean

    head = {"kind": opts.kind, "output": opts.output, "format": fmt,
            "width_px": int(round(opts.width * opts.dpi)), "height_px": int(round(opts.height * opts.dpi)),
            "formula": model.formula.text, "where": opts.where, "n_obs": int(keep.sum())}
    if drawn.notes:
        head["notes"] = drawn.notes
    return clean({**head, **drawn.data})


def _check_options(opts: PlotOptions) -> None:
    """Options a kind does not use are mistakes worth one clear line, not silence."""
    uses = {"ranef": {"x", "y", "group"}, "caterpillar": {"group"}, "spaghetti": {"x", "group", "by"},
            "fitted": {"x", "group", "by"}, "residuals": set()}[opts.kind]
    for name in ("x", "y", "group", "by"):
        if getattr(opts, name) is not None and name not in uses:
            hint = " (the y axis is the response)" if name == "y" else ""
            raise MlmError(f"--{name} is not used by the {opts.kind} plot{hint}")


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


def _caption(model: FittedModel, opts: PlotOptions, n_kept: int) -> str:
    parts = [model.formula.text, model.method,
             f"{n_kept} of {model.n} observations" if n_kept < model.n else f"{model.n} observations"]
    if opts.where:
        parts.append(f"where {opts.where}")
    width = max(40, int(opts.width * 14))
    return "\n".join(textwrap.wrap("   ·   ".join(parts), width))


def table_csv(rows: list[dict]) -> str:
    """The plotted numbers as CSV: every key of the rows, in order of first appearance; NA for missing."""
    import csv

    header: list[str] = []
    for r in rows:
        for k in r:
            if k not in header:
                header.append(k)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([_cell(r.get(k)) for k in header])
    return buf.getvalue()


def _cell(v: Any) -> str:
    if v is None:
        return "NA"
    if isinstance(v, (bool, np.bool_)):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (float, np.floating)):
        return repr(float(v)) if math.isfinite(v) else "NA"
    return str(v)


# ------------------------------------------------------------------ model pieces


def _factors(model: FittedModel) -> list[str]:
    return list(model.groups())


def _pick_group(model: FittedModel, group: str | None) -> str:
    factors = _factors(model)
    if group is None:
        return factors[0]
    if group not in factors:
        raise MlmError(f"--group '{group}' is not a grouping factor of the model "
                       f"(grouping factors: {', '.join(factors)})")
    return group


def _factor_columns(model: FittedModel, group: str) -> list[tuple[int, int, str]]:
    """(term index, column, name) of every random effect of one grouping factor, in lme4's order."""
    return [(i, j, name) for i, t in enumerate(model.design.terms) if t.group == group
            for j, name in enumerate(t.cnames)]


def _factor_codes(model: FittedModel, group: str) -> tuple[np.ndarray, list[str]]:
    term = next(t for t in model.design.terms if t.group == group)
    return term.codes, [str(v) for v in term.levels]


def _shown_levels(codes: np.ndarray, n_levels: int, keep: np.ndarray) -> np.ndarray:
    """Levels with at least one kept observation."""
    return np.bincount(codes[keep], minlength=n_levels) > 0


def _numeric_column(frame: Frame, name: str, flag: str) -> np.ndarray:
    from mlmcli.frame import Factor

    col = frame.columns.get(name)
    if col is None:
        raise DataError(f"{flag} '{name}' is not a column of the data (columns: {', '.join(frame.columns)})")
    if isinstance(col, Factor):
        if col.logical:
            return np.where(col.codes < 0, np.nan, col.codes.astype(float))
        raise DataError(f"{flag} '{name}' holds text; the x axis needs a numeric column")
    return np.asarray(col, dtype=float)


def _predictor_columns(model: FittedModel) -> list[str]:
    """Data columns read by the fixed part or by the random terms' model matrices."""
    out: list[str] = []
    specs = [model.formula.fixed] + [rt.lhs for rt in model.formula.random]
    for spec in specs:
        for term in spec.terms:
            for var in term.vars:
                for c in var.columns():
                    if c not in out:
                        out.append(c)
    return out


def _default_x(model: FittedModel, frame: Frame, kind: str) -> str:
    """The first numeric predictor of the fixed part: a plain column first, else one inside a function."""
    from mlmcli.formula import Sym
    from mlmcli.frame import Factor

    def numeric(c: str) -> bool:
        col = frame.columns.get(c)
        return col is not None and not isinstance(col, Factor)

    for term in model.formula.fixed.terms:
        if len(term.vars) == 1 and isinstance(term.vars[0].expr, Sym) and numeric(term.vars[0].label):
            return term.vars[0].label
    for c in _predictor_columns(model):
        if numeric(c):
            return c
    raise MlmError(f"the {kind} plot needs a numeric x, and the model has no numeric predictor: "
                   "give one with --x COLUMN")


def _format_value(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


@dataclass
class _BySplit:
    panel: np.ndarray          # each observation's panel, -1 when its group has no --by value
    labels: list[str]          # "public = 0", ...
    mixed: list[str]           # groups whose --by value is not constant (drawn by their most common value)
    own: np.ndarray            # each observation's own --by value (index into labels), -1 when missing


def _by_split(model: FittedModel, frame: Frame, by: str, group: str, keep: np.ndarray) -> _BySplit:
    """Panels of a level-2 variable: each group goes, whole, to the panel of its value.

    A few groups with more than one value (data-entry slips happen) go to their most common
    value, with a note; a variable that varies within many groups is not level-2: an error.
    """
    from mlmcli.frame import Factor

    codes, levels = _factor_codes(model, group)
    col = frame.columns.get(by)
    if col is None:
        raise DataError(f"--by '{by}' is not a column of the data (columns: {', '.join(frame.columns)})")
    rows = model.design.rows
    if isinstance(col, Factor):
        raw = col.codes[rows].astype(float)
        raw[raw < 0] = np.nan
        label_of = {float(i): lev for i, lev in enumerate(col.levels)}
    else:
        raw = np.asarray(col, dtype=float)[rows]
        label_of = {}
    ok = keep & ~np.isnan(raw)
    values = np.unique(raw[ok])
    if len(values) > MAX_BY:
        raise MlmError(f"--by '{by}' has {len(values)} distinct values; use a variable with at most {MAX_BY} "
                       "(a level-2 indicator such as public)")
    value_of = np.searchsorted(values, raw[ok])
    counts = np.zeros((len(levels), len(values)), dtype=np.int64)
    np.add.at(counts, (codes[ok], value_of), 1)
    present = counts.sum(axis=1) > 0
    mixed = np.flatnonzero((counts > 0).sum(axis=1) > 1)
    if len(mixed) > max(2, 0.05 * present.sum()):
        raise MlmError(f"--by '{by}' is not constant within {group} ({len(mixed)} of {present.sum()} groups "
                       f"have more than one value, e.g. {levels[mixed[0]]}): --by needs a variable of the "
                       "groups, such as public")
    group_panel = np.where(present, counts.argmax(axis=1), -1)  # the most common value; ties: the first
    panel = np.where(keep, group_panel[codes], -1)
    own = np.full(len(raw), -1, dtype=np.int64)
    own[ok] = value_of
    labels = [f"{by} = {label_of.get(v, _format_value(v))}" for v in values]
    return _BySplit(panel, labels, [levels[i] for i in mixed], own)


def _mixed_note(by: str, group: str, split: _BySplit) -> str:
    return (f"note: --by '{by}' varies within {group} {', '.join(split.mixed)}; each is drawn with its most "
            "common value")


# ------------------------------------------------------------------ kind: ranef


def _ranef(fig: Any, model: FittedModel, frame: Frame, keep: np.ndarray, opts: PlotOptions) -> _Drawn:
    group = _pick_group(model, opts.group)
    cols = _factor_columns(model, group)
    names = [c[2] for c in cols]
    if len(cols) < 2:
        raise MlmError(f"a ranef plot needs two random-effect terms of {group}, and it has only "
                       f"{', '.join(names)}: try --kind caterpillar")

    def find(name: str, flag: str) -> tuple[int, int, str]:
        for c in cols:
            if c[2] == name:
                return c
        raise MlmError(f"{flag} '{name}' is not a random-effect term of {group} (terms: {', '.join(names)})")

    # intercepts (the first term) against slopes (the second) unless told otherwise
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
    modes = model.conditional_modes()
    xv, yv = modes[cx[0]][:, cx[1]], modes[cy[0]][:, cy[1]]
    # terms in separate bars (||) are independent by construction
    rho = float(model.varcomps()[cx[0]].correlation[cx[1], cy[1]]) if cx[0] == cy[0] else 0.0
    codes, levels = _factor_codes(model, group)
    shown = np.flatnonzero(_shown_levels(codes, len(levels), keep))
    x, y = xv[shown], yv[shown]

    ax = fig.subplots()
    ax.axhline(0.0, color=_REF, lw=0.9, ls="--", zorder=1)
    ax.axvline(0.0, color=_REF, lw=0.9, ls="--", zorder=1)
    many = len(shown) > 150
    ax.scatter(x, y, s=12 if many else 28, alpha=0.55 if many else 0.85, color="#1f77b4",
               edgecolors="white" if not many else "none", linewidths=0.5, zorder=2)
    if len(shown) <= MAX_LABELLED:
        for xi, yi, i in zip(x, y, shown, strict=True):
            ax.annotate(levels[i], (xi, yi), xytext=(3, 3), textcoords="offset points", fontsize=7.5,
                        color="#333333")
    empirical = float(np.corrcoef(x, y)[0, 1]) if len(shown) > 2 and np.std(x) > 0 and np.std(y) > 0 \
        else float("nan")
    sub = f"estimated correlation (Tau): {_fmt_r(rho)}"
    if model.singular:
        sub += " (singular fit)"
    if math.isfinite(empirical):
        sub += f"   ·   correlation of the {len(shown)} plotted estimates: {_fmt_r(empirical)}"
    ax.set_title(sub, fontsize=9.5, color="#333333")
    ax.set_xlabel(f"{cx[2]} random effect of {group} (conditional mode)")
    ax.set_ylabel(f"{cy[2]} random effect of {group} (conditional mode)")
    points = [{"level": levels[i], "x": float(xv[i]), "y": float(yv[i])} for i in shown]
    data = {"group": group, "x_term": cx[2], "y_term": cy[2], "correlation": rho,
            "correlation_of_estimates": empirical, "points": points}
    pair = "intercepts against slopes" if cy[2] == "(Intercept)" else f"{cy[2]} against {cx[2]}"
    return _Drawn(data, points, f"Empirical Bayes estimates for {group}: {pair}")


def _fmt_r(r: float) -> str:
    return "undefined" if not math.isfinite(r) else f"{r:.3f}"


# ------------------------------------------------------------------ kind: caterpillar


def _caterpillar(fig: Any, model: FittedModel, frame: Frame, keep: np.ndarray, opts: PlotOptions) -> _Drawn:
    groups = [_pick_group(model, opts.group)] if opts.group else _factors(model)
    modes, sds = model.conditional_modes(), model.conditional_sd()
    panels = []  # (group, term name, order, levels, value, sd)
    for g in groups:
        cols = _factor_columns(model, g)
        codes, levels = _factor_codes(model, g)
        shown = np.flatnonzero(_shown_levels(codes, len(levels), keep))
        # lme4's dotplot orders the levels of a factor by its first term, the same order in every panel
        first = modes[cols[0][0]][shown, cols[0][1]]
        order = shown[np.argsort(first, kind="stable")]
        for ti, j, name in cols:
            panels.append((g, name, order, levels, modes[ti][:, j], sds[ti][:, j]))

    n = len(panels)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    rows: list[dict] = []
    first_of: dict[str, Any] = {}
    for ax, (g, name, order, levels, value, sd) in zip(axes, panels, strict=False):
        v, s = value[order], sd[order]
        lo, hi = v - 1.96 * s, v + 1.96 * s
        pos = np.arange(len(order))
        k = len(order)
        labelled = k <= MAX_LABELLED
        lw = 1.3 if k <= 60 else 0.8 if k <= 200 else 0.5
        ax.hlines(pos, lo, hi, color="#7a9cc6", lw=lw, zorder=2)
        ax.plot(v, pos, "o", ms=4.5 if k <= 60 else 2.2 if k <= 200 else 1.4, color="#1f3f77", zorder=3)
        ax.axvline(0.0, color="#c0392b", lw=0.9, ls="--", zorder=1)
        ax.set_ylim(-0.8, k - 0.2)
        ax.grid(False, axis="y")
        if g in first_of:
            ax.sharey(first_of[g])
            ax.tick_params(labelleft=False)
        else:
            first_of[g] = ax
            if labelled:
                ax.set_yticks(pos, [levels[i] for i in order], fontsize=max(6.0, min(9.0, 300.0 / max(k, 1))))
                ax.set_ylabel(g)
            else:
                ax.set_yticks([])
                ax.set_ylabel(f"{k} levels of {g}, sorted")
        ax.set_title(f"{g}: {name}")
        ax.set_xlabel("conditional mode ± 1.96 cond. SD")
        for i, vi, si, a, b in zip(order, v, s, lo, hi, strict=True):
            rows.append({"group": g, "term": name, "level": levels[i], "value": float(vi),
                         "cond_sd": float(si), "lower": float(a), "upper": float(b)})
    for ax in axes[n:]:
        ax.set_visible(False)
    return _Drawn({"groups": groups, "rows": rows}, rows,
                  "Random effects: conditional modes with 95% intervals")


# ------------------------------------------------------------------ kind: spaghetti


def _group_colours(k: int) -> Any:
    """Distinct colours for a legend of up to MAX_LEGEND groups, a colour map beyond."""
    from matplotlib import colormaps

    if k <= 10:
        return [colormaps["tab10"](i) for i in range(k)]
    if k <= MAX_LEGEND:
        return [colormaps["tab20"](i) for i in range(k)]
    cmap = colormaps["viridis"]
    return [cmap(i / max(k - 1, 1)) for i in range(k)]


def _panels(fig: Any, count: int) -> list[Any]:
    axes = fig.subplots(1, count, squeeze=False, sharex=True, sharey=True).ravel()
    return list(axes)


def _group_legend(fig: Any, axes: list[Any], group: str, shown_levels: list[str], colours: list,
                  handles: list | None = None) -> None:
    """A legend of group colours, or a colour bar for many groups."""
    if len(shown_levels) <= MAX_LEGEND:
        from matplotlib.lines import Line2D

        entries = [Line2D([], [], color=c, marker="o", ms=4, lw=1.2) for c in colours]
        labels = list(shown_levels)
        if handles:
            entries += [h for h, _ in handles]
            labels += [lab for _, lab in handles]
        axes[-1].legend(entries, labels, title=group, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                        ncols=1 if len(labels) <= 12 else 2, fontsize=7.5, title_fontsize=8.5)
        return
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    k = len(shown_levels)
    sm = ScalarMappable(norm=Normalize(0, k - 1), cmap=colormaps["viridis"])
    bar = fig.colorbar(sm, ax=axes, shrink=0.85, pad=0.02)
    # ticks name actual levels: level order need not match the level labels
    ticks = np.unique(np.linspace(0, k - 1, 6).round().astype(int))
    bar.set_ticks(ticks, labels=[shown_levels[i] for i in ticks])
    bar.set_label(f"{group}: {k} groups, in level order")
    if handles:
        axes[0].legend([h for h, _ in handles], [lab for _, lab in handles], loc="best")


def _spaghetti(fig: Any, model: FittedModel, frame: Frame, keep: np.ndarray, opts: PlotOptions) -> _Drawn:
    group = _pick_group(model, opts.group)
    xname = opts.x if opts.x is not None else _default_x(model, frame, "spaghetti")
    xall = _numeric_column(frame, xname, "--x")[model.design.rows]
    y = model.design.y
    codes, levels = _factor_codes(model, group)
    ok = keep & ~np.isnan(xall)
    split = _by_split(model, frame, opts.by, group, ok) if opts.by is not None else None
    if split is not None:
        panel, panel_labels = split.panel, split.labels
        ok &= panel >= 0
    else:
        panel, panel_labels = np.zeros(len(y), dtype=np.int64), [""]
    shown = np.flatnonzero(_shown_levels(codes, len(levels), ok))
    colour_index = {g: i for i, g in enumerate(shown)}
    colours = _group_colours(len(shown))
    axes = _panels(fig, len(panel_labels))
    from matplotlib.collections import LineCollection

    crowd = 0 if len(shown) <= MAX_LEGEND else 1 if len(shown) <= 80 else 2
    size, point_alpha = (14, 0.75) if crowd == 0 else (8, 0.5) if crowd == 1 else (5, 0.35)
    lw, line_alpha = (1.4, 0.9) if crowd == 0 else (1.0, 0.75) if crowd == 1 else (0.6, 0.45)
    lines, points = [], []
    for p, ax in enumerate(axes):
        in_panel = ok & (panel == p)
        if not in_panel.any():
            continue
        x0, x1 = float(xall[in_panel].min()), float(xall[in_panel].max())
        idx = np.flatnonzero(in_panel)
        col = [colours[colour_index[c]] for c in codes[idx]]
        ax.scatter(xall[idx], y[idx], s=size, c=col, alpha=point_alpha,
                   linewidths=0, zorder=2)
        segments, seg_colours = [], []
        for g in np.unique(codes[idx]):
            rows_g = idx[codes[idx] == g]
            intercept, slope = _least_squares(xall[rows_g], y[rows_g])
            line = {"level": levels[g], "n": len(rows_g), "intercept": intercept, "slope": slope,
                    "x0": x0, "x1": x1, "y0": intercept + slope * x0, "y1": intercept + slope * x1}
            if opts.by is not None:
                line["by"] = panel_labels[p]
            lines.append(line)
            if math.isfinite(slope):
                segments.append([(x0, line["y0"]), (x1, line["y1"])])
                seg_colours.append(colours[colour_index[g]])
        # one collection draws hundreds of lines far faster than one plot() call each
        ax.add_collection(LineCollection(segments, colors=seg_colours, linewidths=lw, alpha=line_alpha,
                                         zorder=3))
        for i in idx:
            points.append({"level": levels[codes[i]], "x": float(xall[i]), "y": float(y[i])})
        if opts.by is not None:
            ax.set_title(panel_labels[p])
        ax.set_xlabel(xname)
    axes[0].set_ylabel(model.design.response)
    _group_legend(fig, axes, group, [levels[g] for g in shown], colours)
    title = f"{model.design.response} against {xname}: raw data and each {group}'s least-squares line"
    data = {"group": group, "x": xname, "y": model.design.response, "by": opts.by, "lines": lines,
            "points": points}
    notes = [_mixed_note(opts.by, group, split)] if split is not None and split.mixed else []
    return _Drawn(data, lines, title, notes)


def _least_squares(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Intercept and slope of y on x; the slope is NaN when x does not vary (a mean only)."""
    xm, ym = x.mean(), y.mean()
    sxx = float(np.sum((x - xm) ** 2))
    if len(x) < 2 or sxx <= 1e-12 * max(1.0, float(np.sum(x * x))):
        return float(ym), float("nan")
    slope = float(np.sum((x - xm) * (y - ym)) / sxx)
    return float(ym - slope * xm), slope


# ------------------------------------------------------------------ kind: fitted


def _drop_unused(f: Factor) -> Factor:
    """Levels no observation uses are dropped, as lme4's model frame does."""
    from mlmcli.frame import Factor

    if f.logical:
        return f
    used = np.zeros(len(f.levels), dtype=bool)
    used[f.codes[f.codes >= 0]] = True
    new_index = np.cumsum(used) - 1
    codes = np.where(f.codes >= 0, new_index[np.maximum(f.codes, 0)], -1)
    return Factor(codes, [lev for lev, u in zip(f.levels, used, strict=True) if u], f.logical)


def _has_call(node: Any, fn: str) -> bool:
    from mlmcli.formula import Binary, Call, Paren, Unary

    if isinstance(node, Call):
        return node.fn == fn or any(_has_call(a, fn) for a in node.args)
    if isinstance(node, Paren):
        return _has_call(node.inner, fn)
    if isinstance(node, Unary):
        return _has_call(node.arg, fn)
    if isinstance(node, Binary):
        return _has_call(node.left, fn) or _has_call(node.right, fn)
    return False


class _Implied:
    """Model-implied means as x moves, with every other predictor at its observed values.

    An observation's row of X (and of each Z) is rebuilt with x replaced; averaging these rows
    over a set of observations puts a predictor that is constant within the set at its value and
    one that varies at its mean (exactly so whenever it enters linearly).
    """

    def __init__(self, model: FittedModel, frame: Frame, x: str) -> None:
        from mlmcli.design import evaluate
        from mlmcli.formula import Sym
        from mlmcli.frame import Factor

        self.model, self.frame, self.x = model, frame, x
        rows = model.design.rows
        self.ref: dict[str, Any] = {}
        self.moving: list[Any] = []
        response = model.formula.response.label
        linear = True
        for var in model.formula.variables:
            if var.label == response:
                continue
            col = evaluate(var, frame)
            if isinstance(col, Factor):
                col = _drop_unused(Factor(col.codes[rows], col.levels, col.logical))
            else:
                col = np.asarray(col, dtype=float)[rows]
            self.ref[var.label] = col
            if x in var.columns():
                if isinstance(col, Factor):
                    raise MlmError(f"--x '{x}' enters the model as a factor ({var.label}); "
                                   "the fitted plot needs a numeric predictor")
                if _has_call(var.expr, "scale"):
                    raise MlmError(f"the fitted plot cannot move '{x}' inside scale() ({var.label}): "
                                   "scale the column in the data instead")
                self.moving.append(var)
                linear &= isinstance(var.expr, Sym)
        # X is multilinear in the variables, so a straight line needs two points
        self.points = 2 if linear else CURVE_POINTS

    def _values(self, sel: np.ndarray, xnew: np.ndarray) -> dict[str, Any]:
        """Variables of the observations `sel`, repeated once per grid point, x replaced by xnew."""
        from mlmcli.design import evaluate
        from mlmcli.frame import Factor, Frame

        reps = len(xnew) // len(sel)
        tiled = np.tile(sel, reps)
        values: dict[str, Any] = {}
        for label, col in self.ref.items():
            if isinstance(col, Factor):
                values[label] = Factor(col.codes[tiled], col.levels, col.logical)
            else:
                values[label] = col[tiled]
        rows = self.model.design.rows[tiled]
        for var in self.moving:
            cols = {}
            for c in var.columns():
                src = self.frame.columns[c]
                if c == self.x:
                    cols[c] = xnew
                elif isinstance(src, Factor):
                    cols[c] = Factor(src.codes[rows], src.levels, src.logical)
                else:
                    cols[c] = src[rows]
            values[var.label] = evaluate(var, Frame(self.frame.name, cols, len(xnew), self.frame.int_columns))
        return values

    def curves(self, sets: np.ndarray, n_sets: int, lo: np.ndarray, hi: np.ndarray,
               random_group: str | None) -> tuple[np.ndarray, np.ndarray]:
        """(grid, means), each (n_sets, points): the mean implied by the model for every set of observations.

        `sets` gives each observation's set (-1 = none); x runs from lo to hi of its set. With
        `random_group`, the set's own random effects of that grouping factor are added (coef()'s line).
        """
        from mlmcli.design import model_matrix

        m = self.points
        t = np.linspace(0.0, 1.0, m)
        sel = np.flatnonzero(sets >= 0)
        s = sets[sel]
        # (1 - t) lo + t hi hits both ends exactly; rows: grid point k, then observation i
        xnew = ((1.0 - t)[:, None] * lo[s][None, :] + t[:, None] * hi[s][None, :]).ravel()
        values = self._values(sel, xnew)
        N = len(xnew)
        design = self.model.design
        X, names = model_matrix(self.model.formula.fixed, values, N)
        X = X[:, [names.index(nm) for nm in design.xnames]]
        eta = X @ self.model.beta
        if random_group is not None:
            modes = self.model.conditional_modes()
            used: set[int] = set()
            for ti, term in enumerate(design.terms):
                if term.group != random_group:
                    continue
                ri = next(i for i, rt in enumerate(self.model.formula.random)
                          if i not in used and rt.label == term.label and rt.group == term.group)
                used.add(ri)
                Z, znames = model_matrix(self.model.formula.random[ri].lhs, values, N)
                Z = Z[:, [znames.index(nm) for nm in term.cnames]]
                b = modes[ti][np.tile(term.codes[sel], m)]
                eta = eta + np.sum(Z * b, axis=1)
        eta = eta.reshape(m, len(sel))
        counts = np.bincount(s, minlength=n_sets).astype(float)
        means = np.vstack([np.bincount(s, weights=eta[k], minlength=n_sets) for k in range(m)]).T
        with np.errstate(invalid="ignore", divide="ignore"):
            means = means / counts[:, None]
        grid = (1.0 - t)[None, :] * lo[:, None] + t[None, :] * hi[:, None]
        return grid, means


def _set_ranges(x: np.ndarray, sets: np.ndarray, n_sets: int) -> tuple[np.ndarray, np.ndarray]:
    lo = np.full(n_sets, np.inf)
    hi = np.full(n_sets, -np.inf)
    ok = sets >= 0
    np.minimum.at(lo, sets[ok], x[ok])
    np.maximum.at(hi, sets[ok], x[ok])
    return lo, hi


def _fitted(fig: Any, model: FittedModel, frame: Frame, keep: np.ndarray, opts: PlotOptions) -> _Drawn:
    group = _pick_group(model, opts.group)
    xname = opts.x if opts.x is not None else _default_x(model, frame, "fitted")
    predictors = _predictor_columns(model)
    if xname not in predictors:
        _numeric_column(frame, xname, "--x")  # unknown column: that error first
        raise MlmError(f"--x '{xname}' is not a predictor of the model (predictors: {', '.join(predictors)})")
    xall = _numeric_column(frame, xname, "--x")[model.design.rows]
    codes, levels = _factor_codes(model, group)
    ok = keep.copy()
    by_split = _by_split(model, frame, opts.by, group, ok) if opts.by is not None else None
    if by_split is not None:
        panel, panel_labels = by_split.panel, by_split.labels
        ok &= panel >= 0
    else:
        panel, panel_labels = np.zeros(len(xall), dtype=np.int64), [""]
    implied = _Implied(model, frame, xname)

    # one line per group: x over the group's observed range
    sets = np.where(ok, codes, -1)
    lo, hi = _set_ranges(xall, sets, len(levels))
    shown = np.flatnonzero(np.isfinite(lo))
    grid, means = implied.curves(sets, len(levels), np.where(np.isfinite(lo), lo, 0.0),
                                 np.where(np.isfinite(hi), hi, 0.0), group)
    group_panel = np.full(len(levels), -1, dtype=np.int64)
    group_panel[codes[ok]] = panel[ok]
    # the population line of each panel: fixed effects only, over the panel's range
    psets = np.where(ok, panel if by_split is None else by_split.own, -1)
    plo, phi = _set_ranges(xall, psets, len(panel_labels))
    pgrid, pmeans = implied.curves(psets, len(panel_labels), np.where(np.isfinite(plo), plo, 0.0),
                                   np.where(np.isfinite(phi), phi, 0.0), None)

    from matplotlib import colormaps
    from matplotlib.collections import LineCollection

    split = opts.by is not None
    palette = [colormaps["tab10"](i) for i in range(10)]
    axes = _panels(fig, len(panel_labels))
    lines, population = [], []
    for p, ax in enumerate(axes):
        colour = palette[p % 10] if split else "#4a7fb5"
        mine = shown[group_panel[shown] == p]
        alpha, lw = (0.55, 0.9) if len(mine) <= 50 else (0.3, 0.6)
        ax.add_collection(LineCollection([np.column_stack([grid[g], means[g]]) for g in mine], colors=colour,
                                         linewidths=lw, alpha=alpha, zorder=2))
        for g in mine:
            line = {"level": levels[g], "x0": grid[g, 0], "x1": grid[g, -1], "y0": means[g, 0],
                    "y1": means[g, -1], "by": panel_labels[p] if split else None}
            if implied.points > 2:
                line["curve_x"], line["curve_y"] = grid[g], means[g]
            lines.append(line)
        # every panel's population line in each panel, so differences between the panels show
        for q in range(len(panel_labels)):
            if not np.isfinite(plo[q]):
                continue
            own = q == p
            qcolour = _POP if not split else _darker(palette[q % 10])
            ax.plot(pgrid[q], pmeans[q], color=qcolour, lw=3.0 if own else 1.6, ls="-" if own else "--",
                    alpha=1.0 if own else 0.8, zorder=4 if own else 3,
                    label=("population (fixed effects)" if not split else f"population, {panel_labels[q]}"))
        if split:
            ax.set_title(f"{panel_labels[p]}: {len(mine)} groups")
        ax.set_xlabel(xname)
        if p == 0:
            from matplotlib.lines import Line2D

            handles, labels = ax.get_legend_handles_labels()
            handles.insert(0, Line2D([], [], color=colour if not split else "#777777", lw=1.0))
            labels.insert(0, f"{group}: fixed + random ({len(shown)} groups)")
            ax.legend(handles, labels, loc="best")
    for q in range(len(panel_labels)):
        if np.isfinite(plo[q]):
            row = {"by": panel_labels[q] if split else None, "x0": pgrid[q, 0], "x1": pgrid[q, -1],
                   "y0": pmeans[q, 0], "y1": pmeans[q, -1]}
            if implied.points > 2:
                row["curve_x"], row["curve_y"] = pgrid[q], pmeans[q]
            population.append(row)
    axes[0].set_ylabel(f"{model.design.response} (model-implied)")
    title = f"Model-implied lines of {model.design.response} on {xname}, one per {group}"
    if split:
        title += f", by {opts.by}"
    data = {"group": group, "x": xname, "y": model.design.response, "by": opts.by, "lines": lines,
            "population": population}
    table = [{k: v for k, v in r.items() if not k.startswith("curve_")} for r in lines]
    table += [{"level": "(population)", **{k: v for k, v in r.items() if not k.startswith("curve_")}}
              for r in population]
    notes = [_mixed_note(opts.by, group, by_split)] if by_split is not None and by_split.mixed else []
    return _Drawn(data, table, title, notes)


def _darker(rgba: tuple) -> tuple:
    return tuple(0.6 * c for c in rgba[:3]) + (1.0,)


# ------------------------------------------------------------------ kind: residuals


def normal_quantiles(n: int) -> np.ndarray:
    """qnorm(ppoints(n)): the theoretical quantiles R's qqnorm uses."""
    from statistics import NormalDist

    a = 3.0 / 8.0 if n <= 10 else 0.5
    nd = NormalDist()
    return np.array([nd.inv_cdf((i - a) / (n + 1 - 2 * a)) for i in range(1, n + 1)])


def qq_line(sample: np.ndarray) -> tuple[float, float]:
    """R's qqline: intercept and slope of the line through the first and third quartiles."""
    from statistics import NormalDist

    q1, q3 = np.quantile(sample, [0.25, 0.75])
    z1, z3 = NormalDist().inv_cdf(0.25), NormalDist().inv_cdf(0.75)
    slope = (q3 - q1) / (z3 - z1)
    return float(q1 - slope * z1), float(slope)


def _qq_panel(ax: Any, values: np.ndarray, labels: list[str], panel: str, title: str,
              ylabel: str, out: list[dict], key: str) -> None:
    order = np.argsort(values, kind="stable")
    sample = values[order]
    theo = normal_quantiles(len(sample))
    many = len(sample) > 500
    ax.plot(theo, sample, "o", ms=2.0 if many else 3.5, alpha=0.45 if many else 0.8, color="#1f77b4",
            markeredgewidth=0, zorder=2)
    if len(sample) >= 2:
        a, b = qq_line(sample)
        ends = np.array([theo[0], theo[-1]])
        ax.plot(ends, a + b * ends, color="#c0392b", lw=1.1, zorder=3)
    ax.set_title(title)
    ax.set_xlabel("theoretical normal quantile")
    ax.set_ylabel(ylabel)
    for i, t, v in zip(order, theo, sample, strict=True):
        out.append({"panel": panel, key: labels[i], "x": float(t), "y": float(v)})


def _residuals(fig: Any, model: FittedModel, frame: Frame, keep: np.ndarray, opts: PlotOptions) -> _Drawn:
    idx = np.flatnonzero(keep)
    scaled = model.residuals[idx] / model.sigma
    fitted = model.fitted[idx]
    row_labels = [str(r + 1) for r in model.design.rows[idx]]  # data row of the CSV file, from 1
    re_panels = []
    modes = model.conditional_modes()
    for g in _factors(model):
        codes, levels = _factor_codes(model, g)
        shown = np.flatnonzero(_shown_levels(codes, len(levels), keep))
        for ti, j, name in _factor_columns(model, g):
            re_panels.append((g, name, modes[ti][shown, j], [levels[i] for i in shown]))
    n = 2 + len(re_panels)
    nrows, ncols = (2, 2) if n == 4 else (1, n) if n <= 3 else (math.ceil(n / 3), 3)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    points: list[dict] = []

    ax = axes[0]
    many = len(idx) > 500
    ax.axhline(0.0, color=_REF, lw=0.9, ls="--", zorder=1)
    ax.plot(fitted, scaled, "o", ms=2.0 if many else 3.5, alpha=0.35 if many else 0.8, color="#1f77b4",
            markeredgewidth=0, zorder=2)
    ax.set_title("Scaled residuals against fitted values")
    ax.set_xlabel(f"fitted {model.design.response}")
    ax.set_ylabel("scaled residual (residual / sigma)")
    for lab, f, r in zip(row_labels, fitted, scaled, strict=True):
        points.append({"panel": "residuals_vs_fitted", "row": lab, "x": float(f), "y": float(r)})

    _qq_panel(axes[1], scaled, row_labels, "qq_residuals", "Normal Q-Q: scaled residuals",
              "scaled residual", points, "row")
    for ax, (g, name, values, labels) in zip(axes[2:], re_panels, strict=False):
        _qq_panel(ax, values, labels, f"qq_ranef:{g}:{name}", f"Normal Q-Q: {g} {name}",
                  f"{name} (conditional mode)", points, "level")
    for ax in axes[n:]:
        ax.set_visible(False)
    data = {"sigma": model.sigma, "panels": ["residuals_vs_fitted", "qq_residuals"]
            + [f"qq_ranef:{g}:{name}" for g, name, _, _ in re_panels], "points": points}
    return _Drawn(data, points, "Residual diagnostics")


_KIND_FUNCS = {"ranef": _ranef, "caterpillar": _caterpillar, "spaghetti": _spaghetti, "fitted": _fitted,
               "residuals": _residuals}
