"""Part A: the recurrent transformer (making-the-most properties 1-5) and its baselines."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.models.tiny_transformer import TinyConfig, forward, init_params, map_parameters
from refseq.papers.making_the_most.recurrent import RecurrentLM, StreamState
from refseq.papers.making_the_most.recurrent_train import (
    isolated_windows,
    recurrent_loss_and_grad,
    sliding_window,
    train_recurrent,
    trainable_parameters,
)

CFG = TinyConfig(vocab_size=7, d_model=8, n_layers=3, n_heads=2, max_positions=24)
PARAMS = init_params(CFG, 0)
fast = settings(deadline=None, max_examples=6)
layers = st.sampled_from([(0, 0), (0, 3), (1, 1), (1, 2), (2, 3)])  # (write_layer, read_layer)
pools = st.sampled_from(["attention", "mean", "last"])


def _tokens(seed, n):
    return np.random.default_rng(seed).integers(0, CFG.vocab_size, n)


@fast
@given(st.integers(0, 10**6), st.integers(1, 20), st.integers(1, 6), layers)
def test_no_memory_is_isolated_windows_and_one_window_is_the_base_model(seed, n, w, lwr):
    """Property 1, against plain forwards of the base model."""
    tok = _tokens(seed, n)
    m = RecurrentLM(PARAMS, w, 0, write_layer=lwr[0], read_layer=lwr[1])
    want = np.concatenate([forward(PARAMS, tokens=tok[a:a + w])[0] for a in range(0, n, w)])
    np.testing.assert_allclose(m.forward_windows(tok), want, atol=1e-10)
    np.testing.assert_allclose(isolated_windows(PARAMS, tok, w), want, atol=1e-10)
    whole = RecurrentLM(PARAMS, 20, 0, write_layer=lwr[0], read_layer=lwr[1])
    np.testing.assert_allclose(whole.forward_windows(tok), forward(PARAMS, tokens=tok)[0],
                               atol=1e-10)


@fast
@given(st.integers(0, 10**6), st.integers(1, 17), st.integers(1, 5), st.integers(1, 4), layers,
       pools, st.booleans())
def test_streaming_equals_forward_windows(seed, n, w, M, lwr, pool, carry):
    """Property 2 (logits and final memory) and property 4 (bounded state), float64."""
    m = RecurrentLM(PARAMS, w, M, write_layer=lwr[0], read_layer=lwr[1], pool=pool, carry=carry,
                    seed=seed)
    tok = _tokens(seed, n)
    logits, S = m.forward_windows(tok[:n - n % w] if n >= w else tok, return_memory=True)
    state, out = m.stream_init(), []
    for x in tok:
        lg, state = m.stream_step(state, int(x))
        out.append(lg)
        assert state.upper_kv.shape[-2] <= M + w - 1 and state.lower_kv.shape[-2] <= w - 1
        assert state.read_win.shape[0] <= w - 1 and state.memory.shape == (M, CFG.d_model)
    np.testing.assert_allclose(np.array(out), m.forward_windows(tok), atol=1e-10)
    if n >= w:  # after the last full window, the streamed memory is the windows' memory
        last_full = n - n % w
        state = m.stream_init()
        for x in tok[:last_full]:
            _, state = m.stream_step(state, int(x))
        np.testing.assert_allclose(state.memory, S, atol=1e-10)


def test_streaming_float32():
    p32 = init_params(TinyConfig(7, 8, 3, 2, 24, dtype="float32"), 0)
    m = RecurrentLM(p32, 4, 2, write_layer=1, read_layer=2)
    tok = _tokens(3, 11)
    state, out = m.stream_init(), []
    for x in tok:
        lg, state = m.stream_step(state, int(x))
        out.append(lg)
    got = m.forward_windows(tok)
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.array(out), got, atol=1e-4)


@fast
@given(st.integers(0, 10**6), st.integers(0, 3), layers, pools)
def test_window_logits_ignore_later_windows(seed, k, lwr, pool):
    """Property 3: logits of windows <= k do not change when windows > k change."""
    w, n = 4, 18
    m = RecurrentLM(PARAMS, w, 2, write_layer=lwr[0], read_layer=lwr[1], pool=pool, seed=seed)
    tok = _tokens(seed, n)
    other = tok.copy()
    cut = (k + 1) * w
    other[cut:] = (other[cut:] + 1) % CFG.vocab_size
    a, b = m.forward_windows(tok), m.forward_windows(other)
    np.testing.assert_array_equal(a[:cut], b[:cut])
    assert not np.allclose(a[cut:], b[cut:])


@pytest.mark.parametrize("pool", ["attention", "mean", "last"])
@pytest.mark.parametrize("lwr", [(0, 0), (1, 2), (2, 3)])
def test_gradient_through_two_windows_matches_finite_differences(pool, lwr):
    """Property 5: memory-module parameters, S_0 and base weights, central differences along a
    random direction (float64, eps 1e-6), two windows per row, no truncation."""
    m = RecurrentLM(PARAMS, 5, 3, write_layer=lwr[0], read_layer=lwr[1], pool=pool, seed=1)
    tok = np.stack([_tokens(1, 10), _tokens(2, 10)])  # (B, n): two windows of 5
    _, g = recurrent_loss_and_grad(m, tok, bptt_windows=2)
    rng = np.random.default_rng(0)
    for name, p in trainable_parameters(m).items():
        if not (name.startswith("mem.") or name in ("base.wte", "base.wpe",
                                                     "base.blocks.2.attn.W_qkv")):
            continue
        d, orig = rng.standard_normal(p.shape), p.copy()
        p[...] = orig + 1e-6 * d
        up = recurrent_loss_and_grad(m, tok, 2)[0]
        p[...] = orig - 1e-6 * d
        down = recurrent_loss_and_grad(m, tok, 2)[0]
        p[...] = orig
        np.testing.assert_allclose(np.sum(g[name] * d), (up - down) / 2e-6, rtol=1e-5,
                                   atol=1e-9, err_msg=name)


def test_truncation_cuts_the_memory_path():
    """bptt_windows = 1 detaches every S_{k+1}: no memory-module gradient (S_0 still gets one);
    bptt_windows >= the number of windows is the full gradient, which is not zero."""
    m = RecurrentLM(PARAMS, 4, 2, write_layer=1, read_layer=2, seed=2)
    tok = _tokens(5, 12)[None]
    _, cut = recurrent_loss_and_grad(m, tok, 1)
    _, full = recurrent_loss_and_grad(m, tok, 3)
    for k in ("mem.U", "mem.W_q", "mem.W_v", "mem.W_out"):
        assert np.all(cut[k] == 0) and np.any(full[k] != 0), k
    assert np.any(cut["mem.S0"] != 0)
    # only window 0 sees S_0 when every S_{k+1} is detached: its gradient is window 0's alone
    _, first = recurrent_loss_and_grad(m, tok[:, :5], 1)  # window 0 and its boundary label
    np.testing.assert_allclose(cut["mem.S0"] * 11 / 4, first["mem.S0"], atol=1e-12)


def test_sliding_window_sees_the_whole_prefix_inside_the_first_window():
    tok = _tokens(7, 12)
    got = sliding_window(PARAMS, tok, 5)
    np.testing.assert_allclose(got[:5], forward(PARAMS, tokens=tok[:5])[0], atol=1e-10)
    for j in (5, 11):  # later tokens: their last 5 tokens at positions 0..4
        np.testing.assert_allclose(got[j], forward(PARAMS, tokens=tok[j - 4:j + 1])[0][-1],
                                   atol=1e-10)


def test_training_lowers_the_loss_and_copies_the_model():
    m = RecurrentLM(PARAMS, 4, 2, write_layer=1, read_layer=2)
    before = map_parameters(np.copy, m.base)
    data = np.tile(np.arange(7), (4, 2))[:, :12]  # (4, 12) a cyclic pattern
    trained, losses = train_recurrent(m, data, lr=1e-2, steps=30, batch_size=2, bptt_windows=3)
    assert losses[-1] < 0.5 * losses[0]
    assert np.array_equal(m.base.wte, before.wte)  # the input model is untouched
    frozen, _ = train_recurrent(m, data, lr=1e-2, steps=3, batch_size=2, bptt_windows=3,
                                finetune_base=False)
    assert np.array_equal(frozen.base.wte, m.base.wte) and not np.array_equal(frozen.mem["U"],
                                                                               m.mem["U"])


@pytest.mark.parametrize("kwargs, exc", [
    (dict(window=0), ValueError), (dict(n_mem=-1), ValueError), (dict(write_layer=3), ValueError),
    (dict(write_layer=2, read_layer=1), ValueError), (dict(pool="max"), ValueError),
    (dict(carry=1), TypeError), (dict(mem_init="ones"), ValueError),
    (dict(window=20, n_mem=5), ValueError),
])
def test_bad_arguments(kwargs, exc):
    with pytest.raises(exc):
        RecurrentLM(PARAMS, **(dict(window=4, n_mem=2) | kwargs))


def test_bad_calls():
    m = RecurrentLM(PARAMS, 4, 2)
    with pytest.raises(ValueError, match="tokens"):
        m.forward_windows(np.full(3, 7))
    with pytest.raises(TypeError, match="tokens"):
        m.forward_windows(np.zeros(3))
    with pytest.raises(TypeError, match="state"):
        m.stream_step((1, 2), 0)
    with pytest.raises(ValueError, match="token"):
        m.stream_step(m.stream_init(), 9)
    with pytest.raises(ValueError, match="bptt_windows"):
        recurrent_loss_and_grad(m, np.zeros((1, 5), int), 0)
    with pytest.raises(TypeError, match="model"):
        train_recurrent(PARAMS, np.zeros((1, 5), int), lr=0.1, steps=1, batch_size=1,
                        bptt_windows=1)
    assert isinstance(m.stream_init(), StreamState)
