"""refseq bench recurrence runs end to end (tiny cases; speed is reported, never asserted)."""

import numpy as np
import pytest


def test_bench_recurrence_rows_are_complete():
    from refseq.bench import recurrence as bench_recurrence

    cases = ({"what": "forward", "B": 2, "T": 5, "H": 4},
             {"what": "forward+backward", "B": 1, "T": 4, "H": 3},
             {"what": "recurrence forward", "B": 1, "T": 6, "H": 2})
    rows = bench_recurrence.bench_recurrence(repeats=1, cases=cases, log=lambda r: None)
    assert len(rows) == 3 and all(r["jit ms"] > 0 and r["numpy ms"] > 0 for r in rows)
    table = bench_recurrence.format_rows(rows)
    assert table.count("\n") == len(rows) + 1 and "goal" in table


def test_bench_recurrence_has_user_path_rows_with_their_ratios():
    """The documented call path (rnn_forward / rnn_backward) is timed beside the kernels."""
    from refseq.bench import recurrence as bench_recurrence

    cases = ({"what": "forward", "B": 2, "T": 5, "H": 4},
             {"what": "forward+backward", "B": 1, "T": 4, "H": 3},
             {"what": "recurrence forward", "B": 1, "T": 6, "H": 2})
    rows = bench_recurrence.bench_recurrence(repeats=1, numpy_reference=False, cases=cases,
                                             log=lambda r: None)
    for row in rows[:2]:
        assert row["user ms"] > 0
        assert row["user / jit"] == pytest.approx(row["user ms"] / row["jit ms"], rel=1e-12)
        assert row["torch / user"] == pytest.approx(row["torch ms"] / row["user ms"], rel=1e-12,
                                                    nan_ok=True)  # NaN without torch
        assert row["goal"].startswith("torch / user")
    assert np.isnan(rows[2]["user ms"])
    header = bench_recurrence.format_rows(rows).splitlines()[0]
    assert "user ms" in header and "user / jit" in header and "torch / user" in header
