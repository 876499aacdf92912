"""The NumPy tier of the key-value lookup against second formulations and hand calculations:
brute force (a stable argsort of the explicit distance tensor), the quantisation fixed point,
usage masks, the tie rule, cosine's zero-norm rule, the expanded-form trap, the scatter-add
against ``np.add.at`` and the assignment statistics against a loop."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.kv_lookup import kv_assign_stats, kv_lookup, kv_scatter_add
from refseq.kv_lookup import reference as ref
from refseq.testing.strategies import seeds


def _brute(h, keys, k, mask=None, metric="l2"):
    """Stable argsort of the explicit (B, C, N, M) distance tensor, in float64."""
    h64, k64 = h.astype(np.float64), keys.astype(np.float64)
    if metric == "l2":
        D = ((h64[:, :, :, None, :] - k64[None, :, None]) ** 2).sum(-1)
    else:
        dot = np.einsum("bcnu,cmu->bcnm", h64, k64)
        den = np.linalg.norm(h64, axis=-1)[..., None] * np.linalg.norm(k64, axis=-1)[None, :, None]
        D = 1 - np.where(den > 0, dot / np.where(den > 0, den, 1), 0)
    if mask is not None:
        D = np.where(mask[None, :, None, :], D, np.inf)
    order = np.argsort(D, axis=-1, kind="stable")[..., :k]
    return order, np.take_along_axis(D, order, -1)


@st.composite
def problems(draw, max_M=60):
    seed = draw(seeds())
    B, C, N = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    M, d = draw(st.integers(1, max_M)), draw(st.integers(1, 9))
    k = draw(st.integers(1, min(M, 8)))
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((B, C, N, d)), rng.standard_normal((C, M, d)),
            rng.standard_normal((C, M, 2)), k, draw(st.sampled_from(["l2", "cosine"])))


@given(problems())
def test_lookup_equals_brute_force(p):
    """Property 1: idx is the stable argsort truncated to k, dist the gathered distances (rows
    non-decreasing), fetched the values at idx in the (B, C, k, N, d_v) layout."""
    h, keys, values, k, metric = p
    idx, dist, fetched = kv_lookup(h, keys, values, k, metric=metric)
    want_i, want_d = _brute(h, keys, k, metric=metric)
    flagged = ref.near_tie(h, keys, k, None, metric)
    np.testing.assert_array_equal(idx[~flagged], want_i[~flagged])
    np.testing.assert_allclose(dist, want_d, rtol=1e-12, atol=1e-12)
    assert (np.diff(dist, axis=-1) >= 0).all() and idx.dtype == np.int64
    for b, c, n, r in np.ndindex(idx.shape):
        np.testing.assert_array_equal(fetched[b, c, r, n], values[c, idx[b, c, n, r]])


@given(problems(), st.sampled_from([np.float32, np.float64]))
def test_masked_keys_are_never_returned(p, dtype):
    """Property 8: no returned index is masked; with every key used, masked == unmasked."""
    h, keys, values, k, metric = (x.astype(dtype) if isinstance(x, np.ndarray) else x for x in p)
    M = keys.shape[1]
    rng = np.random.default_rng(M)
    mask = rng.random((keys.shape[0], M)) < 0.6
    mask[:, :k] = True
    idx, dist, _ = kv_lookup(h, keys, values, k, mask, metric=metric)
    c = np.arange(keys.shape[0])[None, :, None, None]
    assert mask[c, idx].all() and dist.dtype == dtype
    want_i, _ = _brute(h, keys, k, mask, metric)
    flagged = ref.near_tie(h, keys, k, mask, metric)
    np.testing.assert_array_equal(idx[~flagged], want_i[~flagged])
    for a, b in zip(kv_lookup(h, keys, values, k, np.ones(mask.shape, bool), metric=metric),
                    kv_lookup(h, keys, values, k, metric=metric), strict=True):
        np.testing.assert_array_equal(a, b)


def test_quantisation_fixed_point_and_full_permutation():
    """Property 2: each key queried with itself is its own nearest at distance 0; topk = M
    returns a permutation of 0..M-1."""
    rng = np.random.default_rng(0)
    keys = rng.standard_normal((3, 17, 4))
    h = keys[None].transpose(0, 1, 2, 3)  # (1, C, N = M, d_k)
    idx, dist, _ = kv_lookup(h, keys, keys[..., :1], 1)
    assert (idx[0, :, :, 0] == np.arange(17)).all() and (dist == 0).all()
    idx, _, _ = kv_lookup(h, keys, keys[..., :1], 17)
    assert (np.sort(idx, axis=-1) == np.arange(17)).all()


def test_ties_go_to_the_lower_index():
    """Duplicated keys and a query halfway between two keys: hand-made ties."""
    keys = np.array([[[1.0, 0.0], [0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]]])
    h = np.array([[[[0.0, 0.0], [0.5, 0.0], [1.0, 0.0]]]])
    idx, dist, _ = kv_lookup(h, keys, keys, 4)
    assert idx[0, 0].tolist() == [[1, 4, 0, 2], [0, 1, 2, 4], [0, 2, 1, 4]]
    assert dist[0, 0, 1].tolist() == [0.25, 0.25, 0.25, 0.25]


def test_cosine_zero_norm_and_hand_values():
    """cos(h, key) = 0 where a norm is 0, so D = 1; otherwise 1 - cos by hand."""
    keys = np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]]])
    h = np.array([[[[2.0, 0.0], [0.0, 0.0]]]])
    idx, dist, _ = kv_lookup(h, keys, keys, 4, metric="cosine")
    assert idx[0, 0, 0].tolist() == [1, 0, 2, 3] and dist[0, 0, 0].tolist() == [0, 1, 1, 2]
    assert idx[0, 0, 1].tolist() == [0, 1, 2, 3] and (dist[0, 0, 1] == 1).all()


def test_overflowed_distances_rank_last_by_index():
    """float32 distances that overflow to +inf are returned after every finite one."""
    keys = np.array([[[0.0], [3e19], [-3e19], [1.0]]], np.float32)
    idx, dist, _ = kv_lookup(np.zeros((1, 1, 1, 1), np.float32), keys, keys, 4)
    assert idx[0, 0, 0].tolist() == [0, 3, 1, 2] and np.isinf(dist[0, 0, 0, 2:]).all()


def test_cosine_overflow_is_an_overflowed_distance_not_nan():
    """|h|^2 overflows float32: against the parallel key the cosine is inf / inf, which counts
    as +inf (last); against the others dot / den = finite / inf = 0, so D = 1 (by hand)."""
    h = np.array([[[[1e30, 1e30]]]], np.float32)
    keys = np.array([[[1e30, 1e30], [0.0, 1.0], [1.0, 0.0], [-1.0, -1.0]]], np.float32)
    idx, dist, _ = kv_lookup(h, keys, keys, 4, metric="cosine")
    assert idx[0, 0, 0].tolist() == [1, 2, 3, 0]
    assert dist[0, 0, 0].tolist() == [1.0, 1.0, 1.0, np.inf]


def test_expanded_form_loses_float32_rankings():
    """The trap: far from the origin, |h|^2 - 2 h.k + |k|^2 in float32 cancels away the
    distances and ranks keys otherwise than float64, while the direct form (every tier's)
    keeps the float64 ranking."""
    rng = np.random.default_rng(0)
    offset = 4000.0
    keys = offset + rng.standard_normal((256, 8))  # (M, d_k)
    h = offset + rng.standard_normal((64, 8))
    want = np.argmin(ref.l2_direct(h, keys), axis=1)  # float64
    h32, k32 = h.astype(np.float32), keys.astype(np.float32)
    direct = np.argmin(ref.l2_direct(h32, k32), axis=1)
    expanded = np.argmin(ref.l2_expanded(h32, k32), axis=1)
    assert (direct == want).mean() >= 0.95
    assert (expanded == want).mean() <= 0.5
    np.testing.assert_allclose(ref.l2_expanded(h, keys), ref.l2_direct(h, keys), rtol=1e-6)


@given(problems(max_M=12))
def test_scatter_add_equals_np_add_at(p):
    h, keys, values, k, metric = p
    idx, _, fetched = kv_lookup(h, keys, values, k, metric=metric)
    g = np.random.default_rng(k).standard_normal(fetched.shape)
    want = np.zeros(values.shape)
    for b, c, n, r in np.ndindex(idx.shape):  # a loop in the order (b, c, n, r)
        want[c, idx[b, c, n, r]] += g[b, c, r, n]
    got = kv_scatter_add(g, idx, keys.shape[1])
    np.testing.assert_array_equal(got, want)
    unused = np.ones(keys.shape[:2], bool)
    unused[np.arange(keys.shape[0])[None, :, None, None], idx] = False
    assert (got[unused] == 0).all()  # property 4: only fetched pairs receive a gradient


@given(problems())
def test_assign_stats_are_counts_and_sums_of_top1(p):
    h, keys, _, _, _ = p
    counts, sums = kv_assign_stats(h, keys)
    a, _ = _brute(h, keys, 1)
    flagged = ref.near_tie(h, keys, 1)
    C, M, d = keys.shape
    ok = ~flagged.any(axis=(0, 2))
    want_n, want_s = np.zeros((C, M), np.int64), np.zeros((C, M, d))
    for b, c, n in np.ndindex(h.shape[:3]):
        want_n[c, a[b, c, n, 0]] += 1
        want_s[c, a[b, c, n, 0]] += h[b, c, n]
    np.testing.assert_array_equal(counts[ok], want_n[ok])
    np.testing.assert_allclose(sums[ok], want_s[ok], rtol=1e-12, atol=1e-12)
    assert counts.sum() == h.shape[0] * C * h.shape[2]


def test_near_tie_flags_exactly_the_close_gaps():
    keys = np.array([[[0.0], [1.0], [1.0 + 1e-7], [5.0]]], np.float32)
    h = np.array([[[[0.0], [3.2]]]], np.float32)  # keys 1 and 1 + 1e-7 rank 2nd and 3rd
    assert ref.near_tie(h, keys, 1).tolist() == [[[False, False]]]
    assert ref.near_tie(h, keys, 2).tolist() == [[[True, True]]]  # gap between ranks 2 and 3
    assert ref.near_tie(h.astype(np.float64), keys.astype(np.float64), 2).tolist() == [
        [[False, False]]]  # 1e-7 apart is no near-tie in float64


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_blocks_of_queries_do_not_change_results(monkeypatch, metric):
    rng = np.random.default_rng(5)
    h, keys = rng.standard_normal((7, 2, 3, 4)), rng.standard_normal((2, 9, 4))
    want = kv_lookup(h, keys, keys, 3, metric=metric)
    monkeypatch.setattr(ref, "_BLOCK", 20)  # two queries per block
    for a, b in zip(kv_lookup(h, keys, keys, 3, metric=metric), want, strict=True):
        np.testing.assert_array_equal(a, b)
