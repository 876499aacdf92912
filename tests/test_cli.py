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
    from refseq.papers import PAPERS, STATUS, format_papers

    numbered = [p for p in PAPERS if p[0] != "—"]
    assert [int(p[0]) for p in numbered] == list(range(1, 30))
    assert len(PAPERS) == 31  # plus the verification core and search decoding specs
    assert set(STATUS) <= {p[1] for p in PAPERS}
    done = sum(status == "implemented" for status, _ in STATUS.values())
    assert format_papers().splitlines()[-1] == f"{done} of 31 implemented"
