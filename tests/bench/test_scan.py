"""refseq bench scan runs end to end (tiny cases; speed is reported, never asserted)."""

import numpy as np
import pytest

from refseq.bench import scan as bench_scan


def test_bench_scan_rows_are_complete():
    rows = bench_scan.bench_scan(repeats=1, cases=({"B": 2, "T": 64, "D": 64},), log=lambda r: None)
    assert [r["kernel"] for r in rows] == [
        f"jit {name} {kind}" for name in ("linear_scan", "softmax_scan")
        for kind in ("kernel", "user", "user out=")
    ]
    for r in rows:
        assert r["ms"] > 0 and r["GB/s"] > 0 and r["copy GB/s"] > 0 and r["vs numpy"] > 0
    assert all(np.isnan(r["of kernel"]) == r["kernel"].endswith("kernel") for r in rows)
    assert all(r["of kernel"] > 0 for r in rows if "user" in r["kernel"])
    table = bench_scan.format_rows(rows)
    assert "of copy" in table and "of kernel" in table and len(table.splitlines()) == 8


def test_bench_scan_cuda_runs_on_the_simulator_or_gpu():
    from refseq.cuda import availability

    ok, why = availability()
    if not ok:
        pytest.skip(why)
    rows = bench_scan.bench_scan_cuda(repeats=1, cases=({"B": 1, "T": 9, "D": 2},),
                                      log=lambda r: None)
    assert [r["kernel"] for r in rows] == ["cuda linear_scan[sequential]",
                                           "cuda linear_scan[parallel]"]
    assert all(np.isfinite(r["ms"]) for r in rows)
