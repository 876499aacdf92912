"""``refseq demo making-the-most`` at a small size: reproduction A (the contamination argument) is
asserted against hand-computed numbers; the length-conditional, recurrence and HSO tables are
checked for form."""

from __future__ import annotations

import numpy as np
import pytest

from refseq.papers.making_the_most import PAPER
from refseq.papers.making_the_most import demo as demo


@pytest.fixture(scope="module")
def result():
    return demo.run(n_sym=4, length=3, eps=0.05, prompts=2, lengths=(1, 2, 3), steps=2,
                    batch_size=2, hso_steps=2,
                    hso_kwargs=dict(n=40, segment=8, cache_len=16, n_texts=1, lrs=(1e-2, 1e-1),
                                    batch_size=2))


def test_contamination_claim(result):
    u, pk = result["uniform"], result["peaked"]
    N = 4 ** 3
    assert result["ok"]
    assert u["mode"] == (4,) and np.isclose(u["mode_p"], 0.05)  # the empty output, q = eps
    assert np.isclose(u["eps_star"], (1 / N) / (1 / N + 1), rtol=1e-12)  # by hand
    assert len(u["cond"]) == 4 and np.isclose(u["cond_p"], 0.95 / N)  # a population string
    below, above = pk["sides"]
    assert below["mode"] == pk["top"] and above["mode"] == (4,)
    assert below["cond"] == above["cond"] == pk["top"]


def test_length_table(result):
    for r in result["markov"]["rows"]:
        assert set(r["modes"]) == {1, 2, 3}
        assert all(n == L for L, (n, _) in r["modes"].items())
        # the unconditional mode (lengths 0..3) is at least as probable as every L-mode
        assert r["uncond_lp"] >= max(lp for _, lp in r["modes"].values()) - 1e-12
        assert 0 <= r["uncond_len"] <= 3 and 0 <= r["acbs_hits"] <= 3


def test_copy_task_repeats_the_previous_key():
    x = demo.copy_task(5, n_blocks=3, block=6, n_keys=4, n_fill=3, seed=1).reshape(5, 3, 6)
    assert np.array_equal(x[:, 1:, -1], x[:, :-1, 0])  # block b ends with block b-1's key
    assert x[:, :, [0, -1]].max() < 4 and x[:, :, 1:-1].min() >= 4 and x.max() < 7


def test_recurrence_rows(result):
    rc = result["recurrence"]
    assert [r["M"] for r in rc["rows"]] == [0, 4] and np.isclose(rc["chance"], np.log(8))
    for r in rc["rows"]:
        assert all(np.isfinite(r[k]) and r[k] > 0 for k in ("copied", "key", "filler"))


def test_hso_rows(result):
    """Reproduction C is reported, not asserted: its table has the right form, and lr = 0 (the
    first column) is the plain cached evaluation on the same texts for both targets."""
    h = result["hso"]
    assert [(r["source"][0], r["target"]) for r in h["rows"]] == [
        ("A", "kv"), ("A", "hidden"), ("B", "kv"), ("B", "hidden")]
    for r in h["rows"]:
        assert len(r["nll"]) == 3 and all(np.isfinite(x) and x > 0 for x in r["nll"])
    for a, b in zip(h["rows"][0::2], h["rows"][1::2]):  # kv and hidden baselines agree
        np.testing.assert_allclose(a["nll"][0], b["nll"][0], rtol=1e-12)
    assert "C. Hidden-state optimisation" in demo.format_table(result)


def test_table_and_main(capsys):
    assert PAPER.demo == "making-the-most" and PAPER.number == 21
    assert demo.main(["--n-sym", "3", "--length", "2", "--eps", "0.2", "--prompts", "1",
                      "--steps", "1", "--batch-size", "1", "--hso-steps", "0"]) == 0
    out = capsys.readouterr().out
    assert "claim holds: yes" in out and "Length-conditional modes" in out
    assert "recurrent (M = 4)" in out and "C. Hidden-state" not in out
    for bad in (["--eps", "1.5"], ["--eps", "nan"], ["--eps", "0"], ["--steps", "-1"],
                ["--batch-size", "0"], ["--hso-steps", "-1"]):
        with pytest.raises(SystemExit):
            demo.main(bad)
