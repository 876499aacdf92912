"""numba.cuda twins of the key-value lookup hot path; same contracts as :mod:`refseq.kv_lookup`,
which calls them after validation (``h``/``keys`` in one float dtype, ``idx`` int64, the mask
(C, M) uint8, the metric as its code). Host wrappers here copy the arrays to the device, launch
the kernels of :mod:`refseq.cuda.kv_lookup.kernels` and copy the results back; the lookup's
decomposition is mirrored in NumPy by :mod:`refseq.cuda.kv_lookup.mirror`.
"""

from __future__ import annotations

import numpy as np

from refseq.cuda.kv_lookup.kernels import (
    COLUMNS,
    SHARED,
    THREADS,
    bind_cuda,
    column_kernels,
    lookup_kernel,
)

# Called only through refseq.kv_lookup(backend=...), after its checks: no public surface.
__all__: list[str] = []


def _blocks(n, size):
    return -(-n // size)


def kv_lookup(h, keys, values, topk, mask, metric, threads=THREADS, shared=SHARED):
    """Twin of :func:`refseq.kv_lookup.kv_lookup`: one block of ``threads`` queries per
    (codebook, query tile), keys through ``shared`` floats of shared memory
    (``shared >= d_k``)."""
    if shared < h.shape[3]:
        raise ValueError(f"shared must hold one key: shared = {shared} < d_k = {h.shape[3]}")
    cu = bind_cuda()
    B, C, N, _ = h.shape
    d_idx = cu.device_array((B, C, N, topk), np.int64)
    d_dist = cu.device_array((B, C, N, topk), h.dtype)
    d_fetched = cu.device_array((B, C, topk, N, values.shape[2]), values.dtype)
    if B * N:
        grid = C * _blocks(B * N, threads)
        lookup_kernel(h.dtype, topk, threads, shared)[grid, threads](
            cu.to_device(h), cu.to_device(keys), cu.to_device(values), cu.to_device(mask),
            np.int32(metric), d_idx, d_dist, d_fetched)
    return d_idx.copy_to_host(), d_dist.copy_to_host(), d_fetched.copy_to_host()


def kv_scatter_add(d_fetched, idx, M):
    """Twin of :func:`refseq.kv_lookup.kv_scatter_add`: one thread per (codebook, column)."""
    cu = bind_cuda()
    B, C, k, N, d_v = d_fetched.shape
    out = cu.to_device(np.zeros((C, M, d_v), d_fetched.dtype))
    if C * d_v:
        column_kernels()["scatter"][_blocks(C * d_v, COLUMNS), COLUMNS](
            cu.to_device(d_fetched), cu.to_device(idx), out)
    return out.copy_to_host()


def kv_assign_stats(h, keys, mask):
    """Twin of :func:`refseq.kv_lookup.kv_assign_stats`: the lookup kernel with k = 1 (no
    values), then one thread per (codebook, column) sums the assigned queries."""
    cu = bind_cuda()
    B, C, N, d_k = h.shape
    M = keys.shape[1]
    idx, _, _ = kv_lookup(h, keys, np.zeros((C, M, 0), h.dtype), 1, mask, 0)
    counts = cu.to_device(np.zeros((C, M), np.int64))
    sums = cu.to_device(np.zeros((C, M, d_k), h.dtype))
    if B * N:
        column_kernels()["stats"][_blocks(C * d_k, COLUMNS), COLUMNS](
            cu.to_device(h), cu.to_device(idx), counts, sums)
    return counts.copy_to_host(), sums.copy_to_host()
