"""The sLSTM's stabiliser ``m`` in the backward pass (refseq/recurrence/cells.py, engine.py).

FlashRNN's convention (every tier, the default) treats ``m`` as a stop-gradient. These tests pin
down where that is the true gradient and where it is not, and check ``exact_stabiliser=True``
against float64 central differences (:mod:`refseq.testing.gradcheck`) for losses on every
state, with the ``max(n, 1)`` clamp active or not, the first-step branch and the gate clamp.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from refseq.recurrence import flashrnn_backward, flashrnn_forward
from refseq.recurrence.cells import log_sigmoid
from refseq.testing.gradcheck import assert_entrywise, cotangent_loss
from refseq.testing.strategies import seeds

MARGIN = 1e-3  # distance kept from the kinks of max(i~, l), max(n~, 1) and min(1, .)


def _problem(rng, B=2, T=3, N=1, D=2, n0="carried"):
    Wx = rng.standard_normal((B, T, 4, N, D))
    R = rng.standard_normal((4, N, D, D)) / 2
    b = 0.3 * rng.standard_normal((4, N, D))
    n_init = {"carried": rng.uniform(1.5, 3.0, (B, N, D)),  # n >= 1: the clamp is inactive
              "small": rng.uniform(0.05, 0.3, (B, N, D)),  # the n clamp can bite
              "zero": np.zeros((B, N, D))}[n0]  # the first step keys on n = 0
    s0 = np.stack([rng.standard_normal((B, N, D)), rng.standard_normal((B, N, D)), n_init,
                   rng.standard_normal((B, N, D))])
    return Wx, R, b, s0


def _away_from_kinks(Wx, R, b, s0, clamp):
    """True when every branch of the forward is decided by more than MARGIN."""
    _, _, cache = flashrnn_forward(Wx, R, b, s0, cell="slstm", return_cache=True,
                                   clamp_gates_le_one=clamp)
    states, gates = cache["states"], cache["gates"]  # (S, B, T+1, N, D), (T, B, 4, N, D)
    for t in range(gates.shape[0]):
        i_pre, f_pre = gates[t, :, 0], gates[t, :, 1]
        _, c_prev, n_prev, m_prev = states[:, :, t]
        ell = log_sigmoid(f_pre) + m_prev
        m = states[3, :, t + 1]
        # the max(i~, l) tie; from n = 0 (m = i~) only the clamp min(1, e^{l - i~}) has a kink
        # there. Elsewhere i~ - m and l - m are <= 0 and stay 0 for the argument of the max.
        gaps = [np.where((n_prev == 0) & (not clamp), np.inf, np.abs(i_pre - ell))]
        i_s, f_s = np.exp(i_pre - m), np.exp(ell - m)
        if clamp:
            i_s, f_s = np.minimum(i_s, 1), np.minimum(f_s, 1)
        # max(n~, 1): from n = 0 the argument is i' = 1 whatever the inputs, so no kink there
        gaps.append(np.where(n_prev == 0, np.inf, np.abs(f_s * n_prev + i_s - 1)))
        if min(g.min() for g in gaps) < MARGIN:
            return False
    return True


def _loss_and_grads(Wx, R, b, s0, cot, clamp, exact):
    def outputs():
        return flashrnn_forward(Wx, R, b, s0, cell="slstm", clamp_gates_le_one=clamp)

    loss = cotangent_loss(outputs, cot)
    _, _, cache = flashrnn_forward(Wx, R, b, s0, cell="slstm", return_cache=True,
                                   clamp_gates_le_one=clamp)
    d_s0, dWx, dR, db = flashrnn_backward(cot[0], cot[1], R, b, cache, cell="slstm",
                                          clamp_gates_le_one=clamp, exact_stabiliser=exact)
    return loss, {"Wx": dWx, "R": dR, "b": db, "s0": d_s0}


def _checked_entries(s0):
    """Entries of states0 with a derivative: n0 = 0 exactly is a branch point (the first step
    keys on n = 0), so those n0 entries are left out."""
    return {"s0": [i for i in np.ndindex(s0.shape) if not (i[0] == 2 and s0[i] == 0)]}


def _cotangent(rng, B, T, N, D, h_only):
    c_all, c_last = rng.standard_normal((4, B, T, N, D)), rng.standard_normal((4, B, N, D))
    if h_only:
        c_all[1:], c_last[1:] = 0, 0
    return c_all, c_last


@given(seed=seeds(), n0=st.sampled_from(["carried", "small", "zero"]), clamp=st.booleans(),
       h_only=st.booleans())
def test_exact_stabiliser_is_the_true_gradient(seed, n0, clamp, h_only):
    rng = np.random.default_rng(seed)
    Wx, R, b, s0 = _problem(rng, n0=n0)
    assume(_away_from_kinks(Wx, R, b, s0, clamp))
    loss, grads = _loss_and_grads(Wx, R, b, s0, _cotangent(rng, 2, 3, 1, 2, h_only), clamp,
                                  exact=True)
    assert_entrywise(loss, {"Wx": Wx, "R": R, "b": b, "s0": s0}, grads,
                     indices=_checked_entries(s0))


@given(seed=seeds())
def test_convention_is_exact_on_h_except_for_m0_whose_gradient_is_c0_dc0_plus_n0_dn0(seed):
    """Loss on h only, n >= 1 throughout: the convention's gradients equal the true ones on
    everything but m0; the true d m0 is c0 * d_c0 + n0 * d_n0 (m0 scales the carried c0, n0),
    and the convention returns 0 for it."""
    rng = np.random.default_rng(seed)
    Wx, R, b, s0 = _problem(rng, n0="carried")
    assume(_away_from_kinks(Wx, R, b, s0, False))
    cot = _cotangent(rng, 2, 3, 1, 2, h_only=True)
    loss, official = _loss_and_grads(Wx, R, b, s0, cot, False, exact=False)
    _, exact = _loss_and_grads(Wx, R, b, s0, cot, False, exact=True)
    assert np.array_equal(official["s0"][3], np.zeros_like(s0[3]))
    dm0 = s0[1] * official["s0"][1] + s0[2] * official["s0"][2]
    assert np.abs(dm0).max() > 1e-3  # the convention's 0 really is wrong here
    np.testing.assert_allclose(exact["s0"][3], dm0, rtol=1e-12, atol=1e-14)
    for name in ("Wx", "R", "b"):
        np.testing.assert_allclose(official[name], exact[name], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(official["s0"][:3], exact["s0"][:3], rtol=1e-12, atol=1e-14)
    official["s0"] = official["s0"].copy()
    official["s0"][3] = dm0
    assert_entrywise(loss, {"Wx": Wx, "R": R, "b": b, "s0": s0}, official)


def test_convention_departs_for_losses_on_c_n_m():
    rng = np.random.default_rng(3)
    Wx, R, b, s0 = _problem(rng)
    assert _away_from_kinks(Wx, R, b, s0, False)
    loss, grads = _loss_and_grads(Wx, R, b, s0, _cotangent(rng, 2, 3, 1, 2, False), False,
                                  exact=False)
    with pytest.raises(AssertionError):
        assert_entrywise(loss, {"Wx": Wx}, {"Wx": grads["Wx"]})


def test_exact_stabiliser_is_numpy_only_and_a_real_bool():
    rng = np.random.default_rng(0)
    Wx, R, b, s0 = _problem(rng)
    _, _, cache = flashrnn_forward(Wx, R, b, s0, cell="slstm", return_cache=True)
    args = (None, rng.standard_normal(s0.shape), R, b, cache)
    for backend in ("jit", "cuda"):
        with pytest.raises(ValueError, match="numpy tier only"):
            flashrnn_backward(*args, cell="slstm", backend=backend, exact_stabiliser=True)
    with pytest.raises(TypeError, match="exact_stabiliser must be a bool"):
        flashrnn_backward(*args, cell="slstm", exact_stabiliser="yes")
    # cells without a stabiliser: the option changes nothing
    lstm = flashrnn_forward(Wx, R, b, s0[:2], cell="lstm", return_cache=True)
    d = rng.standard_normal(s0[:2].shape)
    for x, y in zip(flashrnn_backward(None, d, R, b, lstm[2], cell="lstm"),
                    flashrnn_backward(None, d, R, b, lstm[2], cell="lstm", exact_stabiliser=True)):
        assert np.array_equal(x, y)


def test_exact_stabiliser_with_an_active_forget_gate_clamp():
    """First step from n0 = 0 (m_1 = i~) with l_1 = log sigma(f~) + m0 > i~: the clamp
    min(1, f') bites, and the gradient through it must vanish."""
    rng = np.random.default_rng(7)
    Wx, R, b, s0 = _problem(rng, n0="zero")
    s0[3] = 3.0 + rng.uniform(0, 1, s0[3].shape)  # large m0
    Wx[:, 0, 0] -= 2.0  # small i~ at the first step
    ell = log_sigmoid(Wx[:, 0, 1] + b[1]) + s0[3]  # R h0 is small next to the margin
    assert (ell > Wx[:, 0, 0] + b[0] + 1.0).any()  # the clamp is active somewhere
    assert _away_from_kinks(Wx, R, b, s0, True)
    loss, grads = _loss_and_grads(Wx, R, b, s0, _cotangent(rng, 2, 3, 1, 2, False), True,
                                  exact=True)
    assert_entrywise(loss, {"Wx": Wx, "R": R, "b": b, "s0": s0}, grads,
                     indices=_checked_entries(s0))
