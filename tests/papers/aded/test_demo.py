"""``refseq demo aded`` at a small size: the claim, the table, the command line."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

from refseq.decoding.interfaces import log_softmax
from refseq.papers.aded import PAPER
from refseq.papers.aded import demo as demo


@pytest.fixture(scope="module")
def result():
    return demo.run(prompts=2, n_tokens=48, iterations=60,
                    methods=demo.MAIN + ("greedy chain + adapt. (ablation)",))


def test_toy_target_is_the_documented_table():
    lm = demo.toy_target(8)
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((8, 8)), rng.standard_normal((8, 8, 8))
    a, b = 3, 5
    want = log_softmax(A[b] + 0.6 * B[a, b])
    assert np.allclose(lm.table[a * 8 + b], want, atol=1e-12)
    corpus = demo.toy_corpus(lm, 4, 10)
    assert len(corpus) == 4 and all(s.shape == (12,) for s in corpus)


def test_adaptation_beats_corpus_only_and_outputs_equal_greedy(result):
    by = {r["name"]: r for r in result["rows"]}
    assert result["ok"]
    assert all(r["greedy"] for r in result["rows"])
    assert by["corpus + adaptation (ADED)"]["mean"] > by["corpus only"]["mean"] + demo.MIN_GAIN
    assert all(m > demo.MIN_MAT for n in demo.MAIN for m in by[n]["mat"])


def test_table_and_main(result, capsys, tmp_path):
    lines = demo.format_table(result).splitlines()
    assert lines[2].split()[:4] == ["method", "MAT", "per", "prompt"]
    assert re.match(r"corpus only\s+\d\.\d\d, \d\.\d\d\s+\d\.\d\d\s+\d\.\d\d\s+\d+\.\d\s+yes",
                    lines[3])
    assert lines[-1].endswith(": yes")
    path = tmp_path / "aded.png"
    plot = importlib.util.find_spec("matplotlib") is not None  # the figure needs the plot extra
    extra = ["--plot", str(path)] if plot else []
    assert demo.main(["--prompts", "1", "--tokens", "16", "--iterations", "20", "--sequences",
                      "50", *extra]) in (0, 1)
    assert "adaptation only" in capsys.readouterr().out
    assert (path.stat().st_size > 0) if plot else not path.exists()
    with pytest.raises(SystemExit):
        demo.main(["--tokens", "0"])


def test_paper_metadata():
    assert (PAPER.number, PAPER.arxiv, PAPER.demo, PAPER.hot_paths) == (
        8, "2407.12021", "aded", "tree verification")
