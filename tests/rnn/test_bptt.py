"""BPTT and truncated BPTT (refseq/rnn/bptt.py), gradient clipping and the output layer's
loss (refseq/rnn/output.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.rnn.bptt import RNNModel, bptt_grads, clip_grad_norm, clip_grad_value, truncated_bptt
from refseq.rnn.elman import ElmanLayer
from refseq.rnn.lstm import LSTMLayer, init_lstm_params
from refseq.rnn.output import last_step, last_step_backward, sequence_cross_entropy
from refseq.testing.gradcheck import assert_entrywise
from refseq.testing.strategies import seeds


def make_model(kind, rng, I=3, H=4, K=3, dtype=np.float64):
    if kind == "lstm":
        layer = LSTMLayer(init_lstm_params(rng, I, H, dtype, peepholes=True), peepholes=True)
    else:
        layer = ElmanLayer.init(rng, I, H, dtype, activation=kind)
    return RNNModel(layer, rng.standard_normal((K, H)).astype(dtype),
                    rng.standard_normal(K).astype(dtype))


def data(rng, B, T, I=3, K=3):
    return rng.standard_normal((B, T, I)), rng.integers(0, K, (B, T)), rng.random((B, T)) < 0.7


# --- full BPTT ---------------------------------------------------------------------------------

@settings(max_examples=6)
@given(seeds(), st.sampled_from(["tanh", "sigmoid", "lstm"]),
       st.sampled_from(["sum", "mean_tokens", "mean_sequences"]))
def test_bptt_grads_match_finite_differences_of_masked_loss(seed, kind, reduction):
    rng = np.random.default_rng(seed)
    model = make_model(kind, rng)
    x, y, m = data(rng, 2, 4)
    loss, grads = bptt_grads(model, x, y, m, reduction=reduction)
    assert_entrywise(lambda: float(bptt_grads(model, x, y, m, reduction=reduction)[0]),
                     model.params, grads)


# --- truncated BPTT ----------------------------------------------------------------------------

@given(seeds(), st.sampled_from(["tanh", "lstm"]), st.integers(1, 9), st.integers(0, 3))
def test_tbptt_with_window_covering_T_is_full_bptt(seed, kind, T, extra):
    rng = np.random.default_rng(seed)
    model = make_model(kind, rng)
    x, y, m = data(rng, 2, T)
    out = list(truncated_bptt(model, x, y, T + extra, T + extra, mask=m))
    assert len(out) == 1
    loss, grads = bptt_grads(model, x, y, m)
    assert out[0][0] == loss
    for k in grads:
        np.testing.assert_array_equal(out[0][1][k], grads[k], err_msg=k)


@given(seeds(), st.sampled_from(["tanh", "lstm"]), st.integers(1, 4), st.integers(2, 11))
def test_tbptt_segments_equal_bptt_with_held_state(seed, kind, K, T):
    rng = np.random.default_rng(seed)
    model = make_model(kind, rng)
    x, y, _ = data(rng, 2, T)
    out = list(truncated_bptt(model, x, y, K, K))
    ends = list(range(K, T + 1, K)) + ([T] if T % K else [])
    assert len(out) == len(ends)
    for (loss, grads, state), b in zip(out, ends):
        a = max(0, b - K)  # the window: K steps back (also for the final, shorter block)
        state_a = model.forward(x[:, :a])[1] if a else None
        keep = np.zeros((2, b - a), bool)
        keep[:, -(b - (b - 1) // K * K):] = True  # the new losses: this block's steps only
        ref_loss, ref = bptt_grads(model, x[:, a:b], y[:, a:b], keep, state0=state_a)
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
        for k in ref:
            np.testing.assert_allclose(grads[k], ref[k], rtol=1e-10, atol=1e-13, err_msg=k)
        full_state = model.forward(x[:, :b])[1]  # the forward is never truncated
        for u, v in zip(np.atleast_1d(state), np.atleast_1d(full_state)):
            np.testing.assert_array_equal(u, v)


@settings(max_examples=6)
@given(seeds(), st.integers(1, 3), st.integers(0, 3), st.integers(3, 8))
def test_tbptt_k2_above_k1_matches_finite_differences_with_held_state(seed, k1, dk, T):
    """TBPTT(k1, k2): d/dθ of the last k1 losses, recomputed from the state k2 steps back."""
    k2 = k1 + dk
    rng = np.random.default_rng(seed)
    model = make_model("lstm", rng)
    x, y, _ = data(rng, 2, T)
    out = list(truncated_bptt(model, x, y, k1, k2))
    for j, (loss, grads, _) in enumerate(out):
        t = min((j + 1) * k1, T)
        n_new = t - j * k1
        start = max(0, t - k2)
        s0 = model.forward(x[:, :start])[1] if start else None  # held constant
        keep = np.zeros((2, t - start), bool)
        keep[:, -n_new:] = True

        def window_loss(s0=s0, start=start, t=t, keep=keep):
            logits = model.forward(x[:, start:t], s0)[0]
            return float(sequence_cross_entropy(logits, y[:, start:t], keep)[0])

        assert loss == pytest.approx(window_loss(), rel=1e-12)
        if j >= len(out) - 2:  # the last two updates (held state k2 steps back)
            assert_entrywise(window_loss, model.params, grads)


def test_tbptt_hand_derived_scalar_case():
    """H = 1, ReLU in its linear regime, TBPTT(k1 = 1, k2 = 2): at step 3 the gradient reaches
    h(2) and h(1) but stops at h(1): dL/dw = δ3 (h2 + w h1), dL/du = δ3 (x3 + w x2),
    dL/db = δ3 (1 + w), with δ3 = W_yhᵀ (softmax(o3) - onehot(y3))."""
    u, w, b = 0.5, 0.8, 0.1
    layer = ElmanLayer(np.array([[u]]), np.array([[w]]), np.array([b]), activation="relu")
    W_yh, b_y = np.array([[1.0], [-0.5]]), np.array([0.2, 0.0])
    model = RNNModel(layer, W_yh, b_y)
    x = np.array([[[0.3], [0.7], [0.2], [0.9]]])  # (1, 4, 1), all pre-activations > 0
    y = np.array([[0, 1, 1, 0]])
    out = list(truncated_bptt(model, x, y, 1, 2))
    assert len(out) == 4
    h1 = u * 0.3 + b
    h2 = u * 0.7 + w * h1 + b
    h3 = u * 0.2 + w * h2 + b
    o3 = W_yh[:, 0] * h3 + b_y
    p3 = np.exp(o3) / np.exp(o3).sum()
    d3 = W_yh[:, 0] @ (p3 - np.array([0.0, 1.0]))
    g = out[2][1]
    np.testing.assert_allclose(g["W_hh"][0, 0], d3 * (h2 + w * h1), rtol=1e-12)
    np.testing.assert_allclose(g["W_hx"][0, 0], d3 * (0.2 + w * 0.7), rtol=1e-12)
    np.testing.assert_allclose(g["b_h"][0], d3 * (1 + w), rtol=1e-12)
    np.testing.assert_allclose(g["W_yh"][:, 0], (p3 - [0.0, 1.0]) * h3, rtol=1e-12)
    np.testing.assert_allclose(out[2][2], [[h3]], rtol=1e-12)
    # step 1 starts from h(0) = 0: no recurrent-weight gradient
    assert out[0][1]["W_hh"][0, 0] == 0.0


def test_tbptt_bad_arguments():
    rng = np.random.default_rng(0)
    model = make_model("tanh", rng)
    x, y, m = data(rng, 2, 5)
    with pytest.raises(ValueError, match="k2 must be"):
        list(truncated_bptt(model, x, y, 3, 2))
    with pytest.raises(ValueError, match="k1 must be"):
        list(truncated_bptt(model, x, y, 0, 2))
    with pytest.raises(ValueError, match="mask must have shape"):
        list(truncated_bptt(model, x, y, 2, 2, mask=m[:, :4]))
    with pytest.raises(ValueError, match="stream_y"):
        list(truncated_bptt(model, x, y[:, :4], 2, 2))


# --- clipping and loss reductions ---------------------------------------------------------------

@given(seeds(), st.floats(1e-3, 1e3))
def test_clipping(seed, theta):
    rng = np.random.default_rng(seed)
    grads = {"a": rng.standard_normal((3, 4)) * rng.uniform(0, 10), "b": rng.standard_normal(5)}
    total = np.sqrt(sum((g ** 2).sum() for g in grads.values()))
    clipped, n = clip_grad_norm(grads, theta)
    assert n == pytest.approx(total, rel=1e-12)
    new = np.sqrt(sum((g ** 2).sum() for g in clipped.values()))
    assert new <= theta * (1 + 1e-12)
    if total <= theta - 1e-6:
        assert all(clipped[k] is grads[k] for k in grads)  # bit-identical, untouched
    else:  # same direction
        for k in grads:
            np.testing.assert_allclose(clipped[k] * total / new, grads[k], rtol=1e-10)
    v = clip_grad_value(grads, theta)
    assert all(np.abs(g).max() <= theta for g in v.values())


@given(seeds(), st.integers(1, 4), st.integers(1, 6), st.sampled_from([np.float32, np.float64]))
def test_loss_reductions_and_masking(seed, B, T, dtype):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((B, T, 5)).astype(dtype)
    y = rng.integers(0, 5, (B, T))
    m = rng.random((B, T)) < 0.6
    s, ds = sequence_cross_entropy(logits, y, m, "sum")
    mt, dmt = sequence_cross_entropy(logits, y, m, "mean_tokens")
    ms, _ = sequence_cross_entropy(logits, y, m, "mean_sequences")
    assert s.dtype == ds.dtype == dtype
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(s, mt * max(m.sum(), 1), rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(s, ms * B, rtol=rtol, atol=1e-12)
    assert not ds[~m].any() and not dmt[~m].any()  # masked positions: exactly zero gradient
    logits2, y2 = logits.copy(), np.where(m, y, -7)  # junk at masked positions
    logits2[~m] = 1e4
    s2, _ = sequence_cross_entropy(logits2, y2, m, "sum")
    assert s2 == s


def test_loss_bad_input():
    logits = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="mask must have shape"):
        sequence_cross_entropy(logits, np.zeros((2, 3), int), np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="targets must have shape"):
        sequence_cross_entropy(logits, np.zeros((2, 4), int))
    with pytest.raises(ValueError, match="targets must lie"):
        sequence_cross_entropy(logits, np.full((2, 3), 4))
    with pytest.raises(ValueError, match="reduction"):
        sequence_cross_entropy(logits, np.zeros((2, 3), int), reduction="mean")


def test_last_step_and_its_backward():
    rng = np.random.default_rng(1)
    h = rng.standard_normal((3, 5, 2))
    L = np.array([5, 1, 3])
    np.testing.assert_array_equal(last_step(h, L), h[[0, 1, 2], [4, 0, 2]])
    np.testing.assert_array_equal(last_step(h), h[:, -1])
    dy = rng.standard_normal((3, 2))
    dh = last_step_backward(dy, h.shape, L)
    assert (dh * h).sum() == pytest.approx((dy * last_step(h, L)).sum())
    with pytest.raises(ValueError, match="lengths must be >= 1"):
        last_step(h, np.array([5, 0, 3]))


