"""The command line: audit exits 0 when every check passes and prints the table."""

import subprocess
import sys

from refseq.cli import main


def test_audit_prints_a_table_and_passes(capsys):
    assert main(["audit", "--tier", "numpy", "--tier", "jit", "--repeats", "0"]) == 0
    out = capsys.readouterr().out
    assert "linear_scan" in out and "softmax_scan_backward" in out
    assert "FAIL" not in out and out.rstrip().endswith("0 failed")


def test_audit_rejects_unknown_hot_path(capsys):
    assert main(["audit", "--only", "nope"]) == 2


def test_papers_and_module_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "refseq", "papers"], capture_output=True, text=True, check=True
    ).stdout
    assert "Attention as an RNN (Aaren)" in out and "implemented" in out


def test_papers_table_lists_all_29_papers_and_the_cross_cutting_specs():
    from refseq.papers import CROSS_CUTTING, PLANNED, format_papers, paper, slugs

    numbers = sorted([paper(s).number for s in slugs()] + [n for n, *_ in PLANNED])
    assert numbers == list(range(1, 30))  # each paper once: a package or a planned row
    lines = format_papers().splitlines()
    assert len(lines) == 2 + 29 + len(CROSS_CUTTING) + 1
    assert lines[-1] == f"{len(slugs())} of {29 + len(CROSS_CUTTING)} implemented"


def test_demo_without_a_name_lists_every_paper_demo(capsys):
    from refseq.papers import demos

    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert set(demos()) == {"aaren", "gradient-noise", "pv-rnn", "recoding", "rnn-review",
                            "rnn-sparsity"}
    for name, (_, summary) in demos().items():
        assert f"{name}  " in out and summary in out and summary


def test_bench_and_demo_reject_unknown_names_with_the_list(capsys):
    assert main(["demo", "nope"]) == 2
    assert "rnn-review" in capsys.readouterr().err
    assert main(["bench", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark 'nope'" in err and "recurrence" in err and "train" in err


def test_help_texts_carry_no_markup():
    from refseq.cli import build_parser

    text = build_parser().format_help()
    assert "``" not in text and ":mod:" not in text and ":func:" not in text
