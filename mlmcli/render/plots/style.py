"""The look every picture shares: two themes, sizes that scale with the figure, colour-blind-safe colours.

Sizes are set for an 8 x 6 in figure and scale with the square root of the figure's size (the
smaller of its width and height ratios), so a 3.5 x 3 in journal figure gets thinner lines and
smaller margins instead of screen-sized ones. Type shrinks with them only down to 7/9 of its
8 x 6 in size, and no text is set under 7 points, the smallest most journals print: at 3.5 x 3 in
tick labels, legends and the footer are 7 points, axis labels about 8. --font-size sets the axis
labels' size instead, the other text in proportion (never under 7 points, or under the size asked
for when that is smaller).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MIN_PT = 7.0  # the smallest type journals print
_TYPE_FLOOR = MIN_PT / 9.0  # type shrinks with the figure until the tick labels (9 pt at 8 x 6 in) are MIN_PT
MAX_LABELLED = 40  # beyond this many levels, level names would overlap: no labels
THEMES = ("screen", "paper")
DEFAULT_DPI = {"screen": 100, "paper": 300}

# Okabe & Ito's colour-blind-safe palette, without its yellow (too faint for lines on white)
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]
GROUP_COLOURS = PALETTE[:-1]  # a colour per group, its black left to the population line
POP = "#111111"  # the population (fixed-effects) line
REF = "#8c8c8c"  # reference lines at zero
POINT = "#0072B2"  # points of a single series
ONE = "#0072B2"  # the one colour of many groups
LINE = "#C0392B"  # fitted reference lines (Q-Q lines), dark enough beside blue points for any colour vision

# sans-serif faces journals ask for, in order of preference; the first installed one is used
_PAPER_FONTS = ("Arial", "Helvetica", "Liberation Sans", "Nimbus Sans", "DejaVu Sans")


@dataclass(frozen=True)
class Theme:
    name: str
    scale: float  # lines, markers and margins: 1 at 8 x 6 in
    type_scale: float = 1.0  # text: 1 at 8 x 6 in
    min_pt: float = MIN_PT  # no text smaller

    @property
    def paper(self) -> bool:
        return self.name == "paper"

    def pt(self, size: float) -> float:
        """A font size in points given for 8 x 6 in."""
        return max(self.min_pt, size * self.type_scale)

    def lw(self, width: float) -> float:
        """A line width given for the screen at 8 x 6 in: thinner on paper."""
        return width * self.scale * (0.75 if self.paper else 1.0)

    def ms(self, size: float) -> float:
        """A marker size (diameter, points) given for 8 x 6 in."""
        return size * self.scale

    def area(self, size: float) -> float:
        """A scatter marker area (points squared) given for 8 x 6 in."""
        return size * self.scale**2

    def chars(self, inches: float, size: float) -> int:
        """About how many characters of a `size`-point font (given for 8 x 6 in) fit in `inches`."""
        return max(8, int(inches * 72.0 / (0.56 * self.pt(size))))


def make_theme(name: str, width: float, height: float, font_size: float | None = None) -> Theme:
    """The theme at a figure's size; `font_size` (points) sets the axis labels' size, 10 at 8 x 6 in."""
    scale = min(1.6, max(0.5, math.sqrt(min(width / 8.0, height / 6.0))))
    if font_size is not None:
        return Theme(name, scale, font_size / 10.0, min(MIN_PT, font_size))
    return Theme(name, scale, max(scale, _TYPE_FLOOR))


def rc(theme: Theme) -> dict[str, Any]:
    """matplotlib settings of a theme at its scale."""
    s, pt = theme.scale, theme.pt
    out: dict[str, Any] = {
        "font.size": pt(10),
        "axes.titlesize": pt(10.5),
        "axes.labelsize": pt(10),
        "xtick.labelsize": pt(9),
        "ytick.labelsize": pt(9),
        "legend.fontsize": pt(8.5),
        "legend.title_fontsize": pt(9),
        "legend.frameon": False,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.axisbelow": True,
        "axes.linewidth": 0.8 * s,
        "axes.titlepad": 6 * s,
        "axes.labelpad": 4 * s,
        "xtick.major.width": 0.8 * s,
        "ytick.major.width": 0.8 * s,
        "xtick.major.size": 3.5 * s,
        "ytick.major.size": 3.5 * s,
        "xtick.major.pad": 3.5 * s,
        "ytick.major.pad": 3.5 * s,
        "lines.linewidth": 1.5 * s,
        "axes.grid": True,
        "grid.color": "#e3e3e3",
        "grid.linewidth": 0.6 * s,
        "figure.facecolor": "white",
        "savefig.facecolor": "white",
        "figure.constrained_layout.w_pad": 4 / 72 * s,
        "figure.constrained_layout.h_pad": 4 / 72 * s,
        "pdf.fonttype": 42,  # TrueType in PDFs: journals refuse Type 3 fonts
        "svg.fonttype": "none",  # text in SVGs stays text (editable, searchable), not glyph outlines
        "svg.hashsalt": "mlm",  # identical SVG ids from run to run
    }
    if theme.paper:
        out.update(
            {
                "font.family": "sans-serif",
                "font.sans-serif": _installed(_PAPER_FONTS),
                "axes.grid": False,
                "axes.linewidth": 0.6 * s,
                "xtick.major.width": 0.6 * s,
                "ytick.major.width": 0.6 * s,
                "xtick.direction": "out",
                "ytick.direction": "out",
                "lines.linewidth": 1.0 * s,
            }
        )
    return out


def title_pt(theme: Theme) -> float:
    """The title's size given for 8 x 6 in: plain and smaller on paper, where the caption carries the words."""
    return 11.5 if theme.paper else 13.0


def title_style(theme: Theme) -> dict[str, Any]:
    return {"fontsize": theme.pt(title_pt(theme)), "fontweight": "normal" if theme.paper else "bold"}


def caption_style(theme: Theme) -> dict[str, Any]:
    return {"fontsize": theme.pt(8), "color": "#555555"}


def darker(colour: str, by: float = 0.35) -> tuple[float, float, float]:
    """`colour` mixed with black: a population line beside its groups' lines of the same hue."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(colour)
    return r * (1.0 - by), g * (1.0 - by), b * (1.0 - by)


def wrap(text: str, width: int) -> str:
    """Each line of `text` wrapped to at most `width` characters, its lines of even length (no orphan word)."""
    return "\n".join(_balanced(line, width) for line in text.split("\n"))


def fit_text(choices: list[str], width: int) -> str:
    """The first of `choices` (longest first) that fits one line of `width` characters, else the last wrapped."""
    for text in choices:
        if len(text) <= width:
            return text
    return wrap(choices[-1], width)


def _balanced(line: str, width: int) -> str:
    import textwrap

    lines = textwrap.wrap(line, width, break_long_words=False, break_on_hyphens=False)
    if len(lines) <= 1:
        return line
    longest = max(len(word) for word in line.split())
    for w in range(max(longest, math.ceil(len(line) / len(lines))), width):
        even = textwrap.wrap(line, w, break_long_words=False, break_on_hyphens=False)
        if len(even) == len(lines):
            return "\n".join(even)
    return "\n".join(lines)


def colours(k: int) -> list[str]:
    """k distinct colour-blind-safe colours (k <= len(PALETTE))."""
    return PALETTE[:k]


def _installed(names: tuple[str, ...]) -> list[str]:
    """The faces of `names` matplotlib can find (a missing one would log a warning on every text)."""
    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    return [n for n in names if n in have] or ["DejaVu Sans"]
