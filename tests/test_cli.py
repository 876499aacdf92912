"""The command line: audit exits 0 when every check passes and prints the table; bad option
values end with an argparse message and exit status 2, never a traceback."""

import importlib
import re
import subprocess
import sys

import pytest

from refseq.cli import main


def test_audit_prints_a_table_and_passes(capsys):
    assert main(["audit", "--tier", "numpy", "--tier", "jit", "--repeats", "0"]) == 0
    out = capsys.readouterr().out
    assert "linear_scan" in out and "softmax_scan_backward" in out
    assert "FAIL" not in out and out.rstrip().endswith("0 failed")


def test_audit_prints_each_function_s_contract_from_the_oracle_catalog(capsys):
    from refseq.oracle import get_contract

    assert main(["audit", "--tier", "numpy", "--only", "softmax_scan", "--repeats", "0"]) == 0
    out = capsys.readouterr().out
    c = get_contract("softmax_scan")
    assert c.signature in out and f"v: {c.layouts['v']}" in out
    assert "linear_scan(" not in out  # only the audited functions


def test_audit_rejects_unknown_hot_path(capsys):
    with pytest.raises(SystemExit) as e:
        main(["audit", "--only", "nope"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --only: unknown hot path 'nope'" in err and "linear_scan" in err


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
    done = len(slugs()) + sum(1 for *_, where in CROSS_CUTTING if where)
    assert lines[-1] == f"{done} of {29 + len(CROSS_CUTTING)} implemented"


def test_demo_without_a_name_lists_every_paper_demo(capsys):
    from refseq.papers import demos

    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert set(demos()) == {"aaren", "aded", "diverse-beam-search", "dyspec", "gradient-noise",
                            "hyperfitting", "kv-bottleneck", "making-the-most", "pv-rnn",
                            "recoding", "recurrentgpt", "recursive-speculative-decoding",
                            "rnn-review", "rnn-sparsity", "token-recycling"}
    for name, (_, summary) in demos().items():
        assert f"{name}  " in out and summary in out and summary


def test_bench_and_demo_reject_unknown_names_with_the_list(capsys):
    with pytest.raises(SystemExit) as e:
        main(["demo", "nope"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown demo 'nope'" in err and "rnn-review" in err and "usage:" in err
    with pytest.raises(SystemExit) as e:
        main(["bench", "nope"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown benchmark 'nope'" in err and "recurrence" in err and "train" in err


def test_help_texts_carry_no_markup():
    from refseq.cli import build_parser

    text = build_parser().format_help()
    assert "``" not in text and ":mod:" not in text and ":func:" not in text


# --- bad option values: usage + "error: argument --X: ..." and exit status 2 ----------------------

BAD = [
    (["audit", "--seed", "-1"], "argument --seed: must be a non-negative integer seed, got -1"),
    (["audit", "--seed", "abc"], "argument --seed: must be a non-negative integer seed, got 'abc'"),
    (["audit", "--seed", "1.5"], "argument --seed"),
    (["audit", "--repeats", "-2"], "argument --repeats: must be a non-negative integer, got -2"),
    (["audit", "--repeats", "many"], "argument --repeats"),
    (["audit", "--tier", "gpu"], "argument --tier: invalid choice"),
    (["audit", "--only", "nope"], "argument --only: unknown hot path 'nope'"),
    (["audit", "--bogus"], "unrecognized arguments: --bogus"),
    (["bench", "scan", "--repeats", "0"], "argument --repeats: must be a positive integer, got 0"),
    (["bench", "scan", "--repeats", "-3"], "argument --repeats: must be a positive integer"),
    (["bench", "train", "--repeats", "x"], "argument --repeats: must be a positive integer"),
    (["bench", "nope"], "argument NAME: unknown benchmark 'nope'"),
    (["demo", "nope"], "argument name: unknown demo 'nope'"),
    (["demo", "aaren", "--T", "-5"], "argument --T: must be a positive integer, got -5"),
    (["demo", "aaren", "--T", "0"], "argument --T: must be a positive integer, got 0"),
    (["demo", "aaren", "--Dk", "x"], "argument --Dk: must be a positive integer, got 'x'"),
    (["demo", "aaren", "--T", "8", "--checkpoints", "9"], "argument --checkpoints"),
    (["demo", "aaren", "--scan-T", "-1"], "argument --scan-T"),
    (["demo", "pv-rnn", "--epochs", "-1"], "argument --epochs: must be a positive integer, got -1"),
    (["demo", "pv-rnn", "--ws", "nan"], "argument --ws: must be a finite number >= 0, got nan"),
    (["demo", "pv-rnn", "--ws", "-0.1"], "argument --ws"),
    (["demo", "gradient-noise", "--eta", "inf"], "argument --eta: must be a finite number >= 0"),
    (["demo", "gradient-noise", "--seeds", "0", "-1"], "argument --seeds"),
    (["demo", "gradient-noise", "--depth", "0"], "argument --depth"),
    (["demo", "recoding", "--alphas", "0"], "argument --alphas: must be a finite number > 0"),
    (["demo", "recoding", "--n-train", "63"], "argument --n-train"),
    (["demo", "recoding", "--n-test", "15"], "argument --n-test"),
    (["demo", "rnn-review", "--H", "0"], "argument --H: must be a positive integer, got 0"),
    (["demo", "rnn-sparsity", "--retrain-epochs", "-1"], "argument --retrain-epochs"),
    (["demo", "rnn-sparsity", "--mode", "foo"], "argument --mode: invalid choice"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_values_exit_2_with_an_argparse_message(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "usage: refseq" in err and "error: " in err and message in err, err
    assert "Traceback" not in err


def test_bad_value_from_the_shell_has_no_traceback():
    r = subprocess.run([sys.executable, "-m", "refseq", "demo", "aaren", "--T", "-5"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines()[-1] == (
        "refseq demo aaren: error: argument --T: must be a positive integer, got -5")
    assert "Traceback" not in r.stderr


def _collect_options():
    # the demos build their parser inside main(); capture every parser's options by name
    import argparse

    from refseq.papers import demos

    real = argparse.ArgumentParser.parse_args
    for name, (module, _) in demos().items():
        seen = []

        def spy(self, args=None, namespace=None, _seen=seen):
            _seen.extend(a for a in self._actions if a.option_strings and a.dest != "help")
            raise SystemExit(0)

        argparse.ArgumentParser.parse_args = spy
        try:
            importlib.import_module(module).main([])
        except SystemExit:
            pass
        finally:
            argparse.ArgumentParser.parse_args = real
        for action in seen:
            yield name, module, action.option_strings[-1], action.type, action.choices


DEMO_OPTIONS = list(_collect_options())


def test_every_demo_option_was_found():
    from refseq.papers import demos

    assert {n for n, *_ in DEMO_OPTIONS} == set(demos())  # every demo's parser was read
    assert all(t is not None or c for *_, t, c in DEMO_OPTIONS), "an option without a type="


@pytest.mark.parametrize("bad", ["-1", "0", "abc", "nan", "inf", "1e999"])
@pytest.mark.parametrize("name,module,option,kind,choices", DEMO_OPTIONS,
                         ids=[f"{n}{o}" for n, _, o, *_ in DEMO_OPTIONS])
def test_every_demo_option_rejects_bad_values(name, module, option, kind, choices, bad, capsys,
                                              monkeypatch):
    """Every option of every demo, fed the standard bad values; a value the option accepts
    must be a valid one (0 for a count that may be 0, a seed of 0), and the demo must not run
    with any other: its ``run`` is replaced by a tripwire."""
    mod = importlib.import_module(module)

    def tripwire(*args, **kwargs):
        raise AssertionError(f"refseq demo {name} {option} {bad} ran")

    monkeypatch.setattr(mod, "run", tripwire)
    accepted = kind is not None and _accepts(kind, bad)
    try:
        main(["demo", name, option, bad])
    except SystemExit as e:
        assert e.code == 2, (option, bad)
        err = capsys.readouterr().err
        assert f"error: argument {option}" in err and "Traceback" not in err, err
        assert not accepted, f"{option} {bad} rejected but the converter accepts it"
    except AssertionError:
        assert accepted, f"{option} {bad} reached run()"
    else:  # pragma: no cover
        raise AssertionError(f"{option} {bad}: neither rejected nor run")


def _accepts(kind, text):
    """Whether the type= converter accepts ``text`` (0 for non-negative counts and seeds)."""
    import argparse

    try:
        kind(text)
    except (argparse.ArgumentTypeError, ValueError, TypeError):
        return False
    assert kind.__name__ in ("nonnegative_int", "seed", "nonnegative_float"), (kind, text)
    assert text == "0", (kind, text)
    return True


def test_help_of_every_subcommand_and_demo(capsys):
    from refseq.papers import demos

    for argv in (["--help"], ["audit", "--help"], ["bench", "--help"], ["demo", "--help"],
                 ["papers", "--help"]) + tuple(["demo", d, "--help"] for d in demos()):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0, argv
        assert re.search(r"^usage: refseq", capsys.readouterr().out), argv
