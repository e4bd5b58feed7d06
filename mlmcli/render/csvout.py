"""Plain CSV and text forms of random effects and variance reductions, for pipelines and pagers."""

from __future__ import annotations

import csv
import io


def _num(x: float | None) -> str:
    return "NA" if x is None else repr(float(x))


def ranef_csv(report: dict, wide: bool = False, with_coef: bool = False) -> str:
    """Long form (group, level, term, value, cond_sd[, coef]) or one row per level (--wide)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    rows = report["ranef"]
    if not wide:
        w.writerow(["group", "level", "term", "value", "cond_sd"] + (["coef"] if with_coef else []))
        for r in rows:
            extra = [_num(r.get("coef"))] if with_coef else []
            w.writerow([r["group"], r["level"], r["term"], _num(r["value"]), _num(r["cond_sd"])] + extra)
        return buf.getvalue()
    for group, terms, levels in _wide(rows):
        w.writerow(
            ["group", "level"]
            + terms
            + [f"cond_sd({t})" for t in terms]
            + ([f"coef({t})" for t in terms] if with_coef else [])
        )
        for level, cells in levels.items():
            vals = [_num(cells[t]["value"]) for t in terms] + [_num(cells[t]["cond_sd"]) for t in terms]
            if with_coef:
                vals += [_num(cells[t].get("coef")) for t in terms]
            w.writerow([group, level] + vals)
    return buf.getvalue()


def _wide(rows: list[dict]) -> list[tuple[str, list[str], dict[str, dict[str, dict]]]]:
    out: dict[str, tuple[list[str], dict[str, dict[str, dict]]]] = {}
    for r in rows:
        terms, levels = out.setdefault(r["group"], ([], {}))
        if r["term"] not in terms:
            terms.append(r["term"])
        levels.setdefault(r["level"], {})[r["term"]] = r
    return [(g, t, lv) for g, (t, lv) in out.items()]


def variance_reduction_text(vr: dict) -> str:
    lines = ["", f"Proportion of variance reduced, relative to: {vr['base']}"]
    for m in vr["models"]:
        lines.append(f"{m['name']}: {m['formula']}")
        for comp, v in m["reduction"].items():
            label = "level 1 (sigma^2)" if comp == "Residual" else f"level 2 ({comp})"
            lines.append(f"  {label:<40} {'NA' if v is None else f'{v:.4f}'}")
    if vr.get("icc") is not None:
        lines.append(f"ICC of the intercept-only model: {vr['icc']:.4f}")
    return "\n".join(lines) + "\n"
