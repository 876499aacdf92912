"""Causal softmax attention and its KV-cache decode, the baseline of the Aaren demo
(docs/papers/aaren.md: the "baseline (KV cache)" row of "What is implemented where", and the
checks listed under its property table).

Float64 results are held to 1e-12 (relative and absolute), as in tests/papers/aaren/test_layer.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.nn.softmax_attention import (
    KVCache,
    causal_softmax_attention,
    kv_attention_step,
    kv_cache_init,
    kv_single_query_step,
    masked_softmax,
    softmax_unstable,
)
from refseq.papers.aaren.layer import aaren_naive
from refseq.testing import assert_close
from refseq.testing import strategies as S


def assert_close64(actual, desired):
    desired = np.asarray(desired)
    assert_close(actual, desired, atol=1e-12 * (1 + np.abs(desired)))


@st.composite
def qkv(draw, masked=None, T=(1, 40)):
    d = draw(S.dims(T=T))
    Dk = draw(st.integers(1, 8))
    rng = np.random.default_rng(draw(S.seeds()))
    B, T, H, Dv = d["B"], d["T"], d["H"], d["D"]
    use_mask = draw(st.booleans()) if masked is None else masked
    sigma = draw(st.sampled_from([0.1, 3.0, 30.0]))
    return (S.normal(rng, (B, T, H, Dk)), S.normal(rng, (B, T, H, Dk)),
            S.normal(rng, (B, T, H, Dv)), S.masks(rng, (B, T)) if use_mask else None,
            sigma / np.sqrt(Dk))


def _oracle(q, k, v, mask, scale):
    """Row by row: the softmax over allowed keys, written as directly as possible."""
    B, T, H, Dv = v.shape
    o = np.zeros_like(v)
    for b in range(B):
        for i in range(T):
            for h in range(H):
                keys = [j for j in range(i + 1) if mask is None or mask[b, j]]
                if keys:
                    s = scale * k[b, keys, h] @ q[b, i, h]
                    p = np.exp(s - s.max())
                    o[b, i, h] = p @ v[b, keys, h] / p.sum()
    return o


@given(x=qkv(T=(1, 12)))
def test_causal_attention_matches_the_row_by_row_oracle(x):
    assert_close64(causal_softmax_attention(*x), _oracle(*x))


@given(x=qkv(), capacity=st.integers(1, 8))
def test_kv_cache_decode_equals_the_parallel_form(x, capacity):
    """Also at padded steps: that query sees the earlier valid keys (or none, output 0)."""
    q, k, v, mask, scale = x
    B, T, H, Dv = v.shape
    desired = causal_softmax_attention(q, k, v, mask, scale)
    cache = kv_cache_init(B, H, k.shape[3], Dv, capacity=capacity)  # small: forces growth
    for t in range(T):
        o_t, cache = kv_attention_step(q[:, t], k[:, t], v[:, t], cache,
                                       None if mask is None else mask[:, t], scale)
        assert_close64(o_t, desired[:, t])
    assert cache.length == T and cache.k.shape[1] >= T


@given(x=qkv())
def test_single_query_decode_and_broadcast_query_equal_aaren_naive(x):
    """Softmax attention with one fixed query at every position is Aaren's many-to-many output."""
    q, k, v, mask, scale = x
    B, T, H, Dv = v.shape
    q0 = q[0, 0]  # (H, Dk)
    desired = aaren_naive(q0, k, v, mask, scale)
    assert_close64(causal_softmax_attention(np.broadcast_to(q0, k.shape), k, v, mask, scale),
                   desired)
    cache = kv_cache_init(B, H, k.shape[3], Dv)
    for t in range(T):
        o_t, cache = kv_single_query_step(q0, k[:, t], v[:, t], cache,
                                          None if mask is None else mask[:, t], scale)
        assert_close64(o_t, desired[:, t])


@given(x=qkv(masked=False))
def test_peer_torch_causal_sdpa(x):
    torch = pytest.importorskip("torch")
    q, k, v, _, scale = x
    Q, K, V = (torch.from_numpy(a).transpose(1, 2) for a in (q, k, v))  # (B, H, T, .)
    o = torch.nn.functional.scaled_dot_product_attention(Q, K, V, is_causal=True,
                                                         scale=float(scale))
    assert_close64(causal_softmax_attention(q, k, v, scale=scale), o.transpose(1, 2).numpy())


@given(seed=S.seeds(), n=st.integers(1, 30), dtype=S.dtypes())
def test_masked_softmax_is_a_distribution_over_valid_entries(seed, n, dtype):
    rng = np.random.default_rng(seed)
    s = S.normal(rng, (4, n), dtype, scale=30.0)
    mask = S.masks(rng, (4, n))
    p = masked_softmax(s, mask)
    assert p.dtype == dtype and (p[~mask] == 0).all() and (p >= 0).all()
    sums = p.sum(axis=-1)
    assert np.allclose(sums[mask.any(-1)], 1, atol=4 * n * np.finfo(dtype).eps)
    assert (sums[~mask.any(-1)] == 0).all()


def test_textbook_softmax_agrees_on_benign_scores_and_fails_on_extreme_ones():
    rng = np.random.default_rng(0)
    s = S.normal(rng, (3, 17), scale=3.0)
    assert_close64(softmax_unstable(s), masked_softmax(s))
    for extreme in (s + 1e3, s - 1e3):  # e^{s} overflows / underflows: inf/inf and 0/0
        assert np.isnan(softmax_unstable(extreme)).all()
        assert_close64(masked_softmax(extreme), masked_softmax(s))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtypes_and_empty_sequences(dtype):
    rng = np.random.default_rng(0)
    q, k, v = (S.normal(rng, (2, 5, 3, 4), dtype) for _ in range(3))
    assert causal_softmax_attention(q, k, v).dtype == dtype
    assert causal_softmax_attention(q[:, :0], k[:, :0], v[:, :0]).shape == (2, 0, 3, 4)
    cache = kv_cache_init(2, 3, 4, 4, dtype)
    o_t, cache = kv_attention_step(q[:, 0], k[:, 0], v[:, 0], cache)
    assert o_t.dtype == dtype and isinstance(cache, KVCache)


def test_bad_input_raises_naming_the_argument():
    cache = kv_cache_init(1, 2, 3, 4)
    z = np.zeros
    with pytest.raises(ValueError, match="k_t must have shape"):
        kv_attention_step(z((1, 2, 3)), z((1, 2, 4)), z((1, 2, 4)), cache)
    with pytest.raises(ValueError, match="q_t must have shape"):
        kv_attention_step(z((2, 3)), z((1, 2, 3)), z((1, 2, 4)), cache)
    with pytest.raises(ValueError, match="v_t must be finite"):
        kv_attention_step(z((1, 2, 3)), z((1, 2, 3)), np.full((1, 2, 4), np.nan), cache)
    with pytest.raises(TypeError, match="cache must be a KVCache"):
        kv_single_query_step(z((2, 3)), z((1, 2, 3)), z((1, 2, 4)), {})
    with pytest.raises(ValueError, match="q must have shape"):
        causal_softmax_attention(z((1, 4, 2, 2)), z((1, 4, 2, 3)), z((1, 4, 2, 4)))
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        kv_cache_init(1, 2, 3, 4, np.float16)
