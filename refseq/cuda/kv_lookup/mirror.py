"""NumPy mirror of the cuda lookup kernel's decomposition (never imports numba).

The kernel (:mod:`refseq.cuda.kv_lookup.kernels`) runs one block per (codebook, tile of
``threads`` queries) and streams the codebook's keys through shared memory, ``shared // d_k``
keys per tile; each thread keeps a running top-k of its query. :func:`kv_lookup` does the same
in NumPy, one (codebook, query tile, key tile) at a time: the tile's distances (left to right
over ``u``, as every tier) are merged into the running ``(best_dist, best_idx)`` (Q, k) by a
stable sort of ``[best, tile]`` — the running entries come first and have lower indices, so a
tie keeps the lower index exactly as the kernel's strict insertion does. Masked keys are left
out of their tile, as the kernel's threads skip them.
"""

from __future__ import annotations

import numpy as np

from refseq.kv_lookup.reference import distances

THREADS = 128
SHARED = 2048


def _merge(bd, bi, d, j, k):
    """The k smallest of the running ``(bd, bi)`` and a tile ``(d, j)`` by (distance, order)."""
    D = np.concatenate([bd, d], axis=1)  # (Q, k + tile)
    J = np.concatenate([bi, j], axis=1)
    order = np.argsort(D, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(D, order, axis=1), np.take_along_axis(J, order, axis=1)


def kv_lookup(h, keys, values, topk, mask, metric, threads=THREADS, shared=SHARED):
    """The kernel's result on validated arrays (as :mod:`refseq.cuda.kv_lookup` receives them):
    ``(idx, dist, fetched)``."""
    B, C, N, d_k = h.shape
    M = keys.shape[1]
    Q, per = B * N, max(1, shared // d_k)
    idx = np.empty((B, C, N, topk), np.int64)
    dist = np.empty((B, C, N, topk), h.dtype)
    for c in range(C):
        queries = h[:, c].reshape(Q, d_k)  # (Q, d_k), order (b, n)
        for q0 in range(0, Q, threads):  # one block
            q = queries[q0:q0 + threads]
            bd = np.full((q.shape[0], 0), np.inf, h.dtype)
            bi = np.zeros((q.shape[0], 0), np.int64)
            for j0 in range(0, M, per):  # one shared-memory tile of keys
                j = np.arange(j0, min(j0 + per, M))
                ok = mask[c, j].astype(bool)
                if not ok.any():
                    continue
                d = distances(q, keys[c, j[ok]], metric)  # (threads, tile)
                bd, bi = _merge(bd, bi, d, np.broadcast_to(j[ok], d.shape), topk)
            b, n = np.divmod(np.arange(q0, q0 + q.shape[0]), N)
            idx[b, c, n], dist[b, c, n] = bi, bd
    cidx = np.arange(C)[None, :, None, None]
    fetched = np.ascontiguousarray(values[cidx, idx].transpose(0, 1, 3, 2, 4))
    return idx, dist, fetched
