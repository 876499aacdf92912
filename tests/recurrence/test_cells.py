"""Pointwise cells (arXiv 2412.07752's generic form ``s_t = P(s_{t-1}, g~_t)``; the cell
equations and the registry in docs/papers/flashrnn.md and docs/hot-paths/recurrence.md): the
registry table, first-step closed forms from the zero state, one-step backward against central
differences, and the sLSTM's stable form beside its textbook form."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.recurrence import CELLS, flashrnn_forward, pointwise_backward, pointwise_forward
from refseq.recurrence.cells import log_sigmoid, preactivations, sigmoid
from refseq.testing.gradcheck import assert_entrywise, cotangent_loss
from refseq.testing.strategies import seeds

ALL_CELLS = sorted(CELLS)


def test_registry_table():
    table = {name: (s.num_gates_w, s.num_gates_r, s.num_gates_t, s.num_states, s.state_names)
             for name, s in CELLS.items()}
    assert table == {
        "elman": (1, 1, 1, 1, ("h",)),
        "elman_relu": (1, 1, 1, 1, ("h",)),
        "lstm": (4, 4, 4, 2, ("h", "c")),
        "gru": (3, 3, 4, 1, ("h",)),
        "slstm": (4, 4, 4, 4, ("h", "c", "n", "m")),
    }
    gru = CELLS["gru"]
    assert [gru.gate_names[g] for g in gru.w_gates] == ["r", "z", "n"]
    assert [gru.gate_names[g] for g in gru.r_gates] == ["g", "r", "z"]
    for s in CELLS.values():
        assert len(s.w_gates) == s.num_gates_w and len(s.r_gates) == s.num_gates_r
        assert len(s.gate_names) == len(s.cache_names) == s.num_gates_t


def test_preactivations_place_gates_in_bias_order():
    Wx = np.arange(3.0).reshape(1, 3, 1, 1) + 1  # r, z, n inputs: 1, 2, 3
    Ry = 10 * (np.arange(3.0).reshape(1, 3, 1, 1) + 1)  # g, r, z recurrent: 10, 20, 30
    b = 100 * (np.arange(4.0).reshape(4, 1, 1) + 1)  # g, r, z, n: 100 .. 400
    np.testing.assert_array_equal(preactivations("gru", Wx, Ry, b).ravel(),
                                  [110, 221, 332, 403])


def _draw(seed, cell, B, N, D, scale=1.0):
    s, rng = CELLS[cell], np.random.default_rng(seed)
    Wx = scale * rng.standard_normal((B, s.num_gates_w, N, D))
    Ry = scale * rng.standard_normal((B, s.num_gates_r, N, D))
    b = scale * rng.standard_normal((s.num_gates_t, N, D))
    return rng, Wx, Ry, b


@given(seeds(), st.integers(1, 3), st.integers(1, 3), st.integers(1, 5), st.floats(0.1, 3))
def test_first_step_closed_forms(seed, B, N, D, scale):
    """From the zero state (docs/hot-paths/recurrence.md, "Properties (tests)": first-step closed
    forms, all cells); Ry is R @ 0 = 0 there."""
    for cell in ALL_CELLS:
        rng, Wx, _, b = _draw(seed, cell, B, N, D, scale)
        R = rng.standard_normal((CELLS[cell].num_gates_r, N, D, D))
        out, _ = flashrnn_forward(Wx[:, None], R, b, cell=cell)
        h1 = out[0, :, 0]
        if cell in ("lstm", "slstm"):
            i_, f_, z_, o_ = (Wx[:, g] + b[g] for g in range(4))
        if cell == "elman":
            want = np.tanh(Wx[:, 0] + b[0])
        elif cell == "elman_relu":
            want = np.maximum(Wx[:, 0] + b[0], 0)
        elif cell == "lstm":
            want = sigmoid(o_) * np.tanh(sigmoid(i_) * np.tanh(z_))
            np.testing.assert_allclose(out[1, :, 0], sigmoid(i_) * np.tanh(z_), rtol=1e-15)
        elif cell == "gru":
            r, z = sigmoid(Wx[:, 0] + b[1]), sigmoid(Wx[:, 1] + b[2])
            want = (1 - z) * np.tanh(Wx[:, 2] + b[3] + r * b[0])
        else:
            want = sigmoid(o_) * np.tanh(z_)
            np.testing.assert_allclose(out[1, :, 0], np.tanh(z_), rtol=1e-15)
            np.testing.assert_array_equal(out[2, :, 0], 1.0)
            np.testing.assert_array_equal(out[3, :, 0], i_)
        np.testing.assert_allclose(h1, want, rtol=1e-14, atol=1e-15, err_msg=cell)


@given(st.sampled_from(ALL_CELLS), seeds(), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 4))
def test_pointwise_backward_matches_central_differences(cell, seed, B, N, D):
    """Every entry of the one-step vector-Jacobian product with a random cotangent."""
    spec = CELLS[cell]
    rng, Wx, Ry, b = _draw(seed, cell, B, N, D)
    s = rng.standard_normal((spec.num_states, B, N, D))
    if cell == "slstm":
        s[2] = 1 + np.abs(s[2])  # n >= 1 away from the first-step branch
    new, cache = pointwise_forward(cell, Wx, Ry, b, s)
    d = rng.standard_normal(new.shape)
    if cell == "slstm":
        d[1:] = 0  # stop-gradient at m is exact for losses on h only (h is invariant to m)
    d_prev, d_gates = pointwise_backward(cell, d, s, new, cache)
    pre = preactivations(cell, Wx, Ry, b)

    # h_{t-1} enters only through Ry (the caller's R^T path); the sLSTM's m_{t-1} is a
    # stop-gradient: neither is checked entry by entry
    state_entries = [idx for idx in np.ndindex(s.shape)
                     if idx[0] != 0 and not (cell == "slstm" and idx[0] == 3)]
    assert_entrywise(cotangent_loss(lambda: spec.forward(pre, s)[0], d),
                     {f"{cell}: pre": pre, f"{cell}: s": s},
                     {f"{cell}: pre": d_gates, f"{cell}: s": d_prev},
                     indices={f"{cell}: s": state_entries})
    assert not d_prev[0].any() or cell == "gru"  # only the GRU has a direct h path


def test_slstm_stable_form_survives_where_the_textbook_form_overflows():
    """Beside the textbook C, N with e^{i~}: equal on benign inputs, only the stable one lives
    past e^{709}."""
    rng = np.random.default_rng(0)
    for big, finite_textbook in ((3.0, True), (800.0, False)):
        i_pre = big + rng.standard_normal((5, 1, 1, 2))  # (T, B, N, D)
        f_pre, z_pre, o_pre = rng.standard_normal((3, 5, 1, 1, 2))
        Wx = np.stack([i_pre, f_pre, z_pre, o_pre], axis=2).transpose(1, 0, 2, 3, 4)
        h = flashrnn_forward(Wx, np.zeros((4, 1, 2, 2)), np.zeros((4, 1, 2)), cell="slstm")[0][0]
        assert np.isfinite(h).all()
        with np.errstate(over="ignore", invalid="ignore"):
            C, Nn, hs = np.zeros((1, 1, 2)), np.zeros((1, 1, 2)), []
            for t in range(5):
                C = sigmoid(f_pre[t]) * C + np.exp(i_pre[t]) * np.tanh(z_pre[t])
                Nn = sigmoid(f_pre[t]) * Nn + np.exp(i_pre[t])
                hs.append(sigmoid(o_pre[t]) * C / Nn)
        hs = np.stack(hs, 1)[:, :, 0]  # (B, T, N... ) -> compare with h (B, T, N, D)
        assert np.isfinite(hs).all() == finite_textbook
        if finite_textbook:
            np.testing.assert_allclose(h, hs.reshape(h.shape), rtol=1e-12)


def test_log_sigmoid_never_underflows():
    x = np.array([-800.0, -50.0, 0.0, 50.0])
    np.testing.assert_allclose(log_sigmoid(x), [-800.0, -50.0, -np.log(2), -np.exp(-50.0)],
                               rtol=1e-14)
    assert log_sigmoid(np.float32(-200)).dtype == np.float32
    assert np.isfinite(log_sigmoid(np.float32(-200)))


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_pointwise_dtype_is_preserved(cell):
    _, Wx, Ry, b = _draw(0, cell, 2, 2, 3)
    s = np.zeros((CELLS[cell].num_states, 2, 2, 3), np.float32)
    new, cache = pointwise_forward(cell, *(x.astype(np.float32) for x in (Wx, Ry, b)), s)
    assert new.dtype == np.float32 and all(v.dtype == np.float32 for v in cache.values())
    d_prev, d_g = pointwise_backward(cell, np.ones_like(new), s, new, cache)
    assert d_prev.dtype == d_g.dtype == np.float32
