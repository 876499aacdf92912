"""Distances, exact top-k selection and the near-tie detector of the NumPy tier.

Notation of docs/hot-paths/kv-lookup.md and the Discrete Key-Value Bottleneck (Träuble et al.,
arXiv 2207.11240, Sec. 3): query (head) ``h_{b,c,n}`` of width ``d_k``, key ``key_{c,j}``
(``j = 0 .. M-1``), distance ``D_{b,c,n,j}``.

Two forms of the squared Euclidean distance sit side by side (style: the stable formula beside
the textbook one):

* :func:`l2_direct` — ``D = sum_u (h_u - key_u)^2``, accumulated left to right over ``u`` in the
  input dtype. Every tier computes this form, in this order, so the CPU tiers agree bit for bit.
  Its rounding error is a few ulps *of D itself*: the differences are formed first, so two keys
  whose distances differ by more than ~``d_k`` ulps are ranked correctly.
* :func:`l2_expanded` — ``D = |h|^2 - 2 h.key + |key|^2`` (one matrix product; what faiss's
  ``IndexFlatL2`` and the official DKVB code compute). Its error is a few ulps of
  ``|h|^2 + |key|^2``: when the queries and keys sit far from the origin compared with their
  distances, the cancellation loses the ranking in float32 (tests/kv_lookup/test_reference.py,
  ``test_expanded_form_loses_float32_rankings``). No tier uses it; it is here to document and
  test the trap.

Cosine distance (:func:`cosine`): ``D = 1 - dot(h, key) / (|h| |key|)`` with ``dot``, ``|h|^2``,
``|key|^2`` accumulated left to right, ``|x| = sqrt(|x|^2)``; when the product ``|h| |key|``
is 0 (a zero vector, or an underflow) the cosine is taken as 0, so ``D = 1``. No clamping: ``D``
may fall a rounding error below 0 or above 2.
"""

from __future__ import annotations

import numpy as np

L2, COSINE = 0, 1
TIE_TOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}
"""Relative gap between consecutive sorted distances below which tiers may rank differently."""

_BLOCK = 1 << 21  # distances per block of queries (bounds the (queries, M) temporaries)


def l2_direct(h, keys):
    """``D[q, j] = sum_u (h[q, u] - keys[j, u])^2`` in the input dtype, left to right over u.

    h : (Q, d_k); keys : (M, d_k) -> D (Q, M).
    """
    D = np.zeros((h.shape[0], keys.shape[0]), h.dtype)  # (Q, M)
    with np.errstate(over="ignore"):  # an overflow gives +inf, which ranks last (documented)
        for u in range(h.shape[1]):
            t = h[:, u, None] - keys[None, :, u]  # (Q, M)
            D += t * t
    return D


def l2_expanded(h, keys):
    """``D = |h|^2 - 2 h.key + |key|^2`` in the input dtype (the form faiss and the official
    code use; see the module docstring for why no tier does). h (Q, d_k); keys (M, d_k)."""
    hh = np.einsum("qu,qu->q", h, h)  # (Q,)
    kk = np.einsum("ju,ju->j", keys, keys)  # (M,)
    return hh[:, None] - 2 * (h @ keys.T) + kk[None, :]  # (Q, M)


def cosine(h, keys):
    """``D = 1 - cos(h, key)`` (0 cosine where ``|h| |key|`` is 0). h (Q, d_k); keys (M, d_k).

    Where the products overflow (``dot / den`` is inf / inf) ``D`` is +inf, an overflowed
    distance, which ranks last as in l2 — never NaN, which would have no place in the order.
    """
    dot = np.zeros((h.shape[0], keys.shape[0]), h.dtype)  # (Q, M)
    hh = np.zeros(h.shape[0], h.dtype)  # (Q,)
    kk = np.zeros(keys.shape[0], h.dtype)  # (M,)
    with np.errstate(over="ignore", invalid="ignore"):  # overflows: handled below
        for u in range(h.shape[1]):
            dot += h[:, u, None] * keys[None, :, u]
            hh += h[:, u] * h[:, u]
            kk += keys[:, u] * keys[:, u]
    den = np.sqrt(hh)[:, None] * np.sqrt(kk)[None, :]  # (Q, M)
    one = h.dtype.type(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        D = np.where(den > 0, one - dot / den, one)
    return np.where(np.isnan(D), h.dtype.type(np.inf), D)


def distances(h, keys, metric):
    """``D`` (Q, M) of one codebook for metric code ``metric`` (0 l2 direct, 1 cosine)."""
    return l2_direct(h, keys) if metric == L2 else cosine(h, keys)


def select_topk(D, ok, k):
    """Exact top-k of each row of ``D`` (Q, M) among the columns where ``ok`` (M,) is true.

    Returns ``(idx (Q, k) int64, dist (Q, k))`` sorted by increasing distance, ties to the lower
    column (+inf distances included, after every finite one). Linear time: the k-th smallest
    value ``v`` (``np.partition``), every column below it, and the lowest-index columns equal to
    it until k are taken; then a stable sort of those k by distance.
    """
    R = np.where(ok[None, :], D, np.nan)  # (Q, M); NaN sorts after +inf: masked keys last
    v = np.partition(R, k - 1, axis=1)[:, k - 1:k]  # (Q, 1), the k-th smallest
    below, equal = R < v, R == v  # (Q, M)
    need = k - below.sum(axis=1, keepdims=True)  # (Q, 1) equal columns to take
    take = below | (equal & (np.cumsum(equal, axis=1) <= need))  # exactly k per row
    idx = np.nonzero(take)[1].reshape(-1, k)  # (Q, k), increasing column
    dist = np.take_along_axis(D, idx, axis=1)
    order = np.argsort(dist, axis=1, kind="stable")  # ties keep the lower column first
    return (np.take_along_axis(idx, order, axis=1).astype(np.int64),
            np.take_along_axis(dist, order, axis=1))


def lookup(h, keys, mask, k, metric):
    """The NumPy tier of :func:`refseq.kv_lookup.kv_lookup` on validated arrays:
    ``(idx (B, C, N, k), dist (B, C, N, k))``, one codebook and one block of queries at a time."""
    B, C, N, _ = h.shape
    M = keys.shape[1]
    idx = np.empty((B, C, N, k), np.int64)
    dist = np.empty((B, C, N, k), h.dtype)
    step = max(1, _BLOCK // M)
    for c in range(C):
        q = h[:, c].reshape(B * N, -1)  # (B N, d_k), query order (b, n)
        for lo in range(0, B * N, step):
            D = distances(q[lo:lo + step], keys[c], metric)  # (block, M)
            i, d = select_topk(D, mask[c].astype(bool), k)
            b, n = np.divmod(np.arange(lo, lo + i.shape[0]), N)
            idx[b, c, n], dist[b, c, n] = i, d
    return idx, dist


def near_tie(h, keys, topk=1, usage_mask=None, metric="l2"):
    """(B, C, N) bool: the queries whose reference ranking has a near-tie among its first
    ``topk + 1`` distances.

    Query ``(b, c, n)`` is flagged when two consecutive sorted distances ``d_r <= d_{r+1}``,
    ``r < min(topk, M_ok - 1)`` (``M_ok`` the keys ``usage_mask`` leaves), satisfy
    ``d_{r+1} - d_r <= tol * s`` with ``tol`` = :data:`TIE_TOL` of the dtype (1e-12 float64,
    1e-5 float32) and ``s = max(|d_r|, |d_{r+1}|)`` for l2 (its rounding error is relative to
    D), ``s = 1`` for cosine (absolute error). The gap ``r = topk - 1`` decides which keys are
    returned, the earlier gaps their order; a tier that rounds otherwise (a fused multiply-add
    on the GPU) may legitimately return a different ``idx`` there, and only there. Exact ties
    are flagged too, although every tier breaks those to the lower index. Arguments as
    :func:`refseq.kv_lookup.kv_lookup` (computed in the common dtype of ``h`` and ``keys``).
    """
    from refseq.kv_lookup.checks import check_lookup_args

    h, keys, _, topk, mask, code = check_lookup_args(h, keys, keys[..., :1], topk, usage_mask,
                                                     metric)
    tol = TIE_TOL[h.dtype]
    B, C, N, _ = h.shape
    out = np.zeros((B, C, N), bool)
    for c in range(C):
        q = h[:, c].reshape(B * N, -1)
        ok = mask[c].astype(bool)
        D = distances(q, keys[c], code)[:, ok].astype(np.float64)  # (B N, M_ok)
        s = np.sort(D, axis=1)[:, :topk + 1]  # (B N, <= topk + 1)
        if s.shape[1] < 2:
            continue
        lo, hi = s[:, :-1], s[:, 1:]
        scale = np.maximum(np.abs(lo), np.abs(hi)) if code == L2 else 1.0
        with np.errstate(invalid="ignore"):  # inf - inf: both overflowed, a tie
            gap = np.where(np.isinf(lo) & np.isinf(hi), 0.0, hi - lo)
        out[:, c] = (gap <= tol * scale).any(axis=1).reshape(B, N)
    return out
