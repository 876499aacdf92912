"""Top-k cosine retrieval from RecurrentGPT's long-term memory (Zhou et al., arXiv 2305.13304).

The long-term memory ``c`` (the LSTM's cell state in the paper's analogy) lives outside the
prompt; each step retrieves the ``k`` stored items most similar to the plan ``x_t``:

.. math::

    s(q, m) = \\frac{E(q) \\cdot E(m)}{\\lVert E(q) \\rVert \\, \\lVert E(m) \\rVert}, \\qquad
    R_k(q) = \\operatorname{argtop}_{\\min(k, M)} \\; s(q, m_i)

(the official ``util.cos_sim`` then ``torch.topk(k=2)``, which fails for ``k > M``; here ``k`` is
clamped). Ties go to the earlier item; a zero-norm row or query scores 0.

:func:`cosine_topk` is the readable reference. :func:`cosine_topk_kv` computes the same ranking
through the key-value lookup hot path (:mod:`refseq.kv_lookup`, one codebook ``C = 1`` holding
the memory's embeddings as keys, ``metric="cosine"``): for unit vectors
``||a - b||^2 = 2 - 2 cos(a, b)``, so the nearest keys are the most similar items.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks

__all__ = ["cosine_topk", "cosine_topk_kv"]


def _inputs(query, index, k):
    q = _checks.float_array(query, "query")
    if q.ndim not in (1, 2):
        raise ValueError(f"query must have shape (D,) or (B, D), got {q.shape}")
    m = _checks.float_array(index, "index")
    if m.ndim != 2:
        raise ValueError(f"index must have shape (M, D), got {m.shape}")
    if m.shape[1] != q.shape[-1]:
        raise ValueError(f"query and index must share the width D: query has "
                         f"{q.shape[-1]}, index has {m.shape[1]}")
    _checks.check_finite(q, "query", hint="")
    _checks.check_finite(m, "index", hint="")
    k = _checks.check_number(k, "k", integer=True, low=0)
    dtype = np.result_type(q.dtype, m.dtype)
    return q.astype(dtype, copy=False), m.astype(dtype, copy=False), k


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)  # (..., 1)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def cosine_topk(query, index, k: int):
    """The ``min(k, M)`` rows of ``index`` most cosine-similar to ``query``, best first.

    Parameters
    ----------
    query : (D,) or (B, D) float32 or float64
        ``E(x_t)``, the embedding of the plan (a batch of plans: one row each).
    index : (M, D) float32 or float64
        The embeddings of the ``M`` long-term-memory items (need not be normalised).
    k : int
        Items to return, ``>= 0``; clamped to ``M``.

    Returns
    -------
    idx : (k',) or (B, k') int64
        Row numbers, by decreasing score; equal scores in increasing row order.
    scores : (k',) or (B, k'), the result dtype of the inputs
        The cosine similarities ``s(q, m)`` of those rows (0 for zero-norm rows or queries).

    Notes
    -----
    Brute force, as in the paper's code: all ``M`` scores, then a stable sort of ``-s``.
    """
    q, m, k = _inputs(query, index, k)
    scores = _unit(q) @ _unit(m).T  # (..., M)
    kk = min(k, m.shape[0])
    order = np.argsort(-scores, axis=-1, kind="stable")[..., :kk]  # (..., k')
    return order.astype(np.int64), np.take_along_axis(scores, order, axis=-1)


def cosine_topk_kv(query, index, k: int, *, backend: str = "numpy"):
    """:func:`cosine_topk` through the key-value lookup hot path (same arguments and returns).

    One call ``kv_lookup(h (B, 1, 1, D), keys (1, M, D), values (1, M, 1), topk=k',
    metric="cosine")``: codebook ``C = 1`` holds the memory's embeddings as keys, one query
    token per plan. The hot path's cosine distance ``1 - cos`` already scores a zero-norm key as
    cosine 0 (the reference's rule), so no ``usage_mask`` is needed: every stored item,
    empty texts included, stays retrievable as in :func:`cosine_topk`. Its ties also go to the
    lower index. ``backend`` picks the tier (``"numpy"``, ``"jit"``, ``"cuda"``); the returned
    scores are ``1 - dist``. Rankings equal the reference's except where two scores differ in
    the last bits (the two compute the cosine in different orders).
    """
    from refseq.kv_lookup import kv_lookup

    q, m, k = _inputs(query, index, k)
    single = q.ndim == 1
    qb = q.reshape(-1, q.shape[-1])  # (B, D)
    kk = min(k, m.shape[0])
    if kk == 0:
        idx, scores = np.zeros((qb.shape[0], 0), np.int64), np.zeros((qb.shape[0], 0), q.dtype)
    else:
        values = np.zeros((1, m.shape[0], 1), m.dtype)  # (1, M, 1): only the indices are used
        got, dist, _ = kv_lookup(qb[:, None, None, :], m[None], values, topk=kk,
                                 metric="cosine", backend=backend)  # (B, 1, 1, k')
        idx, scores = got[:, 0, 0, :], 1 - dist[:, 0, 0, :]
    return (idx[0], scores[0]) if single else (idx, scores)
