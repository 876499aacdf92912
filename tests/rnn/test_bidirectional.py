"""Bidirectional RNNs (refseq/rnn/bidirectional.py): ragged batches equal per-sequence runs,
causality and padding, gradients against finite differences, torch's packed bidirectional
LSTM, dtypes and bad input.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.rnn.bidirectional import (
    bidirectional,
    bidirectional_backward,
    brnn_output,
    brnn_output_backward,
)
from refseq.rnn.elman import ElmanLayer
from refseq.rnn.lstm import LSTMLayer, LSTMParams, init_lstm_params
from refseq.testing.gradcheck import assert_entrywise, cotangent_loss
from refseq.testing.strategies import ragged_lengths, seeds


def make_layer(kind, rng, I, H):
    if kind == "lstm":
        return LSTMLayer(init_lstm_params(rng, I, H, peepholes=True), peepholes=True)
    return ElmanLayer.init(rng, I, H, activation=kind)


KINDS = ["tanh", "sigmoid", "lstm"]


# --- bidirectional -------------------------------------------------------------------------------

@given(seeds(), st.sampled_from(KINDS), st.integers(1, 4), st.integers(1, 8),
       st.sampled_from(["concat", "sum", "separate"]))
def test_bidirectional_ragged_equals_per_sequence_runs(seed, kind, B, T, merge):
    rng = np.random.default_rng(seed)
    I, H = 3, 4
    fwd, bwd = make_layer(kind, rng, I, H), make_layer(kind, rng, I, H)
    x = rng.standard_normal((B, T, I))
    L = ragged_lengths(rng, B, T)
    x[np.arange(T)[None, :] >= L[:, None]] = 1e3  # loud padding
    out, _ = bidirectional(fwd, bwd, x, L, merge)
    h_f, h_b = out if merge == "separate" else (None, None)
    if merge == "concat":
        assert out.shape == (B, T, 2 * H)
        h_f, h_b = out[..., :H], out[..., H:]
    for b in range(B):
        xb = x[b:b + 1, :L[b]]
        ref_f = fwd.forward(xb)[0][0]  # (L_b, H)
        ref_b = bwd.forward(xb[:, ::-1])[0][0][::-1]  # the backward layer on the reversed seq
        if merge == "sum":
            np.testing.assert_allclose(out[b, :L[b]], ref_f + ref_b, rtol=1e-12, atol=1e-13)
        else:
            np.testing.assert_allclose(h_f[b, :L[b]], ref_f, rtol=1e-12, atol=1e-13)
            np.testing.assert_allclose(h_b[b, :L[b]], ref_b, rtol=1e-12, atol=1e-13)
    for part in (out if merge == "separate" else (out,)):
        assert not part[np.arange(T)[None, :] >= L[:, None]].any()  # padding outputs are 0


@given(seeds(), st.sampled_from(KINDS), st.integers(2, 7))
def test_bidirectional_causality_and_padding(seed, kind, T):
    rng = np.random.default_rng(seed)
    fwd, bwd = make_layer(kind, rng, 3, 4), make_layer(kind, rng, 3, 4)
    W_yh, W_yz, b_y = (rng.standard_normal(s) for s in ((5, 4), (5, 4), (5,)))
    x = rng.standard_normal((2, T, 3))
    L = np.array([T, T - 1])

    def logits(x):
        h_f, h_b = bidirectional(fwd, bwd, x, L, "separate")[0]
        return brnn_output(h_f, h_b, W_yh, W_yz, b_y)

    base = logits(x)
    x2 = x.copy()
    x2[0, T - 1] += 1.0  # the last real input of sequence 0 reaches its first output
    assert np.abs(logits(x2)[0, 0] - base[0, 0]).max() > 1e-12
    x3 = x.copy()
    x3[1, T - 1] = 1e6  # padding of sequence 1 never changes a real output
    np.testing.assert_array_equal(logits(x3)[1, :T - 1], base[1, :T - 1])
    # the forward direction alone is causal (bit-exact)
    x4 = x.copy()
    x4[:, T // 2] += 1.0
    f1 = bidirectional(fwd, bwd, x, L, "separate")[0][0]
    f2 = bidirectional(fwd, bwd, x4, L, "separate")[0][0]
    assert np.array_equal(f1[:, :T // 2], f2[:, :T // 2])


@settings(max_examples=6)
@given(seeds(), st.sampled_from(KINDS), st.sampled_from(["concat", "sum"]))
def test_bidirectional_gradients_match_finite_differences(seed, kind, merge):
    rng = np.random.default_rng(seed)
    B, T, I, H = 2, 4, 2, 3
    fwd, bwd = make_layer(kind, rng, I, H), make_layer(kind, rng, I, H)
    x = rng.standard_normal((B, T, I))
    L = np.array([T, 2])
    out, cache = bidirectional(fwd, bwd, x, L, merge)
    W_yh, W_yz, b_y = (rng.standard_normal(s) for s in ((3, H), (3, H), (3,)))
    dy = rng.standard_normal(out.shape)
    loss = cotangent_loss(lambda: bidirectional(fwd, bwd, x, L, merge)[0], dy)
    dx, g_f, g_b = bidirectional_backward(dy, cache)
    assert_entrywise(loss, {"x": x, **{"f." + k: v for k, v in fwd.params.items()},
                            **{"b." + k: v for k, v in bwd.params.items()}},
                     {"x": dx, **{"f." + k: v for k, v in g_f.items()},
                      **{"b." + k: v for k, v in g_b.items()}})
    # the review's output layer
    dl = rng.standard_normal((B, T, 3))
    arrays = {"h_f": rng.standard_normal((B, T, H)), "h_b": rng.standard_normal((B, T, H)),
              "W_yh": W_yh, "W_yz": W_yz, "b_y": b_y}
    got = brnn_output_backward(dl, arrays["h_f"], arrays["h_b"], W_yh, W_yz)
    assert_entrywise(cotangent_loss(lambda: brnn_output(*arrays.values()), dl), arrays,
                     dict(zip(arrays, got)))


def test_bidirectional_lstm_matches_torch_packed():
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    rng = np.random.default_rng(7)
    B, T, I, H = 3, 6, 3, 4
    m = torch.nn.LSTM(I, H, batch_first=True, bidirectional=True, dtype=torch.float64)
    x = rng.standard_normal((B, T, I))
    L = np.array([6, 2, 4])
    xt = torch.tensor(x, requires_grad=True)
    packed = pack_padded_sequence(xt, torch.from_numpy(L), batch_first=True,
                                  enforce_sorted=False)
    y, _ = pad_packed_sequence(m(packed)[0], batch_first=True, total_length=T)
    dy = rng.standard_normal((B, T, 2 * H))
    (y * torch.from_numpy(dy)).sum().backward()

    def layer(sfx):
        Wi, Wh = (getattr(m, f"weight_{k}_l0{sfx}").detach().numpy() for k in ("ih", "hh"))
        b = (getattr(m, f"bias_ih_l0{sfx}") + getattr(m, f"bias_hh_l0{sfx}")).detach().numpy()
        order = (2, 0, 1, 3)  # torch rows i, f, g, o -> review g, i, f, o
        return LSTMLayer(LSTMParams(*(np.split(Wi, 4)[j] for j in order),
                                    *(np.split(Wh, 4)[j] for j in order),
                                    *(np.split(b, 4)[j] for j in order)))

    out, cache = bidirectional(layer(""), layer("_reverse"), x, L)
    np.testing.assert_allclose(out, y.detach().numpy(), rtol=1e-10, atol=1e-12)
    dx, g_f, _ = bidirectional_backward(dy, cache)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    gW = m.weight_hh_l0.grad.numpy()
    np.testing.assert_allclose(g_f["W_ih"], np.split(gW, 4)[0], rtol=1e-10, atol=1e-12)


def test_bidirectional_bad_input():
    rng = np.random.default_rng(8)
    fwd, bwd = make_layer("tanh", rng, 3, 4), make_layer("tanh", rng, 3, 5)
    x = rng.standard_normal((2, 5, 3))
    with pytest.raises(ValueError, match="lengths must be >= 0"):
        bidirectional(fwd, bwd, x, np.array([-1, 5]))
    with pytest.raises(ValueError, match="lengths must be <= T"):
        bidirectional(fwd, bwd, x, np.array([6, 5]))
    with pytest.raises(ValueError, match="merge"):
        bidirectional(fwd, bwd, x, merge="mean")
    with pytest.raises(ValueError, match="equal widths"):
        bidirectional(fwd, bwd, x, merge="sum")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bidirectional_preserves_dtype(dtype):
    rng = np.random.default_rng(9)
    fwd = LSTMLayer(init_lstm_params(rng, 3, 4, dtype))
    bwd = ElmanLayer.init(rng, 3, 4, dtype)
    out, cache = bidirectional(fwd, bwd, rng.standard_normal((2, 5, 3)).astype(dtype),
                               np.array([5, 3]))
    dx, g_f, g_b = bidirectional_backward(np.ones_like(out), cache)
    assert out.dtype == dx.dtype == dtype
    assert all(g.dtype == dtype for g in [*g_f.values(), *g_b.values()])


