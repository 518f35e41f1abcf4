"""The README and docs/ send readers nowhere outside the repository, and every repository path they link exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def test_no_document_points_outside_the_repository() -> None:
    for document in DOCUMENTS:
        text = document.read_text()
        assert "../shared" not in text and "/work/" not in text, document


def test_every_relative_link_exists() -> None:
    for document in DOCUMENTS:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", document.read_text()):
            if "://" in target:
                continue
            assert (document.parent / target).resolve().exists(), f"{document.name} links to missing {target}"


def test_design_sections_cited_in_code_exist() -> None:
    design = (REPO_ROOT / "docs" / "DESIGN.md").read_text()
    sections = {int(n) for n in re.findall(r"^## (\d+)\.", design, flags=re.M)}
    for path in [*REPO_ROOT.glob("hpo/**/*.py"), *REPO_ROOT.glob("mask2former/**/*.py"), *REPO_ROOT.glob("skillkit/**/*.py")]:
        for number in re.findall(r"DESIGN\.md (?:§|section )(\d+)", path.read_text()):
            assert int(number) in sections, f"{path} cites DESIGN.md §{number}"
