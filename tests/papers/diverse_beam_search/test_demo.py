"""``refseq demo diverse-beam-search`` at a small size: the claim and the table."""

from __future__ import annotations

import re

import numpy as np
import pytest

from refseq.papers.diverse_beam_search import PAPER
from refseq.papers.diverse_beam_search import demo as demo


@pytest.fixture(scope="module")
def result():
    return demo.run(seeds=25, lambdas=(1.0,))


def _distinct2_by_hand(seqs):
    grams = [tuple(s[i:i + 2]) for s in seqs for i in range(len(s) - 1)]
    return len(set(grams)) / len(grams)


def test_metric_matches_a_hand_count():
    seqs = [np.array([1, 2, 3]), np.array([1, 2, 4]), np.array([5, 5])]
    assert demo._distinct2(seqs) == pytest.approx(_distinct2_by_hand(seqs)) == 4 / 5
    same = [np.arange(6)] * 8  # B identical sequences: (T - 1) distinct of B (T - 1)
    assert demo._distinct2(same) == pytest.approx(1 / 8)


def test_dbs_is_more_diverse_and_costs_log_probability(result):
    beam, dbs = result["rows"]
    assert result["ok"]
    assert dbs["distinct2"] - beam["distinct2"] >= demo.MIN_GAIN
    assert dbs["wins"] >= demo.MIN_WINS
    assert dbs["mean_logprob"] < beam["mean_logprob"]  # diversity costs probability


def test_table_and_main(result, capsys):
    lines = demo.format_table(result).splitlines()
    assert lines[2].split() == ["method", "distinct-2", "wins", "mean", "logp", "best", "logp"]
    assert re.fullmatch(r"beam search\s+0\.\d{3}\s+-\s+-?\d+\.\d\d\s+-?\d+\.\d\d", lines[3])
    assert re.fullmatch(r"DBS lam=1\s+0\.\d{3}\s+\d+%\s+-?\d+\.\d\d\s+-?\d+\.\d\d", lines[4])
    assert lines[-1].endswith(": yes")
    assert demo.main(["--seeds", "4", "--lambdas", "2", "--T", "4"]) in (0, 1)
    assert "DBS lam=2" in capsys.readouterr().out


def test_paper_metadata():
    assert (PAPER.number, PAPER.arxiv, PAPER.demo) == (13, "1610.02424", "diverse-beam-search")
