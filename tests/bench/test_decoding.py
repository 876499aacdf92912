"""``refseq bench decoding`` on a tiny case: every row present, refseq's searches on both model
classes and HF generate produce the same sequences (the table says so)."""

from __future__ import annotations

import numpy as np

from refseq.bench.decoding import CASE, bench_decoding, format_rows


def test_bench_decoding_rows_are_complete_and_agree():
    case = dict(CASE, V=32, D=16, L=1, H=2, prompt=3, batch=2, beams=4, groups=2, new_tokens=5)
    rows = bench_decoding(case, log=lambda r: None)
    whats = [r["what"] for r in rows]
    assert any("BatchedTransformerLM" in w for w in whats)
    assert any("row by row" in w for w in whats)
    assert any("diverse_beam_search" in w for w in whats)
    row_by_row = next(r for r in rows if "row by row" in r["what"])
    assert row_by_row["note"] == "same sequences"
    for r in rows:
        assert np.isfinite(r["ms_per_token"]) or r["note"].startswith("skipped"), r
    hf = [r for r in rows if r["what"].startswith("HF generate")]
    if hf and np.isfinite(hf[0]["ms_per_token"]):
        assert hf[0]["note"] == "same sequences as refseq"
    assert "ms/token" in format_rows(rows)
