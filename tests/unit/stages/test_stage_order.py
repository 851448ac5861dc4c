"""One listed order of the stages: ``stages/pipeline.py``'s docstring and the table of
docs/architecture.md ("The pipeline") give each stage the same number and module, and each
module exists."""

from __future__ import annotations

import re
from pathlib import Path

import gateway
from gateway.stages import pipeline

PACKAGE = Path(gateway.__file__).parent
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"


def docstring_order(text: str) -> dict[int, str]:
    """``{number: first module}`` of the numbered list in a docstring."""
    rows = re.findall(r"^\s+(\d)\. +\w+ +(\S+?),? ", text, re.MULTILINE)
    return {int(number): module for number, module in rows}


def table_order(text: str) -> dict[int, str]:
    """``{number: first module}`` of the ``| # | Stage | Module | ...`` table."""
    section = text.split("### 4. The pipeline", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| (\d) \| [^|]+ \| `([^`]+)`", section, re.MULTILINE)
    return {int(number): module for number, module in rows}


def test_the_pipeline_and_the_architecture_page_number_the_stages_alike() -> None:
    listed = docstring_order(pipeline.__doc__ or "")
    assert sorted(listed) == list(range(1, 9))
    assert table_order(ARCHITECTURE.read_text(encoding="utf-8")) == listed
    for module in listed.values():
        assert (PACKAGE / module).exists(), module


def test_a_renumbered_stage_is_noticed() -> None:
    doc = "\n    1. https      stages/https.py, x\n    2. route      serve/app.py, y\n"
    table = ("### 4. The pipeline\n| # | Stage | Module | Refusals |\n|---|---|---|---|\n"
             "| 1 | HTTPS | `stages/https.py` | 403 |\n| 2 | Route | `stages/authn.py` | 401 |\n")
    assert docstring_order(doc) != table_order(table)
