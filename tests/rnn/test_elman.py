"""Elman layers (refseq/rnn/elman.py): BPTT against central finite differences with random
cotangents, the engine against the plain loop, per-sequence lengths, causality, dtypes, bad
input and torch.nn.RNN.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from refseq.rnn.elman import elman_backward, elman_forward
from refseq.testing.gradcheck import assert_entrywise, cotangent_loss
from refseq.testing.strategies import (
    ragged_lengths,
    seeds,
)


def elman_inputs(rng, B, T, I, H, dtype=np.float64):
    return dict(x=rng.standard_normal((B, T, I)).astype(dtype),
                W_hx=(rng.standard_normal((H, I)) / np.sqrt(I)).astype(dtype),
                W_hh=(rng.standard_normal((H, H)) / np.sqrt(H)).astype(dtype),
                b_h=(0.3 * rng.standard_normal(H)).astype(dtype),
                h0=(0.5 * rng.standard_normal((B, H))).astype(dtype))


# --- Elman -------------------------------------------------------------------------------------

@settings(max_examples=8)
@given(seeds(), st.sampled_from(["tanh", "sigmoid", "relu"]), st.booleans(), st.booleans())
def test_elman_backward_matches_finite_differences(seed, activation, use_lengths, use_engine):
    rng = np.random.default_rng(seed)
    B, T, I, H = 2, 4, 3, 3
    p = elman_inputs(rng, B, T, I, H)
    L = ragged_lengths(rng, B, T) if use_lengths else None
    dh, dh_last = rng.standard_normal((B, T, H)), rng.standard_normal((B, H))

    loss = cotangent_loss(lambda: elman_forward(**p, activation=activation, lengths=L,
                                                use_engine=use_engine)[:2], (dh, dh_last))
    _, _, cache = elman_forward(**p, activation=activation, lengths=L, use_engine=use_engine)
    if activation == "relu":  # keep pre-activations off the kink: a difference across it is wrong
        prev = np.concatenate([cache.h0[:, None], cache.h[:, :-1]], axis=1)  # h(t-1)
        a = cache.x @ cache.W_hx.T + prev @ cache.W_hh.T + cache.b_h
        assume(np.abs(a).min() > 1e-4)
    dx, dW_hx, dW_hh, db_h, dh0 = elman_backward(dh, dh_last, cache)
    grads = dict(x=dx, W_hx=dW_hx, W_hh=dW_hh, b_h=db_h, h0=dh0)
    assert_entrywise(loss, p, grads)


@given(seeds(), st.sampled_from(["tanh", "relu"]), st.integers(1, 3), st.integers(0, 7),
       st.booleans())
def test_elman_engine_equals_own_loop(seed, activation, B, T, use_lengths):
    rng = np.random.default_rng(seed)
    p = elman_inputs(rng, B, T, 2, 4)
    L = ragged_lengths(rng, B, T) if use_lengths else None
    a = elman_forward(**p, activation=activation, lengths=L)
    b = elman_forward(**p, activation=activation, lengths=L, use_engine=False)
    assert a[2].engine_cache is not None and b[2].engine_cache is None
    for u, v in zip(a[:2], b[:2]):
        np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12)
    dh, dl = rng.standard_normal(a[0].shape), rng.standard_normal(a[1].shape)
    for u, v in zip(elman_backward(dh, dl, a[2]), elman_backward(dh, dl, b[2])):
        np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12)


@given(seeds(), st.sampled_from(["tanh", "sigmoid", "relu"]), st.integers(1, 4),
       st.integers(1, 8))
def test_elman_lengths_equal_per_sequence_runs(seed, activation, B, T):
    rng = np.random.default_rng(seed)
    p = elman_inputs(rng, B, T, 3, 4)
    L = ragged_lengths(rng, B, T)
    p["x"][np.arange(T)[None, :] >= L[:, None]] = 1e3  # loud padding must not leak
    h, h_last, _ = elman_forward(**p, activation=activation, lengths=L)
    for b in range(B):
        hb, hb_last, _ = elman_forward(p["x"][b:b + 1, :L[b]], p["W_hx"], p["W_hh"], p["b_h"],
                                       p["h0"][b:b + 1], activation)
        np.testing.assert_allclose(h[b, :L[b]], hb[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(h_last[b], hb_last[0], rtol=1e-12, atol=1e-14)


def test_elman_causality_is_bit_exact():
    rng = np.random.default_rng(0)
    p = elman_inputs(rng, 2, 9, 3, 4)
    h, _, _ = elman_forward(**p)
    p["x"][:, 5] += 1.0
    h2, _, _ = elman_forward(**p)
    assert np.array_equal(h[:, :5], h2[:, :5]) and not np.allclose(h[:, 5:], h2[:, 5:])


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elman_preserves_dtype(activation, dtype):
    rng = np.random.default_rng(1)
    p = elman_inputs(rng, 2, 5, 3, 4, dtype)
    h, h_last, cache = elman_forward(**p, activation=activation, lengths=np.array([5, 2]))
    grads = elman_backward(np.ones_like(h), None, cache)
    assert h.dtype == h_last.dtype == dtype and all(g.dtype == dtype for g in grads)
    ref = elman_forward(**{k: v.astype(np.float64) for k, v in p.items()},
                        activation=activation, lengths=np.array([5, 2]))[0]
    np.testing.assert_allclose(h, ref, rtol=1e-5, atol=1e-6)


def test_elman_bad_input_names_the_argument():
    rng = np.random.default_rng(2)
    p = elman_inputs(rng, 2, 5, 3, 4)
    with pytest.raises(ValueError, match="lengths must be >= 0"):
        elman_forward(**p, lengths=np.array([-1, 2]))
    with pytest.raises(ValueError, match="lengths must be <= T"):
        elman_forward(**p, lengths=np.array([6, 2]))
    with pytest.raises(ValueError, match="lengths must have shape"):
        elman_forward(**p, lengths=np.array([1, 2, 3]))
    with pytest.raises(TypeError, match="lengths must be an integer"):
        elman_forward(**p, lengths=np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="W_hh"):
        elman_forward(p["x"], p["W_hx"], p["W_hh"][:2], p["b_h"])
    with pytest.raises(ValueError, match="activation"):
        elman_forward(**p, activation="gelu")


def test_elman_matches_torch_rnn():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    for nl in ("tanh", "relu"):
        m = torch.nn.RNN(3, 4, nonlinearity=nl, batch_first=True, dtype=torch.float64)
        x = rng.standard_normal((2, 6, 3))
        y, hn = m(torch.from_numpy(x))
        W_hx, W_hh = m.weight_ih_l0.detach().numpy(), m.weight_hh_l0.detach().numpy()
        b = (m.bias_ih_l0 + m.bias_hh_l0).detach().numpy()
        h, h_last, _ = elman_forward(x, W_hx, W_hh, b, activation=nl)
        np.testing.assert_allclose(h, y.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(h_last, hn[0].detach().numpy(), rtol=1e-10, atol=1e-12)


