"""``refseq demo making-the-most`` at a small size: reproduction A (the contamination argument) is
asserted against hand-computed numbers; the length-conditional table is checked for form."""

from __future__ import annotations

import numpy as np
import pytest

from refseq.papers.making_the_most import PAPER
from refseq.papers.making_the_most import demo as demo


@pytest.fixture(scope="module")
def result():
    return demo.run(n_sym=4, length=3, eps=0.05, prompts=2, lengths=(1, 2, 3))


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


def test_table_and_main(capsys):
    assert PAPER.demo == "making-the-most" and PAPER.number == 21
    assert demo.main(["--n-sym", "3", "--length", "2", "--eps", "0.2", "--prompts", "1"]) == 0
    out = capsys.readouterr().out
    assert "claim holds: yes" in out and "Length-conditional modes" in out
    with pytest.raises(SystemExit):
        demo.main(["--eps", "1.5"])
