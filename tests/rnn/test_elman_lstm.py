"""Elman and LSTM layers of the RNN review (spec rnn-review.md, items 1 and 5; properties 1, 3,
4, 5, 7): BPTT against central finite differences with random cotangents, the engine and torch
equivalences, the LSTM switches, the constant error carousel, causality, per-sequence lengths,
dtypes and bad input.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from refseq.recurrence.engine import flashrnn_forward, project_inputs
from refseq.rnn.elman import elman_backward, elman_forward
from refseq.rnn.lstm import LSTMParams, init_lstm_params, lstm_backward, lstm_forward
from refseq.testing.gradcheck import assert_entrywise, cotangent_loss
from refseq.testing.strategies import (
    LSTM_SWITCHES,
    lstm_switches,
    ragged_lengths,
    seeds,
    switch_id,
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
    if activation == "relu":  # keep pre-activations away from the kink (spec, Traps)
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


# --- LSTM --------------------------------------------------------------------------------------

def lstm_setup(rng, B, T, I, H, peepholes=True, dtype=np.float64):
    P = init_lstm_params(rng, I, H, dtype, peepholes=peepholes)
    P = P._replace(**{k: (0.5 * rng.standard_normal(H)).astype(dtype)
                      for k in ("p_i", "p_f", "p_o")}) if peepholes else P
    x = rng.standard_normal((B, T, I)).astype(dtype)
    state0 = tuple((0.5 * rng.standard_normal((B, H))).astype(dtype) for _ in range(2))
    return x, P, state0


@pytest.mark.parametrize("sw", LSTM_SWITCHES, ids=switch_id)
@pytest.mark.parametrize("use_lengths", [False, True])
def test_lstm_backward_matches_finite_differences(sw, use_lengths):
    rng = np.random.default_rng(17)
    B, T, I, H = 2, 4, 2, 3
    x, P, (h0, s0) = lstm_setup(rng, B, T, I, H)
    params = {k: v for k, v in P._asdict().items() if sw["peepholes"] or k[0] != "p"}
    L = np.array([T, 2]) if use_lengths else None
    dh = rng.standard_normal((B, T, H))
    dl = (rng.standard_normal((B, H)), rng.standard_normal((B, H)))
    loss = cotangent_loss(lambda: lstm_forward(x, params, (h0, s0), lengths=L, **sw)[:2],
                          (dh, dl))
    _, _, cache = lstm_forward(x, params, (h0, s0), lengths=L, **sw)
    dx, grads, (dh0, ds0) = lstm_backward(dh, dl, cache)
    if not sw["forget_gate"]:
        assert all(not grads[k].any() for k in ("W_fx", "W_fh", "b_f"))
    assert_entrywise(loss, {**params, "x": x, "h0": h0, "s0": s0},
                     {**grads, "x": dx, "h0": dh0, "s0": ds0})


def to_engine(P):
    """Review names -> engine layout, gate order (i, f, z=g, o)."""
    W = np.stack([P.W_ix, P.W_fx, P.W_gx, P.W_ox])[:, None]  # (4, 1, H, I)
    R = np.stack([P.W_ih, P.W_fh, P.W_gh, P.W_oh])[:, None]  # (4, 1, H, H)
    b = np.stack([P.b_i, P.b_f, P.b_g, P.b_o])[:, None]  # (4, 1, H)
    return W, R, b


@given(seeds(), st.integers(1, 3), st.integers(0, 9), st.sampled_from([np.float32, np.float64]))
def test_lstm_default_equals_engine(seed, B, T, dtype):
    rng = np.random.default_rng(seed)
    x, P, state0 = lstm_setup(rng, B, T, 3, 4, peepholes=False, dtype=dtype)
    h, (hl, sl), _ = lstm_forward(x, P, state0)
    W, R, b = to_engine(P)
    s0 = np.stack(state0)[:, :, None]  # (2, B, 1, H)
    states, last = flashrnn_forward(project_inputs(x, W), R, b, s0, cell="lstm")
    assert h.dtype == dtype
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h, states[0, :, :, 0], **tol)
    np.testing.assert_allclose(sl, last[1, :, 0], **tol)


def test_lstm_default_equals_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    m = torch.nn.LSTM(3, 4, batch_first=True, dtype=torch.float64)
    x = rng.standard_normal((2, 7, 3))
    y, (hn, cn) = m(torch.from_numpy(x))
    Wi, Wh = m.weight_ih_l0.detach().numpy(), m.weight_hh_l0.detach().numpy()
    bias = (m.bias_ih_l0 + m.bias_hh_l0).detach().numpy()
    P = LSTMParams(*(np.split(Wi, 4)[j] for j in (2, 0, 1, 3)),  # torch rows: i, f, g, o
                   *(np.split(Wh, 4)[j] for j in (2, 0, 1, 3)),
                   *(np.split(bias, 4)[j] for j in (2, 0, 1, 3)))
    h, (hl, sl), _ = lstm_forward(x, P)
    np.testing.assert_allclose(h, y.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sl, cn[0].detach().numpy(), rtol=1e-10, atol=1e-12)


@given(seeds(), st.integers(1, 3), st.integers(1, 9), st.booleans(), st.booleans())
def test_lstm_switch_identities(seed, B, T, peepholes, identity):
    rng = np.random.default_rng(seed)
    x, P, state0 = lstm_setup(rng, B, T, 3, 4)
    oa = "identity" if identity else "tanh"
    # forget gate saturated open == no forget gate (float64, atol 1e-12)
    Pf = P._replace(W_fx=0 * P.W_fx, W_fh=0 * P.W_fh, b_f=np.full(4, 40.0),
                    p_f=0 * P.p_f)
    a = lstm_forward(x, Pf, state0, peepholes=peepholes, output_activation=oa)
    b = lstm_forward(x, Pf, state0, forget_gate=False, peepholes=peepholes, output_activation=oa)
    np.testing.assert_allclose(a[0], b[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(a[1][1], b[1][1], rtol=0, atol=1e-12)
    # zero peepholes == no peepholes
    P0 = P._replace(p_i=0 * P.p_i, p_f=0 * P.p_f, p_o=0 * P.p_o)
    c = lstm_forward(x, P0, state0, peepholes=True, output_activation=oa)
    d = lstm_forward(x, P0, state0, peepholes=False, output_activation=oa)
    np.testing.assert_allclose(c[0], d[0], rtol=1e-10, atol=1e-14)


def test_constant_error_carousel():
    from refseq.papers.rnn_review.analysis import lstm_state_jacobian

    rng = np.random.default_rng(5)
    x, P, (h0, s0) = lstm_setup(rng, 2, 30, 3, 4, peepholes=False)
    P = P._replace(b_i=np.full(4, -40.0))  # i ≡ 0
    h, (hl, sl), cache = lstm_forward(x, P, (h0, s0), forget_gate=False)
    np.testing.assert_allclose(cache.steps["s"], np.broadcast_to(s0, (30, 2, 4)), atol=1e-12)
    norms = lstm_state_jacobian(x, P, (h0, s0), "s", forget_gate=False)
    np.testing.assert_allclose(norms, 1.0, atol=1e-12)  # ∂s(T)/∂s(0) = I


@given(seeds(), st.integers(1, 4), st.integers(1, 8), lstm_switches())
def test_lstm_lengths_and_causality(seed, B, T, sw):
    rng = np.random.default_rng(seed)
    x, P, state0 = lstm_setup(rng, B, T, 3, 4, peepholes=sw["peepholes"])
    L = ragged_lengths(rng, B, T)
    x[np.arange(T)[None, :] >= L[:, None]] = np.nan  # padding is never read
    h, (hl, sl), _ = lstm_forward(x, P, state0, lengths=L, **sw)
    for b in range(B):
        hb, (hbl, sbl), _ = lstm_forward(x[b:b + 1, :L[b]], P,
                                         (state0[0][b:b + 1], state0[1][b:b + 1]), **sw)
        np.testing.assert_allclose(h[b, :L[b]], hb[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(np.stack([hl[b], sl[b]]), np.stack([hbl[0], sbl[0]]),
                                   rtol=1e-12, atol=1e-14)
    x2 = np.where(np.isnan(x), 0.0, x)
    t = int(rng.integers(T))
    base = lstm_forward(x2, P, state0, **sw)[0]
    x2[:, t] += 1.0
    assert np.array_equal(lstm_forward(x2, P, state0, **sw)[0][:, :t], base[:, :t])


def test_lstm_bad_input():
    rng = np.random.default_rng(6)
    x, P, state0 = lstm_setup(rng, 2, 5, 3, 4, peepholes=False)
    with pytest.raises(ValueError, match="p_i"):
        lstm_forward(x, P, peepholes=True)
    with pytest.raises(ValueError, match="lengths must be <= T"):
        lstm_forward(x, P, lengths=np.array([9, 1]))
    with pytest.raises(ValueError, match="params.W_ih"):
        lstm_forward(x, P._replace(W_ih=P.W_ih[:, :2]))
    with pytest.raises(ValueError, match="output_activation"):
        lstm_forward(x, P, output_activation="relu")
