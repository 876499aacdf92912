"""refseq bench train runs end to end (a tiny case; speed is reported, never asserted)."""


from refseq.bench import train as bench_train


def test_bench_train_rows_are_complete():
    case = {"V": 11, "D": 8, "L": 1, "H": 2, "T": 6, "B": 2}
    rows = bench_train.bench_train(repeats=1, case=case, log=lambda r: None)
    assert rows[0]["kernel"].startswith("refseq") and rows[0]["ms"] > 0
    assert len(rows) == 2 and rows[1]["kernel"].startswith("torch")
    table = bench_train.format_train_rows(rows)
    assert "refseq train step" in table and len(table.splitlines()) == 2
