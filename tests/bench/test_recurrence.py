"""refseq bench recurrence runs end to end (tiny cases; speed is reported, never asserted)."""




def test_bench_recurrence_rows_are_complete():
    from refseq.bench import recurrence as bench_recurrence

    cases = ({"what": "forward", "B": 2, "T": 5, "H": 4},
             {"what": "forward+backward", "B": 1, "T": 4, "H": 3},
             {"what": "recurrence forward", "B": 1, "T": 6, "H": 2})
    rows = bench_recurrence.bench_recurrence(repeats=1, cases=cases, log=lambda r: None)
    assert len(rows) == 3 and all(r["jit ms"] > 0 and r["numpy ms"] > 0 for r in rows)
    table = bench_recurrence.format_rows(rows)
    assert table.count("\n") == len(rows) + 1 and "goal" in table
