"""Nearest-key selection, value fetch and its backward, on the key-value lookup hot path.

Träuble et al., arXiv 2207.11240, Sec. 3. Head ``h_{b,c,n}`` is compared with every key of its
codebook by squared Euclidean distance,

.. math:: D_{b,c,n,j} = \\lVert h_{b,c,n} - \\mathrm{key}_{c,j} \\rVert^2 ,

the ``k`` nearest keys are selected (sorted by distance, ties to the lower index ``j``) and the
**values** paired with them are fetched, ``fetched[b, c, r, n] = value[c, j_r(b, c, n)]`` (the
official layout: codebook, top-k slot, token). The gradient of a loss reaches only the fetched
values: ``fetch_backward`` scatter-adds it into ``d_values`` and every pair not fetched gets an
exact zero.

The selection and the scatter-add run on :mod:`refseq.kv_lookup` (``backend="numpy" | "jit" |
"cuda"``); this module adds what the paper's model needs on top: the evaluation mask of unused
pairs and the official Gumbel option (``temperature > 0``: the top-k of ``-D / T + G`` with
``G = -log(-log U)``, ``U`` clamped to ``[1e-20, 1)``).
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.kv_lookup import kv_lookup, kv_scatter_add

__all__ = ["GUMBEL_CLAMP", "fetch", "fetch_backward", "gumbel_noise", "lookup", "lookup_fetch"]

GUMBEL_CLAMP = 1e-20  # the official log clamp


def gumbel_noise(shape, rng, dtype=np.float64) -> np.ndarray:
    """``G = -log(-log U)``, ``U ~ U[0, 1)`` with both logs' arguments clamped at 1e-20."""
    u = _checks.check_rng(rng).random(shape)
    return (-np.log(np.maximum(-np.log(np.maximum(u, GUMBEL_CLAMP)), GUMBEL_CLAMP))).astype(dtype)


def _sampled(h, keys, values, topk, usage_mask, temperature, rng, backend):
    """Gumbel-top-k: all ``M`` distances from the hot path, perturbed, re-ranked."""
    C, M = keys.shape[:2]
    all_idx, all_dist, _ = kv_lookup(h, keys, values, topk=M, backend=backend)  # (B, C, N, M)
    D = np.empty_like(all_dist)
    np.put_along_axis(D, all_idx, all_dist, axis=-1)  # (B, C, N, M) in key order
    score = -D / D.dtype.type(temperature) + gumbel_noise(D.shape, rng, D.dtype)
    if usage_mask is not None:
        score = np.where(usage_mask[None, :, None, :], score, -np.inf)
    order = np.argsort(-score, axis=-1, kind="stable")[..., :topk]  # (B, C, N, k)
    idx = order.astype(np.int64)
    dist = np.take_along_axis(D, idx, axis=-1)  # (B, C, N, k)
    return idx, dist, fetch(values, idx)


def _check_mask(usage_mask, C, M, topk):
    if usage_mask is None:
        return None
    mask = _checks.bool_mask(usage_mask, (C, M), "usage_mask", "(C, M)")
    fewest = int(mask.sum(axis=1).min())
    if fewest < topk:
        raise ValueError(f"usage_mask must leave at least topk = {topk} pairs in every codebook, "
                         f"found a codebook with {fewest}")
    return mask


def lookup_fetch(h, keys, values, topk: int = 1, usage_mask=None, temperature: float = 0.0,
                 rng=None, *, backend="numpy"):
    """Select the ``topk`` nearest keys of every head and fetch their values.

    Parameters
    ----------
    h : (B, C, N, d_k) float32/float64 — heads.
    keys : (C, M, d_k); values : (C, M, d_v) — cast to ``h``'s dtype.
    topk : int in [1, M].
    usage_mask : (C, M) bool or None — False excludes a pair (never-used pairs at evaluation).
    temperature : float >= 0 — 0 is the deterministic nearest-key rule; > 0 samples the top-k
        of ``-D / T + G`` (official ``sample_codebook_temperature``).
    rng : Generator or seed — the Gumbel draw (only used when ``temperature > 0``).
    backend : "numpy" | "jit" | "cuda" — tier of the hot path.

    Returns
    -------
    idx : (B, C, N, k) int64; dist : (B, C, N, k) squared distances, ``h``'s dtype, sorted
    ascending when ``temperature == 0``; fetched : (B, C, k, N, d_v).
    """
    temperature = _checks.check_number(temperature, "temperature", low=0)
    keys = np.asarray(keys)
    if keys.ndim != 3:
        raise ValueError(f"keys must have shape (C, M, d_k), got {keys.shape}")
    C, M = keys.shape[:2]
    topk = _checks.check_number(topk, "topk", integer=True, low=1, high=M)
    mask = _check_mask(usage_mask, C, M, topk)
    if temperature > 0:
        h = _checks.float_array(h, "h")
        if h.ndim != 4:
            raise ValueError(f"h must have shape (B, C, N, d_k), got {h.shape}")
        return _sampled(h, keys, values, topk, mask, temperature, rng, backend)
    return kv_lookup(h, keys, values, topk=topk, usage_mask=mask, backend=backend)


def lookup(h, keys, topk: int = 1, usage_mask=None, temperature: float = 0.0, rng=None, *,
           backend="numpy"):
    """:func:`lookup_fetch` without values: ``(idx (B, C, N, k) int64, dist (B, C, N, k))``."""
    keys = np.asarray(keys)
    if keys.ndim != 3:
        raise ValueError(f"keys must have shape (C, M, d_k), got {keys.shape}")
    dummy = np.zeros(keys.shape[:2] + (1,), keys.dtype if keys.dtype.kind == "f" else np.float64)
    idx, dist, _ = lookup_fetch(h, keys, dummy, topk, usage_mask, temperature, rng,
                                backend=backend)
    return idx, dist


def _check_idx(idx, C, M):
    idx = _checks.int_array(idx, "idx", ndim=4, low=0, high=M, form="(B, C, N, k)")
    if idx.shape[1] != C:
        raise ValueError(f"idx must have shape (B, C, N, k) with C = {C}, got {idx.shape}")
    return idx


def fetch(values, idx) -> np.ndarray:
    """Gather ``fetched[b, c, r, n] = values[c, idx[b, c, n, r]]``: ``(B, C, k, N, d_v)``."""
    values = _checks.float_array(values, "values")
    if values.ndim != 3:
        raise ValueError(f"values must have shape (C, M, d_v), got {values.shape}")
    C, M, _ = values.shape
    idx = _check_idx(idx, C, M)
    c = np.arange(C)[None, :, None, None]  # (1, C, 1, 1)
    out = values[c, idx.transpose(0, 1, 3, 2)]  # (B, C, k, N, d_v)
    return out


def fetch_backward(d_fetched, idx, M: int, *, backend="numpy") -> np.ndarray:
    """VJP of :func:`fetch`: ``d_values[c, j] = sum over (b, r, n) with idx[b, c, n, r] = j of
    d_fetched[b, c, r, n]`` (C, M, d_v); exactly zero for every pair not fetched."""
    return kv_scatter_add(d_fetched, idx, M, backend=backend)
