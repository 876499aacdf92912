"""Properties of refseq.nn layers beyond their gradients: cross-entropy's ignore_index and label
smoothing, dropout's mask and seeding, streaming conv1d, RoPE's relative-position property, and
the forward-only shorthands of refseq.nn.basic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq import nn
from refseq.nn import basic
from refseq.testing.strategies import normal, seeds

# ---------------------------------------------------------------- cross-entropy


@given(seed=seeds(), N=st.integers(2, 9), V=st.integers(2, 6), smoothing=st.sampled_from(
    [0.0, 0.2]))
def test_cross_entropy_ignored_targets_neither_count_nor_get_gradient(seed, N, V, smoothing):
    rng = np.random.default_rng(seed)
    logits, targets = normal(rng, (N, V), scale=2.0), rng.integers(0, V, N)
    ignored = rng.random(N) < 0.4
    ignored[0] = False
    targets[ignored] = 7  # an ignore_index that is not a class
    loss, cache = nn.cross_entropy_forward(logits, targets, ignore_index=7,
                                           label_smoothing=smoothing)
    kept, kept_cache = nn.cross_entropy_forward(logits[~ignored], targets[~ignored],
                                                label_smoothing=smoothing)
    np.testing.assert_allclose(loss, kept, rtol=1e-14)  # the mean is over kept positions only
    (dlogits,) = nn.cross_entropy_backward(np.float64(1.5), cache)
    (dkept,) = nn.cross_entropy_backward(np.float64(1.5), kept_cache)
    assert not dlogits[ignored].any()
    np.testing.assert_allclose(dlogits[~ignored], dkept, rtol=1e-14, atol=1e-17)
    per_pos, _ = nn.cross_entropy_forward(logits, targets, ignore_index=7,
                                          label_smoothing=smoothing, reduction="none")
    assert not per_pos[ignored].any()
    np.testing.assert_allclose(per_pos.sum(), loss * (~ignored).sum(), rtol=1e-13)


@given(seed=seeds(), N=st.integers(1, 6), V=st.integers(1, 6), eps=st.floats(0, 1))
def test_cross_entropy_label_smoothing_is_cross_entropy_against_the_mixed_target(seed, N, V,
                                                                                   eps):
    """loss = -sum_v q_v log p_v with q = (1 - eps) onehot(t) + eps / V, per position."""
    rng = np.random.default_rng(seed)
    logits, targets = normal(rng, (N, V), scale=3.0), rng.integers(0, V, N)
    loss, _ = nn.cross_entropy_forward(logits, targets, label_smoothing=eps, reduction="none")
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    q = (1 - eps) * np.eye(V)[targets] + eps / V
    np.testing.assert_allclose(loss, -(q * logp).sum(-1), rtol=1e-12, atol=1e-14)


def test_cross_entropy_is_stable_for_huge_logits_and_nan_when_nothing_counts():
    logits = np.array([[1e4, 0.0, -1e4]])
    loss, cache = nn.cross_entropy_forward(logits, np.array([1]))
    assert loss == pytest.approx(1e4)
    assert np.isfinite(nn.cross_entropy_backward(np.float64(1), cache)[0]).all()
    with np.errstate(invalid="raise"):  # 0/0 is computed on purpose, quietly, like torch
        loss, cache = nn.cross_entropy_forward(logits, np.array([-100]))
    assert np.isnan(loss)


# ---------------------------------------------------------------- dropout


@given(seed=seeds(), p=st.sampled_from([0.0, 0.1, 0.5, 0.75]), dtype=st.sampled_from(
    [np.float32, np.float64]))
def test_dropout_explicit_mask_and_seeding(seed, p, dtype):
    rng = np.random.default_rng(seed)
    x = normal(rng, (3, 7), dtype)
    mask = rng.random(x.shape) >= p
    y, cache = nn.dropout_forward(x, p, mask=mask, rng=123)  # the explicit mask wins
    np.testing.assert_allclose(y, x * mask / dtype(1 - p), rtol=np.finfo(dtype).eps)
    assert y.dtype == dtype and (cache.mask == mask).all()
    y1, c1 = nn.dropout_forward(x, p, rng=seed)
    y2, c2 = nn.dropout_forward(x, p, rng=np.random.default_rng(seed))
    np.testing.assert_array_equal(y1, y2)  # a seed and a generator from it draw the same mask
    np.testing.assert_array_equal(c1.mask, np.random.default_rng(seed).random(x.shape) >= p)
    y_eval, _ = nn.dropout_forward(x, p, rng=seed, training=False)
    np.testing.assert_array_equal(y_eval, x)
    (dx,) = nn.dropout_backward(np.ones_like(x), c1)
    np.testing.assert_array_equal(dx, np.where(c1.mask, dtype(1) / dtype(1 - p), 0))


def test_dropout_p_one_gives_zeros_and_keeps_the_mean_otherwise():
    x = np.ones((200, 500))
    y, _ = nn.dropout_forward(x, 1.0, rng=0)
    assert not y.any()
    # inverted scaling keeps E[y] = x: the mean of 1e5 entries is within 5 sigma of 1, where
    # sigma = sqrt(p / (1 - p) / n) for p = 0.3
    y, _ = nn.dropout_forward(x, 0.3, rng=0)
    assert abs(y.mean() - 1) < 5 * np.sqrt(0.3 / 0.7 / y.size)


# ---------------------------------------------------------------- conv1d


@given(seed=seeds(), B=st.integers(1, 2), T1=st.integers(1, 7), T2=st.integers(1, 7),
       K=st.integers(1, 4), depthwise=st.booleans())
def test_conv1d_streaming_with_carried_state_equals_full(seed, B, T1, T2, K, depthwise):
    rng = np.random.default_rng(seed)
    C, C_out = 3, (3 if depthwise else 2)
    groups = "depthwise" if depthwise else "dense"
    x = normal(rng, (B, T1 + T2, C))
    W, b = normal(rng, (K, C) if depthwise else (K, C, C_out)), normal(rng, (C_out,))
    y, cache = nn.conv1d_forward(x, W, b, groups=groups)
    y1, c1 = nn.conv1d_forward(x[:, :T1], W, b, groups=groups)
    y2, c2 = nn.conv1d_forward(x[:, T1:], W, b, state=c1.final_state, groups=groups)
    np.testing.assert_allclose(np.concatenate([y1, y2], 1), y, rtol=1e-13, atol=1e-14)
    np.testing.assert_array_equal(c2.final_state, cache.final_state)
    # backward in reverse order: dstate of the second chunk flows into the first chunk's inputs
    dy = normal(rng, y.shape)
    dx, dW, db, _ = nn.conv1d_backward(dy, cache)
    dx2, dW2, db2, dstate = nn.conv1d_backward(dy[:, T1:], c2)
    dx1, dW1, db1, _ = nn.conv1d_backward(dy[:, :T1], c1)
    dx1 = dx1.copy()
    n = min(K - 1, T1)  # a state longer than the first chunk also holds the zero padding
    if n:
        dx1[:, T1 - n:] += dstate[:, K - 1 - n:]
    np.testing.assert_allclose(np.concatenate([dx1, dx2], 1), dx, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(dW1 + dW2, dW, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(db1 + db2, db, rtol=1e-13, atol=1e-14)


@given(seed=seeds(), T=st.integers(1, 8), K=st.integers(1, 4))
def test_conv1d_is_causal_and_matches_the_sum(seed, T, K):
    rng = np.random.default_rng(seed)
    x, W = normal(rng, (1, T, 2)), normal(rng, (K, 2, 3))
    y, _ = nn.conv1d_forward(x, W)
    x_pad = np.concatenate([np.zeros((1, K - 1, 2)), x], 1)
    for t in range(T):  # y_t = sum_k x_pad[t + k] W_k, the docstring's formula
        want = sum(x_pad[0, t + k] @ W[k] for k in range(K))
        np.testing.assert_allclose(y[0, t], want, rtol=1e-13, atol=1e-14)
    x2 = x.copy()
    x2[:, -1] += 1.0  # changing the last input leaves every earlier output alone
    np.testing.assert_array_equal(nn.conv1d_forward(x2, W)[0][:, :-1], y[:, :-1])


# ---------------------------------------------------------------- RoPE


@given(seed=seeds(), half=st.integers(1, 8), m=st.integers(0, 2000), n=st.integers(0, 2000),
       shift=st.integers(-500, 500))
def test_rope_scores_depend_only_on_relative_position(seed, half, m, n, shift):
    rng = np.random.default_rng(seed)
    q, k = normal(rng, (1, 1, 2 * half)), normal(rng, (1, 1, 2 * half))

    def score(m, n):
        return float(np.sum(nn.rope_forward(q, np.array([m]))[0]
                            * nn.rope_forward(k, np.array([n]))[0]))

    scale = np.linalg.norm(q) * np.linalg.norm(k)
    assert score(m, n) == pytest.approx(score(m + shift, n + shift), abs=1e-11 * scale)


@given(seed=seeds(), T=st.integers(1, 6), H=st.integers(1, 3), half=st.integers(1, 5))
def test_rope_preserves_norms_and_is_identity_at_zero(seed, T, H, half):
    rng = np.random.default_rng(seed)
    x = normal(rng, (2, T, H, 2 * half))
    positions = rng.integers(0, 10_000, (2, T))
    y, cache = nn.rope_forward(x, positions)
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1),
                               rtol=1e-13)
    np.testing.assert_array_equal(nn.rope_forward(x, np.zeros(T, int))[0], x)
    (dx,) = nn.rope_backward(y, cache)  # the backward is the inverse rotation
    np.testing.assert_allclose(dx, x, rtol=1e-12, atol=1e-13)


def test_rope_pairs_coordinate_i_with_i_plus_half():
    """Rotate-half (GPT-NeoX / LLaMA) pairing: (x_0, x_2) and (x_1, x_3) rotate together."""
    x = np.array([1.0, 0.0, 0.0, 0.0])[None, None, :]
    y, _ = nn.rope_forward(x, np.array([1]), base=10000.0)
    np.testing.assert_allclose(y[0, 0], [np.cos(1), 0, np.sin(1), 0], atol=1e-15)


# ---------------------------------------------------------------- basic and init


@given(seed=seeds(), D=st.integers(1, 5), F=st.integers(1, 5))
def test_basic_shorthands_equal_the_forward_passes(seed, D, F):
    rng = np.random.default_rng(seed)
    x = normal(rng, (2, 3, D))
    p = nn.init_mlp_params(rng, D, F, "gelu")
    g, b = normal(rng, (D,)), normal(rng, (D,))
    np.testing.assert_array_equal(basic.linear(x, p.W_in, p.b_in),
                                  nn.linear_forward(x, p.W_in, p.b_in)[0])
    np.testing.assert_array_equal(basic.layer_norm(x, g, b), nn.layer_norm_forward(x, g, b)[0])
    np.testing.assert_array_equal(basic.gelu(x), nn.gelu_forward(x)[0])
    h = basic.gelu(x @ p.W_in + p.b_in)
    np.testing.assert_allclose(basic.ffn(x, *p[:4]), h @ p.W_out + p.b_out, rtol=1e-13)


@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh", "swiglu"])
@pytest.mark.parametrize("bias", [True, False])
def test_init_mlp_params_shapes_and_dtypes(activation, bias):
    p = nn.init_mlp_params(0, 4, 6, activation, np.float32, bias=bias)
    assert p.W_in.shape == (4, 6) and p.W_out.shape == (6, 4)
    assert all(a.dtype == np.float32 for a in p if a is not None)
    assert (p.b_in is None) == (not bias) and (p.b_out is None) == (not bias)
    assert (p.W_gate is None) == (activation != "swiglu")
    y, _ = nn.mlp_forward(np.ones((3, 4), np.float32), p, activation)
    assert y.shape == (3, 4) and y.dtype == np.float32
