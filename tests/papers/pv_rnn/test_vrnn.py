"""VRNN baseline (docs/papers/pv-rnn.md, "Choices the paper leaves open", VRNN): exact gradients,
causality, limits, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.papers.pv_rnn.vrnn import (
    NAMES,
    init_vrnn,
    vrnn_backward,
    vrnn_forward,
    vrnn_generate,
    vrnn_loss,
)
from refseq.testing import strategies as S
from refseq.testing.gradcheck import assert_directional


@given(seed=S.seeds(), D=st.integers(1, 4), Z=st.integers(1, 3), X=st.integers(1, 3),
       B=st.integers(1, 3), T=st.integers(1, 6), tau=st.sampled_from([1.0, 2.5, "vec"]),
       w=st.floats(0, 2), norm=st.sampled_from(["oist", "sum"]))
def test_backward_matches_finite_differences(seed, D, Z, X, B, T, tau, w, norm):
    rng = np.random.default_rng(seed)
    P = init_vrnn(D, Z, X, rng, tau=1 + 3 * rng.random(D) if tau == "vec" else tau)
    for k in ("b_h", "b_mu", "b_sg", "c_mu", "c_sg", "b_out"):
        getattr(P, k)[...] = rng.uniform(-1, 1, getattr(P, k).shape)
    x = 0.5 * rng.standard_normal((B, T, X))
    eps = rng.standard_normal((B, T, Z))
    st0 = (rng.standard_normal((B, D)), np.tanh(rng.standard_normal((B, D))))
    _, c = vrnn_forward(P, x, eps, st0)
    g = vrnn_backward(P, c, w, norm)

    def f():
        return vrnn_loss(vrnn_forward(P, x, eps, st0)[1], w, norm)[0]

    arrays = {**{k: getattr(P, k) for k in NAMES}, "x": x, "h0": st0[0], "d0": st0[1]}
    grads = {**{k: g[k] for k in NAMES}, "x": g["x"], "h0": g["state0"][0], "d0": g["state0"][1]}
    assert_directional(f, arrays, grads, rng=rng)  # one random direction per argument


def test_posterior_reads_the_observation_and_outputs_are_causal():
    rng = np.random.default_rng(0)
    P = init_vrnn(4, 2, 2, rng)
    x, eps = 0.5 * rng.standard_normal((2, 6, 2)), rng.standard_normal((2, 6, 2))
    xh, c = vrnn_forward(P, x, eps)
    x2 = x.copy()
    x2[:, 3] += 1.0
    xh2, c2 = vrnn_forward(P, x2, eps)
    assert np.array_equal(xh[:, :3], xh2[:, :3])  # causal
    assert not np.allclose(c["mu_q"][:, 3], c2["mu_q"][:, 3])  # q(z_t | x_t, d_{t-1})
    assert np.array_equal(c["mu_p"][:, :4], c2["mu_p"][:, :4])  # prior at t reads d_{t-1} only
    # chunked == full with carried state
    _, ca = vrnn_forward(P, x[:, :2], eps[:, :2])
    xb, _ = vrnn_forward(P, x[:, 2:], eps[:, 2:], (ca["h"][:, -1], ca["d"][:, -1]))
    np.testing.assert_allclose(xb, xh[:, 2:], rtol=0, atol=1e-15)


def test_kl_is_zero_when_posterior_equals_prior_and_generation_shapes():
    rng = np.random.default_rng(1)
    P = init_vrnn(3, 2, 1, rng)
    for k in ("U_mu", "U_sg", "V_mu", "V_sg", "c_mu", "c_sg"):
        getattr(P, k)[...] = 0
    P.W_mu[...] = 0
    P.W_sg[...] = 0  # prior N(0, 1), posterior N(tanh 0, e^0) = N(0, 1)
    _, c = vrnn_forward(P, rng.standard_normal((2, 5, 1)), rng.standard_normal((2, 5, 2)))
    assert abs(vrnn_loss(c, 1.0)[2]) <= 1e-15
    out = vrnn_generate(P, rng.standard_normal((2, 7, 2)))
    assert out.shape == (2, 7, 1) and (np.abs(out) < 1).all()


def test_bad_inputs():
    P = init_vrnn(3, 2, 1, 0)
    with pytest.raises(ValueError, match="tau"):
        init_vrnn(3, 2, 1, 0, tau=0.5)
    with pytest.raises(ValueError, match="x must have shape"):
        vrnn_forward(P, np.zeros((1, 4, 2)), np.zeros((1, 4, 2)))
    with pytest.raises(ValueError, match="eps"):
        vrnn_forward(P, np.zeros((1, 4, 1)), np.zeros((1, 4, 3)))
    with pytest.raises(TypeError, match="x"):
        vrnn_forward(P, np.zeros((1, 4, 1), int), np.zeros((1, 4, 2)))
    _, c = vrnn_forward(P, np.zeros((1, 4, 1)), np.zeros((1, 4, 2)))
    with pytest.raises(ValueError, match="normalize"):
        vrnn_loss(c, 1.0, "mean")
