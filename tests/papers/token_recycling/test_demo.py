"""``refseq demo token-recycling``: the small-scale result (the main run at full size, whose
per-query MAT an independent prototype gave as 2.54, 2.88, 2.61, 2.67, 2.68), the toy target's
construction, the table, the figure and the command line."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

from refseq.papers.token_recycling import PAPER, demo, toy


def test_toy_target_by_hand():
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((5, 5)), rng.standard_normal((5, 5, 5))  # A first, then B
    z = toy.order2_logits(5, 1.0, 0.6)
    assert np.allclose(z[3, 1], A[1] + 0.6 * B[3, 1])
    t = toy.order2_target(5, 1.0, 0.6)
    logits, _ = t.prefill(np.array([2, 3, 1]))  # context (3, 1)
    assert np.argmax(logits) == np.argmax(A[1] + 0.6 * B[3, 1])
    assert [p.tolist() for p in toy.demo_prompts(2, 3, 64)] == [
        np.random.default_rng(q).integers(64, size=3).tolist() for q in range(2)]
    with pytest.raises(ValueError, match="V"):
        toy.order2_logits(0)
    with pytest.raises(TypeError, match="s1"):
        toy.order2_logits(4, s1="1")


def test_main_run_reproduces_the_prototype():
    r = demo.run(settings=[demo.MAIN])
    (row,) = r["rows"]
    assert [round(m, 2) for m in row["mat"]] == [2.54, 2.88, 2.61, 2.67, 2.68]
    assert row["exact"] and r["ok"] and 2.0 <= row["mean"] <= 3.5


@pytest.fixture(scope="module")
def small():
    return demo.run(queries=2, n=48, settings=[demo.MAIN, "s2 = 0 (bigram)", "s1 = 0 (order-2)",
                                               "TR chain (depth 6)"])


def test_small_run_contrasts(small):
    rows = {r["name"]: r for r in small["rows"]}
    assert small["ok"] and all(r["exact"] for r in rows.values())
    assert rows["s2 = 0 (bigram)"]["mean"] > rows[demo.MAIN]["mean"] > \
        rows["s1 = 0 (order-2)"]["mean"] >= 1.0
    assert len(rows[demo.MAIN]["mat"]) == 2


def test_table_and_figure(small, tmp_path):
    text = demo.format_table(small)
    lines = text.splitlines()
    assert lines[0].startswith("Token Recycling on order-2 toy targets: V = 64, 2 queries")
    assert re.fullmatch(r"plain decoding\s+-\s+-\s+-\s+1\.00\s+yes", lines[4])
    assert any(re.fullmatch(r"TR 2\.2\.2 hot start\s+1\s+0\.6\s+(\d\.\d\d ){2}\s*\d\.\d\d "
                            r"\+- \d\.\d\d\s+yes", ln) for ln in lines)
    assert "every output equals plain greedy: yes" in text


def test_figure(small, tmp_path):
    pytest.importorskip("matplotlib")
    path = demo.plot(small, tmp_path / "f.png")
    assert path.stat().st_size > 1000


def test_main_command_line(capsys, tmp_path):
    """With the plot extra the run also writes the figure; without it, no ``--plot``."""
    plot = importlib.util.find_spec("matplotlib") is not None
    extra = ["--plot", str(tmp_path / "x.png")] if plot else []
    assert demo.main(["--queries", "1", "--n", "8", *extra]) in (0, 1)
    out = capsys.readouterr().out
    assert "TR 2.2.2 hot start" in out and (tmp_path / "x.png").exists() == plot
    with pytest.raises(SystemExit):
        demo.main(["--k", "9", "--V", "8"])
    with pytest.raises(SystemExit):
        demo.main(["--n", "0"])


def test_paper_metadata():
    assert (PAPER.number, PAPER.arxiv, PAPER.demo) == (16, "2408.08696", "token-recycling")
    assert PAPER.hot_paths == "tree verification"
