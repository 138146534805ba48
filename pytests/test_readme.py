"""The README is the way in: every file it names is in the repository (issue 17)."""

from __future__ import annotations

import re

from conftest import ROOT

# Top-level folders of the repository whose files the README names.
TRACKED = (
    "src/",
    "models/",
    "macros/",
    "seeds/",
    "tests/",
    "pytests/",
    "scripts/",
    "docs/",
    ".ci/",
)
# Generated or local paths the README names as where things go, not as files to read.
LOCAL = ("data/", ".venv/", ".secrets/", "target/", "logs/", "parquet/")


def named_paths(text: str) -> set[str]:
    links = set(re.findall(r"\]\(([^)#\s]+)", text))
    quoted = set(re.findall(r"`([A-Za-z0-9_./-]+/[A-Za-z0-9_./-]*)`", text))
    return {p for p in links | quoted if not p.startswith(("http://", "https://"))}


def test_every_file_the_readme_names_exists() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    paths = named_paths(text)
    assert any(p.startswith("src/") for p in paths), "the README names the package's files"
    missing = sorted(p for p in paths if p.startswith(TRACKED) and not (ROOT / p).exists())
    unknown = sorted(p for p in paths if not p.startswith(TRACKED + LOCAL))
    assert missing == [], missing
    assert unknown == [], f"README names paths outside the repository: {unknown}"


def test_the_tree_is_near_the_top_and_lists_every_package_module() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings.index("Tree") <= 2, headings
    tree = text[text.index("## Tree") :]
    tree = tree[: tree.index("\n## ", 1)]
    modules = sorted(p.name for p in (ROOT / "src" / "cdp").glob("*.py") if p.name != "__init__.py")
    # a subpackage (generator/, pack/, purge/) is listed as a folder
    packages = sorted(f"{p.parent.name}/" for p in (ROOT / "src" / "cdp").glob("*/__init__.py"))
    unlisted = [m for m in [*modules, *packages] if f"  {m} " not in tree]
    assert unlisted == [], f"modules missing from the README's tree: {unlisted}"
