"""The key-value lookup hot path: batched multi-codebook top-k nearest keys, the value fetch, its
scatter-add backward and the top-1 assignment statistics of an EMA codebook update
(docs/hot-paths/kv-lookup.md).

Discrete Key-Value Bottleneck, Träuble et al. (ICML 2023), arXiv 2207.11240, Sec. 3: head
``h_{b,c,n}`` (input b, codebook c, token n) is compared with the ``M`` keys of codebook c; the
values paired with its ``k`` nearest keys are fetched:

    D_{b,c,n,j} = || h_{b,c,n} - key_{c,j} ||^2,   (j_1 .. j_k) = the k smallest (ties: lower j),
    fetched_{b,c,r,n} = value_{c, j_r}.

Shapes: ``h`` (B, C, N, d_k), ``keys`` (C, M, d_k), ``values`` (C, M, d_v), ``usage_mask``
(C, M), ``idx`` and ``dist`` (B, C, N, k), ``fetched`` (B, C, k, N, d_v) (the official code's
layout: codebook, then slot, then token).

Each function validates its arguments (:mod:`refseq.kv_lookup.checks`, shared by every tier),
then runs this NumPy reference (:mod:`refseq.kv_lookup.reference`) or the compiled tier chosen by
``backend`` ("numpy", "jit", "cuda"), found by :mod:`refseq.tiers`.
"""

from __future__ import annotations

import numpy as np

from refseq.kv_lookup import reference as _ref
from refseq.kv_lookup.checks import (
    METRICS,
    check_lookup_args,
    check_scatter_args,
    check_stats_args,
)
from refseq.tiers import check_backend, implementation

__all__ = ["METRICS", "kv_assign_stats", "kv_lookup", "kv_scatter_add"]


def _dispatch(name, backend, *args):
    return implementation("kv_lookup", name, backend)(*args)


def fetch(values, idx):
    """``fetched[b, c, r, n] = values[c, idx[b, c, n, r]]``: (B, C, k, N, d_v)."""
    c = np.arange(values.shape[0])[None, :, None, None]  # (1, C, 1, 1)
    return np.ascontiguousarray(values[c, idx].transpose(0, 1, 3, 2, 4))  # (B, C, k, N, d_v)


def kv_lookup(h, keys, values, topk=1, usage_mask=None, *, metric="l2", backend="numpy"):
    """Top-k nearest keys of every query in its codebook, their distances and their values.

    Parameters
    ----------
    h : (B, C, N, d_k) float32 | float64 — queries (the heads ``h_{b,c,n}``).
    keys : (C, M, d_k) float32 | float64 — codebook c's keys ``key_{c,j}``.
    values : (C, M, d_v) float32 | float64 — the value paired with each key.
    topk : int in [1, M] — ``k``, the number of keys returned per query.
    usage_mask : (C, M) bool or 0/1 integers, or None — keys with False are never returned
        (the paper's evaluation mode: pairs never selected in training are excluded). Every
        codebook must keep at least ``topk`` keys.
    metric : "l2" | "cosine" — ``sum_u (h_u - key_u)^2`` (direct form, never the expanded
        ``|h|^2 - 2 h.key + |key|^2``), or ``1 - cos(h, key)`` (cosine 0 where ``|h| |key|``
        is 0); see :mod:`refseq.kv_lookup.reference`.
    backend : "numpy" | "jit" | "cuda".

    Returns
    -------
    idx : (B, C, N, k) int64 — key indices by increasing distance; equal distances: lower
        index first.
    dist : (B, C, N, k) — their distances, in the common dtype of ``h`` and ``keys``,
        accumulated left to right over ``d_k`` in that dtype.
    fetched : (B, C, k, N, d_v) — ``values[c, idx[b, c, n, r]]``, in the values' dtype.

    Raises
    ------
    TypeError, ValueError : naming the argument (non-float or non-finite ``h``/``keys``,
        mismatched shapes, ``topk`` outside [1, M], a mask leaving fewer than ``topk`` keys).

    Notes
    -----
    Exact top-k: every tier computes the same distances in the same order; the CPU tiers agree
    bit for bit, the GPU may round a fused multiply-add otherwise and then differs only on the
    queries :func:`refseq.kv_lookup.reference.near_tie` flags. Distances that overflow to
    +inf rank after every finite one, among themselves by index; so does a cosine whose
    products overflow (inf / inf), whose distance is +inf, never NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from refseq.kv_lookup import kv_lookup
    >>> keys = np.array([[[0.0], [1.0], [3.0]]])          # C = 1, M = 3, d_k = 1
    >>> values = np.array([[[10.0], [20.0], [30.0]]])
    >>> idx, dist, fetched = kv_lookup(np.array([[[[0.5], [2.75]]]]), keys, values, topk=2)
    >>> idx[0, 0].tolist(), dist[0, 0].tolist()        # 0.5 is as far from 0 as from 1
    ([[0, 1], [2, 1]], [[0.25, 0.25], [0.0625, 3.0625]])
    >>> fetched[0, 0, :, :, 0].tolist()                 # (k, N)
    [[10.0, 30.0], [20.0, 20.0]]
    """
    compiled = check_backend(backend) != "numpy"
    h, keys, values, topk, mask, code = check_lookup_args(h, keys, values, topk, usage_mask,
                                                          metric)
    if compiled:
        return _dispatch("kv_lookup", backend, h, keys, values, topk, mask, code)
    idx, dist = _ref.lookup(h, keys, mask, topk, code)
    return idx, dist, fetch(values, idx)


def kv_scatter_add(d_fetched, idx, M, *, backend="numpy"):
    """The backward of the value fetch: ``d_values[c, j] = sum over (b, n, r) with
    idx[b, c, n, r] = j of d_fetched[b, c, r, n]`` (zero for keys never fetched).

    Parameters
    ----------
    d_fetched : (B, C, k, N, d_v) float32 | float64 — the gradient of the fetched values.
    idx : (B, C, N, k) int in [0, M) — the indices :func:`kv_lookup` returned.
    M : int >= 1 — keys per codebook.
    backend : "numpy" | "jit" | "cuda".

    Returns
    -------
    d_values : (C, M, d_v), the dtype of ``d_fetched``.

    Notes
    -----
    Deterministic on every tier: each ``d_values[c, j]`` is summed in the order (b, n, r),
    exactly as ``np.add.at`` adds, so all tiers agree bit for bit (no float atomics; the GPU
    gives each (codebook, column) to one thread).
    """
    compiled = check_backend(backend) != "numpy"
    d_fetched, idx, M = check_scatter_args(d_fetched, idx, M)
    if compiled:
        return _dispatch("kv_scatter_add", backend, d_fetched, idx, M)
    B, C, k, N, d_v = d_fetched.shape
    d_values = np.zeros((C, M, d_v), d_fetched.dtype)
    c = np.broadcast_to(np.arange(C)[None, :, None, None], idx.shape)  # (B, C, N, k)
    np.add.at(d_values, (c, idx), d_fetched.transpose(0, 1, 3, 2, 4))  # order (b, c, n, r)
    return d_values


def kv_assign_stats(h, keys, usage_mask=None, *, backend="numpy"):
    """Top-1 (l2) assignment statistics of a batch of queries, for an EMA codebook update
    (DKVB, arXiv 2207.11240, Sec. 3.2; van den Oord et al., arXiv 1711.00937, App. A.1).

    Parameters
    ----------
    h : (B, C, N, d_k) float32 | float64; keys : (C, M, d_k); usage_mask : (C, M) or None —
        as :func:`kv_lookup` (top-1, metric "l2").
    backend : "numpy" | "jit" | "cuda".

    Returns
    -------
    counts : (C, M) int64 — ``n_j``, the number of queries whose nearest key is j.
    sums : (C, M, d_k) — ``s_j``, the sum of those queries, in the dtype of ``h``/``keys``,
        added in query order (b, n) on every tier.
    """
    compiled = check_backend(backend) != "numpy"
    h, keys, mask = check_stats_args(h, keys, usage_mask)
    if compiled:
        return _dispatch("kv_assign_stats", backend, h, keys, mask)
    B, C, N, d_k = h.shape
    M = keys.shape[1]
    idx, _ = _ref.lookup(h, keys, mask, 1, _ref.L2)
    a = idx[..., 0]  # (B, C, N) the assignments a_i
    counts = np.zeros((C, M), np.int64)
    sums = np.zeros((C, M, d_k), h.dtype)
    c = np.broadcast_to(np.arange(C)[None, :, None], a.shape)
    np.add.at(counts, (c, a), 1)
    np.add.at(sums, (c, a), h)  # order (b, c, n)
    return counts, sums
