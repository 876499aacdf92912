"""Causal softmax attention and its KV-cache decode: the baseline Aaren is measured against.

Symbols: B batch, T time, H heads, Dk key width, Dv value width. Seen as an RNN (Feng et al.,
arXiv 2405.13956, Sec. 3.1), a Transformer's decoder state is its KV cache, which grows with
every token, so step t costs O(t) time and memory; Aaren's state (``refseq.papers.aaren.layer``) is
constant. Softmax weights are computed log-sum-exp-stably (:func:`masked_softmax`); the textbook
form :func:`softmax_unstable` sits beside it only to show where it fails (a negative test).

Masks are boolean, True = a valid token. A masked key gets weight exactly 0 (it is excluded, not
given a large negative score); a query that sees no valid key outputs 0.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from refseq import _checks
from refseq._checks import check_flag


def masked_softmax(s, mask=None, axis=-1):
    """Stable softmax of ``s`` along ``axis`` over the entries where ``mask`` is True.

    .. math:: p_i = e^{s_i - m} / \\sum_{j \\in \\text{valid}} e^{s_j - m},
              \\quad m = \\max_{j \\in \\text{valid}} s_j

    Masked entries get ``p = 0``. Non-finite scores of valid entries:

    * NaN anywhere in a slice makes the whole slice NaN (never hidden as zeros);
    * ``+inf`` entries share the mass equally and every finite entry gets 0: the limit of the
      softmax as those scores grow (one ``+inf`` gives a one-hot slice);
    * ``-inf`` entries get 0, like masked ones; a slice without a valid entry, or whose valid
      entries are all ``-inf``, is all zeros (no key to attend to).

    ``mask`` (bool, True = valid) must broadcast to ``s``'s shape.
    """
    s = _checks.float_array(s, "s", ndim_min=1)
    axis = _checks.check_axis(axis, s.ndim)
    if mask is None:
        valid = np.ones(s.shape, bool)
    else:
        mask = np.asarray(mask)
        if mask.dtype != np.bool_:
            raise TypeError(f"mask must be a boolean array (True = valid), got {mask.dtype}")
        try:
            valid = np.broadcast_to(mask, s.shape)
        except ValueError:
            raise ValueError(f"mask of shape {mask.shape} does not broadcast to s's shape "
                             f"{s.shape}") from None
    finite = valid & np.isfinite(s)
    top = valid & np.isposinf(s)  # +inf scores: the limit puts all the mass on them
    m = np.max(s, axis=axis, keepdims=True, where=finite, initial=-np.inf)
    ref = np.where(np.isneginf(m), 0, m).astype(s.dtype, copy=False)  # no finite entry: any ref
    e = np.exp(s - ref, where=finite, out=np.zeros_like(s))
    e = np.where(top.any(axis=axis, keepdims=True), top.astype(s.dtype), e)
    c = e.sum(axis=axis, keepdims=True)
    p = np.divide(e, c, out=np.zeros_like(s), where=c > 0)
    p[np.broadcast_to((valid & np.isnan(s)).any(axis=axis, keepdims=True), s.shape)] = np.nan
    return p


def softmax_unstable(s, axis=-1):
    """Textbook softmax ``e^{s_i} / sum_j e^{s_j}`` — overflows for s >~ 709 (float64) or 88
    (float32) and divides 0 by 0 when every s is below about -745 (-104). Kept only for the test
    that shows why :func:`masked_softmax` subtracts the max; never used by the reference."""
    s = _checks.float_array(s, "s", ndim_min=1)
    axis = _checks.check_axis(axis, s.ndim)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        e = np.exp(s)
        return e / e.sum(axis=axis, keepdims=True)


def _scale(scale, Dk: int, dtype) -> np.floating:
    """The score scale: ``1/sqrt(Dk)`` when None (the Transformer convention)."""
    if scale is None:
        if Dk < 1:
            raise ValueError("the key width Dk must be >= 1")
        return np.dtype(dtype).type(1.0 / np.sqrt(Dk))
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be a real number or None, got {scale!r}")
    if not np.isfinite(scale):
        raise ValueError(f"scale must be finite, got {scale!r}")
    return np.dtype(dtype).type(scale)


def causal_softmax_attention(q, k, v, mask=None, scale=None):
    """Causal softmax self-attention, the whole sequence at once (the parallel form).

    .. math:: o_i = \\sum_{j \\le i,\\ j \\text{ valid}} \\mathrm{softmax}_j(\\text{scale}
              \\langle q_i, k_j \\rangle)\\, v_j

    Parameters
    ----------
    q, k : (B, T, H, Dk); v : (B, T, H, Dv) — float32 or float64 (``v``'s dtype wins).
    mask : (B, T) bool, optional — False marks padding keys.
    scale : float, optional — ``1/sqrt(Dk)`` when None.

    Returns
    -------
    o : (B, T, H, Dv).
    """
    v = _checks.float_array(v, "v")
    if v.ndim != 4:
        raise ValueError(f"v must have shape (B, T, H, Dv), got {v.shape}")
    B, T, H, Dv = v.shape
    k = _checks.float_array(k, "k", dtype=v.dtype)
    q = _checks.float_array(q, "q", dtype=v.dtype)
    if k.ndim != 4 or k.shape[:3] != (B, T, H):
        raise ValueError(f"k must have shape (B, T, H, Dk) with (B, T, H) = {(B, T, H)}, "
                         f"got {k.shape}")
    _checks.check_shape(q, k.shape, "q", "(B, T, H, Dk)")
    mask = _checks.bool_mask(mask, (B, T), "mask", "(B, T)")
    for x, name in ((q, "q"), (k, "k"), (v, "v")):
        _checks.check_finite(x, name, hint="")
    scale = _scale(scale, k.shape[3], v.dtype)
    s = scale * np.einsum("bihd,bjhd->bhij", q, k)  # (B, H, T, T): query i, key j
    allowed = np.tril(np.ones((T, T), bool))  # (T, T): key j <= query i
    if mask is not None:
        allowed = allowed & mask[:, None, None, :]  # (B, 1, T, T)
    p = masked_softmax(s, allowed, axis=-1)  # (B, H, T, T)
    return np.einsum("bhij,bjhd->bihd", p, v)  # (B, T, H, Dv)


# ---------------------------------------------------------------------------------------------
# KV cache: the Transformer as an RNN whose state grows with t.


@dataclass
class KVCache:
    """Keys, values and validity of the tokens seen so far, in buffers of spare capacity.

    ``k`` (B, capacity, H, Dk), ``v`` (B, capacity, H, Dv), ``valid`` (B, capacity) bool; the
    first ``length`` time slots are in use. Appending writes in place and doubles the buffers
    when full (amortised O(1)), as inference servers do; the state grows as O(t).
    """

    k: np.ndarray
    v: np.ndarray
    valid: np.ndarray
    length: int = 0


def kv_cache_init(B: int, H: int, Dk: int, Dv: int, dtype=np.float64, capacity: int = 16):
    """An empty cache with room for ``capacity`` tokens (an int >= 1; it grows on demand).

    ``B``, ``H`` >= 1 and ``Dk``, ``Dv`` >= 1 are ints; ``dtype`` is float32 or float64.
    """
    B, H, Dk, Dv = (_checks.check_number(n, name, integer=True, low=1)
                    for n, name in ((B, "B"), (H, "H"), (Dk, "Dk"), (Dv, "Dv")))
    dtype = _checks.check_float_dtype(dtype, "dtype")
    capacity = _checks.check_number(capacity, "capacity", integer=True, low=1)
    return KVCache(np.zeros((B, capacity, H, Dk), dtype), np.zeros((B, capacity, H, Dv), dtype),
                   np.zeros((B, capacity), bool))


def kv_cache_append(cache: KVCache, k_t, v_t, valid_t=None) -> KVCache:
    """Append one token's ``k_t`` (B, H, Dk) and ``v_t`` (B, H, Dv) in place; returns ``cache``."""
    t = cache.length
    if t == cache.k.shape[1]:  # full: double the buffers
        cache.k = np.concatenate([cache.k, np.zeros_like(cache.k)], axis=1)
        cache.v = np.concatenate([cache.v, np.zeros_like(cache.v)], axis=1)
        cache.valid = np.concatenate([cache.valid, np.zeros_like(cache.valid)], axis=1)
    cache.k[:, t], cache.v[:, t] = k_t, v_t
    cache.valid[:, t] = True if valid_t is None else valid_t
    cache.length = t + 1
    return cache


def kv_cache_attend(q, cache: KVCache, scale=None):
    """Softmax attention of ``q`` (B, H, Dk) over every valid cached token; returns (B, H, Dv)."""
    t = cache.length
    K, V = cache.k[:, :t], cache.v[:, :t]  # (B, t, H, Dk), (B, t, H, Dv)
    s = _scale(scale, K.shape[3], V.dtype) * np.einsum("bhd,bthd->bth", q, K)  # (B, t, H)
    p = masked_softmax(s, cache.valid[:, :t, None], axis=1)  # (B, t, H)
    return np.einsum("bth,bthd->bhd", p, V)  # (B, H, Dv)


def _check_step(cache, k_t, v_t, valid_t, check_finite):
    """Validate one decode step's token against the cache; return it in the cache's dtype."""
    if not isinstance(cache, KVCache):
        raise TypeError(f"cache must be a KVCache (see kv_cache_init), got {type(cache).__name__}")
    B, _, H, Dk = cache.k.shape
    k_t = _checks.float_array(k_t, "k_t", dtype=cache.k.dtype)
    _checks.check_shape(k_t, (B, H, Dk), "k_t", "(B, H, Dk)")
    v_t = _checks.float_array(v_t, "v_t", dtype=cache.k.dtype)
    _checks.check_shape(v_t, (B, H, cache.v.shape[3]), "v_t", "(B, H, Dv)")
    valid_t = _checks.bool_mask(valid_t, (B,), "valid_t", "(B,)")
    if check_finite:
        _checks.check_finite(k_t, "k_t")
        _checks.check_finite(v_t, "v_t")
    return k_t, v_t, valid_t


def _check_query(q, shape, name, form, dtype, check_finite):
    q = _checks.float_array(q, name, dtype=dtype)
    _checks.check_shape(q, shape, name, form)
    if check_finite:
        _checks.check_finite(q, name)
    return q


def kv_attention_step(q_t, k_t, v_t, cache, valid_t=None, scale=None, *, check_finite=True):
    """One decode step of causal softmax self-attention: append token t, attend over 1..t.

    Parameters
    ----------
    q_t, k_t : (B, H, Dk); v_t : (B, H, Dv) — the new token's projections (cast to the cache's
        dtype). valid_t : (B,) bool, optional — False appends a padding slot that no query sees.
    cache : KVCache — updated in place and returned.

    Returns
    -------
    o_t : (B, H, Dv) — equals row t of :func:`causal_softmax_attention`; cache.

    Notes
    -----
    O(t) time and memory at step t: this is "the Transformer as an RNN whose state grows with t"
    that arXiv 2405.13956, Sec. 3.1 contrasts with Aaren's constant-size state.
    """
    check_finite = check_flag(check_finite, "check_finite")
    k_t, v_t, valid_t = _check_step(cache, k_t, v_t, valid_t, check_finite)
    q_t = _check_query(q_t, k_t.shape, "q_t", "(B, H, Dk)", k_t.dtype, check_finite)
    cache = kv_cache_append(cache, k_t, v_t, valid_t)
    return kv_cache_attend(q_t, cache, scale), cache


def kv_single_query_step(q, k_t, v_t, cache, valid_t=None, scale=None, *, check_finite=True):
    """:func:`kv_attention_step` for one fixed query ``q`` (H, Dk) shared by the batch.

    Aaren's many-to-one attention computed the Transformer way, by re-reading the whole growing
    KV cache every step: the baseline (b) of Aaren's efficiency demo (``refseq demo aaren``).
    Its outputs equal Aaren's (``aaren_cell_step``) up to rounding, at O(t) instead of O(1) cost.
    """
    check_finite = check_flag(check_finite, "check_finite")
    k_t, v_t, valid_t = _check_step(cache, k_t, v_t, valid_t, check_finite)
    q = _check_query(q, k_t.shape[1:], "q", "(H, Dk)", k_t.dtype, check_finite)
    cache = kv_cache_append(cache, k_t, v_t, valid_t)
    q_b = np.broadcast_to(q, k_t.shape)  # (B, H, Dk)
    return kv_cache_attend(q_b, cache, scale), cache
