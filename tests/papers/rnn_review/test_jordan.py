"""The Jordan network of the RNN review (refseq/papers/rnn_review/jordan.py): backward against
finite differences, special cases, dtypes and bad input.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.papers.rnn_review.jordan import jordan_backward, jordan_forward
from refseq.rnn.elman import elman_forward
from refseq.testing.gradcheck import assert_entrywise, cotangent_loss
from refseq.testing.strategies import seeds

# --- Jordan ------------------------------------------------------------------------------------


def jordan_params(rng, I=3, H=4, K=3, B=2):
    return dict(W_hx=rng.standard_normal((H, I)) / np.sqrt(I),
                W_hc=rng.standard_normal((H, K)), b_h=0.3 * rng.standard_normal(H),
                W_yh=rng.standard_normal((K, H)), b_y=0.3 * rng.standard_normal(K),
                y0=rng.random((B, K)))


@settings(max_examples=8)
@given(seeds(), st.sampled_from(["probs", "logits", "teacher"]), st.floats(0.0, 0.9),
       st.sampled_from(["tanh", "sigmoid"]))
def test_jordan_backward_matches_finite_differences(seed, feedback, alpha, activation):
    rng = np.random.default_rng(seed)
    p = jordan_params(rng)
    x, y = rng.standard_normal((2, 5, 3)), rng.integers(0, 3, (2, 5))
    dh, do = rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 3))
    kw = dict(alpha=alpha, feedback=feedback, targets=y, activation=activation)

    loss = cotangent_loss(lambda: jordan_forward(x, **p, **kw)[:2], (dh, do))
    _, _, cache = jordan_forward(x, **p, **kw)
    dx, grads, dy0 = jordan_backward(dh, do, cache)
    assert_entrywise(loss, {"x": x, **p}, {"x": dx, **grads, "y0": dy0})


@given(seeds(), st.integers(1, 8), st.sampled_from(["probs", "logits", "teacher"]))
def test_jordan_special_cases(seed, T, feedback):
    rng = np.random.default_rng(seed)
    p = jordan_params(rng)
    x, y = rng.standard_normal((2, T, 3)), rng.integers(0, 3, (2, T))
    p0 = {**p, "W_hc": np.zeros_like(p["W_hc"])}
    h, _, _ = jordan_forward(x, **p0, alpha=0.5, feedback=feedback, targets=y)
    h_elman, _, _ = elman_forward(x, p["W_hx"], np.zeros((4, 4)), p["b_h"])
    np.testing.assert_allclose(h, h_elman, rtol=1e-10, atol=1e-14)
    # teacher forcing: the hidden states do not depend on the model's own outputs
    h1, _, _ = jordan_forward(x, **p, alpha=0.5, feedback="teacher", targets=y)
    h2, _, _ = jordan_forward(x, **{**p, "W_yh": p["W_yh"] + 1.0, "b_y": p["b_y"] - 1.0},
                              alpha=0.5, feedback="teacher", targets=y)
    np.testing.assert_array_equal(h1, h2)
    if T >= 2:  # ... while with fed-back probabilities they do
        h3, _, _ = jordan_forward(x, **p, alpha=0.5, feedback="probs")
        h4, _, _ = jordan_forward(  # (a constant shift of W_yh would not change softmax)
            x, **{**p, "W_yh": p["W_yh"] + rng.standard_normal((3, 4))}, alpha=0.5)
        assert np.array_equal(h3[:, 0], h4[:, 0]) and not np.allclose(h3[:, 1:], h4[:, 1:])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_jordan_dtype_and_bad_input(dtype):
    rng = np.random.default_rng(2)
    p = {k: v.astype(dtype) for k, v in jordan_params(rng).items()}
    x = rng.standard_normal((2, 4, 3)).astype(dtype)
    h, o, cache = jordan_forward(x, **p)
    dx, grads, dy0 = jordan_backward(np.ones_like(h), np.ones_like(o), cache)
    assert h.dtype == o.dtype == dx.dtype == dy0.dtype == dtype
    assert all(g.dtype == dtype for g in grads.values())
    with pytest.raises(ValueError, match="needs targets"):
        jordan_forward(x, **p, feedback="teacher")
    with pytest.raises(ValueError, match="W_hc"):
        jordan_forward(x, **{**p, "W_hc": p["W_hc"][:, :2]})
    with pytest.raises(ValueError, match="feedback"):
        jordan_forward(x, **p, feedback="argmax")
