"""Argument checks of the key-value lookup hot path, shared by every tier.

Each check returns fresh C-contiguous arrays in the dtypes the kernels take (queries and keys in
one float dtype, values in their own float dtype, indices int64, the usage mask uint8) and raises
``TypeError`` (wrong kind or dtype) or ``ValueError`` (wrong shape or value) naming the argument,
so no tier ever sees an invalid call.

Shapes (docs/hot-paths/kv-lookup.md): ``h`` (B, C, N, d_k) queries (heads), ``keys`` (C, M, d_k),
``values`` (C, M, d_v), ``usage_mask`` (C, M), ``idx`` (B, C, N, k), ``d_fetched``
(B, C, k, N, d_v).
"""

from __future__ import annotations

import numpy as np

from refseq import _checks

METRICS = ("l2", "cosine")  #: metric codes 0, 1


def _float(x, name, ndim, form):
    arr = _checks.float_array(x, name)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be an array {form}, got shape {arr.shape}")
    return arr


def _queries_and_keys(h, keys):
    h = _float(h, "h", 4, "(B, C, N, d_k)")
    keys = _float(keys, "keys", 3, "(C, M, d_k)")
    C, M, d_k = keys.shape
    if C < 1 or M < 1 or d_k < 1:
        raise ValueError(f"keys must be a non-empty array (C, M, d_k), got shape {keys.shape}")
    if h.shape[1] != C or h.shape[3] != d_k:
        raise ValueError(f"h must have shape (B, C, N, d_k) with C = {C} and d_k = {d_k} "
                         f"(from keys), got {h.shape}")
    dtype = np.result_type(h.dtype, keys.dtype)  # float32 only when both are
    h = np.ascontiguousarray(h, dtype)
    keys = np.ascontiguousarray(keys, dtype)
    _checks.check_finite(h, "h", hint="")
    _checks.check_finite(keys, "keys", hint="")
    return h, keys


def _mask(usage_mask, C, M, topk):
    """(C, M) uint8 (1 = may be returned); every codebook keeps at least ``topk`` keys."""
    mask = _checks.bool_mask(usage_mask, (C, M), "usage_mask", "(C, M)")
    if mask is None:
        return np.ones((C, M), np.uint8)
    n_ok = mask.sum(axis=1)  # (C,)
    if (n_ok < topk).any():
        c = int(np.argmin(n_ok))
        raise ValueError(f"usage_mask leaves {int(n_ok[c])} key(s) of codebook {c}, fewer than "
                         f"topk = {topk}")
    return np.ascontiguousarray(mask, np.uint8)


def check_metric(metric) -> int:
    """The metric's code (0 "l2", 1 "cosine"), or ``ValueError``/``TypeError`` naming it."""
    return METRICS.index(_checks.check_choice(metric, "metric", METRICS))


def check_lookup_args(h, keys, values, topk, usage_mask, metric):
    """Validate a lookup; return ``(h, keys, values, topk, mask (C, M) uint8, metric code)``.

    ``h`` and ``keys`` are cast to their common float dtype (float32 only if both are); the
    values keep theirs. ``topk`` must lie in ``[1, M]`` and every codebook must keep at least
    ``topk`` keys under ``usage_mask``.
    """
    h, keys = _queries_and_keys(h, keys)
    C, M, _ = keys.shape
    values = _float(values, "values", 3, "(C, M, d_v)")
    if values.shape[:2] != (C, M):
        raise ValueError(f"values must have shape (C, M, d_v) with (C, M) = {(C, M)} (from "
                         f"keys), got {values.shape}")
    values = np.ascontiguousarray(values)
    topk = _checks.check_number(topk, "topk", integer=True, low=1, high=M)
    mask = _mask(usage_mask, C, M, topk)
    return h, keys, values, topk, mask, check_metric(metric)


def check_stats_args(h, keys, usage_mask):
    """Validate :func:`refseq.kv_lookup.kv_assign_stats`'s arguments:
    ``(h, keys, mask (C, M) uint8)``."""
    h, keys = _queries_and_keys(h, keys)
    return h, keys, _mask(usage_mask, keys.shape[0], keys.shape[1], 1)


def check_scatter_args(d_fetched, idx, M):
    """Validate :func:`refseq.kv_lookup.kv_scatter_add`'s arguments:
    ``(d_fetched (B, C, k, N, d_v), idx (B, C, N, k) int64, M)``."""
    d_fetched = _float(d_fetched, "d_fetched", 5, "(B, C, k, N, d_v)")
    M = _checks.check_number(M, "M", integer=True, low=1)
    idx = _checks.int_array(idx, "idx", ndim=4, form="(B, C, N, k)", low=0, high=M)
    B, C, k, N, _ = d_fetched.shape
    if idx.shape != (B, C, N, k):
        raise ValueError(f"idx must have shape (B, C, N, k) = {(B, C, N, k)} (from d_fetched "
                         f"(B, C, k, N, d_v)), got {idx.shape}")
    return np.ascontiguousarray(d_fetched), np.ascontiguousarray(idx, np.int64), M
