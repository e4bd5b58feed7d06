"""ranef(fit, condVar = TRUE) as R 4.2 / lme4 1.1-31 prints it: a data frame per grouping factor,
then the line naming the factors that carry conditional variances."""

from __future__ import annotations

import re

from mlmcli.rcompat.rformat import format_num, print_matrix

# R's reserved words: a list tag equal to one of them is printed in backticks
_RESERVED = frozenset(
    """if else repeat while function for next break TRUE FALSE NULL Inf NaN NA
NA_integer_ NA_real_ NA_character_ NA_complex_ in""".split()
)


def _syntactic(name: str) -> bool:
    """R's isValidName(): a letter, or a dot not followed by a digit, then letters, digits, . and _."""
    if not name or name in _RESERVED or name == "..." or re.fullmatch(r"\.\.\d+", name):
        return False
    first = name[0]
    if not (first.isalpha() or first == "."):
        return False
    if first == "." and len(name) > 1 and name[1].isdigit():
        return False
    return all(ch.isalnum() or ch in "._" for ch in name)


def list_tag(name: str) -> str:
    """The line print() of a named list writes before an element: $name or $`name`."""
    return f"${name}" if _syntactic(name) else f"$`{name}`"


def _by_factor(rows: list[dict]) -> list[tuple[str, list[str], list[str], dict[tuple[str, str], float]]]:
    """Report rows (group, level, term) regrouped: per factor its terms, levels and values."""
    out: dict[str, tuple[list[str], list[str], dict[tuple[str, str], float]]] = {}
    for r in rows:
        terms, levels, values = out.setdefault(r["group"], ([], [], {}))
        if r["term"] not in terms:
            terms.append(r["term"])
        if r["level"] not in levels:
            levels.append(r["level"])
        values[(r["level"], r["term"])] = r["value"]
    return [(g, t, lv, v) for g, (t, lv, v) in out.items()]


def ranef_text(report: dict, head: int | None = None) -> str:
    """print(ranef(fit, condVar = TRUE)): each data frame's columns formatted as format() does
    (7 significant digits, one format per column), numbers and headers right-aligned."""
    parts = []
    factors = _by_factor(report["ranef"])
    for group, terms, levels, values in factors:
        shown = levels[: head if head else None]
        cols = [format_num([values[(lv, t)] for lv in shown]) for t in terms]
        cells = [[col[i] for col in cols] for i in range(len(shown))]
        parts.append(list_tag(group) + "\n")
        parts.append(print_matrix(cells, rownames=shown, colnames=terms, right=True))
        if head and len(levels) > head:
            parts.append(f"... {len(levels) - head} more levels\n")
        parts.append("\n")
    if factors:
        # lme4's print.ranef.mer: cat("with conditional variances for", dQuote(names), "\n")
        parts.append("with conditional variances for " + " ".join(f"\u201c{g}\u201d" for g, *_ in factors) + " \n")
    return "".join(parts)
