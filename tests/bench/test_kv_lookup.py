"""``refseq bench kv_lookup`` on a tiny case: every row present, every tier (and faiss, where
installed) returns the NumPy tier's indices except on the reference's own near-ties; speed is
reported, never asserted."""

from __future__ import annotations

import numpy as np

from refseq.bench import kv_lookup as bk

TINY = dict(bk.CASE, C=3, M=40, d_k=5, Q=30, d_v=2, topk=(1, 3))


def test_bench_kv_lookup_rows_are_complete_and_agree():
    rows = bk.bench_kv_lookup(TINY, repeats=1, log=lambda r: None)
    tiers = ("numpy", "jit kernel", "jit", "cuda", "faiss IndexFlatL2")
    assert [r["what"] for r in rows] == [f"top-{k} {t}" for k in (1, 3) for t in tiers]
    for r in rows:
        if r["indices"].startswith("skipped"):
            assert np.isnan(r["ms"]) and r["what"].endswith(("cuda", "faiss IndexFlatL2"))
            continue
        assert r["ms"] > 0, r
        if r["what"].endswith("numpy"):
            assert r["indices"].startswith("reference") and r["vs numpy"] == 1.0
        elif "jit" in r["what"]:
            assert r["indices"] == "same", r  # bit-identical distances: no exemption needed
        else:  # faiss ranks by the expanded form: only near-ties may differ
            assert r["indices"] == "same" or "near-ties of the reference" in r["indices"], r
    text = bk.format_rows(rows)
    assert "top-3 jit kernel" in text and "vs faiss" in text


def test_make_case_shapes_and_dtype():
    h, keys, values = bk.make_case(TINY)
    assert h.shape == (30, 3, 1, 5) and keys.shape == (3, 40, 5) and values.shape == (3, 40, 2)
    assert h.dtype == keys.dtype == values.dtype == np.float32


def test_no_numpy_skips_the_numpy_tier_and_compares_with_the_jit_kernel(monkeypatch):
    """``--no-numpy``: the NumPy tier never runs (a NumPy lookup would raise here), its row is
    skipped, and the other rows agree with the jit kernel."""
    import refseq.kv_lookup.reference as ref

    def never(*a, **k):
        raise AssertionError("the NumPy tier ran")

    monkeypatch.setattr(ref, "lookup", never)
    monkeypatch.setattr(ref, "near_tie", never)
    rows = bk.bench_kv_lookup(TINY, repeats=1, numpy_reference=False, log=lambda r: None)
    numpy_rows = [r for r in rows if r["what"].endswith("numpy")]
    assert len(numpy_rows) == 2 and all(r["indices"].startswith("skipped: --no-numpy")
                                        for r in numpy_rows)
    assert all(np.isnan(r["vs numpy"]) for r in rows)
    for r in rows:
        if "jit" in r["what"]:
            assert r["indices"] == "same"
