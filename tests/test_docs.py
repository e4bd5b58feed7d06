"""The README keeps its promises: it stays short, its links lead to pages that exist, its test command
is the one `.ci/run` runs, and every documentation page is in the site's navigation."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _local_links(text: str) -> list[str]:
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def test_readme_has_at_most_200_lines():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 200


def test_every_local_link_of_the_readme_exists():
    links = _local_links(README.read_text(encoding="utf-8"))
    assert "docs/guide.md" in links and "docs/api.md" in links
    missing = [t for t in links if not (ROOT / t).exists()]
    assert missing == []


def test_readme_links_every_documentation_page():
    linked = {Path(t).name for t in _local_links(README.read_text(encoding="utf-8")) if t.startswith("docs/")}
    pages = {p.name for p in DOCS.glob("*.md")} - {"index.md"}
    assert pages - linked == set()


def test_the_readme_test_command_is_what_ci_runs_first():
    readme = README.read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line for line in ci.splitlines() if line and not line.startswith(("#", "set ", "cd ", "export "))]
    assert commands[0] == "python3 -m venv .venv && .venv/bin/pip install -q '.[test]' && .venv/bin/python -m pytest -q"
    assert "    " + commands[0] in readme.splitlines()


def test_every_page_is_in_the_site_navigation():
    config = (DOCS / "mkdocs.yml").read_text(encoding="utf-8")
    nav = set(re.findall(r"^  - [^:]+: (\S+\.md)$", config, flags=re.M))
    assert nav == {p.name for p in DOCS.glob("*.md")}


def test_every_function_of_the_public_api_is_documented():
    """Every name mlmcli exports, and every public method and property of the fit objects, appears in
    docs/api.md."""
    import mlmcli

    text = (ROOT / "docs" / "api.md").read_text()
    names = [n for n in mlmcli.__all__ if n != "__version__"]
    for cls in (mlmcli.LmerFit, mlmcli.GlmerFit):
        names += [n for n in vars(cls) if not n.startswith("_")]
    missing = [n for n in dict.fromkeys(names) if n not in text]
    assert missing == []
