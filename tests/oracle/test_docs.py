"""docs/oracle.md: its Python examples run, and its contract table is the generated one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import refseq.oracle as oracle

DOC = Path(__file__).resolve().parents[2] / "docs" / "oracle.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_page_has_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_example_runs(index, capsys):
    code = BLOCKS[index]
    if "import torch" in code:
        pytest.importorskip("torch")
    exec(compile(code, f"docs/oracle.md[{index}]", "exec"), {"__name__": "oracle_doc"})


def test_contract_table_is_current():
    assert oracle.contract_table() in DOC.read_text(), (
        "docs/oracle.md's contract table is stale: paste refseq.oracle.contract_table()")
