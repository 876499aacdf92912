"""Stacked RNNs (refseq/rnn/stack.py): dropout only between layers, never on the recurrent path,
gradients against finite differences, torch's two-layer LSTM, bad input.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.rnn.elman import ElmanLayer
from refseq.rnn.lstm import LSTMLayer, LSTMParams, init_lstm_params
from refseq.rnn.stack import stack, stack_backward
from refseq.testing.gradcheck import assert_entrywise, cotangent_loss
from refseq.testing.strategies import ragged_lengths, seeds


def make_layer(kind, rng, I, H):
    if kind == "lstm":
        return LSTMLayer(init_lstm_params(rng, I, H, peepholes=True), peepholes=True)
    return ElmanLayer.init(rng, I, H, activation=kind)


KINDS = ["tanh", "sigmoid", "lstm"]


# --- stack ---------------------------------------------------------------------------------------

@given(seeds(), st.lists(st.sampled_from(KINDS), min_size=1, max_size=3), st.integers(1, 6),
       st.booleans())
def test_stack_rate_zero_is_sequential_application(seed, kinds, T, use_lengths):
    rng = np.random.default_rng(seed)
    widths = [3] + [int(w) for w in rng.integers(1, 5, len(kinds))]
    layers = [make_layer(k, rng, widths[j], widths[j + 1]) for j, k in enumerate(kinds)]
    x = rng.standard_normal((2, T, 3))
    L = ragged_lengths(rng, 2, T) if use_lengths else None
    y, states, _ = stack(layers, x, lengths=L)
    h = x
    for layer, s in zip(layers, states):
        h, s_ref, _ = layer.forward(h, None, L)
        for u, v in zip(np.atleast_1d(s), np.atleast_1d(s_ref)):
            np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(y, h)


@given(seeds(), st.sampled_from(KINDS), st.floats(0.1, 0.9))
def test_stack_dropout_never_touches_the_recurrent_path(seed, kind, p):
    rng = np.random.default_rng(seed)
    layer = make_layer(kind, rng, 3, 4)
    x = rng.standard_normal((2, 6, 3))
    h, s_ref, _ = layer.forward(x)
    y, states, cache = stack([layer], x, dropout_nonrecurrent=p, rng=seed)
    mask = cache.caches[0][1].mask
    np.testing.assert_allclose(y, np.where(mask, h / (1 - p), 0), rtol=1e-14)
    for u, v in zip(np.atleast_1d(states[0]), np.atleast_1d(s_ref)):
        np.testing.assert_array_equal(u, v)  # the state carried over time is undropped


@settings(max_examples=5)
@given(seeds(), st.lists(st.sampled_from(KINDS), min_size=2, max_size=2))
def test_stack_gradients_match_finite_differences(seed, kinds):
    rng = np.random.default_rng(seed)
    layers = [make_layer(kinds[0], rng, 2, 3), make_layer(kinds[1], rng, 3, 2)]
    x = rng.standard_normal((2, 4, 2))
    L = np.array([4, 3])
    y, _, cache = stack(layers, x, dropout_nonrecurrent=0.3, rng=seed, lengths=L)
    dy = rng.standard_normal(y.shape)
    loss = cotangent_loss(
        lambda: stack(layers, x, dropout_nonrecurrent=0.3, rng=seed, lengths=L)[0], dy)
    dx, grads, _ = stack_backward(dy, None, cache)
    assert_entrywise(loss, {"x": x, **{f"{j}.{k}": v for j, lay in enumerate(layers)
                                       for k, v in lay.params.items()}},
                     {"x": dx, **{f"{j}.{k}": v for j, g in enumerate(grads)
                                  for k, v in g.items()}})


def test_stack_lstm_matches_torch_two_layers():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    m = torch.nn.LSTM(3, 4, num_layers=2, batch_first=True, dtype=torch.float64)
    x = rng.standard_normal((2, 5, 3))
    y, (hn, cn) = m(torch.from_numpy(x))
    order = (2, 0, 1, 3)
    layers = []
    for l in range(2):
        Wi, Wh = (getattr(m, f"weight_{k}_l{l}").detach().numpy() for k in ("ih", "hh"))
        b = (getattr(m, f"bias_ih_l{l}") + getattr(m, f"bias_hh_l{l}")).detach().numpy()
        layers.append(LSTMLayer(LSTMParams(*(np.split(Wi, 4)[j] for j in order),
                                           *(np.split(Wh, 4)[j] for j in order),
                                           *(np.split(b, 4)[j] for j in order))))
    out, states, _ = stack(layers, x)
    np.testing.assert_allclose(out, y.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.stack([s[1] for s in states]), cn.detach().numpy(),
                               rtol=1e-10, atol=1e-12)


def test_stack_bad_input():
    rng = np.random.default_rng(11)
    layer = make_layer("tanh", rng, 3, 4)
    x = rng.standard_normal((2, 5, 3))
    with pytest.raises(ValueError, match="dropout_nonrecurrent"):
        stack([layer], x, dropout_nonrecurrent=1.0)
    with pytest.raises(ValueError, match="states0"):
        stack([layer], x, states0=[None, None])
    with pytest.raises(ValueError, match="lengths must be <= T"):
        stack([layer], x, lengths=np.array([6, 1]))
