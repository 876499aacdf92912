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
    namespace = {"__name__": "oracle_doc"}
    exec(compile(code, f"docs/oracle.md[{index}]", "exec"), namespace)
    # every report the example leaves behind passed, unless the example shows a failure
    reports = [v for v in namespace.values() if isinstance(v, oracle.Report)]
    assert all(r.ok for r in reports) or "OracleFailure" in code, (
        f"docs/oracle.md[{index}]: a report failed: {[r for r in reports if not r.ok]}")


def test_contract_table_is_current():
    assert oracle.contract_table() in DOC.read_text(), (
        "docs/oracle.md's contract table is stale: paste refseq.oracle.contract_table()")
