"""``refseq demo aaren`` at a small size: the equality checks and the table, never the timings."""

from __future__ import annotations

import re

import pytest

from refseq.papers.aaren import demo as demo

SMALL = dict(T=2048, Dk=8, Dv=8, seed=0, checkpoints=(256, 2048), scan_T=512)


@pytest.fixture(scope="module")
def result():
    return demo.run(**SMALL)


def test_streamed_outputs_agree_and_the_scan_equals_the_naive_loop(result):
    assert result["stream_ok"] and result["stream_max_diff"] <= 1e-12
    assert result["scan"]["ok"] and result["scan"]["max_diff"] <= 1e-12
    assert result["scan"]["T"] == 512
    assert [row["t"] for row in result["rows"]] == [256, 2048]
    for row in result["rows"]:  # measured, positive; their size is not asserted
        assert row["aaren_us"] > 0 and row["kv_us"] > 0 and row["ratio"] > 0


def test_table_format(result):
    lines = demo.format_table(result).splitlines()
    assert lines[0].startswith("Aaren cell vs single-query softmax over a growing KV cache")
    header = lines.index(next(line for line in lines if "aaren us/token" in line))
    assert lines[header].split() == ["t", "aaren", "us/token", "kv-cache", "us/token", "ratio"]
    for line, t in zip(lines[header + 1 : header + 3], (256, 2048)):
        assert re.fullmatch(rf"\s*{t}\s+\d+\.\d\s+\d+\.\d\s+\d+\.\dx", line)
    assert any(line.startswith("max |aaren - kv-cache|") and line.endswith(": yes)")
               for line in lines)
    assert any(line.startswith("aaren_scan (blelloch) vs naive") for line in lines)


def test_main_prints_the_table_and_returns_0(capsys):
    assert demo.main(["--T", "300", "--checkpoints", "100", "300", "--scan-T", "64"]) == 0
    assert "kv-cache us/token" in capsys.readouterr().out


def test_checkpoints_beyond_T_are_rejected():
    with pytest.raises(ValueError, match="checkpoints must lie in"):
        demo.run(T=100, checkpoints=(200,))
