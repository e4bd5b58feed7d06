"""The import graph of mlmcli: no import cycles, and no module imports from a layer above its own.

Every import counts, also one inside a function; only imports under `if TYPE_CHECKING:` (type hints,
never run) are left out.  A new module must be given a layer in LAYERS.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mlmcli"

# top to bottom: a module may import from its own layer and the layers below it
LAYERS: list[tuple[str, list[str]]] = [
    ("command line and library entry", ["mlmcli", "mlmcli.__main__", "mlmcli.cli", "mlmcli.api"]),
    (
        "statistics and the Dask engine",
        [
            "mlmcli.pipeline",
            "mlmcli.stats",
            "mlmcli.distributed",
        ],
    ),
    ("reports", ["mlmcli.report"]),
    ("renderers", ["mlmcli.render"]),
    # effects (ICC and Nakagawa's R²) is part of every fit's report, so it sits with the model
    ("fitted model", ["mlmcli.model", "mlmcli.glmmodel", "mlmcli.effects", "mlmcli.glmm_effects"]),
    ("engine", ["mlmcli.engine"]),
    ("design", ["mlmcli.design", "mlmcli.interaction", "mlmcli.where"]),
    ("readers", ["mlmcli.io"]),
    ("formula", ["mlmcli.formula"]),
    ("R's conventions and plumbing", ["mlmcli.rcompat", "mlmcli.errors", "mlmcli.interrupt", "mlmcli.outfile"]),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def type_checking_nodes(tree: ast.AST) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                out.update(id(n) for n in ast.walk(inner))
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The mlmcli modules `name` imports (a package's __init__ when a name comes from it)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = type_checking_nodes(tree)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "mlmcli")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "mlmcli":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in known else target)
    out.discard(name)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def layer_of(name: str) -> int | None:
    """The index of the layer whose longest prefix names the module (the package root only itself)."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            hit = name == p if p == "mlmcli" else name == p or name.startswith(p + ".")
            if hit and len(p) > best_len:
                best, best_len = i, len(p)
    return best


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        path.append(v)
        for w in sorted(edges.get(v, ())):
            if state.get(w) == 1:
                return path[path.index(w) :] + [w]
            if w not in state:
                found = visit(w)
                if found:
                    return found
        path.pop()
        state[v] = 2
        return None

    for v in sorted(edges):
        if v not in state:
            found = visit(v)
            if found:
                return found
    return None


def test_every_module_has_a_layer():
    assert [m for m in modules() if layer_of(m) is None] == []


def test_no_import_cycles():
    assert find_cycle(graph()) is None


def test_no_import_runs_up_a_layer():
    upward = []
    for name, targets in graph().items():
        here = layer_of(name)
        for t in sorted(targets):
            there = layer_of(t)
            if here is not None and there is not None and there < here:
                upward.append(f"{name} ({LAYERS[here][0]}) imports {t} ({LAYERS[there][0]})")
    assert upward == []


def test_the_check_sees_cycles_and_upward_imports():
    """The checks themselves: a planted cycle is found, and the graph holds known downward edges."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    edges = graph()
    assert "mlmcli.io.frame" in edges["mlmcli.design.transforms"]
    assert "mlmcli.engine.factor" in edges["mlmcli.engine.lockstep"]
    # selinv names BlockedFactor only in type hints: that import is not an edge
    assert "mlmcli.engine.factor" not in edges["mlmcli.engine.selinv"]
    assert layer_of("mlmcli.render.plots.figure") < layer_of("mlmcli.model") < layer_of("mlmcli.io.csv")


# the design package's modules, bottom first: each imports only from those before it
DESIGN_ORDER = ["checks", "factors", "transforms", "frame", "matrices", "random", "glm", "build"]


def test_the_design_package_imports_one_way():
    """Inside mlmcli.design, a module imports only modules below it, and none imports the package itself."""
    mods = modules()
    assert sorted(m for m in mods if m.startswith("mlmcli.design.")) == sorted(
        f"mlmcli.design.{m}" for m in DESIGN_ORDER
    )
    edges = graph()
    wrong = []
    for i, m in enumerate(DESIGN_ORDER):
        below = {f"mlmcli.design.{b}" for b in DESIGN_ORDER[:i]}
        inside = {t for t in edges[f"mlmcli.design.{m}"] if t == "mlmcli.design" or t.startswith("mlmcli.design.")}
        wrong += [f"{m} imports {t}" for t in sorted(inside - below)]
    assert wrong == []
    assert "mlmcli.design.checks" in edges["mlmcli.design.transforms"]
