"""Splits and the hyperfitting loop: spec properties 3 (loss, gradients), 4 (determinism,
dataset order), 5 (splits) and 9 (memorisation), plus the validation cadence and the preset."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.models.tiny_transformer import TinyConfig, forward, init_params, named_parameters
from refseq.papers.hyperfitting.data import epoch_batches, make_hyperfit_splits
from refseq.papers.hyperfitting.metrics import teacher_forced_logits
from refseq.papers.hyperfitting.training import hyperfit
from refseq.testing.gradcheck import assert_directional
from refseq.train.lm import lm_loss_and_grad, param_dict

CFG = TinyConfig(vocab_size=8, d_model=8, n_layers=1, n_heads=2, max_positions=12)


def _data(n=8, T=12, seed=0):
    return np.random.default_rng(seed).integers(0, CFG.vocab_size, (n, T))


def _manual_loss(params, rows):
    """Mean next-token cross-entropy over the B (T - 1) predictions, written out in NumPy."""
    logits = forward(params, tokens=rows, return_hidden=False)[0].astype(np.float64)  # (B,T,V)
    total = 0.0
    for b in range(rows.shape[0]):
        for t in range(rows.shape[1] - 1):
            z = logits[b, t]
            total += np.log(np.sum(np.exp(z - z.max()))) + z.max() - z[rows[b, t + 1]]
    return total / (rows.shape[0] * (rows.shape[1] - 1))


# ------------------------------------------------------------------ 5. splits


@settings(max_examples=25)
@given(st.lists(st.integers(0, 9), min_size=6, max_size=20), st.integers(1, 3),
       st.integers(0, 3), st.sampled_from(["first", "random"]), st.integers(0, 2**31))
def test_5_splits_exact_length_disjoint_prefix(lengths, n_train, n_val, selection, seed):
    seq_len = 5
    rng = np.random.default_rng(seed)
    docs = [np.full(L, i) + 100 * np.arange(L) for i, L in enumerate(lengths)]  # id = doc
    qualifying = [i for i, L in enumerate(lengths) if L >= seq_len]
    n_gen = min(n_val, 2)
    if len(qualifying) < n_train + n_val:
        with pytest.raises(ValueError, match="documents must hold"):
            make_hyperfit_splits(docs, n_train, n_val, n_gen, seq_len, selection, rng)
        return
    tr, va, gv = make_hyperfit_splits(docs, n_train, n_val, n_gen, seq_len, selection, rng)
    assert tr.shape == (n_train, seq_len) and va.shape == (n_val, seq_len)
    doc_of = lambda rows: [int(r[0]) for r in rows]  # noqa: E731
    for r in np.concatenate([tr, va]):  # a truncated document, never padded
        np.testing.assert_array_equal(r, docs[int(r[0])][:seq_len])
    assert not set(doc_of(tr)) & set(doc_of(va))  # train / val disjoint
    np.testing.assert_array_equal(gv, va[:n_gen])  # gen_val is a prefix of val
    if selection == "first":
        assert doc_of(tr) + doc_of(va) == qualifying[:n_train + n_val]


def test_5_first_reads_lazily_and_random_draws_from_all():
    def docs():
        yield np.arange(3)
        yield np.arange(6)
        yield np.arange(7) + 1
        raise AssertionError("read past the documents needed")

    tr, va, gv = make_hyperfit_splits(docs(), 1, 1, 0, 5)
    np.testing.assert_array_equal(tr, [[0, 1, 2, 3, 4]])
    np.testing.assert_array_equal(va, [[1, 2, 3, 4, 5]])
    assert gv.shape == (0, 5)
    many = [np.full(4, i) for i in range(40)]
    picked = {int(make_hyperfit_splits(many, 2, 0, 0, 4, "random", s).train[0, 0])
              for s in range(20)}
    assert len(picked) > 5 and max(picked) >= 2  # not always the first documents


def test_5_split_bad_input():
    with pytest.raises(ValueError, match="n_gen_val"):
        make_hyperfit_splits([np.arange(4)] * 4, 1, 1, 2, 4)
    with pytest.raises(ValueError, match="selection"):
        make_hyperfit_splits([np.arange(4)] * 4, 1, 1, 0, 4, "last")
    with pytest.raises(TypeError, match=r"documents\[1\]"):
        make_hyperfit_splits([np.arange(4), np.ones(4)], 1, 1, 0, 4)


# ------------------------------------------------------------------ 3. loss and gradients


def test_3_first_update_loss_is_the_shifted_cross_entropy():
    params, train = init_params(CFG, seed=1), _data()
    log = hyperfit(params, train, epochs=1, lr=1e-3, batch_size=4, shuffle=False)
    assert log.train_losses.shape == (2,)
    assert abs(log.train_losses[0] - _manual_loss(params, train[:4])) <= 1e-12


def test_3_gradient_matches_finite_differences():
    params, rows = init_params(CFG, seed=2), _data(3, 7, seed=3)
    named = param_dict(params)
    _, grads = lm_loss_and_grad(named, rows, CFG)
    pick = {k: grads[k] for k in ("wte", "blocks.0.attn.W_qkv", "blocks.0.mlp.W_out", "wpe")}
    assert_directional(lambda: lm_loss_and_grad(named, rows, CFG)[0], named, pick,
                       rng=np.random.default_rng(0))


# ------------------------------------------------------------------ 4. determinism, order


def test_4_same_seed_same_run_and_input_untouched():
    params, train = init_params(CFG, seed=4), _data()
    before = {k: v.copy() for k, v in named_parameters(params)}
    kw = dict(epochs=3, lr=1e-2, batch_size=4, validate_every=2, val=train[:4],
              gen_val=train[:2], context_len=3)
    a, b = hyperfit(params, train, **kw, seed=7), hyperfit(params, train, **kw, seed=7)
    for (k, x), (_, y) in zip(named_parameters(a.params), named_parameters(b.params)):
        np.testing.assert_array_equal(x, y, err_msg=k)
    np.testing.assert_array_equal(a.train_losses, b.train_losses)
    assert [e.val_loss for e in a.entries] == [e.val_loss for e in b.entries]
    for k, v in named_parameters(params):
        np.testing.assert_array_equal(v, before[k], err_msg=f"{k} was modified")
    c = hyperfit(params, train, **kw, seed=8)
    assert not np.array_equal(c.train_losses, a.train_losses)  # another shuffling order


def test_4_shuffle_false_uses_the_dataset_order():
    params, train = init_params(CFG, seed=5), _data()
    log = hyperfit(params, train, epochs=1, lr=0.0, batch_size=3, shuffle=False,
                   drop_last=False)
    # lr 0: parameters never move, so each loss is the manual loss of rows in order
    expect = [_manual_loss(params, train[i:i + 3]) for i in (0, 3, 6)]
    np.testing.assert_allclose(log.train_losses, expect, rtol=0, atol=1e-12)
    batches = epoch_batches(10, 4, True, True, np.random.default_rng(0))
    assert len(batches) == 2 and len(set(np.concatenate(batches))) == 8  # drop_last


# ------------------------------------------------------------------ cadence, preset, checks


def test_validation_cadence_follows_the_official_trigger():
    params, train = init_params(CFG, seed=6), _data(16)
    log = hyperfit(params, train, epochs=3, lr=1e-3, batch_size=4, validate_every=5,
                   val=train[:3], seed=0)  # 4 updates per epoch, 12 in total
    assert [e.update for e in log.entries] == [0, 4, 9]  # (u + 1) % 5 == 0
    assert [e.epoch for e in log.entries] == [0.0, 0 + 3 / 4, 2 + 0 / 4]
    assert log.entries[0].train_loss is None and log.entries[0].val_ttr is None
    assert log.entries[1].train_loss == pytest.approx(np.mean(log.train_losses[:4]), abs=1e-15)
    assert log.entries[2].train_loss == pytest.approx(np.mean(log.train_losses[4:9]), abs=1e-15)
    lv = teacher_forced_logits(log.params, train[:3])
    assert np.isfinite(log.entries[2].val_loss) and len(lv) == 1


def test_official_preset_and_paper_defaults():
    params, train = init_params(CFG, seed=7), _data(8)
    log = hyperfit(params, train, preset="official_script", batch_size=8, validate_every=10**6)
    s = log.settings
    assert (s["epochs"], s["lr"], s["optimizer"], s["weight_decay"]) == (30, 5e-6, "adamw", 0.01)
    assert len(log.train_losses) == 30
    d = hyperfit(params, train, epochs=1, batch_size=8).settings
    assert (d["lr"], d["optimizer"], d["weight_decay"]) == (1e-6, "adam", 0.0)


def test_hyperfit_bad_input():
    params, train = init_params(CFG, seed=8), _data(8)
    with pytest.raises(ValueError, match="dropout"):
        hyperfit(params, train, dropout=0.1)
    with pytest.raises(ValueError, match="preset"):
        hyperfit(params, train, preset="fast")
    with pytest.raises(ValueError, match="train"):
        hyperfit(params, train + CFG.vocab_size)
    with pytest.raises(ValueError, match="batch_size"):
        hyperfit(params, train[:2], batch_size=4)
    with pytest.raises(TypeError, match="params"):
        hyperfit({"wte": np.zeros(3)}, train)
    with pytest.raises(ValueError, match="optimizer"):
        hyperfit(params, train, optimizer="sgd")


# ------------------------------------------------------------------ 9. memorisation


def test_9_hyperfitting_memorises_the_training_sequences():
    cfg = TinyConfig(vocab_size=16, d_model=16, n_layers=1, n_heads=2, max_positions=16)
    params = init_params(cfg, seed=0)
    train = np.random.default_rng(1).integers(0, 16, (8, 16))
    log = hyperfit(params, train, epochs=120, lr=1e-2, batch_size=8, validate_every=10**6)
    logits = forward(log.params, tokens=train, return_hidden=False)[0]  # (8, 16, V)
    assert _manual_loss(log.params, train) < 0.05
    assert np.mean(np.argmax(logits[:, :-1], -1) == train[:, 1:]) >= 0.98
