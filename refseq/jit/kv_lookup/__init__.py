"""Numba CPU twins of the key-value lookup hot path; same contracts as :mod:`refseq.kv_lookup`
(called by it after validation: ``h`` and ``keys`` in one float dtype, ``idx`` int64, the usage
mask (C, M) uint8, the metric as its code). Kernels in :mod:`refseq.jit.kv_lookup.kernels`:
``prange`` over (codebook, chunk of queries) for the lookup and the assignment, over codebooks
for the sums, so no two threads add into one row and every tier's sums run in one order.
"""

from __future__ import annotations

import numpy as np

from refseq.jit.kv_lookup.kernels import (
    key_norms_kernel,
    lookup_kernel,
    scatter_kernel,
    stats_kernel,
)

# Called only through refseq.kv_lookup(backend=...), after its checks: no public surface.
__all__: list[str] = []

_INT = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}


def _transposed(keys):
    return np.ascontiguousarray(keys.transpose(0, 2, 1))  # (C, d_k, M)


def kv_lookup(h, keys, values, topk, mask, metric):
    """Twin of :func:`refseq.kv_lookup.kv_lookup` on validated arrays (``metric`` 0 l2,
    1 cosine): ``(idx, dist, fetched)``."""
    B, C, N, _ = h.shape
    M = keys.shape[1]
    kn = np.empty((C, M), h.dtype)
    if metric == 1:
        key_norms_kernel(keys, kn)
    idx = np.empty((B, C, N, topk), np.int64)
    dist = np.empty((B, C, N, topk), h.dtype)
    fetched = np.empty((B, C, topk, N, values.shape[2]), values.dtype)
    lookup_kernel(h, _transposed(keys), kn, values, topk, mask, metric,
                  np.zeros(0, _INT[h.dtype]), idx, dist, fetched)
    return idx, dist, fetched


def kv_scatter_add(d_fetched, idx, M):
    """Twin of :func:`refseq.kv_lookup.kv_scatter_add`: ``d_values`` (C, M, d_v)."""
    B, C, k, N, d_v = d_fetched.shape
    out = np.zeros((C, M, d_v), d_fetched.dtype)
    scatter_kernel(d_fetched, idx, out)
    return out


def kv_assign_stats(h, keys, mask):
    """Twin of :func:`refseq.kv_lookup.kv_assign_stats`: ``(counts (C, M), sums (C, M, d_k))``;
    the assignment is the top-1 l2 lookup (no values fetched)."""
    B, C, N, d_k = h.shape
    M = keys.shape[1]
    idx, _, _ = kv_lookup(h, keys, np.empty((C, M, 0), h.dtype), 1, mask, 0)
    counts = np.zeros((C, M), np.int64)
    sums = np.zeros((C, M, d_k), h.dtype)
    stats_kernel(h, np.ascontiguousarray(idx[..., 0]), counts, sums)
    return counts, sums
