"""Masked scaled dot-product attention and multi-head self-attention, with backward passes.

Symbols: T queries (``Tq``), S cached keys, ``Tk = S + T`` keys, H heads, ``Dh`` head width,
``D = H * Dh`` model width. Leading axes ``(...)`` (batch) are carried through unchanged.

Scaled dot-product attention (Vaswani et al. 2017, arXiv 1706.03762, Eq. 1) with a boolean
*allow* mask instead of an additive one:

.. math:: s_{qk} = \\tau\\, q_q \\cdot k_k, \\qquad
          P_{qk} = \\frac{A_{qk} e^{s_{qk} - m_q}}{\\sum_{k'} A_{qk'} e^{s_{qk'} - m_q}}, \\qquad
          o_q = \\sum_k P_{qk} v_k

with ``A`` the allow mask, ``m_q`` the row maximum over allowed keys and ``tau = 1/sqrt(Dh)`` by
default. **A query row with no allowed key has ``P = 0`` and outputs exactly 0** (not NaN, not a
uniform average): padding rows of a ragged batch stay harmless and receive zero gradient.

Backward (softmax Jacobian, row-wise):

.. math:: dV = P^\\top dO, \\quad dP = dO\\, V^\\top, \\quad
          dS = P \\odot (dP - \\mathrm{rowsum}(dP \\odot P)), \\quad
          dQ = \\tau\\, dS\\, K, \\quad dK = \\tau\\, dS^\\top Q.

Multi-head self-attention (:func:`mha_forward`) projects ``x`` with one fused matrix
``W_qkv (D, 3D)`` (columns ``[q | k | v]``, head ``h`` owning columns ``h*Dh:(h+1)*Dh`` of each
third, the nanoGPT ``c_attn`` layout), optionally rotates q and k (RoPE), prepends the cached keys
and values ``past_kv = (K_past, V_past)`` of layout ``(..., H, S, Dh)`` (the per-layer slice of
the tiny transformer's cache ``(L, 2, H, S, Dh)``), attends, and projects back with ``W_o``.
Cached keys are stored *after* rotation, so they are never rotated twice.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq._checks import check_flag
from refseq.nn.linear import linear_backward, linear_forward
from refseq.nn.positions import rope_backward, rope_forward


def _allow_mask(mask, lead: tuple, Tq: int, Tk: int, name: str = "allow_mask") -> np.ndarray:
    """Validate a boolean mask of shape (Tq, Tk) or (..., Tq, Tk) broadcastable to ``lead``."""
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        if m.dtype.kind not in "iu" or (m.size and not np.isin(m, (0, 1)).all()):
            raise TypeError(f"{name} must be a boolean array (True = may attend), "
                            f"got dtype {m.dtype}")
        m = m.astype(bool)
    if m.ndim < 2 or m.shape[-2:] != (Tq, Tk):
        raise ValueError(f"{name} must have shape (T_q, T_k) = {(Tq, Tk)} or (..., T_q, T_k), "
                         f"got {m.shape}")
    try:
        np.broadcast_shapes(m.shape[:-2], lead)
    except ValueError:
        raise ValueError(f"{name} leading shape {m.shape[:-2]} does not broadcast to the batch "
                         f"shape {lead}") from None
    if len(m.shape[:-2]) > len(lead):
        raise ValueError(f"{name} has more leading axes than the inputs: {m.shape} vs {lead}")
    return m


def attention_forward(q, k, v, allow_mask, scale=None):
    """Masked softmax attention, all heads at once.

    Parameters
    ----------
    q : (..., Tq, H, Dh) float32 or float64 — queries; its dtype is the output dtype.
    k : (..., Tk, H, Dh) — keys (same leading shape as ``q``).
    v : (..., Tk, H, Dv) — values.
    allow_mask : (Tq, Tk) or (..., Tq, Tk) bool — True where query q may attend to key k; shared
        by all heads, leading axes broadcast against ``q``'s.
    scale : float, optional — score scale tau, default ``1 / sqrt(Dh)``.

    Returns
    -------
    o : (..., Tq, H, Dv) — attention output; rows with no allowed key are 0.
    cache : tuple for :func:`attention_backward`.
    """
    q = _checks.float_array(q, "q", ndim_min=3)
    k = _checks.float_array(k, "k", dtype=q.dtype, ndim_min=3)
    v = _checks.float_array(v, "v", dtype=q.dtype, ndim_min=3)
    lead, (Tq, H, Dh) = q.shape[:-3], q.shape[-3:]
    if k.shape[:-3] != lead or k.shape[-2:] != (H, Dh):
        raise ValueError(f"k must have shape (..., Tk, H, Dh) with (...) = {lead}, H = {H}, "
                         f"Dh = {Dh}; got {k.shape}")
    Tk = k.shape[-3]
    if v.shape[:-1] != k.shape[:-1]:
        raise ValueError(f"v must have shape (..., Tk, H, Dv) = {k.shape[:-1]} + (Dv,), "
                         f"got {v.shape}")
    A = _allow_mask(allow_mask, lead, Tq, Tk)[..., None, :, :]  # (..., 1, Tq, Tk)
    scale = _checks.check_number(scale, "scale", allow_none=True)
    tau = q.dtype.type(1.0 / np.sqrt(Dh) if scale is None else scale)

    qh = np.swapaxes(q, -3, -2)  # (..., H, Tq, Dh)
    kh = np.swapaxes(k, -3, -2)  # (..., H, Tk, Dh)
    vh = np.swapaxes(v, -3, -2)  # (..., H, Tk, Dv)
    s = tau * (qh @ np.swapaxes(kh, -1, -2))  # (..., H, Tq, Tk)
    m = np.max(np.where(A, s, -np.inf), axis=-1, keepdims=True)  # (..., H, Tq, 1)
    m = np.where(np.isfinite(m), m, 0.0)  # fully masked rows
    e = np.exp(np.where(A, s - m, -np.inf))  # (..., H, Tq, Tk), 0 where masked
    denom = e.sum(axis=-1, keepdims=True)
    P = (e / np.where(denom > 0, denom, 1.0)).astype(q.dtype)  # (..., H, Tq, Tk)
    o = np.swapaxes(P @ vh, -3, -2)  # (..., Tq, H, Dv)
    return np.ascontiguousarray(o), (qh, kh, vh, P, tau)


def attention_backward(do, cache):
    """Gradients of :func:`attention_forward`: ``(dq, dk, dv)`` shaped like ``(q, k, v)``."""
    qh, kh, vh, P, tau = cache
    do = _checks.float_array(do, "do", dtype=qh.dtype)
    expected = qh.shape[:-3] + (qh.shape[-2], qh.shape[-3], vh.shape[-1])
    _checks.check_shape(do, expected, "do", "(..., Tq, H, Dv)")
    doh = np.swapaxes(do, -3, -2)  # (..., H, Tq, Dv)
    dvh = np.swapaxes(P, -1, -2) @ doh  # (..., H, Tk, Dv)
    dP = doh @ np.swapaxes(vh, -1, -2)  # (..., H, Tq, Tk)
    dS = P * (dP - np.sum(dP * P, axis=-1, keepdims=True))  # (..., H, Tq, Tk)
    dqh = tau * (dS @ kh)  # (..., H, Tq, Dh)
    dkh = tau * (np.swapaxes(dS, -1, -2) @ qh)  # (..., H, Tk, Dh)
    return tuple(np.ascontiguousarray(np.swapaxes(g, -3, -2)) for g in (dqh, dkh, dvh))


class MHAParams(NamedTuple):
    """Multi-head attention parameters (row-vector convention, ``y = x W + b``).

    W_qkv : (D, 3D) fused query/key/value projection, columns ``[q | k | v]``.
    b_qkv : (3D,) or None.
    W_o : (D, D) output projection.
    b_o : (D,) or None.
    """

    W_qkv: np.ndarray
    b_qkv: np.ndarray | None
    W_o: np.ndarray
    b_o: np.ndarray | None


def init_mha_params(rng, D: int, dtype=np.float64, bias: bool = True, std=None,
                    out_std=None) -> MHAParams:
    """Random ``MHAParams``: weights ~ N(0, std^2) (default ``1/sqrt(D)``), biases 0."""
    bias = check_flag(bias, "bias")
    D = _checks.check_number(D, "D", integer=True, low=1)
    dtype = _checks.check_float_dtype(dtype, "dtype")
    rng = _checks.check_rng(rng)
    std = 1.0 / np.sqrt(D) if std is None else _checks.check_number(std, "std", low=0)
    out_std = std if out_std is None else _checks.check_number(out_std, "out_std", low=0)
    W_qkv = (std * rng.standard_normal((D, 3 * D))).astype(dtype)
    W_o = (out_std * rng.standard_normal((D, D))).astype(dtype)
    zeros = (lambda n: np.zeros(n, dtype)) if bias else (lambda n: None)
    return MHAParams(W_qkv, zeros(3 * D), W_o, zeros(D))


def causal_allow_mask(T: int, S: int = 0) -> np.ndarray:
    """(T, S + T) bool: query t sees every cached key and current keys ``<= t``."""
    T = _checks.check_number(T, "T", integer=True, low=0)
    S = _checks.check_number(S, "S", integer=True, low=0)
    return np.arange(S + T)[None, :] <= S + np.arange(T)[:, None]


def mha_forward(x, params: MHAParams, n_heads: int, allow_mask=None, positions=None,
                past_kv=None, rope: bool = False, rope_base: float = 10000.0):
    """Multi-head self-attention over ``x`` and an optional cache.

    Parameters
    ----------
    x : (..., T, D) float32 or float64.
    params : MHAParams (cast to ``x``'s dtype).
    n_heads : H, must divide D.
    allow_mask : (T, S + T) or (..., T, S + T) bool, default :func:`causal_allow_mask`.
    positions : (T,) or (..., T) int — position ids, used only by RoPE (default ``S + arange(T)``).
    past_kv : (K_past, V_past), each (..., H, S, Dh), or None (S = 0).
    rope : rotate q and k by their positions (Su et al. 2021, arXiv 2104.09864).

    Returns
    -------
    y : (..., T, D).
    new_kv : (K, V), each (..., H, S + T, Dh) — the cache after appending this call's keys.
    cache : for :func:`mha_backward`.
    """
    rope = check_flag(rope, "rope")
    rope_base = _checks.check_number(rope_base, "rope_base", low=1, low_open=True)
    x = _checks.float_array(x, "x", ndim_min=2)
    lead, (T, D) = x.shape[:-2], x.shape[-2:]
    H = _checks.check_number(n_heads, "n_heads", integer=True, low=1)
    if D % H:
        raise ValueError(f"n_heads must be a positive divisor of D = {D}, got {n_heads}")
    Dh = D // H
    W_qkv = _checks.float_array(params.W_qkv, "params.W_qkv", dtype=x.dtype)
    _checks.check_shape(W_qkv, (D, 3 * D), "params.W_qkv", "(D, 3D)")
    if past_kv is None:
        S = 0
        K_past = V_past = np.zeros(lead + (H, 0, Dh), x.dtype)
    else:
        K_past = _checks.float_array(past_kv[0], "past_kv[0]", dtype=x.dtype)
        V_past = _checks.float_array(past_kv[1], "past_kv[1]", dtype=x.dtype)
        S = K_past.shape[-2] if K_past.ndim >= 2 else 0
        _checks.check_shape(K_past, lead + (H, S, Dh), "past_kv[0]", "(..., H, S, Dh)")
        _checks.check_shape(V_past, lead + (H, S, Dh), "past_kv[1]", "(..., H, S, Dh)")
    if allow_mask is None:
        allow_mask = causal_allow_mask(T, S)

    qkv, c_qkv = linear_forward(x, W_qkv, params.b_qkv)  # (..., T, 3D)
    qkv = qkv.reshape(lead + (T, 3, H, Dh))
    q, k, v = qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :]  # (..., T, H, Dh)
    c_rope = None
    if rope:
        if positions is None:
            positions = S + np.arange(T)
        q, c_rope_q = rope_forward(q, positions, base=rope_base)
        k, c_rope_k = rope_forward(k, positions, base=rope_base)
        c_rope = (c_rope_q, c_rope_k)
    K = np.concatenate([np.swapaxes(K_past, -3, -2), k], axis=-3)  # (..., S+T, H, Dh)
    V = np.concatenate([np.swapaxes(V_past, -3, -2), v], axis=-3)  # (..., S+T, H, Dh)
    o, c_att = attention_forward(q, K, V, allow_mask)  # (..., T, H, Dh)
    y, c_o = linear_forward(o.reshape(lead + (T, D)), params.W_o, params.b_o)  # (..., T, D)
    new_kv = (np.ascontiguousarray(np.swapaxes(K, -3, -2)),
              np.ascontiguousarray(np.swapaxes(V, -3, -2)))  # (..., H, S+T, Dh)
    cache = (c_qkv, c_rope, c_att, c_o, lead, T, S, H, Dh, past_kv is not None)
    return y, new_kv, cache


def mha_backward(dy, cache, d_new_kv=None):
    """Gradients of :func:`mha_forward`.

    Parameters
    ----------
    dy : (..., T, D) — cotangent of ``y``.
    cache : from :func:`mha_forward`.
    d_new_kv : (dK, dV), each (..., H, S + T, Dh), or None — cotangent of ``new_kv`` (when the
        cache feeds later calls; its first S slots flow into ``d_past_kv``).

    Returns
    -------
    dx : (..., T, D).
    dparams : MHAParams of gradients (None where the bias is None).
    d_past_kv : (dK_past, dV_past), each (..., H, S, Dh), or None when ``past_kv`` was None.
    """
    c_qkv, c_rope, c_att, c_o, lead, T, S, H, Dh, had_past = cache
    D = H * Dh
    do, dW_o, db_o = linear_backward(dy, c_o)  # (..., T, D)
    dq, dK, dV = attention_backward(do.reshape(lead + (T, H, Dh)), c_att)  # (..., S+T, H, Dh)
    if d_new_kv is not None:
        for i, g in enumerate(d_new_kv):
            if g is not None:
                g = _checks.float_array(g, f"d_new_kv[{i}]", dtype=dq.dtype)
                _checks.check_shape(g, lead + (H, S + T, Dh), f"d_new_kv[{i}]",
                                    "(..., H, S + T, Dh)")
                (dK if i == 0 else dV)[...] += np.swapaxes(g, -3, -2)
    dk, dv = dK[..., S:, :, :], dV[..., S:, :, :]  # (..., T, H, Dh)
    if c_rope is not None:
        (dq,) = rope_backward(dq, c_rope[0])
        (dk,) = rope_backward(dk, c_rope[1])
    dqkv = np.stack([dq, dk, dv], axis=-3).reshape(lead + (T, 3 * D))  # (..., T, 3D)
    dx, dW_qkv, db_qkv = linear_backward(dqkv, c_qkv)
    d_past = None
    if had_past:
        d_past = (np.ascontiguousarray(np.swapaxes(dK[..., :S, :, :], -3, -2)),
                  np.ascontiguousarray(np.swapaxes(dV[..., :S, :, :], -3, -2)))
    return dx, MHAParams(dW_qkv, db_qkv, dW_o, db_o), d_past
