"""Every text inside the canvas: measure after layout, shrink the type, and as a last resort leave text out.

Labels are wrapped to their room when they are made; this is the check that catches what an
estimate of character widths misses, at any allowed --width/--height.
"""

from __future__ import annotations

from typing import Any

_SHRINK = 0.88  # each round scales all type by this
_ROUNDS = 5  # rounds of shrinking before text is left out
_MIN_PT = 4.0  # type is not shrunk below this
_SLACK = 0.5  # pixels of antialiasing allowed past the edge


def keep_inside(fig: Any) -> list[str]:
    """Lay `fig` out until all its text is inside it; return what had to be left out (names)."""
    for _ in range(_ROUNDS):
        if _settled(fig):
            return []
        if not _shrink(fig):
            break
    dropped: list[str] = []
    for _ in range(8):
        bad = outside(fig) or outside(fig)
        if not bad:
            break
        for name, artist in bad:
            artist.set_visible(False)
            if name not in dropped:
                dropped.append(name)
    return dropped


def _settled(fig: Any) -> bool:
    """Nothing outside after two layouts: one layout changes the tick labels the next one makes room for."""
    return not outside(fig) and not outside(fig)


def outside(fig: Any) -> list[tuple[str, Any]]:
    """(name, artist) of each visible text whose drawn extent leaves the figure, after a fresh layout."""
    fig.draw_without_rendering()  # layout and text positions, no pixels
    renderer = fig.canvas.get_renderer()
    w, h = fig.bbox.width, fig.bbox.height
    bad = []
    for name, artist in _texts(fig):
        if not artist.get_visible():
            continue
        box = artist.get_window_extent(renderer)
        if box.width == 0 and box.height == 0:
            continue
        if box.x0 < -_SLACK or box.y0 < -_SLACK or box.x1 > w + _SLACK or box.y1 > h + _SLACK:
            bad.append((name, artist))
    return bad


def overlapping(fig: Any) -> list[tuple[str, str]]:
    """Pairs of texts (titles, labels, tick labels, legends) drawn over each other; point labels may crowd."""
    fig.draw_without_rendering()  # layout and text positions, no pixels
    renderer = fig.canvas.get_renderer()
    boxes = [
        (name, _label(a), a.get_window_extent(renderer))
        for name, a in _texts(fig)
        if a.get_visible() and name != "point labels"
    ]
    out = []
    for i, (_, la, a) in enumerate(boxes):
        for _, lb, b in boxes[i + 1 :]:
            if min(a.x1, b.x1) - max(a.x0, b.x0) > 1.0 and min(a.y1, b.y1) - max(a.y0, b.y0) > 1.0:
                out.append((la, lb))
    return out


def _label(artist: Any) -> str:
    return artist.get_text() if hasattr(artist, "get_text") else type(artist).__name__


def _texts(fig: Any) -> list[tuple[str, Any]]:
    """The figure's texts with a name for a note; a legend counts as one."""
    out: list[tuple[str, Any]] = []
    names = {"title": "the title", "caption": "the caption"}
    for f in _figures(fig):
        out.extend((names.get(t.get_gid(), "a note"), t) for t in f.texts if t.get_text())
        out.extend(("the legend", leg) for leg in f.legends)
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        if ax.title.get_text():  # the only panel title the kinds set (not the left or right one)
            out.append(("a panel title", ax.title))
        for axis in (ax.xaxis, ax.yaxis):
            if axis.label.get_text():
                out.append(("an axis label", axis.label))
            out.extend(("tick labels", t) for t in _tick_labels(axis))
        out.extend(("point labels", t) for t in ax.texts if t.get_text())
        leg = ax.get_legend()
        if leg is not None:
            out.append(("the legend", leg))
    return out


def _figures(fig: Any) -> list[Any]:
    """The figure and its subfigures, nested ones too."""
    out = [fig]
    for sub in fig.subfigs:
        out.extend(_figures(sub))
    return out


def _tick_labels(axis: Any) -> list[Any]:
    """Labels of the ticks drawn: the locator also gives ticks just outside the view, which are not."""
    lo, hi = sorted(axis.get_view_interval())
    eps = 1e-9 * max(abs(hi - lo), 1e-300)
    return [
        label
        for tick in axis.get_major_ticks()
        if lo - eps <= tick.get_loc() <= hi + eps
        for label in (tick.label1, tick.label2)
        if label.get_visible() and label.get_text()
    ]


def _shrink(fig: Any) -> bool:
    """Scale all type down one step; False when it is as small as it goes."""
    from matplotlib.text import Text

    smaller = False
    for t in fig.findobj(Text):
        size = t.get_fontsize()
        if size > _MIN_PT:
            t.set_fontsize(max(_MIN_PT, size * _SHRINK))
            smaller = True
    for ax in fig.axes:
        # ticks made at the next layout take their size from here, not from the old labels
        for axis, name in ((ax.xaxis, "x"), (ax.yaxis, "y")):
            labels = axis.get_ticklabels()
            if labels:
                ax.tick_params(axis=name, labelsize=labels[0].get_fontsize())
    return smaller
