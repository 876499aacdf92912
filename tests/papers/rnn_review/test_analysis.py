"""Gradient-flow diagnostics and the review demo (arXiv 1506.00019, Sec. 3.2 and 4.1): the
Jacobian bound, monotone norms for orthogonal rho < 1, the exact scalar formula and Jacobians
against finite differences (docs/papers/rnn-review.md, "Tests", Diagnostics), and the demo's
pass criteria (docs/papers/rnn-review.md, "Small-scale result (demo)").
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.papers.rnn_review import demo as rnn_review
from refseq.papers.rnn_review.analysis import (
    elman_jacobian_chain,
    jacobian_bound,
    lstm_state_jacobian,
    lstm_step_jacobians,
    scalar_rnn_gradient,
)
from refseq.rnn.elman import elman_forward
from refseq.rnn.lstm import init_lstm_params, lstm_forward
from refseq.testing.gradcheck import assert_jacobian, jacobian
from refseq.testing.strategies import LSTM_SWITCHES, seeds, switch_id


def orthogonal(rng, H):
    q, r = np.linalg.qr(rng.standard_normal((H, H)))
    return q * np.sign(np.diag(r))


@given(seeds(), st.sampled_from(["tanh", "sigmoid", "relu"]), st.integers(1, 6),
       st.integers(1, 30), st.floats(0.2, 3.0))
def test_elman_norms_respect_the_bound(seed, activation, H, T, scale):
    rng = np.random.default_rng(seed)
    W_hh = scale * rng.standard_normal((H, H)) / np.sqrt(H)
    x = rng.standard_normal((T, 2))
    norms = elman_jacobian_chain(x, rng.standard_normal((H, 2)), W_hh, rng.standard_normal(H),
                                 activation=activation)
    assert norms.shape == (T,)
    assert np.all(norms <= jacobian_bound(W_hh, activation, T) * (1 + 1e-12))


@given(seeds(), st.integers(2, 8), st.floats(0.1, 0.99))
def test_orthogonal_contracting_tanh_norms_do_not_increase(seed, H, rho):
    rng = np.random.default_rng(seed)
    norms = elman_jacobian_chain(rng.standard_normal((25, 3)), rng.standard_normal((H, 3)),
                                 rho * orthogonal(rng, H), rng.standard_normal(H))
    assert np.all(np.diff(norms) <= 1e-15 * norms[:-1])


@given(seeds(), st.sampled_from(["tanh", "sigmoid", "relu"]), st.integers(1, 20))
def test_scalar_network_product_formula_is_exact(seed, activation, T):
    rng = np.random.default_rng(seed)
    w = rng.uniform(-3, 3)
    x = rng.standard_normal((T, 1))
    u, b = rng.standard_normal((1, 1)), rng.standard_normal(1)
    h, _, _ = elman_forward(x[None], u, np.array([[w]]), b, activation=activation)
    from refseq.rnn.elman import ACTIVATIONS

    dphi = ACTIVATIONS[activation][1](h[0, :, 0])  # φ'(a(t))
    np.testing.assert_allclose(elman_jacobian_chain(x, u, np.array([[w]]), b,
                                                    activation=activation),
                               np.abs(scalar_rnn_gradient(w, dphi)), rtol=1e-12, atol=1e-300)


def test_elman_chain_matches_finite_differences():
    rng = np.random.default_rng(3)
    H, T = 4, 6
    x, W_hx, W_hh, b = (rng.standard_normal(s) for s in ((T, 2), (H, 2), (H, H), (H,)))
    h0 = rng.standard_normal(H)
    norms = elman_jacobian_chain(x, W_hx, W_hh, b, h0)
    z = h0.copy()  # moved in place by the finite differences
    for t in (1, 3, T):
        J = jacobian(lambda t=t: elman_forward(x[None, :t], W_hx, W_hh, b, z[None])[1][0], z)
        assert norms[t - 1] == pytest.approx(np.linalg.norm(J, 2), rel=1e-7)


@pytest.mark.parametrize("sw", LSTM_SWITCHES, ids=switch_id)
def test_lstm_jacobians_match_finite_differences(sw):
    rng = np.random.default_rng(4)
    H, T = 3, 4
    P = init_lstm_params(rng, 2, H, peepholes=True)
    P = P._replace(p_i=rng.standard_normal(H), p_f=rng.standard_normal(H),
                   p_o=rng.standard_normal(H))
    x = rng.standard_normal((1, T, 2))
    z0 = rng.standard_normal(2 * H)

    z = z0.copy()  # moved in place by the finite differences

    def run(t):
        _, (h, s), _ = lstm_forward(x[:, :t], P, (z[None, :H], z[None, H:]), **sw)
        return np.concatenate([h[0], s[0]])

    steps = lstm_step_jacobians(x, P, (z0[None, :H], z0[None, H:]), **sw)[0]  # (T, 2H, 2H)
    assert_jacobian(lambda: run(1), z, steps[0], name="(h0, s0), one step")
    J = jacobian(lambda: run(T), z)
    state0 = (z0[:H], z0[H:])
    for which, block in (("full", J), ("h", J[:H, :H]), ("s", J[H:, H:])):
        norms = lstm_state_jacobian(x[0], P, state0, which, **sw)
        assert norms[-1] == pytest.approx(np.linalg.norm(block, 2), rel=1e-7, abs=1e-10)


def test_demo_meets_the_small_scale_pass_criteria(capsys):
    result = rnn_review.run()
    assert result["ok"], result["checks"]
    assert result["seconds"] < 5
    text = rnn_review.format_table(result)
    assert "rho" in text and "b_f" in text and "NO" not in text
    assert rnn_review.main([]) == 0  # the pass criteria are stated for T = 50
    assert "t = 50" in capsys.readouterr().out
