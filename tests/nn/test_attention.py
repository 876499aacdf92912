"""Masked attention and multi-head self-attention: loop oracle, cache carry-over, gradients."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.nn.attention import (
    MHAParams,
    attention_backward,
    attention_forward,
    causal_allow_mask,
    init_mha_params,
    mha_backward,
    mha_forward,
)
from refseq.testing import assert_close
from refseq.testing.gradcheck import assert_directional, cotangent_loss
from refseq.testing.strategies import seeds


def naive_attention(q, k, v, mask, scale=None):
    """One query, one head at a time, textbook softmax; rows with no allowed key give 0."""
    *lead, Tq, H, Dh = q.shape
    Tk, Dv = k.shape[-3], v.shape[-1]
    scale = 1 / np.sqrt(Dh) if scale is None else scale
    mask = np.broadcast_to(mask, tuple(lead) + (Tq, Tk))
    o = np.zeros(tuple(lead) + (Tq, H, Dv), q.dtype)
    for idx in np.ndindex(*lead):
        for h in range(H):
            for i in range(Tq):
                allowed = np.flatnonzero(mask[idx][i])
                if allowed.size == 0:
                    continue
                s = np.array([scale * q[idx][i, h] @ k[idx][j, h] for j in allowed])
                p = np.exp(s - s.max())
                p /= p.sum()
                o[idx][i, h] = sum(pj * v[idx][j, h] for pj, j in zip(p, allowed))
    return o


@st.composite
def attention_case(draw):
    rng = np.random.default_rng(draw(seeds()))
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    Tq, Tk, H = draw(st.integers(1, 6)), draw(st.integers(1, 7)), draw(st.integers(1, 3))
    Dh, Dv = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    q = rng.standard_normal(lead + (Tq, H, Dh))
    k = rng.standard_normal(lead + (Tk, H, Dh))
    v = rng.standard_normal(lead + (Tk, H, Dv))
    mlead = lead[draw(st.integers(0, len(lead))):]  # a broadcastable suffix of the batch shape
    mask = rng.random(mlead + (Tq, Tk)) < draw(st.sampled_from([0.3, 0.7, 1.0]))
    return rng, q, k, v, mask


@given(attention_case())
def test_attention_matches_loop_and_empty_rows_are_zero(case):
    _, q, k, v, mask = case
    o, _ = attention_forward(q, k, v, mask)
    desired = naive_attention(q, k, v, mask)
    ref32 = naive_attention(*(a.astype(np.float32) for a in (q, k, v)), mask)
    # reassociation bound: the exponent carries ~|s| relative error, the sums Tk + Dh roundings
    s_max = np.abs(q).max() * np.abs(k).max() * np.sqrt(q.shape[-1])
    Tk, Dh = k.shape[-3], q.shape[-1]
    for dt in (np.float64, np.float32):
        o_dt = attention_forward(*(a.astype(dt) for a in (q, k, v)), mask)[0]
        assert o_dt.dtype == dt
        bound = 4 * (Tk + Dh) * np.finfo(dt).eps * np.abs(v).max() * (1 + s_max)
        assert_close(o_dt, desired, reference=ref32, atol=bound)
    empty = ~np.broadcast_to(mask, q.shape[:-3] + mask.shape[-2:]).any(-1)  # (..., Tq)
    assert np.all(o[empty] == 0)


@given(attention_case())
def test_attention_backward_matches_finite_differences(case):
    rng, q, k, v, mask = case
    o, cache = attention_forward(q, k, v, mask, scale=0.7)
    do = rng.standard_normal(o.shape)
    dq, dk, dv = attention_backward(do, cache)

    loss = cotangent_loss(lambda: attention_forward(q, k, v, mask, scale=0.7)[0], do)
    assert_directional(loss, dict(q=q, k=k, v=v), dict(q=dq, k=dk, v=dv), rng=rng)


def _random_mha(rng, D, dtype=np.float64):
    p = init_mha_params(rng, D, dtype)
    return MHAParams(*(a + 0.3 * rng.standard_normal(a.shape) for a in p))  # nonzero biases


@st.composite
def mha_case(draw):
    rng = np.random.default_rng(draw(seeds()))
    H, Dh = draw(st.integers(1, 3)), draw(st.sampled_from([2, 4]))
    lead = tuple(draw(st.lists(st.integers(1, 2), max_size=1)))
    T, S = draw(st.integers(1, 6)), draw(st.integers(0, 4))
    rope = draw(st.booleans())
    return rng, H, Dh, lead, T, S, rope


@given(mha_case())
def test_mha_cache_carry_over_equals_one_call(case):
    rng, H, Dh, lead, T, S, rope = case
    D = H * Dh
    p = _random_mha(rng, D)
    x = rng.standard_normal(lead + (S + T, D))
    y, kv, _ = mha_forward(x, p, H, rope=rope)
    y1, kv1, _ = mha_forward(x[..., :S, :], p, H, rope=rope) if S else (None, None, None)
    y2, kv2, _ = mha_forward(x[..., S:, :], p, H, past_kv=kv1, rope=rope)
    np.testing.assert_allclose(y2, y[..., S:, :], rtol=1e-12, atol=1e-12)
    for a, b in zip(kv2, kv):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert kv[0].shape == lead + (H, S + T, Dh)


@given(mha_case(), st.booleans())
def test_mha_backward_matches_finite_differences(case, with_d_new_kv):
    rng, H, Dh, lead, T, S, rope = case
    D = H * Dh
    p = _random_mha(rng, D)
    x = rng.standard_normal(lead + (T, D))
    past = (rng.standard_normal(lead + (H, S, Dh)), rng.standard_normal(lead + (H, S, Dh)))
    mask = rng.random(lead[:1] + (T, S + T)) < 0.7
    pos = rng.integers(0, 20, size=(T,))
    y, kv, cache = mha_forward(x, p, H, mask, pos, past, rope=rope)
    dy = rng.standard_normal(y.shape)
    dkv = (rng.standard_normal(kv[0].shape), rng.standard_normal(kv[1].shape)) \
        if with_d_new_kv else None
    dx, dp, dpast = mha_backward(dy, cache, dkv)

    args = dict(x=x, K=past[0], V=past[1], **p._asdict())  # moved in place by the check
    grads = {n: g for n, g in dict(x=dx, K=dpast[0], V=dpast[1], **dp._asdict()).items()
             if g is not None}

    def outputs():
        yy, kk, _ = mha_forward(x, p, H, mask, pos, past, rope=rope)
        return yy, kk

    cot = (dy, dkv if dkv is not None else (None, None))  # None: no cotangent on the new kv
    assert_directional(cotangent_loss(outputs, cot), args, grads, rng=rng)


def test_causal_mask_and_no_past_gradient():
    assert causal_allow_mask(2, 1).tolist() == [[True, True, False], [True, True, True]]
    rng = np.random.default_rng(0)
    p = _random_mha(rng, 4)
    y, kv, cache = mha_forward(rng.standard_normal((3, 4)), p, 2)
    assert mha_backward(np.ones_like(y), cache)[2] is None


def test_bad_inputs_raise_clearly():
    q = np.zeros((2, 1, 3))
    with pytest.raises(ValueError, match="allow_mask"):
        attention_forward(q, q, q, np.ones((2, 3), bool))
    with pytest.raises(TypeError, match="allow_mask"):
        attention_forward(q, q, q, np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="k must"):
        attention_forward(q, np.zeros((2, 2, 3)), q, np.ones((2, 2), bool))
    with pytest.raises(TypeError, match="q"):
        attention_forward(q.astype(int), q, q, np.ones((2, 2), bool))
    p = init_mha_params(np.random.default_rng(0), 4)
    with pytest.raises(ValueError, match="n_heads"):
        mha_forward(np.zeros((2, 4)), p, 3)
    with pytest.raises(ValueError, match="past_kv"):
        mha_forward(np.zeros((2, 4)), p, 2, past_kv=(np.zeros((2, 1, 3)), np.zeros((2, 1, 3))))


def test_matches_torch_sdpa():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal((2, 5, 3, 4)), rng.standard_normal((2, 6, 3, 4))
    v = rng.standard_normal((2, 6, 3, 2))
    mask = rng.random((2, 5, 6)) < 0.6
    mask[..., 0] = True  # torch returns NaN for rows with no allowed key
    o, _ = attention_forward(q, k, v, mask)
    t = [torch.from_numpy(np.swapaxes(a, 1, 2).copy()) for a in (q, k, v)]
    ot = torch.nn.functional.scaled_dot_product_attention(
        *t, attn_mask=torch.from_numpy(mask)[:, None])
    np.testing.assert_allclose(o, np.swapaxes(ot.numpy(), 1, 2), rtol=1e-12, atol=1e-13)
