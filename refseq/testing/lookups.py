"""Random inputs of the key-value lookup hot path (:mod:`refseq.kv_lookup`) for the registry
(:mod:`refseq.registry`), and the entries each check may exempt: the outputs of queries whose
reference ranking has a near-tie (:func:`refseq.kv_lookup.reference.near_tie`)."""

from __future__ import annotations

import numpy as np

__all__ = ["lookup_boundary", "lookup_inputs", "scatter_inputs", "stats_boundary",
           "stats_inputs"]


def lookup_inputs(rng, dims, dtype):
    """Queries near random keys (half of them) or anywhere, a usage mask keeping >= k keys."""
    B, C, N, M, D = (dims[x] for x in ("B", "C", "N", "M", "D"))
    k = min(dims["k"], M)
    keys = rng.standard_normal((C, M, D))
    near = keys[np.arange(C)[None, :, None], rng.integers(0, M, (B, C, N))]  # (B, C, N, D)
    h = np.where(rng.random((B, C, N, 1)) < 0.5, near + 0.3 * rng.standard_normal(near.shape),
                 rng.standard_normal(near.shape))
    values = rng.standard_normal((C, M, 3))
    mask = rng.random((C, M)) < 0.8
    for c in range(C):
        mask[c, rng.choice(M, k, replace=False)] = True
    return ((h.astype(dtype), keys.astype(dtype), values.astype(dtype), k, mask),
            {"metric": dims["metric"]})


def scatter_inputs(rng, dims, dtype):
    B, C, N, M, k, V = (dims[x] for x in ("B", "C", "N", "M", "k", "V"))
    d_fetched = rng.standard_normal((B, C, k, N, V)).astype(dtype)
    return (d_fetched, rng.integers(0, M, (B, C, N, k)).astype(np.int32), M), {}


def stats_inputs(rng, dims, dtype):
    (h, keys, _, _, mask), _ = lookup_inputs(rng, {**dims, "k": 1, "metric": "l2"}, dtype)
    return (h, keys, mask), {}


def lookup_boundary(args, kwargs):
    """Per output leaf, the entries of queries with a near-tie in the reference's ranking
    (:func:`refseq.kv_lookup.reference.near_tie`)."""
    from refseq.kv_lookup.reference import near_tie

    h, keys, values, topk, mask = args
    q = near_tie(h, keys, topk, mask, kwargs.get("metric", "l2"))  # (B, C, N)
    B, C, N = q.shape
    rows = np.broadcast_to(q[..., None], (B, C, N, topk))
    fetched = np.broadcast_to(q[:, :, None, :, None], (B, C, topk, N, values.shape[2]))
    return rows, rows, fetched


def stats_boundary(args, kwargs):
    """Whole codebooks with a near-tie query: a flipped assignment moves a count and a sum."""
    from refseq.kv_lookup.reference import near_tie

    h, keys, mask = args
    c = near_tie(h, keys, 1, mask).any(axis=(0, 2))  # (C,)
    M, D = keys.shape[1:]
    return (np.broadcast_to(c[:, None], (len(c), M)),
            np.broadcast_to(c[:, None, None], (len(c), M, D)))
