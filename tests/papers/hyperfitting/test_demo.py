"""``refseq demo hyperfitting`` at a reduced size (V = 32, 1 block, d = 16, 8 training rows of
24 tokens, ~2-3 s per run; with V = 16, prefixes shared by the 8 rows left an irreducible
training loss above 0.05 for some seeds): the spec's asserted claims, the reported numbers'
ranges, the table."""

from __future__ import annotations

import re

import pytest

from refseq.papers.hyperfitting import demo

SMALL = dict(vocab=32, seq_len=24, d_model=16, n_layers=1, n_heads=2, pretrain_steps=60,
             n_corpus=200, n_train=8, n_val=8, context_len=4, ttr_window=8, epochs=200,
             lr=1e-2, validate_every=50)


@pytest.fixture(scope="module", params=[0, 1])
def small(request):
    return demo.run(seed=request.param, **SMALL)


def test_asserted_claims_hold(small):
    p, h = small["pretrained"], small["hyperfitted"]
    assert h["train_loss"] < 0.05  # memorised
    assert h["val_entropy"] <= 0.5 * p["val_entropy"]  # distributions collapse
    assert h["val_loss"] > p["val_loss"]  # and validation loss gets worse
    assert small["ok"] and small["loss_ok"] and small["entropy_ok"] and small["val_loss_ok"]


def test_reported_numbers_are_well_formed(small):
    for key in ("agreement", "same_top1_as_pretrained", "top1_prob", "top1_is_target",
                "sampled_ttr", "blocked_ttr"):
        assert 0.0 <= small[key] <= 1.0, key
    assert small["overlap8"]["blocked"] == 0.0 or small["blocked_events"] > 0  # n = 5 < 8
    assert [c["update"] for c in small["curve"]] == [0, 49, 99, 149, 199]
    assert small["curve"][0]["val_loss"] == pytest.approx(small["pretrained"]["val_loss"],
                                                          abs=1e-12)


def test_table_format(small):
    text = demo.format_table(small)
    lines = text.splitlines()
    assert lines[0].startswith("Hyperfitting a tiny pretrained transformer")
    rows = [ln for ln in lines if re.fullmatch(r"(pretrained|hyperfitted)(\s+\d+\.\d{4}){4}", ln)]
    assert len(rows) == 2
    assert "final training loss < 0.05: yes" in text
    assert "top-1 agreement of two hyperfitted models" in text


def test_main_prints_the_table(capsys):
    rc = demo.main(["--pretrain-steps", "2", "--epochs", "1", "--n-train", "8"])
    out = capsys.readouterr().out
    assert rc == 1 and "final training loss < 0.05: NO" in out  # one epoch cannot memorise
