"""Encoders and head splitters (refseq.papers.kv_bottleneck.encoders, .splitters): the chunk round
trip, unit-norm random-projection columns, the learned projection's ``u C + c`` layout and its
gradient, token maps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.papers.kv_bottleneck import encoders
from refseq.papers.kv_bottleneck.splitters import (
    Chunker,
    LearnedProjection,
    RandomProjection,
    merge_chunks,
    split_chunk,
)


@given(st.integers(0, 2**31), st.integers(1, 3), st.integers(1, 3), st.integers(1, 4),
       st.integers(1, 4))
def test_chunk_is_a_pure_reshape(seed, B, N, C, d_k):
    z = np.random.default_rng(seed).standard_normal((B, N, C * d_k))
    h = split_chunk(z, C)
    assert h.shape == (B, C, N, d_k)
    np.testing.assert_array_equal(h[:, 1 % C, :, :], z[:, :, (1 % C) * d_k:(1 % C + 1) * d_k])
    np.testing.assert_array_equal(merge_chunks(h), z)
    np.testing.assert_array_equal(Chunker(C)(z[:, 0]), split_chunk(z[:, :1], C))  # N = 1
    with pytest.raises(ValueError, match="C"):
        split_chunk(np.zeros((1, C * d_k + 1)), C + 1 if (C * d_k + 1) % (C + 1) else C + 2)


def test_random_projection():
    P = RandomProjection(3, 5, 2, rng=0)
    np.testing.assert_allclose(np.linalg.norm(P.P, axis=1), 1.0, rtol=1e-12)  # columns
    raw = np.random.default_rng(0).standard_normal((3, 5, 2))
    np.testing.assert_allclose(P.P, raw / np.linalg.norm(raw, axis=1, keepdims=True))
    z = np.random.default_rng(1).standard_normal((4, 2, 5))
    h = P(z)
    assert h.shape == (4, 3, 2, 2)
    np.testing.assert_allclose(h[2, 1, 0], z[2, 0] @ P.P[1], rtol=1e-12)
    assert RandomProjection(2, 5, 2, rng=0, dtype=np.float32)(z.astype(np.float32)).dtype \
        == np.float32
    with pytest.raises(ValueError, match="d_z"):
        P(np.zeros((1, 4)))


def test_learned_projection_layout_and_gradient():
    C, d_z, d_k = 3, 4, 2
    L = LearnedProjection(C, d_z, d_k, rng=0)
    z = np.random.default_rng(1).standard_normal((2, d_z))
    y = z @ L.W  # (B, C d_k)
    h = L(z)
    for c in range(C):
        for u in range(d_k):
            np.testing.assert_allclose(h[:, c, 0, u], y[:, u * C + c])  # feature u C + c
    bound = 1 / np.sqrt(d_z)
    assert np.abs(L.W).max() <= bound
    dh = np.random.default_rng(2).standard_normal(h.shape)
    dW = L.backward(dh, z)
    eps, i = 1e-6, (1, 4)
    L.W[i] += eps
    up = (L(z) * dh).sum()
    L.W[i] -= 2 * eps
    down = (L(z) * dh).sum()
    assert (up - down) / (2 * eps) == pytest.approx(dW[i], rel=1e-6)
    with pytest.raises(ValueError, match="W"):
        LearnedProjection(C, d_z, d_k, W=np.zeros((d_z, 5)))


def test_encoders():
    x = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(encoders.Identity()(x), x)
    table = np.arange(12.0).reshape(4, 3)
    np.testing.assert_array_equal(encoders.PrecomputedEmbeddings(table)(np.array([3, 0])),
                                  table[[3, 0]])
    with pytest.raises(ValueError, match="ids"):
        encoders.PrecomputedEmbeddings(table)(np.array([4]))
    W, b = np.ones((2, 3)), np.arange(3.0)
    np.testing.assert_array_equal(encoders.FrozenLinear(W, b)(x), x @ W + b)
    assert encoders.as_tokens(x).shape == (3, 1, 2)
    assert isinstance(encoders.Identity(), encoders.Encoder)
    with pytest.raises(ValueError, match="z"):
        encoders.as_tokens(np.zeros((2, 0, 3)))
    with pytest.raises(TypeError, match="x"):
        encoders.Identity()(np.zeros((2, 2), np.int32))
