"""Metrics: spec properties 1 (TTR with padding), 2 (entropy), 8 (agreement, ranks), the
official conventions of validate (mean of batch means, eps inside the log)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.models.tiny_transformer import TinyConfig, forward, init_params
from refseq.papers.hyperfitting import (
    mean_entropy,
    mean_ttr,
    perplexity,
    rank_stats,
    reference_rank,
    top1_agreement,
    val_loss,
    validate,
)

floats = st.sampled_from([np.float32, np.float64])


# ------------------------------------------------------------------ 1. TTR over continuations


def test_1_mean_ttr_excludes_padding_after_eos():
    # row 0 stops at EOS (= 9) after 3 tokens and is padded with 9; row 1 runs to the end
    c = np.array([[1, 2, 9, 9, 9, 9], [1, 1, 2, 2, 3, 3]])
    lengths = np.array([3, 6])
    assert mean_ttr(c, lengths, window=None) == pytest.approx((3 / 3 + 3 / 6) / 2, abs=0)
    # official: the whole padded row counts ({1, 2, 9} over 6 tokens)
    assert mean_ttr(c, lengths, window=None, exclude_pad=False) == (3 / 6 + 3 / 6) / 2
    assert mean_ttr(c, lengths, window=2) == (2 / 2 + 1 / 2) / 2  # (2, 9) and (3, 3)
    assert mean_ttr(c, window=4, exclude_pad=False) == (1 / 4 + 2 / 4) / 2
    with pytest.raises(ValueError, match="lengths"):
        mean_ttr(c, np.array([0, 6]))
    with pytest.raises(ValueError, match="lengths"):
        mean_ttr(c, np.array([3]))
    with pytest.raises(TypeError, match="exclude_pad"):
        mean_ttr(c, lengths, exclude_pad=1)


# ------------------------------------------------------------------ 2. entropy


@given(st.integers(2, 50), st.integers(1, 3), st.integers(1, 4), floats, st.floats(-50, 50))
def test_2_entropy_uniform_is_log_v(V, B, T, dtype, c):
    h = mean_entropy(np.full((B, T, V), c, dtype))
    assert abs(h - np.log(V)) <= V * 1e-9 + 1e-14  # eps in the log: -V eps + rounding


@given(st.integers(2, 50), st.integers(0, 10**6), floats)
def test_2_entropy_one_hot_is_zero_and_shift_invariant(V, seed, dtype):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((2, 3, V))
    peak = z.copy()
    peak[..., rng.integers(V)] += 1e4
    assert abs(mean_entropy(peak.astype(dtype))) <= 1e-8
    tol = 1e-12 if dtype == np.float64 else 1e-5
    base = mean_entropy(z.astype(dtype))
    assert abs(mean_entropy((z + 37.5).astype(dtype)) - base) <= tol
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    assert abs(mean_entropy(z) - np.mean(-(p * np.log(p + 1e-9)).sum(-1))) <= 1e-12


def test_2_entropy_is_a_mean_of_batch_means():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 2, 5)), 3 * rng.standard_normal((1, 2, 5))
    both = np.concatenate([a, b])
    assert mean_entropy([a, b]) == pytest.approx((mean_entropy(a) + mean_entropy(b)) / 2,
                                                 abs=1e-15)
    assert abs(mean_entropy([a, b]) - mean_entropy(both)) > 1e-3  # not the pooled mean


# ------------------------------------------------------------------ validate


def test_validate_follows_the_official_conventions():
    cfg = TinyConfig(vocab_size=11, d_model=8, n_layers=1, n_heads=2, max_positions=9)
    params = init_params(cfg, seed=0)
    val = np.random.default_rng(1).integers(0, 11, (5, 9))  # batches of 2, 2, 1
    losses, ents = [], []
    for i in (0, 2, 4):
        x = val[i:i + 2]
        z = forward(params, tokens=x, return_hidden=False)[0]  # (B, T, V)
        lse = np.log(np.exp(z).sum(-1))  # (B, T)
        nll = lse[:, :-1] - np.take_along_axis(z[:, :-1], x[:, 1:, None], -1)[..., 0]
        losses.append(nll.mean())
        p = np.exp(z - lse[..., None])
        ents.append((-(p * np.log(p + 1e-9)).sum(-1)).mean())  # all T positions
    loss, ent = validate(params, val, batch_size=2)
    assert abs(loss - np.mean(losses)) <= 1e-12 and abs(ent - np.mean(ents)) <= 1e-12
    assert val_loss(params, val, 2) == loss
    assert perplexity(loss) == pytest.approx(np.exp(np.mean(losses)), rel=1e-12)
    as_fn = lambda x: forward(params, tokens=x, return_hidden=False)[0]  # noqa: E731
    assert validate(as_fn, val, batch_size=2) == (loss, ent)  # a logits_fn works the same
    with pytest.raises(ValueError, match="T >= 2"):
        validate(params, val[:, :1])
    with pytest.raises(ValueError, match="val"):
        validate(params, val + 11)
    with pytest.raises(TypeError, match="model"):
        validate("gpt2", val)


# ------------------------------------------------------------------ 8. agreement, ranks


@settings(max_examples=30)
@given(st.integers(0, 10**6), st.integers(2, 9), floats)
def test_8_self_agreement_and_rank_zero(seed, V, dtype):
    z = np.random.default_rng(seed).standard_normal((3, 4, V)).astype(dtype)
    assert top1_agreement(z, z) == 1.0
    s = rank_stats(z, z, np.argmax(z, -1))
    assert (s["ranks"] == 0).all() and s["same_top1"] == 1.0 and s["top1_is_target"] == 1.0
    assert s["rank_hist"][0] == 12 and s["rank_hist"].sum() == 12


@settings(max_examples=30)
@given(st.integers(0, 10**6), st.integers(2, 7))
def test_8_rank_against_sorting_by_hand(seed, V):
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((5, V))
    r = rng.integers(0, 3, (5, V)).astype(float)  # many ties: rank uses the lowest-id rule
    tok = np.argmax(m, -1)
    for i in range(5):
        order = sorted(range(V), key=lambda v: (-r[i, v], v))  # stable: lower id first
        assert reference_rank(r[i], tok[i]) == order.index(tok[i])
    s = rank_stats(m, r)
    assert s["same_top1"] == top1_agreement(m, r) == np.mean(tok == np.argmax(r, -1))
    p = np.exp(m) / np.exp(m).sum(-1, keepdims=True)
    assert abs(s["top1_prob"] - p.max(-1).mean()) <= 1e-12
    assert "top1_is_target" not in s


def test_8_bad_input():
    with pytest.raises(ValueError, match="same"):
        top1_agreement(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="targets"):
        rank_stats(np.zeros((2, 3)), np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(TypeError, match="logits_a"):
        top1_agreement(np.zeros((2, 3), int), np.zeros((2, 3)))
