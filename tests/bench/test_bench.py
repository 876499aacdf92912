"""The benchmarks run end to end (tiny cases; speed is reported, never asserted)."""

import numpy as np
import pytest

from refseq.bench import scan as bench_scan
from refseq.bench import train as bench_train


def test_bench_scan_rows_are_complete():
    rows = bench_scan.bench_scan(repeats=1, cases=({"B": 2, "T": 64, "D": 64},), log=lambda r: None)
    assert [r["kernel"] for r in rows] == ["jit linear_scan", "jit softmax_scan"]
    for r in rows:
        assert r["ms"] > 0 and r["GB/s"] > 0 and r["copy GB/s"] > 0 and r["vs numpy"] > 0
    table = bench_scan.format_rows(rows)
    assert "of copy" in table and len(table.splitlines()) == 4


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


def test_bench_train_rows_are_complete():
    case = {"V": 11, "D": 8, "L": 1, "H": 2, "T": 6, "B": 2}
    rows = bench_train.bench_train(repeats=1, case=case, log=lambda r: None)
    assert rows[0]["kernel"].startswith("refseq") and rows[0]["ms"] > 0
    assert len(rows) == 2 and rows[1]["kernel"].startswith("torch")
    table = bench_train.format_train_rows(rows)
    assert "refseq train step" in table and len(table.splitlines()) == 2


def test_bench_recurrence_rows_are_complete():
    from refseq.bench import recurrence as bench_recurrence

    cases = ({"what": "forward", "B": 2, "T": 5, "H": 4},
             {"what": "forward+backward", "B": 1, "T": 4, "H": 3},
             {"what": "recurrence forward", "B": 1, "T": 6, "H": 2})
    rows = bench_recurrence.bench_recurrence(repeats=1, cases=cases, log=lambda r: None)
    assert len(rows) == 3 and all(r["jit ms"] > 0 and r["numpy ms"] > 0 for r in rows)
    table = bench_recurrence.format_rows(rows)
    assert table.count("\n") == len(rows) + 1 and "goal" in table
