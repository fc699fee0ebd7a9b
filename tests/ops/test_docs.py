"""The architecture page draws the ladder that import-linter checks, and names only paths
that exist."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "docs/architecture.md", "docs/deploy.md", "docs/security.md")
PATH = re.compile(r"\b((?:app|tests|scripts|benchmarks|devtools|docs)/[\w./-]*\w)")


def layers_contract() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (ladder,) = [
        contract
        for contract in config["tool"]["importlinter"]["contracts"]
        if contract["type"] == "layers"
    ]
    return [
        " | ".join(f"app.{name.strip()}" for name in layer.split("|")) for layer in ladder["layers"]
    ]


def drawn_ladder() -> list[str]:
    page = (ROOT / "docs/architecture.md").read_text()
    drawing = page.split("## Packages and the ladder", 1)[1].split("```", 2)[1]
    rungs = [line.split("  ")[0].strip() for line in drawing.splitlines()]
    return [rung for rung in rungs if rung.startswith("app.")]


def test_the_architecture_page_draws_the_ladder_import_linter_checks() -> None:
    assert drawn_ladder() == layers_contract()


def test_the_docs_name_only_paths_that_exist() -> None:
    missing = [
        f"{doc}: {path}"
        for doc in DOCS
        for path in PATH.findall((ROOT / doc).read_text())
        if not (ROOT / path.split("::")[0]).exists()
    ]
    assert missing == []


def test_at_most_three_modules_sit_at_the_root_of_app() -> None:
    assert len(list((ROOT / "app").glob("*.py"))) <= 3
