"""Properties of the head-wise recurrence (arXiv 2412.07752; the property table of
docs/hot-paths/recurrence.md, "Properties (tests)", names the test of each).

float64 unless stated. Shapes: B 1..4, T in {0, 1, odd, ...} up to 24, N 1..4, D 1..8 (odd
included), every cell, inputs scaled by a drawn factor in [0.1, 3]; R ~ N(0,1)/sqrt(D).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.recurrence import (
    CELLS,
    flashrnn_backward,
    flashrnn_forward,
    flashrnn_step,
    round_to_bfloat16,
)
from refseq.recurrence.cells import log_sigmoid, sigmoid
from refseq.recurrence.layouts import from_block_diagonal, to_block_diagonal
from refseq.testing.gradcheck.checks import assert_directional
from refseq.testing.gradcheck.rule import cotangent_loss
from refseq.testing.strategies import seeds

ALL_CELLS = sorted(CELLS)
SAME_OPS = dict(rtol=1e-10, atol=1e-12)  # same arithmetic, different order


@st.composite
def problems(draw, cells=ALL_CELLS, T=(0, 24), N=(1, 4), D=(1, 8), B=(1, 4)):
    """A dict: cell, B, T, N, D, scale, seed (T favours 0, 1 and odd lengths)."""
    lo, hi = T
    T_ = draw(st.one_of(st.sampled_from([t for t in (0, 1, 2, 3, 5, 7, 9) if lo <= t <= hi]),
                        st.integers(lo, hi)))
    return dict(cell=draw(st.sampled_from(cells)), B=draw(st.integers(*B)), T=T_,
                N=draw(st.integers(*N)), D=draw(st.integers(*D)),
                scale=draw(st.floats(0.1, 3.0)), seed=draw(seeds()))


def make_inputs(p, dtype=np.float64, zero_state=False):
    """Official test init: Wx ~ N(0,1), R ~ N(0,1)/sqrt(D) (non-symmetric), b ~ N(0,1)."""
    spec, rng = CELLS[p["cell"]], np.random.default_rng(p["seed"])
    B, T, N, D, k = p["B"], p["T"], p["N"], p["D"], p["scale"]
    Wx = k * rng.standard_normal((B, T, spec.num_gates_w, N, D))
    R = rng.standard_normal((spec.num_gates_r, N, D, D)) / np.sqrt(D)
    b = k * rng.standard_normal((spec.num_gates_t, N, D))
    s0 = None if zero_state else random_states(rng, spec, B, N, D)
    return tuple(None if x is None else x.astype(dtype) for x in (Wx, R, b, s0))


def random_states(rng, spec, B, N, D):
    s0 = rng.standard_normal((spec.num_states, B, N, D))
    if spec.name == "slstm":  # a valid stabilised state: n >= 1, |c| <= n
        s0[2] = 1 + np.abs(s0[2])
        s0[1] = np.tanh(s0[1]) * s0[2]
        s0[0] = sigmoid(s0[0]) * s0[1] / s0[2]
    return s0


def cotangents(rng, states_all, last_states, cell):
    """Random cotangents (never .sum()); the sLSTM's only on h (m is a stop-gradient)."""
    d_all, d_last = rng.standard_normal(states_all.shape), rng.standard_normal(last_states.shape)
    if cell == "slstm":
        d_all[1:], d_last[1:] = 0, 0
    return d_all, d_last


def fwd_bwd(Wx, R, b, s0, cell, d_all, d_last, **kw):
    out, last, cache = flashrnn_forward(Wx, R, b, s0, cell=cell, return_cache=True)
    return out, last, flashrnn_backward(d_all, d_last, R, b, cache, cell=cell, **kw)


# --- 1. head equivalence --------------------------------------------------------------------


@given(problems())
def test_heads_equal_one_dense_block_diagonal_head(p):
    Wx, R, b, s0 = make_inputs(p)
    B, T, N, D, cell = p["B"], p["T"], p["N"], p["D"], p["cell"]
    G_w, S = Wx.shape[2], s0.shape[0]
    one = lambda x, lead: x.reshape(lead + (1, N * D))  # noqa: E731  (.., N, D) -> (.., 1, N*D)
    Wx1, b1, s01 = one(Wx, (B, T, G_w)), one(b, (b.shape[0],)), one(s0, (S, B))
    R1 = to_block_diagonal(R)[:, None]  # (G, 1, ND, ND)
    rng = np.random.default_rng(p["seed"] + 1)
    out, last, (ds0, dWx, dR, db) = fwd_bwd(Wx, R, b, s0, cell, *cotangents(
        rng, np.empty((S, B, T, N, D)), s0, cell))
    rng = np.random.default_rng(p["seed"] + 1)
    d_all, d_last = cotangents(rng, np.empty((S, B, T, N, D)), s0, cell)
    out1, last1, (ds01, dWx1, dR1, db1) = fwd_bwd(
        Wx1, R1, b1, s01, cell, d_all.reshape(S, B, T, 1, N * D), d_last.reshape(S, B, 1, N * D))
    for a, a1 in ((out, out1), (last, last1), (ds0, ds01), (dWx, dWx1), (db, db1)):
        np.testing.assert_allclose(a1.reshape(a.shape), a, **SAME_OPS)
    # dR: only the diagonal blocks; the off-diagonal ones are cross-head terms.
    np.testing.assert_allclose(from_block_diagonal(dR1[:, 0], N, strict=False), dR, **SAME_OPS)


# --- 2. streaming == chunked == full ---------------------------------------------------------


@given(problems(), st.data())
def test_steps_and_chunks_reproduce_the_full_forward_exactly(p, data):
    Wx, R, b, s0 = make_inputs(p)
    cell, T = p["cell"], p["T"]
    out, last = flashrnn_forward(Wx, R, b, s0, cell=cell)
    s = s0
    for t in range(T):
        s = flashrnn_step(Wx[:, t], R, b, s, cell=cell)
        np.testing.assert_array_equal(s, out[:, :, t])
    np.testing.assert_array_equal(s, last)
    cuts = sorted(data.draw(st.lists(st.integers(0, T), max_size=3)))
    pieces, s = [], s0
    for a, z in zip([0] + cuts, cuts + [T]):
        o, s = flashrnn_forward(Wx[:, a:z], R, b, s, cell=cell)
        pieces.append(o)
    np.testing.assert_array_equal(np.concatenate(pieces, axis=2), out)
    np.testing.assert_array_equal(s, last)


# --- 3./4. sLSTM stabiliser ------------------------------------------------------------------


@given(problems(cells=["slstm"], T=(1, 32)))
def test_slstm_stabiliser_cancels_and_keeps_its_invariants(p):
    """With bounded pre-activations, h equals the unstabilised recurrence (C, N with e^{i~})."""
    rng = np.random.default_rng(p["seed"])
    B, T, N, D = p["B"], p["T"], p["N"], p["D"]
    Wx = rng.uniform(-4, 4, (B, T, 4, N, D))
    R = rng.standard_normal((4, N, D, D))
    R *= 4 / np.maximum(np.abs(R).sum(-1, keepdims=True), 4)  # |R h| <= 4 since |h| <= 1
    b = rng.uniform(-2, 2, (4, N, D))  # |pre-activation| <= 10
    out, last, cache = flashrnn_forward(Wx, R, b, cell="slstm", return_cache=True)
    h, C, Nn = np.zeros((B, N, D)), np.zeros((B, N, D)), np.zeros((B, N, D))
    for t in range(T):  # textbook form
        pre = Wx[:, t] + np.einsum("gndp,bnp->bgnd", R, h) + b
        C = sigmoid(pre[:, 1]) * C + np.exp(pre[:, 0]) * np.tanh(pre[:, 2])
        Nn = sigmoid(pre[:, 1]) * Nn + np.exp(pre[:, 0])
        h = sigmoid(pre[:, 3]) * C / Nn
        np.testing.assert_allclose(out[0, :, t], h, rtol=1e-10, atol=1e-12)
    _, c, n, m = cache["states"]  # (B, T+1, N, D) each, index 0 = zero state
    i_pre, f_pre = cache["gates"][:, :, 0], cache["gates"][:, :, 1]  # (T, B, N, D)
    m_t, m_prev = np.moveaxis(m[:, 1:], 1, 0), np.moveaxis(m[:, :-1], 1, 0)
    assert (n[:, 1:] >= 1).all() and (m_t >= i_pre).all()
    assert (np.exp(i_pre - m_t) <= 1).all()
    assert (np.exp(log_sigmoid(f_pre) + m_prev - m_t)[1:] <= 1).all()


@given(problems(cells=["slstm"], T=(0, 24)), st.floats(-5, 0))
def test_slstm_representation_shift_leaves_h_unchanged(p, kappa):
    Wx, R, b, s0 = make_inputs(p)
    shifted = s0.copy()
    shifted[1:3] *= np.exp(-kappa)
    shifted[3] += kappa
    h = flashrnn_forward(Wx, R, b, s0, cell="slstm")[0][0]
    h_shift = flashrnn_forward(Wx, R, b, shifted, cell="slstm")[0][0]
    np.testing.assert_allclose(h_shift, h, rtol=1e-10, atol=1e-12)


# --- 6. special cases --------------------------------------------------------------------------


@given(problems(cells=["elman", "lstm", "gru"], T=(0, 24)))
def test_special_cases(p):
    Wx, R, b, s0 = make_inputs(p)
    cell = p["cell"]
    if cell == "elman":  # R = 0: time-local
        out, _ = flashrnn_forward(Wx, np.zeros_like(R), b, s0, cell=cell)
        np.testing.assert_allclose(out[0], np.tanh(Wx[:, :, 0] + b[0]), rtol=1e-15, atol=0)
    elif cell == "lstm":  # f~ -> +40, i~ -> -40: constant error carousel
        b[0], b[1] = -40 - 50 * np.abs(b[0]), 40 + 50 * np.abs(b[1])
        Wx[:, :, :2] = np.clip(Wx[:, :, :2], -3, 3)
        out, _ = flashrnn_forward(Wx, R, b, s0, cell=cell)
        np.testing.assert_allclose(out[1], np.broadcast_to(s0[1][:, None], out[1].shape),
                                   rtol=0, atol=1e-12)
    else:  # GRU, z~ -> +40 keeps h
        b[2] = 40 + 50 * np.abs(b[2])
        Wx[:, :, 1] = np.clip(Wx[:, :, 1], -3, 3)
        out, _ = flashrnn_forward(Wx, R, b, s0, cell=cell)
        np.testing.assert_allclose(out[0], np.broadcast_to(s0[0][:, None], out[0].shape),
                                   rtol=0, atol=1e-12)


# --- 8. gradient check -------------------------------------------------------------------------


@given(problems(T=(0, 12), D=(1, 5), B=(1, 3)), st.booleans())
def test_backward_matches_central_differences(p, zero_state):
    """Directional derivatives along random directions, random cotangents on every output."""
    Wx, R, b, s0 = make_inputs(p, zero_state=zero_state and p["cell"] != "elman_relu")
    cell, rng = p["cell"], np.random.default_rng(p["seed"] + 7)
    s0_full = np.zeros((CELLS[cell].num_states,) + Wx.shape[:1] + Wx.shape[3:]) if s0 is None \
        else s0
    out, last = flashrnn_forward(Wx, R, b, s0, cell=cell)
    d_all, d_last = cotangents(rng, out, last, cell)
    _, _, grads = fwd_bwd(Wx, R, b, s0, cell, d_all, d_last)

    loss = cotangent_loss(lambda: flashrnn_forward(Wx, R, b, s0_full, cell=cell), (d_all, d_last))
    args = {f"{cell}: {n}": a for n, a in zip(("Wx", "R", "b", "s0"), (Wx, R, b, s0_full))}
    names = list(args)
    wrt = [0, 1, 2] + ([] if s0 is None else [3])  # never at a zero sLSTM state
    analytic, directions = {}, []
    for k, g in zip([3, 0, 1, 2], grads):
        if k not in wrt:
            continue
        v = rng.standard_normal(args[names[k]].shape)
        if k == 3 and cell == "slstm":
            v[3] = 0  # m0 is not differentiated
        analytic[names[k]] = g
        directions.append({names[k]: v})
    assert_directional(loss, args, analytic, directions=directions)


# --- 9./10. cut and clip, gradient through last_states ---------------------------------------


@given(problems(T=(0, 16)))
def test_cut_and_clip_semantics(p):
    Wx, R, b, s0 = make_inputs(p)
    cell, rng = p["cell"], np.random.default_rng(p["seed"] + 3)
    out, last, cache = flashrnn_forward(Wx, R, b, s0, cell=cell, return_cache=True)
    d_all, d_last = cotangents(rng, out, last, cell)
    bwd = lambda **kw: flashrnn_backward(d_all, d_last, R, b, cache, cell=cell, **kw)  # noqa
    plain, inf, cut, zero = bwd(), bwd(gradient_recurrent_clipval=np.inf), \
        bwd(gradient_recurrent_cut=True), bwd(gradient_recurrent_clipval=0.0)
    for a, z in zip(plain, inf):
        np.testing.assert_array_equal(a, z)
    for a, z in zip(cut, zero):
        np.testing.assert_array_equal(a, z)
    if cell == "elman" and p["T"]:  # with the cut, step t sees only its own external gradient
        ext = d_all[0].copy()
        ext[:, -1] += d_last[0]
        np.testing.assert_array_equal(cut[1][:, :, 0], ext * (1 - out[0] ** 2))
    if cell == "gru" and p["T"]:  # the z * dh path survives the cut
        assert np.abs(cut[0][0]).max() > 0
    clipped = bwd(gradient_recurrent_clipval=0.05)  # between the two
    assert clipped[0].shape == plain[0].shape


@given(problems(T=(0, 16)))
def test_last_state_gradient_adds_to_the_last_step(p):
    Wx, R, b, s0 = make_inputs(p)
    cell, rng = p["cell"], np.random.default_rng(p["seed"] + 5)
    out, last, cache = flashrnn_forward(Wx, R, b, s0, cell=cell, return_cache=True)
    d_all, d_last = cotangents(rng, out, last, cell)
    ref = flashrnn_backward(d_all, d_last, R, b, cache, cell=cell)
    if p["T"] == 0:
        np.testing.assert_array_equal(ref[0], d_last)
        return
    moved = d_all.copy()
    moved[:, :, -1] += d_last
    half = d_all.copy()
    half[:, :, -1] += d_last / 2
    for a, z in zip(ref, flashrnn_backward(moved, None, R, b, cache, cell=cell)):
        np.testing.assert_array_equal(a, z)  # d_last + d_all[-1] == d_all[-1] + d_last
    # half through each: equal up to the rounding of one reassociated addition per entry
    for a, z in zip(ref, flashrnn_backward(half, d_last / 2, R, b, cache, cell=cell)):
        np.testing.assert_allclose(a, z, **SAME_OPS)


# --- 11. equivariances -------------------------------------------------------------------------


@given(problems(T=(0, 12)), st.data())
def test_batch_and_head_permutations_commute(p, data):
    Wx, R, b, s0 = make_inputs(p)
    cell = p["cell"]
    out, last = flashrnn_forward(Wx, R, b, s0, cell=cell)
    pb = np.array(data.draw(st.permutations(range(p["B"]))))
    ph = np.array(data.draw(st.permutations(range(p["N"]))))
    o2, l2 = flashrnn_forward(Wx[pb][:, :, :, ph], R[:, ph], b[:, ph], s0[:, pb][:, :, ph],
                              cell=cell)
    np.testing.assert_allclose(o2, out[:, pb][:, :, :, ph], **SAME_OPS)
    np.testing.assert_allclose(l2, last[:, pb][:, :, ph], **SAME_OPS)


# --- 12. shapes, dtypes, errors ----------------------------------------------------------------


@given(problems(T=(0, 24)))
def test_float32_and_float64_are_preserved_and_agree(p):
    x64 = make_inputs(p)
    x32 = tuple(x.astype(np.float32) for x in x64)
    cell = p["cell"]
    out64, last64, cache64 = flashrnn_forward(*x64, cell=cell, return_cache=True)
    out32, last32, cache32 = flashrnn_forward(*x32, cell=cell, return_cache=True)
    assert out32.dtype == last32.dtype == cache32["states"].dtype == np.float32
    assert out64.dtype == cache64["gates"].dtype == np.float64
    np.testing.assert_allclose(out32, out64, rtol=1e-5, atol=1e-5 * max(1, p["T"] / 8))
    grads = flashrnn_backward(None, np.ones_like(last32), x32[1], x32[2], cache32, cell=cell)
    assert all(g.dtype == np.float32 for g in grads)
    assert out32.shape == (CELLS[cell].num_states, p["B"], p["T"], p["N"], p["D"])


def test_zero_length_returns_the_initial_state():
    for cell, spec in CELLS.items():
        Wx = np.zeros((2, 0, spec.num_gates_w, 3, 5))
        R, b = np.ones((spec.num_gates_r, 3, 5, 5)), np.ones((spec.num_gates_t, 3, 5))
        s0 = np.full((spec.num_states, 2, 3, 5), 1.5)
        out, last, cache = flashrnn_forward(Wx, R, b, s0, cell=cell, return_cache=True)
        assert out.shape == (spec.num_states, 2, 0, 3, 5)
        np.testing.assert_array_equal(last, s0)
        assert cache["states"].shape == (spec.num_states, 2, 1, 3, 5)
        assert cache["gates"].shape == (0, 2, spec.num_gates_t, 3, 5)
        ds0, dWx, dR, db = flashrnn_backward(None, s0, R, b, cache, cell=cell)
        np.testing.assert_array_equal(ds0, s0)
        assert dWx.shape == Wx.shape and not dR.any() and not db.any()


def test_mixed_dtypes_promote_to_the_widest():
    Wx, R, b = np.zeros((1, 2, 4, 1, 2), np.float32), np.zeros((4, 1, 2, 2)), np.zeros((4, 1, 2))
    assert flashrnn_forward(Wx, R, b)[0].dtype == np.float64


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(Wx=np.zeros((1, 2, 3, 1, 2))), "Wx has 3 gates"),
        (dict(Wx=np.zeros((1, 2, 4, 2))), "Wx must have shape"),
        (dict(R=np.zeros((4, 1, 2, 3))), "R must have shape"),
        (dict(R=np.zeros((3, 1, 2, 2))), "R must have shape"),
        (dict(b=np.zeros((4, 2, 2))), "b must have shape"),
        (dict(states0=np.zeros((1, 1, 1, 2))), "states0 must have shape"),
        (dict(Wx=np.full((1, 2, 4, 1, 2), np.nan)), "Wx must be finite"),
        (dict(R=np.full((4, 1, 2, 2), np.inf)), "R must be finite"),
        (dict(cell="rnn"), "cell must be one of"),
        (dict(forward_clipval=-1.0), "forward_clipval"),
        (dict(clamp_gates_le_one=True), "clamp_gates_le_one"),
        (dict(backend="gpu"), "backend must be one of"),
    ],
)
def test_bad_inputs_raise_value_errors_naming_the_argument(change, match):
    args = dict(Wx=np.zeros((1, 2, 4, 1, 2)), R=np.zeros((4, 1, 2, 2)), b=np.zeros((4, 1, 2)),
                states0=None, cell="lstm")
    args.update(change)
    with pytest.raises(ValueError, match=match):
        flashrnn_forward(args.pop("Wx"), args.pop("R"), args.pop("b"), args.pop("states0"),
                         **args)


def test_bad_dtypes_and_caches_raise():
    R, b = np.zeros((4, 1, 2, 2)), np.zeros((4, 1, 2))
    with pytest.raises(TypeError, match="Wx must have dtype"):
        flashrnn_forward(np.zeros((1, 2, 4, 1, 2), np.int64), R, b)
    with pytest.raises(TypeError, match="R must have dtype"):
        flashrnn_forward(np.zeros((1, 2, 4, 1, 2)), R.astype(np.float16), b)
    with pytest.raises(ValueError, match="n"):
        flashrnn_forward(np.zeros((1, 2, 4, 1, 2)), R, b, -np.ones((4, 1, 1, 2)), cell="slstm")
    _, _, cache = flashrnn_forward(np.zeros((1, 2, 4, 1, 2)), R, b, return_cache=True)
    with pytest.raises(TypeError, match="cache"):
        flashrnn_backward(None, None, R, b, {"states": cache["states"]}, cell="lstm")
    with pytest.raises(ValueError, match="cache"):
        flashrnn_backward(None, None, R, b, cache, cell="slstm")
    with pytest.raises(ValueError, match="d_states_all"):
        flashrnn_backward(np.zeros((2, 1, 3, 1, 2)), None, R, b, cache, cell="lstm")
    with pytest.raises(ValueError, match="gradient_recurrent_clipval"):
        flashrnn_backward(None, None, R, b, cache, cell="lstm", gradient_recurrent_clipval=-1)


# --- options: forward clip, sLSTM gate clamp, accumulation dtype, bfloat16 ---------------------


@given(problems(T=(1, 16)), st.floats(0.05, 0.9))
def test_forward_clipval_bounds_the_fed_back_h(p, v):
    Wx, R, b, s0 = make_inputs(p)
    out, _ = flashrnn_forward(Wx, R, b, s0, cell=p["cell"], forward_clipval=v)
    assert np.abs(out[0]).max() <= v
    s = s0  # states0 is used as given; every new h is clipped before it is fed back
    for t in range(p["T"]):
        s = flashrnn_step(Wx[:, t], R, b, s, cell=p["cell"], forward_clipval=v)
        np.testing.assert_array_equal(s, out[:, :, t])


@given(problems(cells=["slstm"], T=(1, 16)))
def test_slstm_clamp_changes_nothing_from_the_zero_state_forward(p):
    """From the zero state f'_1 may exceed 1 but multiplies zeros; afterwards f', i' <= 1."""
    Wx, R, b, _ = make_inputs(p, zero_state=True)
    a = flashrnn_forward(Wx, R, b, cell="slstm")[0]
    c = flashrnn_forward(Wx, R, b, cell="slstm", clamp_gates_le_one=True)[0]
    np.testing.assert_array_equal(a, c)


@given(problems(T=(0, 12)))
def test_accumulate_dtype_and_bfloat16_emulation(p):
    Wx, R, b, s0 = (x.astype(np.float32) for x in make_inputs(p))
    cell = p["cell"]
    acc, _ = flashrnn_forward(Wx, R, b, s0, cell=cell, accumulate_dtype=np.float64)
    ref, _ = flashrnn_forward(*(x.astype(np.float64) for x in (Wx, R, b, s0)), cell=cell)
    assert acc.dtype == np.float32
    np.testing.assert_allclose(acc, ref, rtol=1e-5, atol=1e-5 * max(1, p["T"] / 8))
    bf, _ = flashrnn_forward(Wx, R, b, s0, cell=cell, emulate_bfloat16=True)
    np.testing.assert_array_equal(round_to_bfloat16(bf), bf)  # every stored state is bf16


def test_round_to_bfloat16_ties_to_even():
    x = np.array([1 + 2**-8, 1 + 3 * 2**-8, 1.0, -2.5, np.inf, np.nan, 3.4e38], np.float32)
    r = round_to_bfloat16(x)
    np.testing.assert_array_equal(r[:5], [1.0, 1 + 4 * 2**-8, 1.0, -2.5, np.inf])
    assert np.isnan(r[5]) and np.isinf(r[6])
