"""``refseq demo recursive-speculative-decoding`` at a small size: the table, the claim, main."""

from __future__ import annotations

import re

import pytest

from refseq.papers.recursive_speculative_decoding import PAPER
from refseq.papers.recursive_speculative_decoding import demo as demo


@pytest.fixture(scope="module")
def result():
    return demo.run(steps=80, episode=40, temperatures=(1.0,), greedy_tokens=8, budget_chain=6)


def test_rows_and_greedy_checks(result):
    rows = {r["label"]: r for r in result["rows"]}
    assert list(rows) == [c[0] for c in demo.CONFIGS]
    assert rows["chain K=4"]["drafts"] == 4 and rows["chain K=4"]["draft_calls"] == 4
    assert rows["RSD-C (2,2,1)"]["drafts"] == 10 and rows["RSD-S W=4 L=3"]["draft_calls"] == 3
    assert all(1.0 <= r["mean"] <= 5.0 for r in rows.values())
    assert result["greedy"] and all(result["greedy"].values())
    assert result["gain"] == pytest.approx(rows["RSD-C (2,2,1)"]["mean"]
                                           - rows["iid (2,2,1)"]["mean"])
    b = result["budget"]
    assert b["mbsu_chain"] == pytest.approx(b["chain"]["mean"] / (1 + 0.05 * 6))


def test_table_and_main(result, capsys, tmp_path):
    lines = demo.format_table(result).splitlines()
    assert lines[2].split() == ["method", "T", "drafts", "draft", "calls", "tokens", "/",
                                "target", "call"]
    assert re.fullmatch(r"RSD-C \(2,2,1\)\s+1\s+10\.0\s+3\s+\d\.\d{3} \+- 0\.\d{3}", lines[5])
    assert lines[-2] == "greedy (T = 0) equals plain greedy for every method: yes"
    assert lines[-1] in ("claim holds: yes", "claim holds: NO")
    pytest.importorskip("matplotlib")
    fig = tmp_path / "rsd.png"
    code = demo.main(["--steps", "40", "--episode", "20", "--temperatures", "1",
                      "--greedy-tokens", "0", "--budget-chain", "0", "--plot", str(fig)])
    assert code in (0, 1) and fig.stat().st_size > 1000
    assert "RSD-S W=4 L=3" in capsys.readouterr().out


def test_paper_metadata():
    assert (PAPER.number, PAPER.arxiv, PAPER.demo) == (12, "2402.14160",
                                                       "recursive-speculative-decoding")
    assert PAPER.hot_paths == "tree verification"
