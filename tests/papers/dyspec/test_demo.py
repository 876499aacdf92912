"""``refseq demo dyspec`` at a small size: the claim, the table, the figure."""

from __future__ import annotations

import re

import pytest

from refseq.papers.dyspec import PAPER
from refseq.papers.dyspec import demo as demo


@pytest.fixture(scope="module")
def result():
    return demo.run(steps=100, budgets=(20,), temperatures=(0.0,))


def test_dyspec_beats_the_fixed_trees_and_stays_greedy(result):
    rows = {r["name"]: r for r in result["rows"]}
    assert set(rows) == {"chain 20", "tree (4,2,1) wor", "tree (2,2,2,1) wor", "DySpec 20"}
    assert all(r["greedy_ok"] for r in result["rows"])
    best = max(rows["tree (4,2,1) wor"]["mean"], rows["tree (2,2,2,1) wor"]["mean"])
    assert result["gain"] == pytest.approx(rows["DySpec 20"]["mean"] - best)
    assert result["gain"] >= demo.MIN_GAIN and result["ok"]
    assert all(r["mean"] >= 1.0 for r in result["rows"])
    assert 1 <= rows["DySpec 20"]["draft_calls"] <= 21


def test_table_main_and_plot(result, tmp_path, capsys):
    lines = demo.format_table(result).splitlines()
    assert lines[2].split()[:4] == ["method", "drafts", "T", "tokens"]
    assert re.fullmatch(r"DySpec 20\s+20\s+0\.0\s+\d\.\d{3} \+- \d\.\d{3}\s+\d+\.\d\s+yes",
                        lines[6])
    assert lines[-1].startswith("claim holds: yes")
    pytest.importorskip("matplotlib")
    path = demo.plot(result, tmp_path / "dyspec.png")
    assert path.exists() and path.stat().st_size > 1000
    assert demo.main(["--steps", "20", "--budgets", "5", "--budget", "5",
                      "--temperatures", "0.6"]) in (0, 1)
    assert "DySpec 5" in capsys.readouterr().out


def test_paper_metadata():
    assert (PAPER.number, PAPER.arxiv, PAPER.demo) == (24, "2410.11744", "dyspec")
    assert PAPER.hot_paths == "tree verification"
