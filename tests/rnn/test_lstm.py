"""The LSTM with its classic switches (refseq/rnn/lstm.py): BPTT against finite differences, the
engine and torch.nn.LSTM, the switch identities, the constant error carousel, lengths and
causality, bad input.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.recurrence import flashrnn_forward, project_inputs
from refseq.rnn.lstm import LSTMParams, init_lstm_params, lstm_backward, lstm_forward
from refseq.testing.gradcheck import assert_entrywise, cotangent_loss
from refseq.testing.strategies import (
    LSTM_SWITCHES,
    lstm_switches,
    ragged_lengths,
    seeds,
    switch_id,
)

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
