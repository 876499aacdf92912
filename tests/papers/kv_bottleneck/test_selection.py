"""Selection, fetch and its backward as the paper's model calls them (refseq.papers.kv_bottleneck
.selection): brute force, the quantisation fixed point, joint permutation invariance, the
evaluation mask, the Gumbel option, shapes and dtypes; the same calls through the jit tier."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.papers.kv_bottleneck import selection
from refseq.papers.kv_bottleneck.selection import fetch, fetch_backward, lookup, lookup_fetch


def _problem(seed, B, C, N, M, d_k, d_v, dtype=np.float64):
    r = np.random.default_rng(seed)
    return (r.standard_normal((B, C, N, d_k)).astype(dtype),
            r.standard_normal((C, M, d_k)).astype(dtype),
            r.standard_normal((C, M, d_v)).astype(dtype))


def _brute(h, keys, k, mask=None):
    """Explicit (B, C, N, M) distance tensor, stable argsort (ties: lower index), masked +inf."""
    D = ((h[:, :, :, None, :] - keys[None, :, None, :, :]) ** 2).sum(-1)  # (B, C, N, M)
    if mask is not None:
        D = np.where(mask[None, :, None, :], D, np.inf)
    idx = np.argsort(D, axis=-1, kind="stable")[..., :k]
    return idx, np.take_along_axis(D, idx, axis=-1)


shapes = st.tuples(st.integers(0, 2**31), st.integers(1, 3), st.integers(1, 3),
                   st.integers(1, 3), st.integers(1, 9), st.integers(1, 4), st.integers(1, 3))


@given(shapes, st.data())
def test_lookup_equals_brute_force(shape, data):
    seed, B, C, N, M, d_k, d_v = shape
    k = data.draw(st.integers(1, M))
    h, keys, values = _problem(seed, B, C, N, M, d_k, d_v)
    if seed % 3 == 0:  # exact ties: duplicate keys and integer coordinates
        keys = np.round(keys)
        keys[:, -1] = keys[:, 0]
        h = np.round(h)
    idx, dist, fetched = lookup_fetch(h, keys, values, k)
    ref_idx, ref_dist = _brute(h, keys, k)
    assert idx.dtype == np.int64 and idx.shape == (B, C, N, k)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-12, atol=1e-12)
    assert (np.diff(dist, axis=-1) >= 0).all()
    c = np.arange(C)[None, :, None, None]
    np.testing.assert_array_equal(fetched, values[c, ref_idx].transpose(0, 1, 3, 2, 4))


def test_tie_goes_to_the_lower_index():
    keys = np.array([[[0.0], [2.0], [2.0], [0.0]]])  # keys 0 and 3 tie, 1 and 2 tie
    idx, dist = lookup(np.array([[[[1.0]]]]), keys, topk=4)
    assert idx[0, 0, 0].tolist() == [0, 1, 2, 3] and dist[0, 0, 0].tolist() == [1.0] * 4
    idx, _ = lookup(np.array([[[[1.9]]]]), keys, topk=2)
    assert idx[0, 0, 0].tolist() == [1, 2]


@given(st.integers(0, 2**31), st.integers(1, 3), st.integers(1, 8), st.integers(1, 4))
def test_keys_are_their_own_nearest_key(seed, C, M, d_k):
    keys = np.random.default_rng(seed).standard_normal((C, M, d_k))
    h = keys.transpose(1, 0, 2)[:, :, None, :]  # (M, C, 1, d_k): query b = key b
    idx, dist = lookup(h, keys)
    np.testing.assert_array_equal(idx[:, :, 0, 0], np.broadcast_to(np.arange(M)[:, None], (M, C)))
    assert (dist == 0).all()
    idx, _ = lookup(h, keys, topk=M)
    assert (np.sort(idx, axis=-1) == np.arange(M)).all()  # a permutation of 0..M-1


@given(shapes)
def test_permuting_pairs_jointly_changes_nothing(shape):
    seed, B, C, N, M, d_k, d_v = shape
    h, keys, values = _problem(seed, B, C, N, M, d_k, d_v)
    perm = np.random.default_rng(seed + 1).permutation(M)
    k = min(2, M)
    idx, dist, fetched = lookup_fetch(h, keys, values, k)
    idx2, dist2, fetched2 = lookup_fetch(h, keys[:, perm], values[:, perm], k)
    np.testing.assert_array_equal(fetched2, fetched)  # general position: no ties
    np.testing.assert_array_equal(perm[idx2], idx)
    np.testing.assert_array_equal(dist2, dist)


@given(shapes, st.data())
def test_usage_mask(shape, data):
    seed, B, C, N, M, d_k, d_v = shape
    h, keys, values = _problem(seed, B, C, N, M, d_k, d_v)
    r = np.random.default_rng(seed)
    mask = r.random((C, M)) < 0.6
    mask[:, r.integers(M)] = True
    k = data.draw(st.integers(1, int(mask.sum(1).min())))
    idx, dist = lookup(h, keys, k, usage_mask=mask)
    assert mask[np.arange(C)[None, :, None, None], idx].all()  # never an unused pair
    ref_idx, ref_dist = _brute(h, keys, k, mask)
    np.testing.assert_array_equal(idx, ref_idx)
    full = lookup(h, keys, k, usage_mask=np.ones((C, M), bool))
    np.testing.assert_array_equal(full[0], lookup(h, keys, k)[0])  # all used: no change


def test_usage_mask_must_leave_topk_pairs():
    h, keys, _ = _problem(0, 1, 2, 1, 4, 2, 1)
    mask = np.ones((2, 4), bool)
    mask[1, 1:] = False
    with pytest.raises(ValueError, match="usage_mask"):
        lookup(h, keys, 2, usage_mask=mask)
    with pytest.raises(ValueError, match="usage_mask"):
        lookup(h, keys, 2, usage_mask=mask, temperature=1.0, rng=0)


def test_gumbel_topk():
    h, keys, values = _problem(3, 2, 2, 3, 6, 2, 2)
    idx, dist, fetched = lookup_fetch(h, keys, values, 3, temperature=0.5, rng=7)
    # second formulation: perturbed scores from the explicit distances with the same draw
    D = ((h[:, :, :, None, :] - keys[None, :, None, :, :]) ** 2).sum(-1)
    G = selection.gumbel_noise(D.shape, np.random.default_rng(7))
    ref = np.argsort(-(-D / 0.5 + G), axis=-1, kind="stable")[..., :3]
    np.testing.assert_array_equal(idx, ref)
    np.testing.assert_allclose(dist, np.take_along_axis(D, ref, -1), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(fetched, fetch(values, idx))
    # a tiny temperature is the deterministic rule; masked pairs are never sampled
    np.testing.assert_array_equal(lookup(h, keys, 3, temperature=1e-9, rng=1)[0],
                                  lookup(h, keys, 3)[0])
    mask = np.zeros((2, 6), bool)
    mask[:, [1, 4]] = True
    sampled = lookup(h, keys, 2, usage_mask=mask, temperature=100.0, rng=2)[0]
    assert np.isin(sampled, [1, 4]).all()
    u = np.zeros(3)  # the clamp: U = 0 gives a finite noise
    assert np.isfinite(-np.log(np.maximum(-np.log(np.maximum(u, 1e-20)), 1e-20))).all()


@given(shapes)
def test_fetch_backward_is_the_adjoint_of_fetch(shape):
    seed, B, C, N, M, d_k, d_v = shape
    h, keys, values = _problem(seed, B, C, N, M, d_k, d_v)
    idx, _ = lookup(h, keys, min(2, M))
    d_fetched = np.random.default_rng(seed + 2).standard_normal(fetch(values, idx).shape)
    d_values = fetch_backward(d_fetched, idx, M)
    # <fetch(v), g> == <v, fetch_backward(g)> for random v, g (a transposition bug fails)
    assert np.isclose((fetch(values, idx) * d_fetched).sum(), (values * d_values).sum(),
                      rtol=1e-12, atol=1e-12)
    unused = np.ones((C, M), bool)
    unused[np.arange(C)[None, :, None, None], idx] = False
    assert (d_values[unused] == 0).all()  # exactly zero where nothing was fetched


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N", [1, 3])
def test_dtypes_and_layout(dtype, N):
    h, keys, values = _problem(1, 2, 3, N, 5, 2, 4, dtype)
    idx, dist, fetched = lookup_fetch(h, keys, values, 2)
    assert idx.dtype == np.int64 and dist.dtype == dtype and fetched.dtype == dtype
    assert fetched.shape == (2, 3, 2, N, 4)  # (B, C, k, N, d_v)
    b, c, r, n = 1, 2, 1, N - 1
    np.testing.assert_array_equal(fetched[b, c, r, n], values[c, idx[b, c, n, r]])
    ref_idx, ref_dist = _brute(h.astype(np.float64), keys.astype(np.float64), 2)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-5, atol=1e-6)
    assert fetch_backward(np.ones_like(fetched), idx, 5).dtype == dtype


def test_bad_arguments():
    h, keys, values = _problem(0, 1, 2, 1, 4, 2, 3)
    with pytest.raises(ValueError, match="topk"):
        lookup(h, keys, 5)
    with pytest.raises(ValueError, match="temperature"):
        lookup(h, keys, temperature=-1.0)
    with pytest.raises(ValueError, match="idx"):
        fetch(values, np.zeros((1, 3, 1, 1), np.int64))
    with pytest.raises(ValueError, match="idx"):
        fetch(values, np.full((1, 2, 1, 1), 4))
    with pytest.raises(ValueError, match="keys"):
        lookup(h, keys[0])


@settings(max_examples=5)
@given(shapes)
def test_jit_tier_gives_the_same_selection(shape):
    pytest.importorskip("numba")
    seed, B, C, N, M, d_k, d_v = shape
    h, keys, values = _problem(seed, B, C, N, M, d_k, d_v)
    k = min(3, M)
    ref = lookup_fetch(h, keys, values, k)
    out = lookup_fetch(h, keys, values, k, backend="jit")
    for a, b in zip(out, ref):
        np.testing.assert_array_equal(a, b)
    g = np.random.default_rng(seed).standard_normal(ref[2].shape)
    np.testing.assert_array_equal(fetch_backward(g, ref[0], M, backend="jit"),
                                  fetch_backward(g, ref[0], M))
