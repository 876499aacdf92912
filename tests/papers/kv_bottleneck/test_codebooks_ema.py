"""Codebooks and phase 1 (refseq.papers.kv_bottleneck.codebooks, .ema): EMA algebra (decay 0 is
one k-means step, the counts' geometric sum, Laplace smoothing), dead-key replacement, frozen
keys, k-means initialisation, value initialisation and usage counting."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.papers.kv_bottleneck import codebooks as cbmod
from refseq.papers.kv_bottleneck import ema
from refseq.papers.kv_bottleneck.codebooks import KVCodebooks, kmeans
from refseq.papers.kv_bottleneck.ema import (
    dead_threshold,
    ema_update,
    fit_keys,
    laplace_smoothing,
    replace_dead_keys,
)


def _nearest(h, keys):
    """Hand-written top-1 assignment (B, C, N) by a loop over codebooks."""
    D = ((h[:, :, :, None, :] - keys[None, :, None]) ** 2).sum(-1)
    return np.argmin(D, axis=-1)  # first minimum: lower index


@given(st.integers(0, 2**31), st.integers(1, 3), st.integers(1, 6), st.integers(1, 3))
def test_decay_zero_is_one_kmeans_step_and_unhit_keys_go_to_zero(seed, C, M, d_k):
    r = np.random.default_rng(seed)
    cb = KVCodebooks(C, M, d_k, 2, rng=r)
    h = r.standard_normal((4, C, 2, d_k))
    a = _nearest(h, cb.keys)
    ema_update(cb, h, decay=0.0, eps=1e-12)
    for c in range(C):
        for j in range(M):
            hit = h[:, c][a[:, c] == j]  # (n_j, d_k)
            want = hit.mean(0) if len(hit) else np.zeros(d_k)
            np.testing.assert_allclose(cb.keys[c, j], want, rtol=1e-9, atol=1e-9)


def test_cluster_sizes_sum_geometrically_and_smoothing_keeps_the_total():
    r = np.random.default_rng(0)
    cb = KVCodebooks(3, 5, 2, 1, rng=r)
    for t in range(1, 6):
        ema_update(cb, r.standard_normal((4, 3, 2, 2)), decay=0.9)
        np.testing.assert_allclose(cb.cluster_size.sum(1), (1 - 0.9**t) * 8, rtol=1e-12)
    sm = laplace_smoothing(cb.cluster_size, 1e-3)
    np.testing.assert_allclose(sm.sum(1), cb.cluster_size.sum(1), rtol=1e-12)
    n = np.array([[3.0, 1.0, 0.0]])  # by hand: (n + e) / (4 + 3e) * 4
    np.testing.assert_allclose(laplace_smoothing(n, 0.5), [[3.5 / 5.5 * 4, 1.5 / 5.5 * 4,
                                                             0.5 / 5.5 * 4]])


def test_first_update_by_hand_and_the_faithful_blow_up():
    cb = KVCodebooks(1, 2, 1, 1)
    cb.keys = np.array([[[0.0], [10.0]]])
    cb.keys_avg = cb.keys.copy()
    h = np.array([[[[1.0], [3.0]]]])  # B = 1, C = 1, N = 2: both nearest to key 0
    counts = ema_update(cb, h, decay=0.5, eps=1e-5)
    assert counts.tolist() == [[2, 0]]
    np.testing.assert_allclose(cb.cluster_size, [[1.0, 0.0]])  # 0.5 * 2
    np.testing.assert_allclose(cb.keys_avg[0, :, 0], [2.0, 5.0])  # 0.5 * 4 ; 0.5 * 10
    S = 1.0
    n0 = (1 + 1e-5) / (S + 2e-5) * S
    n1 = 1e-5 / (S + 2e-5) * S
    np.testing.assert_allclose(cb.keys[0, :, 0], [2.0 / n0, 5.0 / n1], rtol=1e-12)
    assert cb.keys[0, 1, 0] > 1e5  # the official arithmetic: an unhit key blows up
    cb2 = KVCodebooks(1, 2, 1, 1)
    cb2.keys = np.array([[[0.0], [10.0]]])
    cb2.keys_avg = cb2.keys.copy()
    ema_update(cb2, h, decay=0.5, eps=1e-5, faithful=False)
    np.testing.assert_allclose(cb2.keys[0, :, 0], [2.0 / n0, 10.0], rtol=1e-12)


@given(st.integers(0, 2**31))
def test_dead_keys_become_batch_heads_and_live_keys_stay(seed):
    r = np.random.default_rng(seed)
    cb = KVCodebooks(2, 6, 2, 1, rng=r)
    cb.cluster_size = r.random((2, 6))
    before = cb.keys.copy()
    h = r.standard_normal((3, 2, 2, 2))
    dead = replace_dead_keys(cb, h, 0.5, rng=seed)
    np.testing.assert_array_equal(dead, cb.cluster_size < 0.5)
    np.testing.assert_array_equal(cb.keys[~dead], before[~dead])
    for c, j in zip(*np.nonzero(dead)):
        heads = h[:, c].reshape(-1, 2)
        assert any(np.array_equal(cb.keys[c, j], x) for x in heads)
    assert not replace_dead_keys(cb, h, 0.0).any()


def test_dead_threshold_rule():
    assert dead_threshold(256, 1, 4096) == pytest.approx(0.1 * 256 / 4096)
    assert dead_threshold(100, 4, 50, factor=0.5) == pytest.approx(4.0)


def test_frozen_keys_are_never_touched():
    from refseq.papers.kv_bottleneck import Identity, KVBottleneckModel, split_chunk

    r = np.random.default_rng(1)
    cb = KVCodebooks(2, 4, 1, 3, rng=r)
    model = KVBottleneckModel(Identity(), lambda z: split_chunk(z, 2), cb)
    x = r.standard_normal((5, 2))
    model.forward(x)  # update_keys on: keys move
    cb.freeze_keys()
    state = [a.copy() for a in (cb.keys, cb.keys_avg, cb.cluster_size)]
    for _ in range(3):
        model.forward(r.standard_normal((5, 2)))
        model.loss_and_grads(x, np.array([0, 1, 2, 0, 1]))
    for a, b in zip(state, (cb.keys, cb.keys_avg, cb.cluster_size)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="update_keys"):
        ema_update(cb, split_chunk(x, 2))


def test_fit_keys_runs_the_epochs_and_freezes():
    r = np.random.default_rng(2)
    cb = KVCodebooks(1, 3, 2, 1, rng=r)
    batches = [r.standard_normal((4, 2)) for _ in range(3)]
    ref = KVCodebooks(1, 3, 2, 1, rng=2)
    ref.keys, ref.keys_avg = cb.keys.copy(), cb.keys_avg.copy()
    fit_keys(cb, lambda x: x, lambda z: z[:, None, None, :], batches, epochs=2, decay=0.8)
    for _ in range(2):
        for x in batches:
            ema_update(ref, x[:, None, None, :], decay=0.8)
    np.testing.assert_array_equal(cb.keys, ref.keys)
    assert not cb.update_keys


def test_kmeans_by_hand():
    h = np.array([0.0, 0.2, 10.0, 10.4])[:, None, None, None]  # (4, 1, 1, 1)
    centres, counts = kmeans(h, 2, iters=3, rng=0)
    assert sorted(centres[0, :, 0].round(6).tolist()) == [0.1, 10.2]
    assert sorted(counts[0].tolist()) == [2, 2]
    # an empty cluster keeps its centre: two identical starts, one of them never wins
    r = np.random.default_rng(0)
    pick = r.integers(0, 4, size=(1, 3))
    centres, counts = kmeans(h, 3, iters=2, rng=0)
    assert counts.sum() == 4 and counts.dtype == np.int64
    start = h[:, 0, 0, 0][pick[0]]
    for j in np.nonzero(counts[0] == 0)[0]:
        assert centres[0, j, 0] == start[j]


def test_init_keys_and_values():
    cb = KVCodebooks(2, 3, 2, 4, dtype=np.float32, rng=0)
    assert cb.keys.dtype == np.float32 and (cb.cluster_size == 0).all()
    np.testing.assert_array_equal(cb.keys_avg, cb.keys)
    data = np.random.default_rng(1).standard_normal((10, 2, 1, 2))
    cb.init_keys("kmeans", data, kmeans_iters=4, rng=3)
    centres, counts = kmeans(data, 3, 4, rng=3)
    np.testing.assert_allclose(cb.keys, centres, rtol=1e-6)
    np.testing.assert_allclose(cb.keys_avg, centres * counts[..., None], rtol=1e-6)
    cb.init_keys("random", rng=5)
    np.testing.assert_array_equal(cb.keys, np.random.default_rng(5).standard_normal(
        (2, 3, 2)).astype(np.float32))
    cb.init_values("randn", 0.001, rng=4)
    np.testing.assert_allclose(cb.values, 0.001 * np.random.default_rng(4).standard_normal(
        (2, 3, 4)), rtol=1e-6)
    cb.init_values("rand", 2.0, rng=4)
    assert (cb.values >= 0).all() and (cb.values < 2).all()
    cb.init_values()
    assert (cb.values == 0).all() and cb.values.dtype == np.float32
    with pytest.raises(ValueError, match="mode"):
        cb.init_keys("nope")
    with pytest.raises(ValueError, match="data"):
        cb.init_keys("kmeans")
    with pytest.raises(ValueError, match="data"):
        cb.init_keys("kmeans", data[:, :1])


def test_usage_counts_every_slot():
    cb = KVCodebooks(2, 3, 1, 1)
    idx = np.array([[[[0, 2]], [[1, 1]]]])  # (B=1, C=2, N=1, k=2)
    cb.count(idx)
    cb.count(idx)
    assert cb.usage.tolist() == [[2, 0, 2], [0, 4, 0]]
    assert cb.fraction_unused() == pytest.approx(3 / 6)
    assert cb.usage_mask() is None
    cb.deactivate_counts()
    assert cb.usage_mask().tolist() == [[True, False, True], [False, True, False]]
    cb.reset_usage()
    assert cb.fraction_unused() == 1.0 and not cb.count_usage
    cb.activate_counts()
    assert cb.count_usage and cb.usage_mask() is None
    with pytest.raises(ValueError, match="idx"):
        cb.count(np.zeros((1, 3, 1, 1), np.int64))
    assert "C=2" in repr(cb) and cbmod.KEY_INITS == ("random", "kmeans")
    assert ema.__name__.endswith("ema")
