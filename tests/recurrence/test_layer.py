"""One RNN layer over an input sequence, ``rnn_forward`` / ``rnn_backward``
(docs/hot-paths/recurrence.md, "One layer"; FlashRNN, arXiv 2412.07752, projection + recurrence).

* it is exactly ``project_inputs`` followed by ``flashrnn_forward`` (and their backwards) on the
  chosen tier, bitwise;
* it equals ``torch.nn.LSTM`` / ``GRU`` in float64, forward and backward, on every available tier
  (the cuda tier under the simulator uses tiny shapes);
* on ``backend="jit"`` both halves run in the jit tier with BLAS pinned by the tier itself;
* bad inputs raise errors naming the argument the user passed.
"""

from __future__ import annotations

import numpy as np
import pytest

from refseq import recurrence as F
from refseq.recurrence import lstm_from_torch, lstm_to_torch
from refseq.recurrence.layer import rnn_backward, rnn_forward
from refseq.tiers import tier_available

TIERS = [t for t in ("numpy", "jit", "cuda") if tier_available(t)[0]]
RTOL, ATOL = 1e-10, 1e-12  # float64 on both sides, sums in another order


def layer_inputs(seed, cell="lstm", B=2, T=5, I=3, N=2, D=3, dtype=np.float64):
    spec, rng = F.CELLS[cell], np.random.default_rng(seed)
    x = rng.standard_normal((B, T, I))
    W = rng.standard_normal((spec.num_gates_w, N, D, I)) / np.sqrt(I)
    R = rng.standard_normal((spec.num_gates_r, N, D, D)) / np.sqrt(D)
    b = rng.standard_normal((spec.num_gates_t, N, D))
    s0 = rng.standard_normal((spec.num_states, B, N, D))
    if cell == "slstm":
        s0[2] = 1 + np.abs(s0[2])
    d_all = rng.standard_normal((spec.num_states, B, T, N, D))
    d_last = rng.standard_normal((spec.num_states, B, N, D))
    return tuple(a.astype(dtype) for a in (x, W, R, b, s0, d_all, d_last))


@pytest.mark.parametrize("backend", TIERS)
@pytest.mark.parametrize("cell", ["lstm", "gru", "slstm"])
def test_layer_is_the_composition_of_projection_and_recurrence(backend, cell):
    x, W, R, b, s0, d_all, d_last = layer_inputs(1, cell, T=4 if backend == "cuda" else 7)
    got = rnn_forward(x, W, R, b, s0, cell=cell, backend=backend, return_cache=True)
    Wx = F.project_inputs(x, W, backend=backend)
    ref = F.flashrnn_forward(Wx, R, b, s0, cell=cell, backend=backend, return_cache=True)
    for g, r in zip(got[:2] + (got[2]["states"], got[2]["gates"]),
                    ref[:2] + (ref[2]["states"], ref[2]["gates"]), strict=True):
        np.testing.assert_array_equal(g, r)
    grads = rnn_backward(d_all, d_last, x, W, R, b, got[2], cell=cell, backend=backend)
    ds0, dWx, dR, db = F.flashrnn_backward(d_all, d_last, R, b, ref[2], cell=cell,
                                           backend=backend)
    dx, dW = F.project_inputs_backward(dWx, x, W, backend=backend)
    for g, r in zip(grads, (dx, dW, dR, db, ds0), strict=True):
        np.testing.assert_array_equal(g, r)


@pytest.mark.parametrize("backend", TIERS)
def test_layer_equals_torch_lstm_forward_and_backward(backend):
    torch = pytest.importorskip("torch")
    B, T, I, H = (2, 3, 2, 3) if backend == "cuda" else (3, 9, 4, 5)
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(I, H, batch_first=True).double()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((B, T, I))
    h0, c0 = rng.standard_normal((2, B, H))
    dy, dh_last, dc_last = rng.standard_normal((B, T, H)), *rng.standard_normal((2, B, H))
    xt = torch.from_numpy(x).requires_grad_(True)
    h0t, c0t = (torch.from_numpy(a[None].copy()).requires_grad_(True) for a in (h0, c0))
    y, (hT, cT) = lstm(xt, (h0t, c0t))
    torch.autograd.backward([y, hT, cT], [torch.from_numpy(dy), torch.from_numpy(dh_last[None]),
                                          torch.from_numpy(dc_last[None])])

    W, R, b = lstm_from_torch(*(getattr(lstm, p + "_l0").detach().numpy()
                                for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
    s0 = np.stack([h0, c0])[:, :, None]  # (S, B, N=1, H)
    states_all, last, cache = rnn_forward(x, W, R, b, s0, backend=backend, return_cache=True)
    np.testing.assert_allclose(states_all[0, :, :, 0], y.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(last[:, :, 0], np.stack([hT[0].detach().numpy(),
                                                        cT[0].detach().numpy()]),
                               rtol=RTOL, atol=ATOL)
    d_all = np.zeros_like(states_all)
    d_all[0, :, :, 0] = dy
    d_last = np.stack([dh_last, dc_last])[:, :, None]
    dx, dW, dR, db, ds0 = rnn_backward(d_all, d_last, x, W, R, b, cache, backend=backend)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ds0[0, :, 0], h0t.grad[0].numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ds0[1, :, 0], c0t.grad[0].numpy(), rtol=RTOL, atol=ATOL)
    ours = lstm_to_torch(dW, dR, db)
    for name, g in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), ours, strict=True):
        np.testing.assert_allclose(g, getattr(lstm, name + "_l0").grad.numpy(), rtol=RTOL,
                                   atol=ATOL, err_msg=name)


@pytest.mark.skipif(not tier_available("jit")[0], reason="jit tier unavailable")
def test_jit_layer_runs_both_halves_in_the_jit_tier_with_pinned_blas(monkeypatch):
    """The documented path is the one ``refseq bench recurrence`` measures: the jit twins of
    the projection and of the recurrence, with the BLAS pinning applied by the tier."""
    import refseq.jit.recurrence as J
    from refseq.jit import blas_threads

    calls, pinned = [], []

    def spying(name, fn):
        def spy(*a, **k):
            calls.append(name)
            return fn(*a, **k)
        return spy

    for name in ("project_inputs", "flashrnn_forward", "flashrnn_backward",
                 "project_inputs_backward"):
        monkeypatch.setattr(J, name, spying(name, getattr(J, name)))
    real = blas_threads.single_threaded_blas

    def spy_pin():
        pinned.append(calls[-1])
        return real()

    monkeypatch.setattr(blas_threads, "single_threaded_blas", spy_pin)
    x, W, R, b, s0, d_all, d_last = layer_inputs(3, B=64, T=6, I=8, N=1, D=8,
                                                 dtype=np.float32)
    _, _, cache = rnn_forward(x, W, R, b, s0, backend="jit", return_cache=True)
    rnn_backward(d_all, d_last, x, W, R, b, cache, backend="jit")
    assert calls == ["project_inputs", "flashrnn_forward", "flashrnn_backward",
                     "project_inputs_backward"]
    import numba

    if blas_threads.available() and numba.get_num_threads() > 1:
        assert "project_inputs" in pinned and "project_inputs_backward" in pinned


def test_bad_inputs_name_the_argument():
    x, W, R, b, s0, d_all, d_last = layer_inputs(4)
    with pytest.raises(ValueError, match=r"W has 3 gates \(axis 0\).*'lstm' needs G_w = 4"):
        rnn_forward(x, W[:3], R, b)
    with pytest.raises(ValueError, match=r"W must have shape \(G_w, N, D, I\) with I"):
        rnn_forward(x, W[..., :2], R, b)
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, I\)"):
        rnn_forward(x[0], W, R, b)
    with pytest.raises(ValueError, match=r"^R must have shape \(G_r, N, D, D\) = \(4, 2, 3, 3\) "
                                         r"\(from cell 'lstm', x of shape \(2, 5, 3\) and W of "
                                         r"shape \(4, 2, 3, 3\)\), got \(4, 1, 3, 3\)"):
        rnn_forward(x, W, R[:, :1], b)
    with pytest.raises(ValueError, match=r"^states0 must have shape \(S, B, N, D\).* and W of"):
        rnn_forward(x, W, R, b, s0[:1])
    with pytest.raises(TypeError, match="x must have dtype float32 or float64"):
        rnn_forward(x.astype(np.int64), W, R, b)
    for name, arrays in (("x", (x, W, R, b)), ("R", (x, W, R, b)), ("b", (x, W, R, b))):
        bad = [a.copy() for a in arrays]
        bad[("x", "W", "R", "b").index(name)].flat[1] = np.nan
        with pytest.raises(ValueError, match=f"^{name} must be finite"):
            rnn_forward(*bad)
    x_nan = x.copy()
    x_nan[0, 0, 0] = np.nan
    out, _ = rnn_forward(x_nan, W, R, b, check_finite=False)  # NaN propagates, no error
    assert np.isnan(out[:, 0]).all() and np.isfinite(out[:, 1:]).all()
    with pytest.raises(TypeError, match="check_finite must be a bool"):
        rnn_forward(x, W, R, b, check_finite=1)
    with pytest.raises(ValueError, match="backend must be one of"):
        rnn_forward(x, W, R, b, backend="gpu")
    with pytest.raises(ValueError, match="cell must be one of"):
        rnn_forward(x, W, R, b, cell="lsmt")
    _, _, cache = rnn_forward(x, W, R, b, s0, return_cache=True)
    with pytest.raises(ValueError, match=r"x \(B, T, I\) = \(2, 4, 3\).*do not match the cache"):
        rnn_backward(d_all, d_last, x[:, :4], W, R, b, cache)
    bad = d_all.copy()
    bad[0, 0, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="^d_states_all must be finite"):
        rnn_backward(bad, d_last, x, W, R, b, cache)
    with pytest.raises(ValueError, match="W has 1 gates"):
        rnn_backward(d_all, d_last, x, W[:1], R, b, cache)
